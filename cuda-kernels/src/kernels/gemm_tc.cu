// keel tensor-core GEMM (mma.sync, sm_80+): TF32, F16 and BF16 inputs, f32 accumulation, and
// f32, f16 or bf16 output (GemmParams::out, rounded once in the epilogue); same forms and
// arguments as the SIMT GEMM (GemmParams, bias + act epilogue).
//
// Block tile 128x128x32, 256 threads = 8 warps as 2 (M) x 4 (N); each warp owns a 64x32
// sub-tile = 4 x 4 mma tiles (m16n8). Shared tiles are stored k-contiguous:
// As[m][k], Bs[n][k], padded so fragment loads are bank-conflict free.
// Global -> shared is a plain copy per k-tile, with 16-byte loads in the `_vec` kernels
// (latency hidden by the 8 warps in flight). F16/BF16 on aligned operands take the
// cp.async multi-stage kernels of gemm_tc_pipe.cu instead; these cover TF32 and the rest.

#define TBM 128
#define TBN 128
#define TBK 32

#ifdef KEEL_CUDA_EMU  // tools/cuda-emu: warp-collective host emulation, PTX ISA fragment layouts
__device__ __forceinline__ u32 to_tf32(float f) { return keel_emu_to_tf32(f); }
__device__ __forceinline__ void mma_tf32(float (&d)[4], const u32 (&a)[4], const u32 (&b)[2]) {
    keel_emu::mma(d, a, b, keel_emu::MMA_TF32);
}
__device__ __forceinline__ void mma_f16(float (&d)[4], const u32 (&a)[4], const u32 (&b)[2]) {
    keel_emu::mma(d, a, b, keel_emu::MMA_F16);
}
__device__ __forceinline__ void mma_bf16(float (&d)[4], const u32 (&a)[4], const u32 (&b)[2]) {
    keel_emu::mma(d, a, b, keel_emu::MMA_BF16);
}
#else
__device__ __forceinline__ u32 to_tf32(float f) {
    u32 r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(f));
    return r;
}

