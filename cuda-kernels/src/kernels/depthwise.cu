// keel depthwise 2-D convolution on NHWC tensors (TensorFlow's depthwise_conv2d): input
// [n, h, w, c], kernel [kh, kw, c, m], output [n, oh, ow, c * m] whose channel ci * m + j
// is input channel ci convolved with kernel[.., .., ci, j]. Tap (ki, kj) of output (oy, ox)
// reads input (oy * sh - pt + ki * dh, ox * sw - pl + kj * dw); positions outside the input
// (padding, TensorFlow's extra bottom/right row included) are skipped.
// Mirrors `keel_cuda_kernels::ops::depthwise::DepthwiseConv2d` (#[repr(C)]).
struct DepthwiseConv2d {
    i64 n, h, w, c, m, oh, ow;
    int kh, kw, sh, sw, pt, pl, dh, dw;
};

// Each kernel reads and writes its storage type T and computes in DwAcc<T>::A: f32 for f32,
// f16 and bf16 (rounding once on the store), double for f64.
template <typename T> struct DwAcc {
    typedef float A;
    static __device__ __forceinline__ float load(T x) { return to_f32(x); }
    static __device__ __forceinline__ T store(float a) { return from_f32<T>(a); }
};
template <> struct DwAcc<double> {
    typedef double A;
    static __device__ __forceinline__ double load(double x) { return x; }
    static __device__ __forceinline__ double store(double a) { return a; }
};

// The output position whose tap k reads input position i along one dim, or -1:
// o * s + k * d - pad == i with 0 <= o < out.
__device__ __forceinline__ i64 dw_dst_pos(i64 i, int k, int s, int d, int pad, i64 out) {
    const i64 t = i + pad - (i64)k * d;
    if (t < 0 || t % s != 0) return -1;
    const i64 o = t / s;
    return o < out ? o : -1;
}

// y[n, oy, ox, co] = sum over the taps (ki, kj), in order, of x[n, iy, ix, co / m] *
// k[ki, kj, co]. One thread per output element.
template <typename T>
__device__ __forceinline__ void depthwise_fwd(const T* __restrict__ x, const T* __restrict__ k, T* __restrict__ y,
                                              const DepthwiseConv2d& p) {
    typedef DwAcc<T> P;
    const i64 o = p.c * p.m;
    const i64 total = p.n * p.oh * p.ow * o;
    KEEL_GRID_LOOP(e, total) {
        const i64 co = e % o;
        i64 t = e / o;
        const i64 ox = t % p.ow; t /= p.ow;
        const i64 oy = t % p.oh;
        const i64 n = t / p.oh;
        const i64 ci = co / p.m;
        const i64 y0 = oy * p.sh - p.pt, x0 = ox * p.sw - p.pl;
        typename P::A s = 0;
        for (int ki = 0; ki < p.kh; ++ki) {
            const i64 iy = y0 + (i64)ki * p.dh;
            if (iy < 0 || iy >= p.h) continue;
            for (int kj = 0; kj < p.kw; ++kj) {
                const i64 ix = x0 + (i64)kj * p.dw;
                if (ix < 0 || ix >= p.w) continue;
                s += P::load(x[((n * p.h + iy) * p.w + ix) * p.c + ci]) * P::load(k[((i64)ki * p.kw + kj) * o + co]);
            }
        }
        y[e] = P::store(s);
    }
}

// gx[n, iy, ix, ci] = sum over the taps (ki, kj) that reach it, in order, of
// sum_j gy[n, oy, ox, ci * m + j] * k[ki, kj, ci, j]. Gather form, one thread per input
// element: deterministic, no atomics, every element written.
template <typename T>
__device__ __forceinline__ void depthwise_bwd_input(const T* __restrict__ gy, const T* __restrict__ k,
                                                    T* __restrict__ gx, const DepthwiseConv2d& p) {
    typedef DwAcc<T> P;
    const i64 o = p.c * p.m;
    const i64 total = p.n * p.h * p.w * p.c;
    KEEL_GRID_LOOP(e, total) {
        const i64 ci = e % p.c;
        i64 t = e / p.c;
        const i64 ix = t % p.w; t /= p.w;
        const i64 iy = t % p.h;
        const i64 n = t / p.h;
        typename P::A g = 0;
        for (int ki = 0; ki < p.kh; ++ki) {
            const i64 oy = dw_dst_pos(iy, ki, p.sh, p.dh, p.pt, p.oh);
            if (oy < 0) continue;
            for (int kj = 0; kj < p.kw; ++kj) {
                const i64 ox = dw_dst_pos(ix, kj, p.sw, p.dw, p.pl, p.ow);
                if (ox < 0) continue;
                const T* gp = gy + ((n * p.oh + oy) * p.ow + ox) * o + ci * p.m;
                const T* kp = k + ((i64)ki * p.kw + kj) * o + ci * p.m;
                typename P::A s = 0;
                for (i64 j = 0; j < p.m; ++j) s += P::load(gp[j]) * P::load(kp[j]);
                g += s;
            }
        }
        gx[e] = P::store(g);
    }
}

