// keel 2-D pooling on NHWC tensors. Windows start at (oh * sh - pt, ow * sw - pl); positions
// outside the input (padding, including implicit bottom/right padding) are skipped.
// Mirrors `keel_cuda_kernels::ops::pool::Pool2d` (#[repr(C)]).
struct Pool2d {
    i64 n, h, w, c, oh, ow;
    int kh, kw, sh, sw, pt, pl;
};

// Range of output rows whose window covers input row `h` (inclusive), clipped to [0, out).
__device__ __forceinline__ void covering(i64 h, int k, int s, int pad, i64 out, i64& lo, i64& hi) {
    const i64 num = h + pad - k + 1;
    lo = num <= 0 ? 0 : (num + s - 1) / s;
    hi = (h + pad) / s;
    if (hi > out - 1) hi = out - 1;
}

// Each kernel reads and writes its storage type T and computes in PoolAcc<T>::A: f32 for
// f32, f16 and bf16, rounding once on the store (the bits of widening to f32, pooling, and
// narrowing, without the two casts' launches and buffers); double for f64 (the CPU's f64
// arithmetic in its order). Instantiated per type at the end (KEEL_POOL_KERNELS).
template <typename T> struct PoolAcc {
    typedef float A;
    static __device__ __forceinline__ float load(T x) { return to_f32(x); }
    static __device__ __forceinline__ T store(float a) { return from_f32<T>(a); }
};
template <> struct PoolAcc<double> {
    typedef double A;
    static __device__ __forceinline__ double load(double x) { return x; }
    static __device__ __forceinline__ double store(double a) { return a; }
};

// out[n, oh, ow, c] = max over the window; idx = flat NHWC index of the argmax in the input
// (first maximum; NaN wins). A window with no valid position gives -inf and index -1.
template <typename T>
__device__ __forceinline__ void max_pool2d_fwd(const T* __restrict__ x, T* __restrict__ y,
                                               i64* __restrict__ idx, const Pool2d& p) {
    const i64 total = p.n * p.oh * p.ow * p.c;
    KEEL_GRID_LOOP(e, total) {
        const i64 c = e % p.c;
        i64 t = e / p.c;
        const i64 ow = t % p.ow; t /= p.ow;
        const i64 oh = t % p.oh;
        const i64 n = t / p.oh;
        const i64 h0 = oh * p.sh - p.pt, w0 = ow * p.sw - p.pl;
        typedef PoolAcc<T> P;
        typename P::A best = -keel_inf();
        i64 bi = -1;
        for (int i = 0; i < p.kh; ++i) {
            const i64 h = h0 + i;
            if (h < 0 || h >= p.h) continue;
            for (int j = 0; j < p.kw; ++j) {
                const i64 w = w0 + j;
                if (w < 0 || w >= p.w) continue;
                const i64 xi = ((n * p.h + h) * p.w + w) * p.c + c;
                const typename P::A v = P::load(x[xi]);
                if (bi < 0 || v > best || (v != v && best == best)) { best = v; bi = xi; }
            }
        }
        y[e] = P::store(best);
        idx[e] = bi;
    }
}

// grad_x[n, h, w, c] = sum of grad_y over the outputs whose argmax index is this element.
// Gather form (one thread per input element): deterministic, no atomics, no pre-zeroing.
template <typename T>
__device__ __forceinline__ void max_pool2d_bwd(const T* __restrict__ gy, const i64* __restrict__ idx,
                                               T* __restrict__ gx, const Pool2d& p) {
    const i64 total = p.n * p.h * p.w * p.c;
    KEEL_GRID_LOOP(e, total) {
        const i64 c = e % p.c;
        i64 t = e / p.c;
        const i64 w = t % p.w; t /= p.w;
        const i64 h = t % p.h;
        const i64 n = t / p.h;
        i64 oh_lo, oh_hi, ow_lo, ow_hi;
        covering(h, p.kh, p.sh, p.pt, p.oh, oh_lo, oh_hi);
        covering(w, p.kw, p.sw, p.pl, p.ow, ow_lo, ow_hi);
        typedef PoolAcc<T> P;
        typename P::A g = 0;
        for (i64 oh = oh_lo; oh <= oh_hi; ++oh)
            for (i64 ow = ow_lo; ow <= ow_hi; ++ow) {
                const i64 o = ((n * p.oh + oh) * p.ow + ow) * p.c + c;
                if (idx[o] == e) g += P::load(gy[o]);
            }
        gx[e] = P::store(g);
    }
}

