// keel GEMM core: a 128x128x8 SIMT f32 block tile (256 threads, 8x8 outputs per thread),
// shared by the plain GEMM (gemm.cu) and the implicit-GEMM convolutions (conv.cu).
//
// The block computes C[m0:m0+128, n0:n0+128] = sum_k A(m, k) * B(n, k) through two
// "loaders" and hands each result to an epilogue functor:
//   struct Loader {
//     static constexpr bool K_CONTIG;     // 4 consecutive elements along k (true) or rows (false)
//     __device__ void set_row(i64 r);      // called once per thread: its (first) row
//     __device__ float4 load4(i64 k) const;// (r, k..k+3) or (r..r+3, k); zero outside the matrix
//   };
// Loads for the next k-tile are issued before the math of the current one (register
// prefetch), so global latency overlaps the FMAs.

#define GBM 128
#define GBN 128
#define GBK 8
#define GPAD 4

// Plain GEMM parameters, mirrors `ops::gemm::GemmParams` (#[repr(C)]).
struct GemmParams {
    i64 m, n, k;
    i64 lda, ldb, ldc;
    i64 stride_a, stride_b, stride_c;
    i64 batch;
    float alpha, beta;
    int act;  // 0 = none, 1 = relu; | KEEL_EPI_BIAS_ROUNDED
    int out;  // C's storage: 0 = f32, 1 = f16, 2 = bf16 (tensor-core kernels; SIMT always f32)
};

// `act` flag: the bias has C's storage type O and is added to the result rounded to O, and
// the sum is rounded to O before the activation: the bits of a GEMM writing O followed by a
// separate add (+ relu) kernel on O, which is what F16/BF16 layers compute.
#define KEEL_EPI_BIAS_ROUNDED 256

// act(alpha * v + beta * old() + bias[ni]); `old` (C's element) is called only when beta != 0.
// `bias` is f32, or O with KEEL_EPI_BIAS_ROUNDED in `act` (see there).
template <class O, class Old>
__device__ __forceinline__ float gemm_epi_value(float v, float alpha, float beta, const void* bias, i64 ni,
                                                int act, Old old) {
    float r = alpha * v;
    if (beta != 0.0f) r += beta * old();
    if (bias) {
        if (act & KEEL_EPI_BIAS_ROUNDED)
            r = to_f32(from_f32<O>(to_f32(from_f32<O>(r)) + to_f32(((const O*)bias)[ni])));
        else
            r += ((const float*)bias)[ni];
    }
    if ((act & 255) == 1) r = r <= 0.0f ? 0.0f : r;  // NaN stays NaN, as the ReLU op's
    return r;
}

// c[m, n] = act(alpha * acc + beta * c[m, n] + bias[n]); c is never read when beta == 0.
// O: C's storage (f32, or keel_f16/keel_bf16 rounded once on the store). The type is fixed
// at compile time: a per-element switch over types (GemmEpiAny) in the SIMT kernels' 64
// outputs per thread makes NVRTC take minutes.
template <class O>
struct GemmEpiT {
    O* c;
    i64 ldc, m, n;
    float alpha, beta;
    const void* bias;
    int act;
    __device__ __forceinline__ void set_f32() {}  // C's storage is fixed: O (f32 for split partials)
    __device__ __forceinline__ void operator()(i64 mi, i64 ni, float v) const {
        if (mi >= m || ni >= n) return;
        O* p = c + mi * ldc + ni;
        *p = from_f32<O>(gemm_epi_value<O>(v, alpha, beta, bias, ni, act, [&] { return to_f32(*p); }));
    }
};
typedef GemmEpiT<float> GemmEpi;

