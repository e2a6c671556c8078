// keel indexing kernels. Tensors are viewed as [outer, axis, inner] (contiguous).
// Out-of-range indices read as zero (gather/index_select) or are skipped (scatter-adds);
// callers validate indices when they need an error.

#define KEEL_FOR_BYTES(M) M(b1, u8) M(b2, u16) M(b4, u32) M(b8, u64)

// concat: up to KEEL_CONCAT_MAX contiguous pieces [outer, in_axis[k], inner] copied into
// out [outer, out_axis, inner] at offset[k] along the axis, in one multi-tensor launch
// (multi.cuh; n[k] = outer * in_axis[k] * inner). Mirrors `keel_cuda_kernels::ops::index::
// ConcatList` (#[repr(C)], no padding).
#define KEEL_CONCAT_MAX 64
struct ConcatList {
    u64 in[KEEL_CONCAT_MAX];
    i64 in_axis[KEEL_CONCAT_MAX];
    i64 offset[KEEL_CONCAT_MAX];
    i64 n[KEEL_CONCAT_MAX];
    i64 tile_start[KEEL_CONCAT_MAX + 1];
    i64 count;
    u64 out;
    i64 inner, out_axis;
};

// Records index v (outside [0, size)) in the device's index report err = {op, index, size}
// (err[0] == 0 while none was; the first to find one keeps it), for the host to report when
// it next waits for the stream. `op` (> 0) names the checking op in the host's table. A null
// err records nothing (an unchecked launch).
__device__ __forceinline__ void keel_index_fault(i64* err, i64 op, i64 v, i64 size) {
    if (err == nullptr) return;
    unsigned long long* word = reinterpret_cast<unsigned long long*>(err);
    if (atomicCAS(word, 0ull, static_cast<unsigned long long>(op)) == 0ull) {
        err[1] = v;
        err[2] = size;
    }
}

// out[o, j, i] = in[o, idx[o, j, i], i]   (torch.gather along the axis)
// index_select: out[o, j, i] = in[o, idx[j], i]
// An index outside [0, n_in) reads as 0 and is recorded in the index report (err, op): the
// check rides on the gather, with no launch of its own.
#define KEEL_GATHER(BN, T)                                                                     \
    extern "C" __global__ void gather_##BN(const T* __restrict__ in, const i64* __restrict__ idx, \
                                           T* __restrict__ out, i64 outer, i64 n_in,            \
                                           i64 n_idx, i64 inner, i64* err, i64 op) {            \
        const i64 total = outer * n_idx * inner;                                               \
        KEEL_GRID_LOOP(e, total) {                                                              \
            const i64 i = e % inner;                                                            \
            const i64 o = e / (n_idx * inner);                                                  \
            const i64 k = idx[e];                                                               \
            const bool ok = k >= 0 && k < n_in;                                                 \
            if (!ok) keel_index_fault(err, op, k, n_in);                                        \
            out[e] = ok ? in[(o * n_in + k) * inner + i] : (T)0;                                \
        }                                                                                       \
    }                                                                                           \
    extern "C" __global__ void index_select_##BN(const T* __restrict__ in,                     \
                                                 const i64* __restrict__ idx,                   \
                                                 T* __restrict__ out, i64 outer, i64 n_in,      \
                                                 i64 n_idx, i64 inner, i64* err, i64 op) {      \
        const i64 total = outer * n_idx * inner;                                               \
        KEEL_GRID_LOOP(e, total) {                                                              \
            const i64 i = e % inner;                                                            \
            const i64 j = (e / inner) % n_idx;                                                  \
            const i64 o = e / (n_idx * inner);                                                  \
            const i64 k = idx[j];                                                               \
            const bool ok = k >= 0 && k < n_in;                                                 \
            if (!ok) keel_index_fault(err, op, k, n_in);                                        \
            out[e] = ok ? in[(o * n_in + k) * inner + i] : (T)0;                                \
        }                                                                                       \
    }                                                                                           \
    extern "C" __global__ void concat_##BN(const ConcatList L) {                               \
        T* out = (T*)L.out;                                                                     \
        KEEL_MULTI_LOOP(L, k, e) {                                                              \
            const i64 slab = L.in_axis[k] * L.inner;                                            \
            const i64 o = e / slab;                                                             \
            const i64 rem = e - o * slab;                                                       \
            out[(o * L.out_axis + L.offset[k]) * L.inner + rem] = ((const T*)L.in[k])[e];       \
        }                                                                                       \
    }
