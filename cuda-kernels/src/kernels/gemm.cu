// keel batched SIMT f32 GEMM: C[b] = act(alpha * op(A[b]) @ op(B[b]) + beta * C[b] + bias).
// Row-major. op(A) is [M, K]: A stored [M, K] (N) or [K, M] (T) with leading dim lda.
// op(B) is [K, N]: B stored [K, N] (N) or [N, K] (T) with leading dim ldb. C is [M, N] (ldc).
// Grid: (ceil(M / 128), ceil(N / 128), batch slices, or k splits: see "Split-K" below); 256
// threads per block. M tiles run along x (up to 2^31 - 1 blocks), so only N is bounded by
// the 65535 of grid y.
// `_vec4_2b`: the same kernel capped at 128 registers so that two blocks share an SM (ptxas
// sm_90: 24-48 bytes of spills, against none and ~145 registers, one block per SM, for
// `_vec4`). A tuning candidate that gpu_bench times beside `_vec4` (row `f32/2b`); the
// default stays `_vec4` until a GPU run says otherwise.
// `_db` / `_vec4_db`: the same tile with two shared buffers (`gemm_block_128x128_db`: one
// barrier per k-tile, fragments loaded a step ahead); the same bits. Also a tuning candidate
// (gpu_bench row `f32/db`).

// Split-K (`splitk_combine`, gemm_core.cuh): a GEMM with few output tiles and a long k (a
// Dense layer's forward pass on a batch: 128 x 128 outputs, one tile, over k = 1,600)
// would run on one block; the launcher gives each block of grid z a `k_split`-long range
// of k (a multiple of GBK, batch 1). `k_split == 0` is the plain GEMM; `ws` and `tickets`
// are then unused (null).
template <bool DB, class LA, class LB, class Epi>
__device__ __forceinline__ void gemm_block(LA la, LB lb, const Epi& epi, i64 m0, i64 n0, i64 k0, i64 k1) {
    if constexpr (DB)
        gemm_block_128x128_db(la, lb, epi, m0, n0, k0, k1);
    else
        gemm_block_128x128(la, lb, epi, m0, n0, k0, k1);
}

template <bool TA, bool TB, bool VEC, bool DB>
__device__ __forceinline__ void gemm_f32_impl(const float* __restrict__ a, const float* __restrict__ b,
                                              float* c, const void* __restrict__ bias,
                                              const GemmParams& p, i64 k_split, float* ws, unsigned* tickets) {
    const i64 m0 = (i64)blockIdx.x * GBM, n0 = (i64)blockIdx.y * GBN;
    gemm_grid_z(
        p, k_split, ws, tickets, [&](i64 z) { return gemm_epi(p, c + z * p.stride_c, bias); },
        [&](i64 zb, const GemmEpi& epi, i64 k0, i64 k1) {
            MatLoader<!TA, VEC> la;
            la.p = a + zb * p.stride_a; la.ld = p.lda; la.rows = p.m; la.kdim = p.k;
            MatLoader<TB, VEC> lb;
            lb.p = b + zb * p.stride_b; lb.ld = p.ldb; lb.rows = p.n; lb.kdim = p.k;
            gemm_block<DB>(la, lb, epi, m0, n0, k0, k1);
        });
}

// One f32 GEMM kernel: gemm_f32_<form><variant>.
#define KEEL_GEMM_F32(FORM, TA, TB, VARIANT, BOUNDS, VEC, DB)                                   \
    extern "C" __global__ void BOUNDS gemm_f32_##FORM##VARIANT(const float* a, const float* b,  \
                                                               float* c, const void* bias,     \
                                                               GemmParams p, i64 k_split,      \
                                                               float* ws, unsigned* tickets) { \
        gemm_f32_impl<TA, TB, VEC, DB>(a, b, c, bias, p, k_split, ws, tickets);                 \
    }
#define KEEL_GEMM_FORMS(M, ...) \
    M(nn, false, false, __VA_ARGS__) M(nt, false, true, __VA_ARGS__) M(tn, true, false, __VA_ARGS__) M(tt, true, true, __VA_ARGS__)

// Parts (KEEL_PART; `ops::gemm` compiles only the part it launches): 1 element loads,
// 2 `_vec4`, 3 `_vec4_2b`, 4 `_db`, 5 `_vec4_db`; each in the four forms. Part 6: F64 (below).
#if KEEL_PART == 0 || KEEL_PART == 1
KEEL_GEMM_FORMS(KEEL_GEMM_F32, , __launch_bounds__(256), false, false)
#endif
#if KEEL_PART == 0 || KEEL_PART == 2
KEEL_GEMM_FORMS(KEEL_GEMM_F32, _vec4, __launch_bounds__(256), true, false)
#endif
#if KEEL_PART == 0 || KEEL_PART == 3
KEEL_GEMM_FORMS(KEEL_GEMM_F32, _vec4_2b, __launch_bounds__(256, 2), true, false)
#endif
#if KEEL_PART == 0 || KEEL_PART == 4
KEEL_GEMM_FORMS(KEEL_GEMM_F32, _db, __launch_bounds__(256), false, true)
#endif
#if KEEL_PART == 0 || KEEL_PART == 5
KEEL_GEMM_FORMS(KEEL_GEMM_F32, _vec4_db, __launch_bounds__(256), true, true)
#endif

// F64 (part 6): gemm_f64_block (gemm_core.cuh) on the dense operands of each batch slice.
// No bias or activation (keel runs F64's bias add as its own op).
template <bool TA, bool TB>
__device__ __forceinline__ void gemm_f64_impl(const double* __restrict__ a, const double* __restrict__ b,
                                              double* c, const GemmParams& p) {
    const i64 m0 = (i64)blockIdx.x * KEEL_F64_TILE, n0 = (i64)blockIdx.y * KEEL_F64_TILE;
    for (i64 z = blockIdx.z; z < p.batch; z += gridDim.z) {
        const DenseF64<!TA> la{a + z * p.stride_a, p.lda, p.m, p.k};
        const DenseF64<TB> lb{b + z * p.stride_b, p.ldb, p.n, p.k};
        gemm_f64_block(la, lb, c + z * p.stride_c, p.ldc, p.m, p.n, p.k, (double)p.alpha, (double)p.beta, m0, n0);
    }
}

#define KEEL_GEMM_F64(FORM, TA, TB, _)                                                           \
    extern "C" __global__ void __launch_bounds__(256) gemm_f64_##FORM(const double* a, const double* b, \
                                                                      double* c, GemmParams p) { \
        gemm_f64_impl<TA, TB>(a, b, c, p);                                                      \
    }
#if KEEL_PART == 0 || KEEL_PART == 6
KEEL_GEMM_FORMS(KEEL_GEMM_F64, f64)
#endif