// GemmEpi for the tensor-core GEMMs, whose C is f32, f16 or bf16 storage (`out`, from
// GemmParams::out): the same f32 arithmetic, rounded once to C's type on the store, so an
// F16/BF16 matmul needs no f32 buffer and no cast launch after it.
struct GemmEpiAny {
    void* c;  // batch matrix base
    i64 ldc, m, n;
    float alpha, beta;
    const void* bias;
    int act, out;
    __device__ __forceinline__ void set_f32() { out = 0; }
    template <class O>
    __device__ __forceinline__ void store(O* p, i64 ni, float v) const {
        *p = from_f32<O>(gemm_epi_value<O>(v, alpha, beta, bias, ni, act, [&] { return to_f32(*p); }));
    }
    __device__ __forceinline__ void operator()(i64 mi, i64 ni, float v) const {
        if (mi >= m || ni >= n) return;
        const i64 at = mi * ldc + ni;
        if (out == 0) store((float*)c + at, ni, v);
        else if (out == 1) store((keel_f16*)c + at, ni, v);
        else store((keel_bf16*)c + at, ni, v);
    }
};

// The epilogue of a tensor-core GEMM with parameters `p` writing batch matrix `z` of `c`.
__device__ __forceinline__ GemmEpiAny gemm_epi_any(const GemmParams& p, void* c, i64 z, const void* bias) {
    GemmEpiAny epi;
    const i64 elem = p.out == 0 ? 4 : 2;
    epi.c = (char*)c + z * p.stride_c * elem;
    epi.ldc = p.ldc; epi.m = p.m; epi.n = p.n;
    epi.alpha = p.alpha; epi.beta = p.beta; epi.bias = bias; epi.act = p.act; epi.out = p.out;
    return epi;
}

// The epilogue of a GEMM with parameters `p` writing the batch matrix `c`.
__device__ __forceinline__ GemmEpi gemm_epi(const GemmParams& p, float* c, const void* bias) {
    GemmEpi epi;
    epi.c = c; epi.ldc = p.ldc; epi.m = p.m; epi.n = p.n;
    epi.alpha = p.alpha; epi.beta = p.beta; epi.bias = bias; epi.act = p.act;
    return epi;
}

// Split-K for the 128x128 block tiles (gemm.cu's SIMT kernels, gemm_tc.cu, gemm_tc_pipe.cu).
// Each block of grid z computes its tile over one range of k and stores the partial tile in
// `ws` ([splits, m, n] f32) through the kernel's own epilogue type set to plain f32 (alpha
// 1, beta 0, no bias or activation: the value itself; one inlined tile loop for both paths
// keeps the kernels' registers down); `splitk_combine` then takes a ticket from
// the tile's counter (`tickets[blockIdx.x * gridDim.y + blockIdx.y]`), and the block that
// draws the last one adds the partials in split order (fixed: deterministic), hands each
// sum to the real epilogue (alpha, beta, bias, activation, C's type) and resets the
// counter, so every counter is zero between launches. One launch, no reduction kernel.
// One split takes no ticket (the grad-kernel's rounding of a whole sum to F16/BF16).

template <class Epi>
__device__ __forceinline__ void splitk_combine(const Epi& epi, const float* ws, i64 splits, i64 m, i64 n, i64 m0,
                                               i64 n0, unsigned* tickets) {
    __shared__ bool last;
    unsigned* ticket = tickets + blockIdx.x * gridDim.y + blockIdx.y;
    __threadfence();  // this block's partials before its ticket
    __syncthreads();
    // one split (the grad-kernel rounding to F16/BF16): this block is the last, no ticket
    if (threadIdx.x == 0) last = splits == 1 || atomicAdd(ticket, 1u) == (unsigned)(splits - 1);
    __syncthreads();
    if (!last) return;
    __threadfence();
    const i64 mn = m * n;
    for (int e = threadIdx.x; e < 128 * 128; e += blockDim.x) {
        const i64 mi = m0 + e / 128, ni = n0 + e % 128;
        if (mi >= m || ni >= n) continue;
        float v = 0.0f;
        // written by other blocks of this launch: read past L1 (not coherent across SMs)
        for (i64 z = 0; z < splits; ++z) v += __ldcg(ws + z * mn + mi * n + ni);
        epi(mi, ni, v);
    }
    if (threadIdx.x == 0 && splits > 1) *ticket = 0;
}

