// keel batched SIMT f32 GEMM: C[b] = act(alpha * op(A[b]) @ op(B[b]) + beta * C[b] + bias).
// Row-major. op(A) is [M, K]: A stored [M, K] (N) or [K, M] (T) with leading dim lda.
// op(B) is [K, N]: B stored [K, N] (N) or [N, K] (T) with leading dim ldb. C is [M, N] (ldc).
// Grid: (ceil(N / 128), ceil(M / 128), batch slices); 256 threads per block.
// `_vec4_2b`: the same kernel capped at 128 registers so that two blocks share an SM (ptxas
// sm_90: 24-48 bytes of spills, against none and ~145 registers, one block per SM, for
// `_vec4`). A tuning candidate that gpu_bench times beside `_vec4` (row `f32/2b`); the
// default stays `_vec4` until a GPU run says otherwise.

template <bool TA, bool TB, bool VEC>
__device__ __forceinline__ void gemm_f32_impl(const float* __restrict__ a, const float* __restrict__ b,
                                              float* c, const float* __restrict__ bias,
                                              const GemmParams& p) {
    const i64 m0 = (i64)blockIdx.y * GBM, n0 = (i64)blockIdx.x * GBN;
    for (i64 z = blockIdx.z; z < p.batch; z += gridDim.z) {
        MatLoader<!TA, VEC> la;
        la.p = a + z * p.stride_a; la.ld = p.lda; la.rows = p.m; la.kdim = p.k;
        MatLoader<TB, VEC> lb;
        lb.p = b + z * p.stride_b; lb.ld = p.ldb; lb.rows = p.n; lb.kdim = p.k;
        gemm_block_128x128(la, lb, gemm_epi(p, c + z * p.stride_c, bias), m0, n0, 0, p.k);
    }
}

#define KEEL_GEMM(SUFFIX, TA, TB)                                                                 \
    extern "C" __global__ void __launch_bounds__(256)                                            \
        gemm_f32_##SUFFIX(const float* a, const float* b, float* c, const float* bias,           \
                          GemmParams p) {                                                        \
        gemm_f32_impl<TA, TB, false>(a, b, c, bias, p);                                          \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(256)                                            \
        gemm_f32_##SUFFIX##_vec4(const float* a, const float* b, float* c, const float* bias,    \
                                 GemmParams p) {                                                 \
        gemm_f32_impl<TA, TB, true>(a, b, c, bias, p);                                           \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(256, 2)                                         \
        gemm_f32_##SUFFIX##_vec4_2b(const float* a, const float* b, float* c, const float* bias, \
                                    GemmParams p) {                                              \
        gemm_f32_impl<TA, TB, true>(a, b, c, bias, p);                                           \
    }
KEEL_GEMM(nn, false, false)
KEEL_GEMM(nt, false, true)
KEEL_GEMM(tn, true, false)
KEEL_GEMM(tt, true, true)
