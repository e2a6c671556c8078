// keel projective (affine) image transforms on NHWC tensors, TensorFlow's
// ImageProjectiveTransformV3 convention (see keel-tensor's ops/image.rs): output pixel (x, y)
// reads input point ((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k), k = c0 x + c1 y + 1.
// Mirrors `keel_cuda_kernels::ops::image::Affine` (#[repr(C)]).
struct Affine {
    i64 n, h, w, c;
    i64 rows;    // rows of the transforms: 1 (shared) or n
    int interp;  // 0 nearest, 1 bilinear
    int mode;    // 0 reflect, 1 wrap, 2 constant, 3 nearest
    double fill; // the fill value, already rounded to the image dtype
};

// Arithmetic in the compute type A (float for f32/f16/bf16 images, double for f64), every
// operation rounded on its own (no FMA contraction), so the results are the CPU's bits.
template <typename A> struct ImgOps;
template <> struct ImgOps<float> {
    static __device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }
    static __device__ __forceinline__ float sub(float a, float b) { return __fsub_rn(a, b); }
    static __device__ __forceinline__ float mul(float a, float b) { return __fmul_rn(a, b); }
    static __device__ __forceinline__ float div(float a, float b) { return __fdiv_rn(a, b); }
    static __device__ __forceinline__ float flr(float a) { return floorf(a); }
    static __device__ __forceinline__ float rnd(float a) { return roundf(a); }
};
template <> struct ImgOps<double> {
    static __device__ __forceinline__ double add(double a, double b) { return __dadd_rn(a, b); }
    static __device__ __forceinline__ double sub(double a, double b) { return __dsub_rn(a, b); }
    static __device__ __forceinline__ double mul(double a, double b) { return __dmul_rn(a, b); }
    static __device__ __forceinline__ double div(double a, double b) { return __ddiv_rn(a, b); }
    static __device__ __forceinline__ double flr(double a) { return floor(a); }
    static __device__ __forceinline__ double rnd(double a) { return round(a); }
};

// Storage type T as the compute type A and back (half types: widened, rounded once).
template <typename T> struct ImgIo {
    static __device__ __forceinline__ float load(T x) { return to_f32(x); }
    static __device__ __forceinline__ T store(float a) { return from_f32<T>(a); }
};
template <> struct ImgIo<double> {
    static __device__ __forceinline__ double load(double x) { return x; }
    static __device__ __forceinline__ double store(double a) { return a; }
};

template <typename A> __device__ __forceinline__ A img_clamp(A v, i64 len) {
    const A hi = (A)(len - 1);
    if (v < (A)0) v = (A)0;
    return v > hi ? hi : v;
}

// TensorFlow's MapCoordinate (image_ops.h) for one axis of length len.
template <typename A> __device__ __forceinline__ A map_coord(A v, i64 len, int mode) {
    typedef ImgOps<A> O;
    const A lenf = (A)len;
    if (mode == 2) return v;                    // constant
    if (mode == 3) return img_clamp<A>(v, len); // nearest
    if (mode == 0) {                            // reflect
        if (v < (A)0) {
            if (len <= 1) {
                v = (A)0;
            } else {
                const i64 sz2 = 2 * len;
                const A sz2f = (A)sz2;
                if (v < sz2f) v = O::add((A)(sz2 * (i64)O::div(-v, sz2f)), v);
                v = v < -lenf ? O::add(v, sz2f) : O::sub(-v, (A)1);
            }
        } else if (v > O::sub(lenf, (A)1)) {
            if (len <= 1) {
                v = (A)0;
            } else {
                const i64 sz2 = 2 * len;
                const A sz2f = (A)sz2;
                v = O::sub(v, (A)(sz2 * (i64)O::div(v, sz2f)));
                if (v >= lenf) v = O::sub(O::sub(sz2f, v), (A)1);
            }
        }
        return img_clamp<A>(v, len);
    }
    // wrap
    if (v < (A)0) {
        if (len <= 1) {
            v = (A)0;
        } else {
            const A szf = (A)(len - 1);
            v = O::add(v, (A)(len * ((i64)O::div(-v, szf) + 1)));
        }
    } else if (v > O::sub(lenf, (A)1)) {
        if (len <= 1) {
            v = (A)0;
        } else {
            const A szf = (A)(len - 1);
            v = O::sub(v, (A)(len * (i64)O::div(v, szf)));
        }
    }
    return img_clamp<A>(v, len);
}

// The flat pixel index (row * w + col) of integral coordinates (y, x), or -1 outside.
template <typename A> __device__ __forceinline__ i64 img_pixel(A y, A x, const Affine& p) {
    const i64 yi = (i64)y, xi = (i64)x;
    return (yi >= 0 && yi < p.h && xi >= 0 && xi < p.w) ? yi * p.w + xi : -1;
}

// Where output pixel (ox, oy) of image b samples; false when the projection is 0.
template <typename A>
__device__ __forceinline__ bool sample_point(const A* __restrict__ tr, i64 b, i64 ox, i64 oy, const Affine& p,
                                             A& sx, A& sy) {
    typedef ImgOps<A> O;
    const A* m = tr + (p.rows == 1 ? 0 : b * 8);
    const A x = (A)ox, y = (A)oy;
    const A k = O::add(O::add(O::mul(m[6], x), O::mul(m[7], y)), (A)1);
    if (k == (A)0) return false;
    const A ix = O::div(O::add(O::add(O::mul(m[0], x), O::mul(m[1], y)), m[2]), k);
    const A iy = O::div(O::add(O::add(O::mul(m[3], x), O::mul(m[4], y)), m[5]), k);
    sx = map_coord<A>(ix, p.w, p.mode);
    sy = map_coord<A>(iy, p.h, p.mode);
    return true;
}

