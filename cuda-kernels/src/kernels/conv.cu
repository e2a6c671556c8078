// keel 2-D convolution as implicit GEMM (no im2col buffer) on the SIMT 128x128x8 core.
// x: NHWC [N, H, W, C]; w: HWIO [KH, KW, C, O] (Keras layout); y: [N, OH, OW, O].
// Input row of output (oh, ow), tap (kh, kw): h = oh * sh - pt + kh * dh (same for w);
// positions outside the input read as zero (explicit top/left pads; bottom/right padding is
// implied by OH/OW).
//   forward:     y[m=(n,oh,ow), o]   = sum_{k=(kh,kw,c)} x(...) * w[k, o]
//   grad-input:  dx[m=(n,h,w), c]    = sum_{k=(kh,kw,o)} dy(n, oh, ow, o) * w[kh, kw, c, o]
//   grad-kernel: dw[m=(kh,kw,c), o]  = sum_{k=(n,oh,ow)} x(n, h, w, c) * dy[k, o]
// VEC variants use 16-byte loads; they need C % 4 == 0 / O % 4 == 0 (see the Rust wrappers).
// The loaders read T = float, or keel_f16/keel_bf16 widened to f32 (element loads only).

// ConvParams: conv_params.cuh.

template <bool VEC, class T = float>
struct FwdA {  // rows m = (n, oh, ow), k = (kh, kw, c), contiguous along c
    static constexpr bool K_CONTIG = true;
    const T* x;
    ConvParams p;
    i64 kdim, nbase, h0, w0;
    bool valid;
    __device__ __forceinline__ void set_row(i64 m) {
        valid = m < p.n * p.oh * p.ow;
        const i64 ow = m % p.ow;
        const i64 t = m / p.ow;
        h0 = (t % p.oh) * p.sh - p.pt;
        w0 = ow * p.sw - p.pl;
        nbase = (t / p.oh) * p.h;
    }
    __device__ __forceinline__ float at(i64 k) const {
        if (k >= kdim) return 0.0f;
        const i64 c = k % p.c, t = k / p.c;
        const i64 h = h0 + (t / p.kw) * p.dh, w = w0 + (t % p.kw) * p.dw;
        if (h < 0 || h >= p.h || w < 0 || w >= p.w) return 0.0f;
        return to_f32(x[((nbase + h) * p.w + w) * p.c + c]);
    }
    __device__ __forceinline__ float4 load4(i64 k) const {
        if (!valid) return make_float4(0.f, 0.f, 0.f, 0.f);
        if (VEC) {
            if (k >= kdim) return make_float4(0.f, 0.f, 0.f, 0.f);
            const i64 c = k % p.c, t = k / p.c;
            const i64 h = h0 + (t / p.kw) * p.dh, w = w0 + (t % p.kw) * p.dw;
            if (h < 0 || h >= p.h || w < 0 || w >= p.w) return make_float4(0.f, 0.f, 0.f, 0.f);
            return *reinterpret_cast<const float4*>(x + ((nbase + h) * p.w + w) * p.c + c);
        }
        return make_float4(at(k), at(k + 1), at(k + 2), at(k + 3));
    }
};

template <bool VEC, class T = float>
struct DgradA {  // rows m = (n, h, w), k = (kh, kw, o), contiguous along o
    static constexpr bool K_CONTIG = true;
    const T* dy;
    ConvParams p;
    i64 kdim, n_, h_, w_;
    bool valid;
    __device__ __forceinline__ void set_row(i64 m) {
        valid = m < p.n * p.h * p.w;
        w_ = m % p.w;
        const i64 t = m / p.w;
        h_ = t % p.h;
        n_ = t / p.h;
    }
    // Offset of dy(n, oh, ow, 0) for tap t = kh * KW + kw, or -1 when no output uses it.
    __device__ __forceinline__ i64 row_offset(i64 t) const {
        const i64 hn = h_ + p.pt - (t / p.kw) * p.dh;
        const i64 wn = w_ + p.pl - (t % p.kw) * p.dw;
        if (hn < 0 || wn < 0 || hn % p.sh != 0 || wn % p.sw != 0) return -1;
        const i64 oh = hn / p.sh, ow = wn / p.sw;
        if (oh >= p.oh || ow >= p.ow) return -1;
        return ((n_ * p.oh + oh) * p.ow + ow) * p.o;
    }
    __device__ __forceinline__ float at(i64 k) const {
        if (k >= kdim) return 0.0f;
        const i64 off = row_offset(k / p.o);
        return off < 0 ? 0.0f : to_f32(dy[off + k % p.o]);
    }
    __device__ __forceinline__ float4 load4(i64 k) const {
        if (!valid) return make_float4(0.f, 0.f, 0.f, 0.f);
        if (VEC) {
            if (k >= kdim) return make_float4(0.f, 0.f, 0.f, 0.f);
            const i64 off = row_offset(k / p.o);
            if (off < 0) return make_float4(0.f, 0.f, 0.f, 0.f);
            return *reinterpret_cast<const float4*>(dy + off + k % p.o);
        }
        return make_float4(at(k), at(k + 1), at(k + 2), at(k + 3));
    }
};