KEEL_FOR_BYTES(KEEL_GATHER)

// The accumulating backwards (gather's: scatter_add; index_select's: index_add) add each
// output element's contributions in a fixed order, with no atomics, so the same inputs give
// the same bits on every run. Each contribution's target becomes a u32 key
// (accumulate_keys_*; an index outside [0, n_in) gets the key n_out, past every target, and
// is skipped), a stable radix sort (sort.cu) lists the contributions' source positions by
// key, and each run of equal keys is added up in source order.
//
// The sorted contributions are seen as `[outer, n, inner]` columns: contribution q of column
// (o, i) is g[(o * n_src + pos[q]) * inner + i] and goes to out[(o * n_out + key[q]) * inner + i].
// index_add sorts its n_idx indices once for all columns; scatter_add sorts every element's
// flat target (outer = inner = 1). A run of up to KEEL_SEGMENT_PIECE contributions is summed
// by one thread from 0 in source order, which is the CPU's sequential sum bit for bit; a
// longer one is cut into pieces of KEEL_SEGMENT_PIECE from its start, each later piece summed
// on its own (segment_piece), and those sums added to the first piece's in order
// (segment_sum): still one fixed order, and no thread adds more than a piece plus one sum per
// piece.

#define KEEL_SEGMENT_PIECE 256

// index_add: key[j] = idx[j], or n_in when out of range.
extern "C" __global__ void accumulate_keys_index(const i64* __restrict__ idx, u32* __restrict__ keys, i64 n,
                                                 i64 n_in) {
    KEEL_GRID_LOOP(j, n) {
        const i64 k = idx[j];
        keys[j] = (u32)(k >= 0 && k < n_in ? k : n_in);
    }
}

// scatter_add: key[e] = the flat target (o * n_in + idx[e]) * inner + i of element e of
// [outer, n_idx, inner], or outer * n_in * inner when out of range.
extern "C" __global__ void accumulate_keys_gather(const i64* __restrict__ idx, u32* __restrict__ keys, i64 outer,
                                                  i64 n_in, i64 n_idx, i64 inner) {
    const i64 total = outer * n_idx * inner;
    KEEL_GRID_LOOP(e, total) {
        const i64 i = e % inner;
        const i64 o = e / (n_idx * inner);
        const i64 k = idx[e];
        keys[e] = (u32)(k >= 0 && k < n_in ? (o * n_in + k) * inner + i : outer * n_in * inner);
    }
}