// The grid-z loop of a GEMM kernel on 128x128 block tiles, split-K or batched: calls
// `tile(zb, epi, k0, k1)` for each block tile this block computes, with zb the batch
// matrix of A and B, `epi` the epilogue and [k0, k1) the range of k. `k_split` > 0 (batch
// 1): block z takes the z-th `k_split`-long range (a multiple of the kernel's k-tile) and
// stores its partial tile in `ws` through the epilogue `epi_of(0)` set to plain f32
// (alpha 1, beta 0, no bias or activation: the value itself), then `splitk_combine` adds
// the partials through `epi_of(0)`; 0: batch matrices z, z + gridDim.z, ... over the
// whole k through `epi_of(z)` (`ws`, `tickets` unused). One inlined call of `tile` serves
// both: a second copy of a kernel's tile loop costs registers (and spills) under the caps.
template <class EpiOf, class Tile>
__device__ __forceinline__ void gemm_grid_z(const GemmParams& p, i64 k_split, float* ws, unsigned* tickets,
                                            EpiOf epi_of, Tile tile) {
    const bool split = k_split > 0;
    const i64 splits = split ? (p.k + k_split - 1) / k_split : 1, mn = p.m * p.n;
    for (i64 z = blockIdx.z; z < (split ? (i64)blockIdx.z + 1 : p.batch); z += gridDim.z) {
        i64 k0 = 0, k1 = p.k;
        auto epi = epi_of(z);
        if (split) {
            k0 = z * k_split;
            k1 = k0 + k_split < p.k ? k0 + k_split : p.k;
            epi = epi_of(0);
            epi.c = ws + z * mn;
            epi.ldc = p.n;
            epi.alpha = 1.0f;
            epi.beta = 0.0f;
            epi.bias = nullptr;
            epi.act = 0;
            epi.set_f32();
        }
        tile(split ? 0 : z, epi, k0, k1);
    }
    if (split)
        splitk_combine(epi_of(0), ws, splits, p.m, p.n, (i64)blockIdx.x * 128, (i64)blockIdx.y * 128, tickets);
}

// Where a split reduction's partial tiles go (the convolutions' grad-kernel): `dw`, of
// storage `out` (0 f32, 1 f16, 2 bf16), gets alpha * (the partials' sum) + beta * dw, as a
// GEMM epilogue computes it. `tickets` null: not split (the kernel wrote its result itself).
// Mirrors `ops::conv::SplitOut` (#[repr(C)]).
struct SplitOut {
    void* dw;
    unsigned* tickets;
    float alpha, beta;
    int out, pad;
};

// The grad-kernel's combine: this block wrote its partial tile of the [m, n] result to split
// blockIdx.z of `ws`; the last block of the tile adds them up into `dw`.
__device__ __forceinline__ void split_out_combine(const SplitOut& s, const float* ws, i64 m, i64 n) {
    const GemmEpiAny epi{s.dw, n, m, n, s.alpha, s.beta, nullptr, 0, s.out};
    splitk_combine(epi, ws, gridDim.z, m, n, (i64)blockIdx.x * 128, (i64)blockIdx.y * 128, s.tickets);
}

// Dense row-major matrix seen as rows x K. K_CONTIG: element (r, k) at p[r * ld + k];
// otherwise at p[k * ld + r]. VEC: 16-byte loads (needs ld % 4 == 0 and 16-byte base; f32
// only). T: the storage (f32, or keel_f16/keel_bf16 widened on load).
template <bool KC, bool VEC, class T = float>
struct MatLoader {
    static constexpr bool K_CONTIG = KC;
    const T* p;
    i64 ld, rows, kdim;
    i64 r;
    __device__ __forceinline__ void set_row(i64 row) { r = row; }
    __device__ __forceinline__ float4 load4(i64 k) const {
        float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        if (KC) {
            if (r < rows) {
                const T* q = p + r * ld + k;
                if (VEC && k + 3 < kdim) return *reinterpret_cast<const float4*>(q);
#pragma unroll
                for (int j = 0; j < 4; ++j) if (k + j < kdim) v[j] = to_f32(q[j]);
            }
        } else {
            if (k < kdim) {
                const T* q = p + k * ld + r;
                if (VEC && r + 3 < rows) return *reinterpret_cast<const float4*>(q);
#pragma unroll
                for (int j = 0; j < 4; ++j) if (r + j < rows) v[j] = to_f32(q[j]);
            }
        }
        return make_float4(v[0], v[1], v[2], v[3]);
    }
};