__device__ __forceinline__ void mma_tf32(float (&d)[4], const u32 (&a)[4], const u32 (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ void mma_f16(float (&d)[4], const u32 (&a)[4], const u32 (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ void mma_bf16(float (&d)[4], const u32 (&a)[4], const u32 (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif

// `tile(x)`: the value a global element is stored as in the shared tile. TF32 rounds there
// (cvt.rna), once per element, rather than in every warp that reads the element.
struct TcTf32 {   // A/B are f32 in memory, tf32-rounded f32 in shared memory
    typedef float S;
    static constexpr int PAD = 4;
    __device__ static S zero() { return 0.0f; }
    __device__ static S tile(S x) { return __uint_as_float(to_tf32(x)); }
};
struct TcF16 {
    typedef u16 S;
    static constexpr int PAD = 8;
    __device__ static S zero() { return 0; }
    __device__ static S tile(S x) { return x; }
    __device__ static void mma(float (&d)[4], const u32 (&a)[4], const u32 (&b)[2]) { mma_f16(d, a, b); }
};
struct TcBf16 {
    typedef u16 S;
    static constexpr int PAD = 8;
    __device__ static S zero() { return 0; }
    __device__ static S tile(S x) { return x; }
    __device__ static void mma(float (&d)[4], const u32 (&a)[4], const u32 (&b)[2]) { mma_bf16(d, a, b); }
};

// One warp's math on one TBK-deep k-tile.
template <class T>
struct WarpMma;

template <>
struct WarpMma<TcTf32> {
    static constexpr int LD = TBK + TcTf32::PAD;
    __device__ static void run(const float* As, const float* Bs, int wm, int wn, int g, int t,
                               float (&acc)[4][4][4]) {
#pragma unroll
        for (int ks = 0; ks < TBK; ks += 8) {
            u32 a[4][4], b[4][2];
#pragma unroll
            for (int mt = 0; mt < 4; ++mt) {
                const float* r0 = As + (wm + mt * 16 + g) * LD + ks;
                const float* r8 = r0 + 8 * LD;
                a[mt][0] = __float_as_uint(r0[t]);
                a[mt][1] = __float_as_uint(r8[t]);
                a[mt][2] = __float_as_uint(r0[t + 4]);
                a[mt][3] = __float_as_uint(r8[t + 4]);
            }
#pragma unroll
            for (int nt = 0; nt < 4; ++nt) {
                const float* c = Bs + (wn + nt * 8 + g) * LD + ks;
                b[nt][0] = __float_as_uint(c[t]);
                b[nt][1] = __float_as_uint(c[t + 4]);
            }
#pragma unroll
            for (int mt = 0; mt < 4; ++mt)
#pragma unroll
                for (int nt = 0; nt < 4; ++nt) mma_tf32(acc[mt][nt], a[mt], b[nt]);
        }
    }
};

template <class T>
struct WarpMma16 {
    static constexpr int LD = TBK + T::PAD;
    __device__ static void run(const u16* As, const u16* Bs, int wm, int wn, int g, int t,
                               float (&acc)[4][4][4]) {
#pragma unroll
        for (int ks = 0; ks < TBK; ks += 16) {
            u32 a[4][4], b[4][2];
#pragma unroll
            for (int mt = 0; mt < 4; ++mt) {
                const u16* r0 = As + (wm + mt * 16 + g) * LD + ks + 2 * t;
                const u16* r8 = r0 + 8 * LD;
                a[mt][0] = *reinterpret_cast<const u32*>(r0);
                a[mt][1] = *reinterpret_cast<const u32*>(r8);
                a[mt][2] = *reinterpret_cast<const u32*>(r0 + 8);
                a[mt][3] = *reinterpret_cast<const u32*>(r8 + 8);
            }
#pragma unroll
            for (int nt = 0; nt < 4; ++nt) {
                const u16* c = Bs + (wn + nt * 8 + g) * LD + ks + 2 * t;
                b[nt][0] = *reinterpret_cast<const u32*>(c);
                b[nt][1] = *reinterpret_cast<const u32*>(c + 8);
            }
#pragma unroll
            for (int mt = 0; mt < 4; ++mt)
#pragma unroll
                for (int nt = 0; nt < 4; ++nt) T::mma(acc[mt][nt], a[mt], b[nt]);
        }
    }
};
template <> struct WarpMma<TcF16> : WarpMma16<TcF16> {};
template <> struct WarpMma<TcBf16> : WarpMma16<TcBf16> {};

// Copies one rows x TBK tile (rows = TBM or TBN) from global to shared memory (k-contiguous
// in shared), zero-filling outside the matrix. KC: element (r, k) at p[r * ld + k]
// (k contiguous, so consecutive threads read consecutive k), else p[k * ld + r].
// VEC: 16-byte loads of V = 16 / sizeof(S) elements along the contiguous direction (needs
// ld % V == 0 and a 16-byte aligned base; the wrapper checks); vectors that cross the
// matrix edge fall back to element loads. Shared rows are 16-byte aligned (LD * sizeof(S)
// is 80 or 144 bytes), so KC vectors are stored whole.
template <class T, bool KC, bool VEC>
__device__ __forceinline__ void tc_load_tile(const typename T::S* __restrict__ p, i64 ld, i64 rows,
                                             i64 kdim, i64 r0, i64 k0, typename T::S* s) {
    typedef typename T::S S;
    constexpr int LD = TBK + T::PAD;
    if constexpr (VEC) {
        constexpr int V = 16 / sizeof(S);
#pragma unroll
        for (int j = 0; j < 16 / V; ++j) {
            const int e = (threadIdx.x + 256 * j) * V;
            const int r = KC ? (e / TBK) : (e % TBM);
            const int k = KC ? (e % TBK) : (e / TBM);
            const i64 gr = r0 + r, gk = k0 + k;
            if (KC && gr < rows && gk + V <= kdim) {
                uint4 v = *reinterpret_cast<const uint4*>(p + gr * ld + gk);
                S* x = reinterpret_cast<S*>(&v);
#pragma unroll
                for (int i = 0; i < V; ++i) x[i] = T::tile(x[i]);
                *reinterpret_cast<uint4*>(s + r * LD + k) = v;
            } else if (!KC && gk < kdim && gr + V <= rows) {
                const uint4 v = *reinterpret_cast<const uint4*>(p + gk * ld + gr);
                const S* x = reinterpret_cast<const S*>(&v);
#pragma unroll
                for (int i = 0; i < V; ++i) s[(r + i) * LD + k] = T::tile(x[i]);
            } else {
#pragma unroll
                for (int i = 0; i < V; ++i) {
                    const i64 er = KC ? gr : gr + i, ek = KC ? gk + i : gk;
                    const int sr = KC ? r : r + i, sk = KC ? k + i : k;
                    s[sr * LD + sk] =
                        (er < rows && ek < kdim) ? T::tile(KC ? p[er * ld + ek] : p[ek * ld + er]) : T::zero();
                }
            }
        }
    } else {
#pragma unroll 4
        for (int j = 0; j < 16; ++j) {
            const int e = threadIdx.x + 256 * j;
            const int r = KC ? (e / TBK) : (e % TBM);
            const int k = KC ? (e % TBK) : (e / TBM);
            const i64 gr = r0 + r, gk = k0 + k;
            s[r * LD + k] = (gr < rows && gk < kdim) ? T::tile(KC ? p[gr * ld + gk] : p[gk * ld + gr]) : T::zero();
        }
    }
}

// Zeroes a warp's 64 x 8NT accumulators (4 x NT m16n8 tiles).
template <int NT>
__device__ __forceinline__ void tc_zero(float (&acc)[4][NT][4]) {
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.0f;
}

// Hands a warp's 64 x 8NT accumulators (4 x NT m16n8 tiles at rows r0.., columns c0..) to `epi`.
template <int NT, class Epi>
__device__ __forceinline__ void tc_store_acc(const float (&acc)[4][NT][4], const Epi& epi, i64 r0, i64 c0,
                                             int lane) {
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int mt = 0; mt < 4; ++mt)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
            const i64 row = r0 + mt * 16 + g;
            const i64 col = c0 + nt * 8 + 2 * t;
            epi(row, col, acc[mt][nt][0]);
            epi(row, col + 1, acc[mt][nt][1]);
            epi(row + 8, col, acc[mt][nt][2]);
            epi(row + 8, col + 1, acc[mt][nt][3]);
        }
}

// The block tile at (m0, n0) of one batch matrix (a, b: its operands) over k in
// [k_begin, k_end), handed to `epi`, through the shared tiles As and Bs (TBM and TBN rows of
// TBK + T::PAD). k_end - k_begin is a multiple of TBK unless k_end == K (the loaders stop
// only at K; a split-K caller sizes its splits in whole k-tiles).
template <class T, bool TA, bool TB, bool VEC, class Epi>
__device__ __forceinline__ void gemm_tc_tile(const typename T::S* __restrict__ a, const typename T::S* __restrict__ b,
                                             const GemmParams& p, const Epi& epi, i64 k_begin, i64 k_end,
                                             typename T::S* As, typename T::S* Bs) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
    const i64 m0 = (i64)blockIdx.x * TBM, n0 = (i64)blockIdx.y * TBN;
    float acc[4][4][4];
    tc_zero(acc);
    for (i64 k0 = k_begin; k0 < k_end; k0 += TBK) {
        tc_load_tile<T, !TA, VEC>(a, p.lda, p.m, p.k, m0, k0, As);
        tc_load_tile<T, TB, VEC>(b, p.ldb, p.n, p.k, n0, k0, Bs);
        __syncthreads();
        WarpMma<T>::run(As, Bs, wm, wn, g, t, acc);
        __syncthreads();
    }
    tc_store_acc(acc, epi, m0 + wm, n0 + wn, lane);
}

// Split-K or batched through `gemm_grid_z` (gemm_core.cuh), each range of k a multiple of
// TBK. The shared tiles are declared here, once: in the tile function, each instance would
// declare its own.
template <class T, bool TA, bool TB, bool VEC>
__device__ __forceinline__ void gemm_tc_impl(const typename T::S* __restrict__ a,
                                             const typename T::S* __restrict__ b, void* c,
                                             const void* __restrict__ bias, const GemmParams& p, i64 k_split,
                                             float* ws, unsigned* tickets) {
    constexpr int LD = TBK + T::PAD;
    __shared__ __align__(16) typename T::S As[TBM * LD];
    __shared__ __align__(16) typename T::S Bs[TBN * LD];
    gemm_grid_z(
        p, k_split, ws, tickets, [&](i64 z) { return gemm_epi_any(p, c, z, bias); },
        [&](i64 zb, const GemmEpiAny& epi, i64 k0, i64 k1) {
            gemm_tc_tile<T, TA, TB, VEC>(a + zb * p.stride_a, b + zb * p.stride_b, p, epi, k0, k1, As, Bs);
        });
}

#define KEEL_GEMM_TC(TN, T, SUFFIX, TA, TB)                                                     \
    extern "C" __global__ void __launch_bounds__(256, 2)                                       \
        gemm_tc_##TN##_##SUFFIX(const T::S* a, const T::S* b, void* c, const void* bias,      \
                                GemmParams p, i64 k_split, float* ws, unsigned* tickets) {     \
        gemm_tc_impl<T, TA, TB, false>(a, b, c, bias, p, k_split, ws, tickets);                \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(256, 2)                                       \
        gemm_tc_##TN##_##SUFFIX##_vec(const T::S* a, const T::S* b, void* c,                   \
                                      const void* bias, GemmParams p, i64 k_split, float* ws,  \
                                      unsigned* tickets) {                                     \
        gemm_tc_impl<T, TA, TB, true>(a, b, c, bias, p, k_split, ws, tickets);                 \
    }
#define KEEL_GEMM_TC_FORMS(TN, T)               \
    KEEL_GEMM_TC(TN, T, nn, false, false)       \
    KEEL_GEMM_TC(TN, T, nt, false, true)        \
    KEEL_GEMM_TC(TN, T, tn, true, false)        \
    KEEL_GEMM_TC(TN, T, tt, true, true)
// Parts of the tensor-core source (KEEL_PART): 1 TF32, 2 F16, 3 BF16 (element and `_vec`
// loads), 4 F16 `_pipe`, 5 BF16 `_pipe` (gemm_tc_pipe.cu), 6 F16 and 7 BF16 convolutions
// (conv_tc.cu), 8 F16 and BF16 `_pipe_w` (gemm_tc_pipe.cu).
#if KEEL_PART == 0 || KEEL_PART == 1
KEEL_GEMM_TC_FORMS(tf32, TcTf32)
#endif
#if KEEL_PART == 0 || KEEL_PART == 2
KEEL_GEMM_TC_FORMS(f16, TcF16)
#endif
#if KEEL_PART == 0 || KEEL_PART == 3
KEEL_GEMM_TC_FORMS(bf16, TcBf16)
#endif