// The first position of the sorted keys' run that holds position p.
__device__ __forceinline__ i64 keel_run_start(const u32* __restrict__ keys, i64 p) {
    const u32 k = keys[p];
    i64 lo = 0, hi = p;
    while (lo < hi) {
        const i64 mid = lo + (hi - lo) / 2;
        if (keys[mid] < k) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

// The sum, from 0 in order, of column (o, i)'s contributions at [p, p + KEEL_SEGMENT_PIECE)
// whose key is k. A is the accumulator (u64 for i64: two's complement, wrapping).
template <typename T, typename A>
__device__ __forceinline__ A keel_piece_sum(const u32* __restrict__ keys, const u32* __restrict__ pos,
                                            const T* __restrict__ g, i64 p, u32 k, i64 n, i64 o, i64 n_src,
                                            i64 inner, i64 i) {
    A acc = (A)0;
    const i64 end = p + KEEL_SEGMENT_PIECE < n ? p + KEEL_SEGMENT_PIECE : n;
    for (i64 q = p; q < end && keys[q] == k; ++q) acc += (A)g[(o * n_src + pos[q]) * inner + i];
    return acc;
}

// part[(c * outer + o) * inner + i] = the sum of the piece that starts in chunk c (positions
// [c * PIECE, (c + 1) * PIECE)) and is not the start of its run, if there is one: a run that
// starts before c * PIECE and reaches it has its piece start at the first multiple of PIECE
// from its start that is at least c * PIECE, and no other run can start a later piece there.
template <typename T, typename A>
__device__ __forceinline__ void segment_piece_t(const u32* __restrict__ keys, const u32* __restrict__ pos,
                                                const T* __restrict__ g, A* __restrict__ part, i64 n, i64 outer,
                                                i64 n_src, i64 n_out, i64 inner) {
    const i64 chunks = (n + KEEL_SEGMENT_PIECE - 1) / KEEL_SEGMENT_PIECE;
    const i64 total = chunks * outer * inner;
    KEEL_GRID_LOOP(e, total) {
        const i64 i = e % inner;
        const i64 o = (e / inner) % outer;
        const i64 c = e / (outer * inner);
        const i64 at = c * KEEL_SEGMENT_PIECE;
        const u32 k = keys[at];
        if ((i64)k >= n_out) continue;
        const i64 s = keel_run_start(keys, at);
        if (s == at) continue;
        const i64 p = s + (at - s + KEEL_SEGMENT_PIECE - 1) / KEEL_SEGMENT_PIECE * KEEL_SEGMENT_PIECE;
        if (p >= n || keys[p] != k) continue;
        part[e] = keel_piece_sum<T, A>(keys, pos, g, p, k, n, o, n_src, inner, i);
    }
}

// out[(o * n_out + k) * inner + i] for each run of key k (< n_out) starting at p: its first
// piece summed here, then the later pieces' sums from segment_piece, in order. out is
// zeroed first (targets without contributions).
template <typename T, typename A>
__device__ __forceinline__ void segment_sum_t(const u32* __restrict__ keys, const u32* __restrict__ pos,
                                              const T* __restrict__ g, const A* __restrict__ part,
                                              T* __restrict__ out, i64 n, i64 outer, i64 n_src, i64 n_out,
                                              i64 inner) {
    const i64 total = outer * n * inner;
    KEEL_GRID_LOOP(e, total) {
        const i64 i = e % inner;
        const i64 p = (e / inner) % n;
        const i64 o = e / (n * inner);
        const u32 k = keys[p];
        if ((i64)k >= n_out || (p > 0 && keys[p - 1] == k)) continue;
        A acc = keel_piece_sum<T, A>(keys, pos, g, p, k, n, o, n_src, inner, i);
        for (i64 r = p + KEEL_SEGMENT_PIECE; r < n && keys[r] == k; r += KEEL_SEGMENT_PIECE)
            acc += part[((r / KEEL_SEGMENT_PIECE) * outer + o) * inner + i];
        out[(o * n_out + k) * inner + i] = (T)acc;
    }
}

#define KEEL_SEGMENT(TN, T, A)                                                                              \
    extern "C" __global__ void segment_piece_##TN(const u32* __restrict__ keys, const u32* __restrict__ pos,   \
                                                  const T* __restrict__ g, A* __restrict__ part, i64 n,       \
                                                  i64 outer, i64 n_src, i64 n_out, i64 inner) {               \
        segment_piece_t<T, A>(keys, pos, g, part, n, outer, n_src, n_out, inner);                            \
    }                                                                                                       \
    extern "C" __global__ void segment_sum_##TN(const u32* __restrict__ keys, const u32* __restrict__ pos,     \
                                                const T* __restrict__ g, const A* __restrict__ part,          \
                                                T* __restrict__ out, i64 n, i64 outer, i64 n_src, i64 n_out,  \
                                                i64 inner) {                                                  \
        segment_sum_t<T, A>(keys, pos, g, part, out, n, outer, n_src, n_out, inner);                         \
    }
KEEL_SEGMENT(f32, float, float)
KEEL_SEGMENT(f64, double, double)
KEEL_SEGMENT(i64, i64, u64)

// out[r, c] = (c == labels[r]) ? on : off; a label outside [0, classes) gives an all-`off` row.
extern "C" __global__ void one_hot_f32(const i64* __restrict__ labels, float* __restrict__ out, i64 rows,
                                       i64 classes, float on, float off) {
    const i64 total = rows * classes;
    KEEL_GRID_LOOP(e, total) {
        const i64 r = e / classes;
        const i64 c = e - r * classes;
        out[e] = labels[r] == c ? on : off;
    }
}

// Index validation on the device, for ops whose kernels do not check as they go: every
// index outside [0, size) is recorded in the index report (keel_index_fault).
extern "C" __global__ void check_index_range(const i64* __restrict__ idx, i64 n, i64 size, i64* err, i64 op) {
    KEEL_GRID_LOOP(e, n) {
        const i64 v = idx[e];
        if (v < 0 || v >= size) keel_index_fault(err, op, v, size);
    }
}
