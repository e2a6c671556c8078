// keel tensor-core convolution for F16/BF16 (sm_80+): the three implicit GEMMs of conv.cu,
//   forward:     y[m=(n,oh,ow), o]  = sum_{k=(kh,kw,c)} x(n, h, w, c) * w[k, o]
//   grad-input:  dx[m=(n,h,w), c]   = sum_{k=(kh,kw,o)} dy(n, oh, ow, o) * w[kh, kw, c, o]
//   grad-kernel: dw[m=(kh,kw,c), o] = sum_{k=(n,oh,ow)} x(n, h, w, c) * dy[k, o]
// on the cp.async-pipelined tensor-core block of gemm_tc_pipe.cu, f32 accumulation and f32
// output. The loaders copy 8-channel chunks straight from the NHWC tensors (no im2col), so
// they need C % 8 == 0 and O % 8 == 0 (a chunk then never leaves one pixel), 16-byte aligned
// tensors, and every index below 2^31 (32-bit index math); the wrappers check all three.
// A thread's rows are the same in every k-tile, so each loader decomposes them once per
// block tile (begin) and only the k index per k-tile.

typedef unsigned int u32i;

// Per-thread row decomposition of an A operand whose rows are pixels: for each of the
// thread's chunk rows, the pixel's batch index, top-left tap position, and validity.
struct PixelRows {
    int n[2], h[2], w[2];
    bool ok[2];
};

struct ConvFwdA {  // rows m = (n, oh, ow), k = (kh, kw, c): chunks along c
    static constexpr bool K_CONTIG = true;
    const u16* x;
    ConvParams p;
    i64 mdim, kdim;
    PixelRows rows;
    __device__ __forceinline__ void begin(i64 m0) {
#pragma unroll
        for (int j = 0; j < 2; ++j) {
            const i64 m = m0 + (threadIdx.x + 256 * j) / (PBK / 8);
            rows.ok[j] = m < mdim;
            const u32i mm = rows.ok[j] ? (u32i)m : 0u;
            const u32i ow = mm % (u32i)p.ow, t = mm / (u32i)p.ow;
            rows.n[j] = (int)(t / (u32i)p.oh);
            rows.h[j] = (int)(t % (u32i)p.oh) * p.sh - p.pt;
            rows.w[j] = (int)ow * p.sw - p.pl;
        }
    }
    __device__ __forceinline__ const u16* chunk(int j, i64, i64 k, int& bytes) const {
        bytes = 0;
        if (!rows.ok[j] || k >= kdim) return x;
        const u32i c = (u32i)k % (u32i)p.c, tap = (u32i)k / (u32i)p.c;
        const int h = rows.h[j] + (int)(tap / (u32i)p.kw) * p.dh;
        const int w = rows.w[j] + (int)(tap % (u32i)p.kw) * p.dw;
        if (h < 0 || h >= (int)p.h || w < 0 || w >= (int)p.w) return x;
        bytes = 16;
        return x + ((i64)(rows.n[j] * (int)p.h + h) * p.w + w) * p.c + c;
    }
};

struct ConvDgradA {  // rows m = (n, h, w), k = (kh, kw, o): chunks along o of dy
    static constexpr bool K_CONTIG = true;
    const u16* dy;
    ConvParams p;
    i64 mdim, kdim;
    PixelRows rows;  // n, h + pt, w + pl
    __device__ __forceinline__ void begin(i64 m0) {
#pragma unroll
        for (int j = 0; j < 2; ++j) {
            const i64 m = m0 + (threadIdx.x + 256 * j) / (PBK / 8);
            rows.ok[j] = m < mdim;
            const u32i mm = rows.ok[j] ? (u32i)m : 0u;
            const u32i w = mm % (u32i)p.w, t = mm / (u32i)p.w;
            rows.n[j] = (int)(t / (u32i)p.h);
            rows.h[j] = (int)(t % (u32i)p.h) + p.pt;
            rows.w[j] = (int)w + p.pl;
        }
    }
    __device__ __forceinline__ const u16* chunk(int j, i64, i64 k, int& bytes) const {
        bytes = 0;
        if (!rows.ok[j] || k >= kdim) return dy;
        const u32i o = (u32i)k % (u32i)p.o, tap = (u32i)k / (u32i)p.o;
        const int hn = rows.h[j] - (int)(tap / (u32i)p.kw) * p.dh;
        const int wn = rows.w[j] - (int)(tap % (u32i)p.kw) * p.dw;
        if (hn < 0 || wn < 0 || hn % p.sh != 0 || wn % p.sw != 0) return dy;
        const int oh = hn / p.sh, ow = wn / p.sw;
        if (oh >= (int)p.oh || ow >= (int)p.ow) return dy;
        bytes = 16;
        return dy + ((i64)(rows.n[j] * (int)p.oh + oh) * p.ow + ow) * p.o + o;
    }
};

struct ConvDgradB {  // rows c, k = (kh, kw, o): w[((kh * KW + kw) * C + c) * O + o], chunks along o
    static constexpr bool K_CONTIG = true;
    const u16* wt;
    ConvParams p;
    i64 kdim;
    __device__ __forceinline__ void begin(i64) {}
    __device__ __forceinline__ const u16* chunk(int, i64 c, i64 k, int& bytes) const {
        bytes = 0;
        if (c >= p.c || k >= kdim) return wt;
        bytes = 16;
        const u32i o = (u32i)k % (u32i)p.o, tap = (u32i)k / (u32i)p.o;
        return wt + ((i64)tap * p.c + c) * p.o + o;
    }
};