// Threads per block of the kernel gradient: 32 output channels (lanes) x 8 pixel rows.
#define KEEL_DW_LANES 32
#define KEEL_DW_ROWS 8

// gk[ki, kj, co] = sum over the output pixels of x[n, iy, ix, co / m] * gy[n, oy, ox, co].
// One block per (tap, tile of 32 output channels), grid-strided: lane tx takes channel
// tile * 32 + tx (consecutive channels: coalesced reads), row ty the pixels ty, ty + 8, ...
// in order; the 8 row sums are then added in order by row 0. Fixed assignment and order:
// deterministic, no atomics, every element written. Launch with 256 threads.
template <typename T>
__device__ __forceinline__ void depthwise_bwd_kernel(const T* __restrict__ x, const T* __restrict__ gy,
                                                     T* __restrict__ gk, const DepthwiseConv2d& p) {
    typedef DwAcc<T> P;
    typedef typename P::A A;
    __shared__ A part[KEEL_DW_ROWS][KEEL_DW_LANES];
    const i64 o = p.c * p.m;
    const i64 tiles = (o + KEEL_DW_LANES - 1) / KEEL_DW_LANES;
    const i64 blocks = (i64)p.kh * p.kw * tiles;
    const i64 pixels = p.n * p.oh * p.ow;
    const int tx = threadIdx.x % KEEL_DW_LANES, ty = threadIdx.x / KEEL_DW_LANES;
    for (i64 b = blockIdx.x; b < blocks; b += gridDim.x) {
        const i64 tap = b / tiles;
        const i64 co = (b % tiles) * KEEL_DW_LANES + tx;
        const int ki = (int)(tap / p.kw), kj = (int)(tap % p.kw);
        A s = 0;
        if (co < o) {
            const i64 ci = co / p.m;
            for (i64 q = ty; q < pixels; q += KEEL_DW_ROWS) {
                const i64 ox = q % p.ow;
                const i64 r = q / p.ow;
                const i64 oy = r % p.oh;
                const i64 n = r / p.oh;
                const i64 iy = oy * p.sh - p.pt + (i64)ki * p.dh;
                const i64 ix = ox * p.sw - p.pl + (i64)kj * p.dw;
                if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w) continue;
                s += P::load(x[((n * p.h + iy) * p.w + ix) * p.c + ci]) * P::load(gy[q * o + co]);
            }
        }
        part[ty][tx] = s;
        __syncthreads();
        if (ty == 0 && co < o) {
            A t = part[0][tx];
            for (int r = 1; r < KEEL_DW_ROWS; ++r) t += part[r][tx];
            gk[tap * o + co] = P::store(t);
        }
        __syncthreads();
    }
}

#define KEEL_DW_KERNELS(TN, T)                                                                          \
    extern "C" __global__ void depthwise_conv2d_fwd_##TN(const T* __restrict__ x, const T* __restrict__ k, \
                                                         T* __restrict__ y, DepthwiseConv2d p) {          \
        depthwise_fwd<T>(x, k, y, p);                                                                   \
    }                                                                                                   \
    extern "C" __global__ void depthwise_conv2d_bwd_input_##TN(const T* __restrict__ gy,                  \
                                                               const T* __restrict__ k,                   \
                                                               T* __restrict__ gx, DepthwiseConv2d p) {   \
        depthwise_bwd_input<T>(gy, k, gx, p);                                                           \
    }                                                                                                   \
    extern "C" __global__ void depthwise_conv2d_bwd_kernel_##TN(const T* __restrict__ x,                  \
                                                                const T* __restrict__ gy,                 \
                                                                T* __restrict__ gk, DepthwiseConv2d p) {  \
        depthwise_bwd_kernel<T>(x, gy, gk, p);                                                          \
    }

KEEL_DW_KERNELS(f32, float)
KEEL_DW_KERNELS(f16, keel_f16)
KEEL_DW_KERNELS(bf16, keel_bf16)
KEEL_DW_KERNELS(f64, double)