// One thread per output element: y[b, oy, ox, c] sampled with TensorFlow's formulas.
template <typename T, typename A>
__device__ __forceinline__ void affine_fwd(const T* __restrict__ x, const A* __restrict__ tr, T* __restrict__ y,
                                           const Affine& p) {
    typedef ImgOps<A> O;
    typedef ImgIo<T> IO;
    const i64 total = p.n * p.h * p.w * p.c;
    const A fill = (A)p.fill;
    KEEL_GRID_LOOP(e, total) {
        const i64 c = e % p.c;
        i64 t = e / p.c;
        const i64 ox = t % p.w; t /= p.w;
        const i64 oy = t % p.h;
        const i64 b = t / p.h;
        const T* img = x + b * p.h * p.w * p.c;
        A sx, sy, v;
        if (!sample_point<A>(tr, b, ox, oy, p, sx, sy)) {
            v = fill;
        } else if (p.interp == 0) {
            const i64 i = img_pixel<A>(O::rnd(sy), O::rnd(sx), p);
            v = i >= 0 ? (A)IO::load(img[i * p.c + c]) : fill;
        } else {
            const A yf = O::flr(sy), xf = O::flr(sx);
            const A yc = O::add(yf, (A)1), xc = O::add(xf, (A)1);
            const i64 i00 = img_pixel<A>(yf, xf, p), i01 = img_pixel<A>(yf, xc, p);
            const i64 i10 = img_pixel<A>(yc, xf, p), i11 = img_pixel<A>(yc, xc, p);
            const A f00 = i00 >= 0 ? (A)IO::load(img[i00 * p.c + c]) : fill;
            const A f01 = i01 >= 0 ? (A)IO::load(img[i01 * p.c + c]) : fill;
            const A f10 = i10 >= 0 ? (A)IO::load(img[i10 * p.c + c]) : fill;
            const A f11 = i11 >= 0 ? (A)IO::load(img[i11 * p.c + c]) : fill;
            const A wx0 = O::sub(xc, sx), wx1 = O::sub(sx, xf);
            const A top = O::add(O::mul(wx0, f00), O::mul(wx1, f01));
            const A bottom = O::add(O::mul(wx0, f10), O::mul(wx1, f11));
            v = O::add(O::mul(O::sub(yc, sy), top), O::mul(O::sub(sy, yf), bottom));
        }
        y[e] = IO::store(v);
    }
}

// One thread per output-gradient element, adding g * wy * wx to each in-image pixel its
// sample read (atomicAdd into gx, zeroed by the caller, in the compute type A; half types
// are cast by the caller). Not bitwise deterministic: the additions' order varies.
template <typename T, typename A>
__device__ __forceinline__ void affine_bwd(const T* __restrict__ gy, const A* __restrict__ tr, A* __restrict__ gx,
                                           const Affine& p) {
    typedef ImgOps<A> O;
    typedef ImgIo<T> IO;
    const i64 total = p.n * p.h * p.w * p.c;
    KEEL_GRID_LOOP(e, total) {
        const i64 c = e % p.c;
        i64 t = e / p.c;
        const i64 ox = t % p.w; t /= p.w;
        const i64 oy = t % p.h;
        const i64 b = t / p.h;
        A sx, sy;
        if (!sample_point<A>(tr, b, ox, oy, p, sx, sy)) continue;
        A* img = gx + b * p.h * p.w * p.c;
        const A g = (A)IO::load(gy[e]);
        if (p.interp == 0) {
            const i64 i = img_pixel<A>(O::rnd(sy), O::rnd(sx), p);
            if (i >= 0) atomicAdd(img + i * p.c + c, O::mul(O::mul(g, (A)1), (A)1));
        } else {
            const A yf = O::flr(sy), xf = O::flr(sx);
            const A yc = O::add(yf, (A)1), xc = O::add(xf, (A)1);
            const A py[2] = {yf, yc}, wy[2] = {O::sub(yc, sy), O::sub(sy, yf)};
            const A px[2] = {xf, xc}, wx[2] = {O::sub(xc, sx), O::sub(sx, xf)};
            for (int a = 0; a < 2; ++a)
                for (int d = 0; d < 2; ++d) {
                    const i64 i = img_pixel<A>(py[a], px[d], p);
                    if (i >= 0) atomicAdd(img + i * p.c + c, O::mul(O::mul(g, wy[a]), wx[d]));
                }
        }
    }
}

#define KEEL_IMAGE_KERNELS(TN, T, A)                                                                      \
    extern "C" __global__ void affine_fwd_##TN(const T* __restrict__ x, const A* __restrict__ tr,         \
                                               T* __restrict__ y, Affine p) {                            \
        affine_fwd<T, A>(x, tr, y, p);                                                                    \
    }                                                                                                     \
    extern "C" __global__ void affine_bwd_##TN(const T* __restrict__ gy, const A* __restrict__ tr,        \
                                               A* __restrict__ gx, Affine p) {                           \
        affine_bwd<T, A>(gy, tr, gx, p);                                                                  \
    }

KEEL_IMAGE_KERNELS(f32, float, float)
KEEL_IMAGE_KERNELS(f16, keel_f16, float)
KEEL_IMAGE_KERNELS(bf16, keel_bf16, float)
KEEL_IMAGE_KERNELS(f64, double, double)