template <bool KC>
__device__ __forceinline__ void store_tile(float (*S)[GBM + GPAD], float4 v, int r, int k) {
    if (KC) {
        S[k + 0][r] = v.x; S[k + 1][r] = v.y; S[k + 2][r] = v.z; S[k + 3][r] = v.w;
    } else {
        *reinterpret_cast<float4*>(&S[k][r]) = v;
    }
}

// What one of the 256 threads does in a 128x128 block tile: it loads 4 elements of A
// (row la_r, k la_k) and of B per k-tile, and owns outputs rows ty*4.., 64+ty*4.. by
// columns tx*4.., 64+tx*4...
struct TileThread {
    int tx, ty, la_r, la_k, lb_r, lb_k;
    template <class LA, class LB>
    __device__ __forceinline__ static TileThread make() {
        const int tid = threadIdx.x;
        TileThread t;
        t.tx = tid & 15;
        t.ty = tid >> 4;
        t.la_r = LA::K_CONTIG ? (tid >> 1) : ((tid & 31) << 2);
        t.la_k = LA::K_CONTIG ? ((tid & 1) << 2) : (tid >> 5);
        t.lb_r = LB::K_CONTIG ? (tid >> 1) : ((tid & 31) << 2);
        t.lb_k = LB::K_CONTIG ? ((tid & 1) << 2) : (tid >> 5);
        return t;
    }
};

// The fragments a thread reads for step kk of a k-tile (two 16-byte shared loads each).
__device__ __forceinline__ void load_frags(const float (*As)[GBM + GPAD], const float (*Bs)[GBN + GPAD], int kk,
                                           const TileThread& t, float (&a)[8], float (&b)[8]) {
    const float4 a0 = *reinterpret_cast<const float4*>(&As[kk][t.ty * 4]);
    const float4 a1 = *reinterpret_cast<const float4*>(&As[kk][64 + t.ty * 4]);
    const float4 b0 = *reinterpret_cast<const float4*>(&Bs[kk][t.tx * 4]);
    const float4 b1 = *reinterpret_cast<const float4*>(&Bs[kk][64 + t.tx * 4]);
    a[0] = a0.x; a[1] = a0.y; a[2] = a0.z; a[3] = a0.w; a[4] = a1.x; a[5] = a1.y; a[6] = a1.z; a[7] = a1.w;
    b[0] = b0.x; b[1] = b0.y; b[2] = b0.z; b[3] = b0.w; b[4] = b1.x; b[5] = b1.y; b[6] = b1.z; b[7] = b1.w;
}

// acc += a (x) b: the 64 FMAs of one k step.
__device__ __forceinline__ void fma_step(float (&acc)[8][8], const float (&a)[8], const float (&b)[8]) {
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
}

__device__ __forceinline__ void zero_acc(float (&acc)[8][8]) {
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = 0.0f;
}

// Hands the thread's 64 outputs of the block tile at (m0, n0) to the epilogue.
template <class Epi>
__device__ __forceinline__ void store_acc(const Epi& epi, const float (&acc)[8][8], i64 m0, i64 n0,
                                          const TileThread& t) {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const i64 m = m0 + (i < 4 ? t.ty * 4 + i : 64 + t.ty * 4 + (i - 4));
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const i64 n = n0 + (j < 4 ? t.tx * 4 + j : 64 + t.tx * 4 + (j - 4));
            epi(m, n, acc[i][j]);
        }
    }
}