template <bool VEC, class T = float>
struct DgradB {  // rows = c, k = (kh, kw, o): w[((kh * KW + kw) * C + c) * O + o]
    static constexpr bool K_CONTIG = true;
    const T* wt;
    ConvParams p;
    i64 kdim, c_;
    __device__ __forceinline__ void set_row(i64 c) { c_ = c; }
    __device__ __forceinline__ float at(i64 k) const {
        if (k >= kdim) return 0.0f;
        return to_f32(wt[((k / p.o) * p.c + c_) * p.o + k % p.o]);
    }
    __device__ __forceinline__ float4 load4(i64 k) const {
        if (c_ >= p.c) return make_float4(0.f, 0.f, 0.f, 0.f);
        if (VEC) {
            if (k >= kdim) return make_float4(0.f, 0.f, 0.f, 0.f);
            return *reinterpret_cast<const float4*>(wt + ((k / p.o) * p.c + c_) * p.o + k % p.o);
        }
        return make_float4(at(k), at(k + 1), at(k + 2), at(k + 3));
    }
};

template <bool VEC, class T = float>
struct WgradA {  // rows m = (kh, kw, c) contiguous along c, k = (n, oh, ow)
    static constexpr bool K_CONTIG = false;
    const T* x;
    ConvParams p;
    i64 kdim, mdim, r;
    __device__ __forceinline__ void set_row(i64 row) { r = row; }
    __device__ __forceinline__ float at(i64 m, i64 n, i64 oh, i64 ow) const {
        if (m >= mdim) return 0.0f;
        const i64 c = m % p.c, t = m / p.c;
        const i64 h = oh * p.sh - p.pt + (t / p.kw) * p.dh;
        const i64 w = ow * p.sw - p.pl + (t % p.kw) * p.dw;
        if (h < 0 || h >= p.h || w < 0 || w >= p.w) return 0.0f;
        return to_f32(x[((n * p.h + h) * p.w + w) * p.c + c]);
    }
    __device__ __forceinline__ float4 load4(i64 k) const {
        if (k >= kdim || r >= mdim) return make_float4(0.f, 0.f, 0.f, 0.f);
        const i64 ow = k % p.ow, t = k / p.ow;
        const i64 oh = t % p.oh, n = t / p.oh;
        if (VEC) {
            const i64 c = r % p.c, tap = r / p.c;
            const i64 h = oh * p.sh - p.pt + (tap / p.kw) * p.dh;
            const i64 w = ow * p.sw - p.pl + (tap % p.kw) * p.dw;
            if (h < 0 || h >= p.h || w < 0 || w >= p.w) return make_float4(0.f, 0.f, 0.f, 0.f);
            return *reinterpret_cast<const float4*>(x + ((n * p.h + h) * p.w + w) * p.c + c);
        }
        return make_float4(at(r, n, oh, ow), at(r + 1, n, oh, ow), at(r + 2, n, oh, ow),
                           at(r + 3, n, oh, ow));
    }
};

// The epilogue writing the [m, n] output (row stride n) at c, in O's type.
template <class O>
__device__ __forceinline__ GemmEpiT<O> conv_epi(O* c, i64 m, i64 n, float alpha, float beta, const void* bias,
                                                int act) {
    return GemmEpiT<O>{c, n, m, n, alpha, beta, bias, act};
}

template <bool VEC, class T, class O>
__device__ __forceinline__ void conv_fwd_impl(const T* x, const T* wt, O* y, const void* bias, const ConvParams& p,
                                              float alpha, float beta, int act) {
    const i64 m = p.n * p.oh * p.ow, kdim = (i64)p.kh * p.kw * p.c;
    FwdA<VEC, T> la;
    la.x = x; la.p = p; la.kdim = kdim;
    MatLoader<false, VEC, T> lb;
    lb.p = wt; lb.ld = p.o; lb.rows = p.o; lb.kdim = kdim;
    gemm_block_128x128(la, lb, conv_epi(y, m, p.o, alpha, beta, bias, act), (i64)blockIdx.x * GBM,
                       (i64)blockIdx.y * GBN, 0, kdim);
}