struct ConvWgradA {  // rows m = (kh, kw, c), k = (n, oh, ow): chunks along c (8 rows)
    static constexpr bool K_CONTIG = false;
    const u16* x;
    ConvParams p;
    i64 mdim, kdim;
    int c0[1], dh0[1], dw0[1];  // this thread's chunk: channel and tap offsets
    bool ok[1];
    __device__ __forceinline__ void begin(i64 m0) {
        // row-contiguous tile: chunk c = tid + 256 j covers rows (c % 16) * 8 .. + 8, the
        // same rows for both of the thread's chunks (they differ in k)
        const i64 m = m0 + (i64)((threadIdx.x % (PBM / 8)) * 8);
        ok[0] = m < mdim;
        const u32i mm = ok[0] ? (u32i)m : 0u;
        const u32i tap = mm / (u32i)p.c;
        c0[0] = (int)(mm % (u32i)p.c);
        dh0[0] = (int)(tap / (u32i)p.kw) * p.dh - p.pt;
        dw0[0] = (int)(tap % (u32i)p.kw) * p.dw - p.pl;
    }
    __device__ __forceinline__ const u16* chunk(int, i64, i64 k, int& bytes) const {
        bytes = 0;
        if (!ok[0] || k >= kdim) return x;
        const u32i ow = (u32i)k % (u32i)p.ow, t = (u32i)k / (u32i)p.ow;
        const u32i oh = t % (u32i)p.oh, n = t / (u32i)p.oh;
        const int h = (int)oh * p.sh + dh0[0], w = (int)ow * p.sw + dw0[0];
        if (h < 0 || h >= (int)p.h || w < 0 || w >= (int)p.w) return x;
        bytes = 16;
        return x + ((i64)((int)n * (int)p.h + h) * p.w + w) * p.c + c0[0];
    }
};

template <class T>
__device__ __forceinline__ void conv_fwd_tc(const u16* x, const u16* wt, void* y, const void* bias,
                                            const ConvParams& p, float alpha, float beta, int act, int out) {
    const i64 mdim = p.n * p.oh * p.ow, kdim = (i64)p.kh * p.kw * p.c;
    ConvFwdA la;
    la.x = x; la.p = p; la.mdim = mdim; la.kdim = kdim;
    PipeMat<false> lb{wt, p.o, p.o, kdim};
    tc_pipe_tile<T>(la, lb, GemmEpiAny{y, p.o, mdim, p.o, alpha, beta, bias, act, out}, 0, kdim);
}

template <class T>
__device__ __forceinline__ void conv_dgrad_tc(const u16* dy, const u16* wt, void* dx, const ConvParams& p,
                                              float alpha, float beta, int out) {
    const i64 mdim = p.n * p.h * p.w, kdim = (i64)p.kh * p.kw * p.o;
    ConvDgradA la;
    la.dy = dy; la.p = p; la.mdim = mdim; la.kdim = kdim;
    ConvDgradB lb;
    lb.wt = wt; lb.p = p; lb.kdim = kdim;
    tc_pipe_tile<T>(la, lb, GemmEpiAny{dx, p.c, mdim, p.c, alpha, beta, nullptr, 0, out}, 0, kdim);
}

// gridDim.z = K splits; split z covers k in [z * k_per_split, ...) (k_per_split % PBK == 0)
// and writes dw + z * split_stride (elements of the `out` type: an f32 workspace when split).
template <class T>
__device__ __forceinline__ void conv_wgrad_tc(const u16* x, const u16* dy, void* dw, const ConvParams& p,
                                              float alpha, float beta, i64 k_per_split, i64 split_stride,
                                              int out, const SplitOut& final_dw) {
    const i64 mdim = (i64)p.kh * p.kw * p.c, kdim = p.n * p.oh * p.ow;
    ConvWgradA la;
    la.x = x; la.p = p; la.mdim = mdim; la.kdim = kdim;
    PipeMat<false> lb{dy, p.o, p.o, kdim};
    const i64 kb = (i64)blockIdx.z * k_per_split;
    const i64 ke = kb + k_per_split < kdim ? kb + k_per_split : kdim;
    void* part = (char*)dw + (i64)blockIdx.z * split_stride * (out == 0 ? 4 : 2);
    tc_pipe_tile<T>(la, lb, GemmEpiAny{part, p.o, mdim, p.o, alpha, beta, nullptr, 0, out}, kb, ke);
    if (final_dw.tickets != nullptr) split_out_combine(final_dw, (const float*)dw, mdim, p.o);
}

// `out`: y/dx/dw's storage, 0 = f32, 1 = f16, 2 = bf16 (as GemmParams::out).
#define KEEL_CONV_TC(TN, T)                                                                         \
    extern "C" __global__ void __launch_bounds__(256, 2)                                           \
        conv2d_fwd_tc_##TN(const u16* x, const u16* w, void* y, const void* bias, ConvParams p,    \
                           float alpha, float beta, int act, int out) {                            \
        conv_fwd_tc<T>(x, w, y, bias, p, alpha, beta, act, out);                                   \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(256, 2)                                           \
        conv2d_dgrad_tc_##TN(const u16* dy, const u16* w, void* dx, ConvParams p, float alpha,      \
                             float beta, int out) {                                                \
        conv_dgrad_tc<T>(dy, w, dx, p, alpha, beta, out);                                          \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(256, 2)                                           \
        conv2d_wgrad_tc_##TN(const u16* x, const u16* dy, void* dw, ConvParams p, float alpha,      \
                             float beta, i64 k_per_split, i64 split_stride, int out, SplitOut final_dw) { \
        conv_wgrad_tc<T>(x, dy, dw, p, alpha, beta, k_per_split, split_stride, out, final_dw);     \
    }
#if KEEL_PART == 0 || KEEL_PART == 6
KEEL_CONV_TC(f16, TcF16)
#endif
#if KEEL_PART == 0 || KEEL_PART == 7
KEEL_CONV_TC(bf16, TcBf16)
#endif