// Computes the block tile at (m0, n0) over k in [k_begin, k_end) (k_begin a multiple of GBK)
// and calls epi(m, n, acc) for each of its 128x128 outputs (the epilogue bounds-checks).
template <class LA, class LB, class Epi>
__device__ __forceinline__ void gemm_block_128x128(LA la, LB lb, const Epi& epi, i64 m0, i64 n0,
                                                   i64 k_begin, i64 k_end) {
    __shared__ __align__(16) float As[GBK][GBM + GPAD];
    __shared__ __align__(16) float Bs[GBK][GBN + GPAD];
    const TileThread t = TileThread::make<LA, LB>();
    la.set_row(m0 + t.la_r);
    lb.set_row(n0 + t.lb_r);
    float acc[8][8];
    zero_acc(acc);

    float4 ra = make_float4(0.f, 0.f, 0.f, 0.f), rb = ra;
    if (k_begin < k_end) {
        ra = la.load4(k_begin + t.la_k);
        rb = lb.load4(k_begin + t.lb_k);
    }
    for (i64 k0 = k_begin; k0 < k_end; k0 += GBK) {
        store_tile<LA::K_CONTIG>(As, ra, t.la_r, t.la_k);
        store_tile<LB::K_CONTIG>(Bs, rb, t.lb_r, t.lb_k);
        __syncthreads();
        if (k0 + GBK < k_end) {
            ra = la.load4(k0 + GBK + t.la_k);
            rb = lb.load4(k0 + GBK + t.lb_k);
        }
#pragma unroll
        for (int kk = 0; kk < GBK; ++kk) {
            float a[8], b[8];
            load_frags(As, Bs, kk, t, a, b);
            fma_step(acc, a, b);
        }
        __syncthreads();
    }
    store_acc(epi, acc, m0, n0, t);
}

// gemm_block_128x128 with two shared tiles (a tuning candidate, `_db` kernels): the next
// k-tile is stored into the other tile while this one is read, so each k-tile costs one
// barrier instead of two, and the fragments of step kk + 1 are loaded before the FMAs of
// step kk. Same results, bit for bit: each output sums the same products in the same order.
template <class LA, class LB, class Epi>
__device__ __forceinline__ void gemm_block_128x128_db(LA la, LB lb, const Epi& epi, i64 m0, i64 n0,
                                                      i64 k_begin, i64 k_end) {
    __shared__ __align__(16) float As[2][GBK][GBM + GPAD];
    __shared__ __align__(16) float Bs[2][GBK][GBN + GPAD];
    const TileThread t = TileThread::make<LA, LB>();
    la.set_row(m0 + t.la_r);
    lb.set_row(n0 + t.lb_r);
    float acc[8][8];
    zero_acc(acc);

    // A caller looping over batch matrices calls this again: wait until every thread has
    // read the tiles of the previous call before overwriting them.
    __syncthreads();
    if (k_begin < k_end) {
        float4 ra = la.load4(k_begin + t.la_k);
        float4 rb = lb.load4(k_begin + t.lb_k);
        store_tile<LA::K_CONTIG>(As[0], ra, t.la_r, t.la_k);
        store_tile<LB::K_CONTIG>(Bs[0], rb, t.lb_r, t.lb_k);
        __syncthreads();
        float a[2][8], b[2][8];
        load_frags(As[0], Bs[0], 0, t, a[0], b[0]);
        int cur = 0;
        for (i64 k0 = k_begin; k0 < k_end; k0 += GBK) {
            const bool more = k0 + GBK < k_end;
            if (more) {
                ra = la.load4(k0 + GBK + t.la_k);
                rb = lb.load4(k0 + GBK + t.lb_k);
            }
#pragma unroll
            for (int kk = 0; kk < GBK; ++kk) {
                if (kk + 1 < GBK) load_frags(As[cur], Bs[cur], kk + 1, t, a[(kk + 1) & 1], b[(kk + 1) & 1]);
                fma_step(acc, a[kk & 1], b[kk & 1]);
            }
            if (more) {
                // Tile cur ^ 1 was last read before the previous barrier: safe to overwrite.
                store_tile<LA::K_CONTIG>(As[cur ^ 1], ra, t.la_r, t.la_k);
                store_tile<LB::K_CONTIG>(Bs[cur ^ 1], rb, t.lb_r, t.lb_k);
                __syncthreads();
                cur ^= 1;
                load_frags(As[cur], Bs[cur], 0, t, a[0], b[0]);
            }
        }
    }
    store_acc(epi, acc, m0, n0, t);
}