template <bool VEC, class T, class O>
__device__ __forceinline__ void conv_dgrad_impl(const T* dy, const T* wt, O* dx, const ConvParams& p, float alpha,
                                                float beta) {
    const i64 m = p.n * p.h * p.w, kdim = (i64)p.kh * p.kw * p.o;
    DgradA<VEC, T> la;
    la.dy = dy; la.p = p; la.kdim = kdim;
    DgradB<VEC, T> lb;
    lb.wt = wt; lb.p = p; lb.kdim = kdim;
    gemm_block_128x128(la, lb, conv_epi(dx, m, p.c, alpha, beta, nullptr, 0), (i64)blockIdx.x * GBM,
                       (i64)blockIdx.y * GBN, 0, kdim);
}

// gridDim.z = number of K splits; split z covers k in [z * k_per_split, (z + 1) * k_per_split)
// and writes to out + z * split_stride (split_stride = 0 when there is one split).
template <bool VEC, class T>
__device__ __forceinline__ void conv_wgrad_impl(const T* x, const T* dy, float* out, const ConvParams& p,
                                                float alpha, float beta, i64 k_per_split, i64 split_stride,
                                                const SplitOut& dw) {
    const i64 mdim = (i64)p.kh * p.kw * p.c, kdim = p.n * p.oh * p.ow;
    WgradA<VEC, T> la;
    la.x = x; la.p = p; la.kdim = kdim; la.mdim = mdim;
    MatLoader<false, VEC, T> lb;
    lb.p = dy; lb.ld = p.o; lb.rows = p.o; lb.kdim = kdim;
    const GemmEpi epi = conv_epi(out + (i64)blockIdx.z * split_stride, mdim, p.o, alpha, beta, nullptr, 0);
    const i64 kb = (i64)blockIdx.z * k_per_split;
    i64 ke = kb + k_per_split;
    if (ke > kdim) ke = kdim;
    gemm_block_128x128(la, lb, epi, (i64)blockIdx.x * GBM, (i64)blockIdx.y * GBN, kb, ke);
    if (dw.tickets != nullptr) split_out_combine(dw, out, mdim, p.o);
}

// conv2d_{fwd,dgrad,wgrad}_<TN><SUFFIX>: inputs of storage T; forward and grad-input write T,
// grad-kernel writes f32: `out` itself, or when split (or rounding to F16/BF16) partial sums
// in the workspace `out` that the last block of each tile adds into `dw` (SplitOut).
#define KEEL_CONV(TN, T, SUFFIX, VEC)                                                              \
    extern "C" __global__ void __launch_bounds__(256)                                             \
        conv2d_fwd_##TN##SUFFIX(const T* x, const T* w, T* y, const void* bias, ConvParams p,    \
                                float alpha, float beta, int act) {                               \
        conv_fwd_impl<VEC>(x, w, y, bias, p, alpha, beta, act);                                   \
    }                                                                                             \
    extern "C" __global__ void __launch_bounds__(256)                                             \
        conv2d_dgrad_##TN##SUFFIX(const T* dy, const T* w, T* dx, ConvParams p, float alpha,      \
                                  float beta) {                                                   \
        conv_dgrad_impl<VEC>(dy, w, dx, p, alpha, beta);                                          \
    }                                                                                             \
    extern "C" __global__ void __launch_bounds__(256)                                             \
        conv2d_wgrad_##TN##SUFFIX(const T* x, const T* dy, float* out, ConvParams p, float alpha, \
                                  float beta, i64 k_per_split, i64 split_stride, SplitOut dw) {   \
        conv_wgrad_impl<VEC>(x, dy, out, p, alpha, beta, k_per_split, split_stride, dw);          \
    }
KEEL_CONV(f32, float, , false)
KEEL_CONV(f32, float, _vec4, true)
// F16/BF16 on the SIMT core, for what the tensor-core kernels (conv_tc.cu) cannot take
// (channels not multiples of 8, unaligned operands, pre-sm_80): element loads widened to
// f32, the f32 kernels' arithmetic in the same order, one rounding on the store.
KEEL_CONV(f16, keel_f16, , false)
KEEL_CONV(bf16, keel_bf16, , false)

// ---- F64: the three passes as implicit GEMMs on gemm_f64_block (gemm_core.cuh) ----
// For convolutions in f64 on the GPU (gradient checks, references), not tuned for speed: the
// loaders index every element on its own. Outputs are written whole (alpha 1, beta 0), so an
// empty reduction (no taps reach an element) writes 0.

// x(n, h, w, c) for output (oh, ow) and tap t = kh * KW + kw, 0 in the padding.
__device__ __forceinline__ double conv_x64(const double* x, const ConvParams& p, i64 n, i64 oh, i64 ow, i64 t,
                                           i64 c) {
    const i64 h = oh * p.sh - p.pt + (t / p.kw) * p.dh, w = ow * p.sw - p.pl + (t % p.kw) * p.dw;
    if (h < 0 || h >= p.h || w < 0 || w >= p.w) return 0.0;
    return x[((n * p.h + h) * p.w + w) * p.c + c];
}

