// keel batched SIMT f32 GEMM: C[b] = act(alpha * op(A[b]) @ op(B[b]) + beta * C[b] + bias).
// Row-major. op(A) is [M, K]: A stored [M, K] (N) or [K, M] (T) with leading dim lda.
// op(B) is [K, N]: B stored [K, N] (N) or [N, K] (T) with leading dim ldb. C is [M, N] (ldc).
// Grid: (ceil(M / 128), ceil(N / 128), batch slices); 256 threads per block. M tiles run
// along x (up to 2^31 - 1 blocks), so only N is bounded by the 65535 of grid y.
// `_vec4_2b`: the same kernel capped at 128 registers so that two blocks share an SM (ptxas
// sm_90: 24-48 bytes of spills, against none and ~145 registers, one block per SM, for
// `_vec4`). A tuning candidate that gpu_bench times beside `_vec4` (row `f32/2b`); the
// default stays `_vec4` until a GPU run says otherwise.
// `_db` / `_vec4_db`: the same tile with two shared buffers (`gemm_block_128x128_db`: one
// barrier per k-tile, fragments loaded a step ahead); the same bits. Also a tuning candidate
// (gpu_bench row `f32/db`).

template <bool TA, bool TB, bool VEC, bool DB>
__device__ __forceinline__ void gemm_f32_impl(const float* __restrict__ a, const float* __restrict__ b,
                                              float* c, const float* __restrict__ bias,
                                              const GemmParams& p) {
    const i64 m0 = (i64)blockIdx.x * GBM, n0 = (i64)blockIdx.y * GBN;
    for (i64 z = blockIdx.z; z < p.batch; z += gridDim.z) {
        MatLoader<!TA, VEC> la;
        la.p = a + z * p.stride_a; la.ld = p.lda; la.rows = p.m; la.kdim = p.k;
        MatLoader<TB, VEC> lb;
        lb.p = b + z * p.stride_b; lb.ld = p.ldb; lb.rows = p.n; lb.kdim = p.k;
        if constexpr (DB)
            gemm_block_128x128_db(la, lb, gemm_epi(p, c + z * p.stride_c, bias), m0, n0, 0, p.k);
        else
            gemm_block_128x128(la, lb, gemm_epi(p, c + z * p.stride_c, bias), m0, n0, 0, p.k);
    }
}

#define KEEL_GEMM(SUFFIX, TA, TB)                                                                 \
    extern "C" __global__ void __launch_bounds__(256)                                            \
        gemm_f32_##SUFFIX(const float* a, const float* b, float* c, const float* bias,           \
                          GemmParams p) {                                                        \
        gemm_f32_impl<TA, TB, false, false>(a, b, c, bias, p);                                   \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(256)                                            \
        gemm_f32_##SUFFIX##_vec4(const float* a, const float* b, float* c, const float* bias,    \
                                 GemmParams p) {                                                 \
        gemm_f32_impl<TA, TB, true, false>(a, b, c, bias, p);                                    \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(256, 2)                                         \
        gemm_f32_##SUFFIX##_vec4_2b(const float* a, const float* b, float* c, const float* bias, \
                                    GemmParams p) {                                              \
        gemm_f32_impl<TA, TB, true, false>(a, b, c, bias, p);                                    \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(256)                                            \
        gemm_f32_##SUFFIX##_db(const float* a, const float* b, float* c, const float* bias,      \
                               GemmParams p) {                                                   \
        gemm_f32_impl<TA, TB, false, true>(a, b, c, bias, p);                                    \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(256)                                            \
        gemm_f32_##SUFFIX##_vec4_db(const float* a, const float* b, float* c, const float* bias, \
                                    GemmParams p) {                                              \
        gemm_f32_impl<TA, TB, true, true>(a, b, c, bias, p);                                     \
    }
KEEL_GEMM(nn, false, false)
KEEL_GEMM(nt, false, true)
KEEL_GEMM(tn, true, false)
KEEL_GEMM(tt, true, true)
