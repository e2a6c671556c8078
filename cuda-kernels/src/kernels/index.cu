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

// The accumulating backwards add with atomics in f32, f64 or i64 (i64: two's complement,
// exact; the CPU adds in f64, the same below 2^53).
__device__ __forceinline__ void keel_atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void keel_atomic_add(double* p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void keel_atomic_add(i64* p, i64 v) {
    atomicAdd((unsigned long long*)p, (unsigned long long)v);
}

// Backward of gather: grad_in[o, idx[o, j, i], i] += grad_out[o, j, i]  (grad_in pre-zeroed)
template <typename T>
__device__ __forceinline__ void scatter_add_t(const T* __restrict__ grad_out, const i64* __restrict__ idx,
                                              T* __restrict__ grad_in, i64 outer, i64 n_in, i64 n_idx, i64 inner) {
    const i64 total = outer * n_idx * inner;
    KEEL_GRID_LOOP(e, total) {
        const i64 i = e % inner;
        const i64 o = e / (n_idx * inner);
        const i64 k = idx[e];
        if (k >= 0 && k < n_in) keel_atomic_add(&grad_in[(o * n_in + k) * inner + i], grad_out[e]);
    }
}

// Backward of index_select: grad_in[o, idx[j], i] += grad_out[o, j, i]  (grad_in pre-zeroed)
template <typename T>
__device__ __forceinline__ void index_add_t(const T* __restrict__ grad_out, const i64* __restrict__ idx,
                                            T* __restrict__ grad_in, i64 outer, i64 n_in, i64 n_idx, i64 inner) {
    const i64 total = outer * n_idx * inner;
    KEEL_GRID_LOOP(e, total) {
        const i64 i = e % inner;
        const i64 j = (e / inner) % n_idx;
        const i64 o = e / (n_idx * inner);
        const i64 k = idx[j];
        if (k >= 0 && k < n_in) keel_atomic_add(&grad_in[(o * n_in + k) * inner + i], grad_out[e]);
    }
}

#define KEEL_ACCUMULATE(TN, T)                                                                           \
    extern "C" __global__ void scatter_add_##TN(const T* __restrict__ grad_out, const i64* __restrict__ idx, \
                                                T* __restrict__ grad_in, i64 outer, i64 n_in, i64 n_idx,   \
                                                i64 inner) {                                               \
        scatter_add_t<T>(grad_out, idx, grad_in, outer, n_in, n_idx, inner);                               \
    }                                                                                                      \
    extern "C" __global__ void index_add_##TN(const T* __restrict__ grad_out, const i64* __restrict__ idx,   \
                                              T* __restrict__ grad_in, i64 outer, i64 n_in, i64 n_idx,     \
                                              i64 inner) {                                                 \
        index_add_t<T>(grad_out, idx, grad_in, outer, n_in, n_idx, inner);                                 \
    }
KEEL_ACCUMULATE(f32, float)
KEEL_ACCUMULATE(f64, double)
KEEL_ACCUMULATE(i64, i64)

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