struct FwdA64 {  // rows m = (n, oh, ow), k = (kh, kw, c): x(n, h, w, c)
    static constexpr bool K_CONTIG = true;
    const double* x;
    ConvParams p;
    __device__ __forceinline__ double at(i64 m, i64 k) const {
        if (m >= p.n * p.oh * p.ow || k >= (i64)p.kh * p.kw * p.c) return 0.0;
        const i64 ow = m % p.ow, t = m / p.ow;
        return conv_x64(x, p, t / p.oh, t % p.oh, ow, k / p.c, k % p.c);
    }
};

struct DgradA64 {  // rows m = (n, h, w), k = (kh, kw, o): dy(n, oh, ow, o) whose tap (kh, kw) reads x(n, h, w)
    static constexpr bool K_CONTIG = true;
    const double* dy;
    ConvParams p;
    __device__ __forceinline__ double at(i64 m, i64 k) const {
        if (m >= p.n * p.h * p.w || k >= (i64)p.kh * p.kw * p.o) return 0.0;
        const i64 w = m % p.w, t = m / p.w;
        const i64 h = t % p.h, n = t / p.h;
        const i64 o = k % p.o, tap = k / p.o;
        const i64 hn = h + p.pt - (tap / p.kw) * p.dh, wn = w + p.pl - (tap % p.kw) * p.dw;
        if (hn < 0 || wn < 0 || hn % p.sh != 0 || wn % p.sw != 0) return 0.0;
        const i64 oh = hn / p.sh, ow = wn / p.sw;
        if (oh >= p.oh || ow >= p.ow) return 0.0;
        return dy[((n * p.oh + oh) * p.ow + ow) * p.o + o];
    }
};

struct DgradB64 {  // rows c, k = (kh, kw, o): w[((kh * KW + kw) * C + c) * O + o]
    static constexpr bool K_CONTIG = true;
    const double* wt;
    ConvParams p;
    __device__ __forceinline__ double at(i64 c, i64 k) const {
        if (c >= p.c || k >= (i64)p.kh * p.kw * p.o) return 0.0;
        return wt[((k / p.o) * p.c + c) * p.o + k % p.o];
    }
};

struct WgradA64 {  // rows m = (kh, kw, c), k = (n, oh, ow): x(n, h, w, c)
    static constexpr bool K_CONTIG = false;
    const double* x;
    ConvParams p;
    __device__ __forceinline__ double at(i64 m, i64 k) const {
        if (m >= (i64)p.kh * p.kw * p.c || k >= p.n * p.oh * p.ow) return 0.0;
        const i64 ow = k % p.ow, t = k / p.ow;
        return conv_x64(x, p, t / p.oh, t % p.oh, ow, m / p.c, m % p.c);
    }
};

// y[(n, oh, ow), o] = sum_k x(...) w[k, o]
extern "C" __global__ void __launch_bounds__(256) conv2d_fwd_f64(const double* x, const double* wt, double* y,
                                                                 ConvParams p) {
    const i64 m = p.n * p.oh * p.ow, kdim = (i64)p.kh * p.kw * p.c;
    const DenseF64<false> lb{wt, p.o, p.o, kdim};
    gemm_f64_block(FwdA64{x, p}, lb, y, p.o, m, p.o, kdim, 1.0, 0.0, (i64)blockIdx.x * KEEL_F64_TILE,
                   (i64)blockIdx.y * KEEL_F64_TILE);
}

// dx[(n, h, w), c] = sum_{(kh, kw, o)} dy(...) w[kh, kw, c, o]
extern "C" __global__ void __launch_bounds__(256) conv2d_dgrad_f64(const double* dy, const double* wt, double* dx,
                                                                   ConvParams p) {
    const i64 m = p.n * p.h * p.w, kdim = (i64)p.kh * p.kw * p.o;
    gemm_f64_block(DgradA64{dy, p}, DgradB64{wt, p}, dx, p.c, m, p.c, kdim, 1.0, 0.0,
                   (i64)blockIdx.x * KEEL_F64_TILE, (i64)blockIdx.y * KEEL_F64_TILE);
}

// dw[(kh, kw, c), o] = sum_{(n, oh, ow)} x(...) dy[(n, oh, ow), o]
extern "C" __global__ void __launch_bounds__(256) conv2d_wgrad_f64(const double* x, const double* dy, double* dw,
                                                                   ConvParams p) {
    const i64 mdim = (i64)p.kh * p.kw * p.c, kdim = p.n * p.oh * p.ow;
    const DenseF64<false> lb{dy, p.o, p.o, kdim};
    gemm_f64_block(WgradA64{x, p}, lb, dw, p.o, mdim, p.o, kdim, 1.0, 0.0, (i64)blockIdx.x * KEEL_F64_TILE,
                   (i64)blockIdx.y * KEEL_F64_TILE);
}