// The divisor of window (oh, ow) in the accumulator type A (an exact integer).
template <typename A>
__device__ __forceinline__ A window_count(const Pool2d& p, i64 oh, i64 ow, int include_pad) {
    if (include_pad) return (A)(p.kh * p.kw);
    i64 hs = oh * p.sh - p.pt, ws = ow * p.sw - p.pl;
    i64 he = hs + p.kh, we = ws + p.kw;
    if (hs < 0) hs = 0;
    if (ws < 0) ws = 0;
    if (he > p.h) he = p.h;
    if (we > p.w) we = p.w;
    const i64 cnt = (he - hs) * (we - ws);
    return cnt > 0 ? (A)cnt : (A)1;
}

// out = mean over the valid window positions (padding excluded, as Keras does) unless
// include_pad != 0 (then divided by kh * kw).
template <typename T>
__device__ __forceinline__ void avg_pool2d_fwd(const T* __restrict__ x, T* __restrict__ y, const Pool2d& p,
                                               int include_pad) {
    const i64 total = p.n * p.oh * p.ow * p.c;
    KEEL_GRID_LOOP(e, total) {
        const i64 c = e % p.c;
        i64 t = e / p.c;
        const i64 ow = t % p.ow; t /= p.ow;
        const i64 oh = t % p.oh;
        const i64 n = t / p.oh;
        const i64 h0 = oh * p.sh - p.pt, w0 = ow * p.sw - p.pl;
        typedef PoolAcc<T> P;
        typename P::A s = 0;
        for (int i = 0; i < p.kh; ++i) {
            const i64 h = h0 + i;
            if (h < 0 || h >= p.h) continue;
            for (int j = 0; j < p.kw; ++j) {
                const i64 w = w0 + j;
                if (w < 0 || w >= p.w) continue;
                s += P::load(x[((n * p.h + h) * p.w + w) * p.c + c]);
            }
        }
        y[e] = P::store(s / window_count<typename P::A>(p, oh, ow, include_pad));
    }
}

// grad_x = sum over covering windows of grad_y / count(window). Gather form, deterministic.
template <typename T>
__device__ __forceinline__ void avg_pool2d_bwd(const T* __restrict__ gy, T* __restrict__ gx, const Pool2d& p,
                                               int include_pad) {
    const i64 total = p.n * p.h * p.w * p.c;
    KEEL_GRID_LOOP(e, total) {
        const i64 c = e % p.c;
        i64 t = e / p.c;
        const i64 w = t % p.w; t /= p.w;
        const i64 h = t % p.h;
        const i64 n = t / p.h;
        i64 oh_lo, oh_hi, ow_lo, ow_hi;
        covering(h, p.kh, p.sh, p.pt, p.oh, oh_lo, oh_hi);
        covering(w, p.kw, p.sw, p.pl, p.ow, ow_lo, ow_hi);
        typedef PoolAcc<T> P;
        typename P::A g = 0;
        for (i64 oh = oh_lo; oh <= oh_hi; ++oh)
            for (i64 ow = ow_lo; ow <= ow_hi; ++ow)
                g += P::load(gy[((n * p.oh + oh) * p.ow + ow) * p.c + c]) /
                     window_count<typename P::A>(p, oh, ow, include_pad);
        gx[e] = P::store(g);
    }
}

#define KEEL_POOL_KERNELS(TN, T)                                                                        \
    extern "C" __global__ void max_pool2d_fwd_##TN(const T* __restrict__ x, T* __restrict__ y,          \
                                                   i64* __restrict__ idx, Pool2d p) {                  \
        max_pool2d_fwd<T>(x, y, idx, p);                                                                \
    }                                                                                                   \
    extern "C" __global__ void max_pool2d_bwd_##TN(const T* __restrict__ gy, const i64* __restrict__ idx, \
                                                   T* __restrict__ gx, Pool2d p) {                     \
        max_pool2d_bwd<T>(gy, idx, gx, p);                                                              \
    }                                                                                                   \
    extern "C" __global__ void avg_pool2d_fwd_##TN(const T* __restrict__ x, T* __restrict__ y, Pool2d p, \
                                                   int include_pad) {                                  \
        avg_pool2d_fwd<T>(x, y, p, include_pad);                                                        \
    }                                                                                                   \
    extern "C" __global__ void avg_pool2d_bwd_##TN(const T* __restrict__ gy, T* __restrict__ gx, Pool2d p, \
                                                   int include_pad) {                                  \
        avg_pool2d_bwd<T>(gy, gx, p, include_pad);                                                      \
    }

KEEL_POOL_KERNELS(f32, float)
KEEL_POOL_KERNELS(f16, keel_f16)
KEEL_POOL_KERNELS(bf16, keel_bf16)
KEEL_POOL_KERNELS(f64, double)