// ---- F64: a plain SIMT tile for double GEMMs (gemm.cu part 6) and convolutions (conv.cu) ----
// 64x64 outputs per 256-thread block (4x4 per thread: rows ty + 16i, columns tx + 16j), k-tiles
// of 16 through shared memory, double FMA accumulation in k order, then
// C[gm * ldc + gn] = alpha * acc (+ beta * C when beta != 0). For work in f64 on the GPU
// (gradient checks, references); it makes no claim to speed. The CPU's f64 GEMM sums in
// another order: the results agree to rounding, not bit for bit.
// Loaders: `double at(i64 row, i64 k)` (0 outside the operand) for op(A) (rows m) and op(B)
// (rows n), and K_CONTIG (the stored layout runs along k), which orders the tile loads so that
// neighbouring threads read neighbouring addresses.
#define KEEL_F64_TILE 64
#define KEEL_F64_KT 16

// A row-major matrix read as [rows, kdim]: element (r, k) at p[r * ld + k] (K_CONTIG) or
// p[k * ld + r].
template <bool KC>
struct DenseF64 {
    static constexpr bool K_CONTIG = KC;
    const double* p;
    i64 ld, rows, kdim;
    __device__ __forceinline__ double at(i64 r, i64 k) const {
        if (r >= rows || k >= kdim) return 0.0;
        return KC ? p[r * ld + k] : p[k * ld + r];
    }
};

template <class L>
__device__ __forceinline__ void f64_load_tile(const L& l, double (*s)[KEEL_F64_TILE + 1], i64 r0, i64 k0) {
    for (int e = threadIdx.x; e < KEEL_F64_TILE * KEEL_F64_KT; e += 256) {
        const int r = L::K_CONTIG ? e / KEEL_F64_KT : e % KEEL_F64_TILE;
        const int kk = L::K_CONTIG ? e % KEEL_F64_KT : e / KEEL_F64_TILE;
        s[kk][r] = l.at(r0 + r, k0 + kk);
    }
}

// One 64x64 tile (rows m0.., columns n0..) of C[m, n] = op(A)[m, k] op(B)[n, k]^T.
template <class LA, class LB>
__device__ __forceinline__ void gemm_f64_block(const LA& la, const LB& lb, double* c, i64 ldc, i64 m, i64 n,
                                               i64 k, double alpha, double beta, i64 m0, i64 n0) {
    __shared__ double as[KEEL_F64_KT][KEEL_F64_TILE + 1];  // op(A) tile, [k][m]
    __shared__ double bs[KEEL_F64_KT][KEEL_F64_TILE + 1];  // op(B) tile, [k][n]
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    double acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.0;
    for (i64 k0 = 0; k0 < k; k0 += KEEL_F64_KT) {
        f64_load_tile(la, as, m0, k0);
        f64_load_tile(lb, bs, n0, k0);
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < KEEL_F64_KT; ++kk) {
            double ar[4], br[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) ar[i] = as[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; ++j) br[j] = bs[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = fma(ar[i], br[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const i64 gm = m0 + ty + 16 * i;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const i64 gn = n0 + tx + 16 * j;
            if (gm < m && gn < n) {
                double v = alpha * acc[i][j];
                if (beta != 0.0) v += beta * c[gm * ldc + gn];
                c[gm * ldc + gn] = v;
            }
        }
    }
}
