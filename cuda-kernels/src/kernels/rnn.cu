// keel recurrent-cell kernels: one LSTM or GRU step's gate math in one launch, and its
// backward in one more, where the composed ops take about 11 and 25 (the gates' sigmoids and
// tanh, the state's products and sums, and each one's gradient).
//
// Layout: the gate pre-activations z are [batch, 4 * units], contiguous, in Keras's gate
// order i, f, c (the candidate, "g" here), o; the states are [batch, units]. F32, F16 and
// BF16 are computed in f32 (F16/BF16 read as stored, each output rounded once on the
// store); F64 (its bits in an i64 buffer) in double. The sigmoid and tanh are the
// elementwise kernels' expressions, and the state's products and sum are rounded one by
// one (no FMA contraction), so an F32 step gives the composed ops' values.

__device__ __forceinline__ float keel_sigmoid(float x) {
    return x >= 0.f ? 1.f / (1.f + expf(-x)) : expf(x) / (1.f + expf(x));
}
__device__ __forceinline__ double keel_sigmoid(double x) {
    return x >= 0.0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}
__device__ __forceinline__ float keel_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double keel_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float keel_mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double keel_mul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float keel_add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double keel_add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float keel_sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double keel_sub(double a, double b) { return __dsub_rn(a, b); }

// Loads in the compute type C, stores rounded to the storage type.
__device__ __forceinline__ float keel_ld(float x) { return x; }
__device__ __forceinline__ float keel_ld(keel_f16 x) { return to_f32(x); }
__device__ __forceinline__ float keel_ld(keel_bf16 x) { return to_f32(x); }
__device__ __forceinline__ double keel_ld(double x) { return x; }
__device__ __forceinline__ void keel_st(float* p, float v) { *p = v; }
__device__ __forceinline__ void keel_st(keel_f16* p, float v) { *p = from_f32<keel_f16>(v); }
__device__ __forceinline__ void keel_st(keel_bf16* p, float v) { *p = from_f32<keel_bf16>(v); }
__device__ __forceinline__ void keel_st(double* p, double v) { *p = v; }

// The gates of row r, column j: i, f, g (the candidate), o.
template <typename T, typename C>
__device__ __forceinline__ void lstm_gates(const T* __restrict__ z, i64 r, i64 j, i64 units, C& i, C& f, C& g, C& o) {
    const T* zr = z + r * 4 * units;
    i = keel_sigmoid(keel_ld(zr[j]));
    f = keel_sigmoid(keel_ld(zr[units + j]));
    g = keel_tanh(keel_ld(zr[2 * units + j]));
    o = keel_sigmoid(keel_ld(zr[3 * units + j]));
}

// c = f * c_prev + i * g, h = o * tanh(c); the gates' activations (i, f, g, o, in z's
// layout) go to `gates` for the backward (PyTorch's fused cell keeps the same workspace).
template <typename T, typename C>
__device__ __forceinline__ void lstm_cell_fwd_t(const T* __restrict__ z, const T* __restrict__ c_prev,
                                                T* __restrict__ h, T* __restrict__ c, T* __restrict__ gates,
                                                i64 batch, i64 units) {
    const i64 total = batch * units;
    KEEL_GRID_LOOP(e, total) {
        const i64 r = e / units;
        const i64 j = e - r * units;
        C i, f, g, o;
        lstm_gates<T, C>(z, r, j, units, i, f, g, o);
        const C cn = keel_add(keel_mul(f, keel_ld(c_prev[e])), keel_mul(i, g));
        keel_st(&c[e], cn);
        keel_st(&h[e], keel_mul(o, keel_tanh(cn)));
        T* gr = gates + r * 4 * units;
        keel_st(&gr[j], i);
        keel_st(&gr[units + j], f);
        keel_st(&gr[2 * units + j], g);
        keel_st(&gr[3 * units + j], o);
    }
}

// From dh and dc (the gradients reaching h and c; a null pointer for none), the forward's
// gate activations, c_prev and c: dz (the four gates' pre-activations) and dc_prev.
template <typename T, typename C>
__device__ __forceinline__ void lstm_cell_bwd_t(const T* __restrict__ gates, const T* __restrict__ c_prev,
                                                const T* __restrict__ c, const T* __restrict__ dh,
                                                const T* __restrict__ dc, T* __restrict__ dz,
                                                T* __restrict__ dc_prev, i64 batch, i64 units) {
    const i64 total = batch * units;
    KEEL_GRID_LOOP(e, total) {
        const i64 r = e / units;
        const i64 j = e - r * units;
        const T* gr = gates + r * 4 * units;
        const C i = keel_ld(gr[j]), f = keel_ld(gr[units + j]), g = keel_ld(gr[2 * units + j]),
                o = keel_ld(gr[3 * units + j]);
        const C cp = keel_ld(c_prev[e]);
        const C tc = keel_tanh(keel_ld(c[e]));
        const C dhv = dh != nullptr ? keel_ld(dh[e]) : (C)0;
        const C dcv = dc != nullptr ? keel_ld(dc[e]) : (C)0;
        const C one = (C)1;
        const C dct = dcv + dhv * o * (one - tc * tc);
        T* dzr = dz + r * 4 * units;
        keel_st(&dzr[j], dct * g * i * (one - i));
        keel_st(&dzr[units + j], dct * cp * f * (one - f));
        keel_st(&dzr[2 * units + j], dct * i * (one - g * g));
        keel_st(&dzr[3 * units + j], dhv * tc * o * (one - o));
        keel_st(&dc_prev[e], dct * f);
    }
}

#define KEEL_LSTM(TN, T, C)                                                                                  \
    extern "C" __global__ void lstm_cell_fwd_##TN(const T* __restrict__ z, const T* __restrict__ c_prev,      \
                                                  T* __restrict__ h, T* __restrict__ c, T* __restrict__ gates, \
                                                  i64 batch, i64 units) {                                     \
        lstm_cell_fwd_t<T, C>(z, c_prev, h, c, gates, batch, units);                                          \
    }                                                                                                        \
    extern "C" __global__ void lstm_cell_bwd_##TN(const T* __restrict__ gates, const T* __restrict__ c_prev,  \
                                                  const T* __restrict__ c, const T* dh, const T* dc,          \
                                                  T* __restrict__ dz, T* __restrict__ dc_prev, i64 batch,     \
                                                  i64 units) {                                                \
        lstm_cell_bwd_t<T, C>(gates, c_prev, c, dh, dc, dz, dc_prev, batch, units);                          \
    }
KEEL_LSTM(f32, float, float)
KEEL_LSTM(f16, keel_f16, float)
KEEL_LSTM(bf16, keel_bf16, float)
KEEL_LSTM(f64, double, double)

// GRU (Keras's reset_after=True form, gate order z, r, h). x: the input projection
// x_t W + b, rows ldx apart (a timestep of a [batch, time, 3 * units] projection is read in
// place); p: the recurrent projection h_prev U + b', rows ldp apart; h_prev: [batch, units].
// z = σ(x_z + p_z), r = σ(x_r + p_r), n = tanh(x_h + r p_h), h = n + z (h_prev - n), in the
// composed ops' order and rounding; the activations z, r, n go to `gates` ([batch, 3 * units]).
template <typename T, typename C>
__device__ __forceinline__ void gru_cell_fwd_t(const T* __restrict__ x, i64 ldx, const T* __restrict__ p, i64 ldp,
                                               const T* __restrict__ h_prev, T* __restrict__ h,
                                               T* __restrict__ gates, i64 batch, i64 units) {
    const i64 total = batch * units;
    KEEL_GRID_LOOP(e, total) {
        const i64 r = e / units;
        const i64 j = e - r * units;
        const T* xr = x + r * ldx;
        const T* pr = p + r * ldp;
        const C z = keel_sigmoid(keel_add(keel_ld(xr[j]), keel_ld(pr[j])));
        const C rg = keel_sigmoid(keel_add(keel_ld(xr[units + j]), keel_ld(pr[units + j])));
        const C n = keel_tanh(keel_add(keel_ld(xr[2 * units + j]), keel_mul(rg, keel_ld(pr[2 * units + j]))));
        keel_st(&h[e], keel_add(n, keel_mul(z, keel_sub(keel_ld(h_prev[e]), n))));
        T* gr = gates + r * 3 * units;
        keel_st(&gr[j], z);
        keel_st(&gr[units + j], rg);
        keel_st(&gr[2 * units + j], n);
    }
}

// From dh (the gradient reaching h), the forward's gates, p and h_prev: dx (the input
// projection's gradient), dp (the recurrent projection's) and dh_prev. dx and dp agree but
// for the candidate block, where dp carries the reset gate's factor.
template <typename T, typename C>
__device__ __forceinline__ void gru_cell_bwd_t(const T* __restrict__ gates, const T* __restrict__ p, i64 ldp,
                                               const T* __restrict__ h_prev, const T* __restrict__ dh,
                                               T* __restrict__ dx, T* __restrict__ dp, T* __restrict__ dh_prev,
                                               i64 batch, i64 units) {
    const i64 total = batch * units;
    KEEL_GRID_LOOP(e, total) {
        const i64 r = e / units;
        const i64 j = e - r * units;
        const T* gr = gates + r * 3 * units;
        const C z = keel_ld(gr[j]), rg = keel_ld(gr[units + j]), n = keel_ld(gr[2 * units + j]);
        const C ph = keel_ld(p[r * ldp + 2 * units + j]);
        const C d = keel_ld(dh[e]);
        const C one = (C)1;
        const C dn = d * (one - z) * (one - n * n);
        const C dz = d * (keel_ld(h_prev[e]) - n) * z * (one - z);
        const C dr = dn * ph * rg * (one - rg);
        T* dxr = dx + r * 3 * units;
        T* dpr = dp + r * 3 * units;
        keel_st(&dxr[j], dz);
        keel_st(&dxr[units + j], dr);
        keel_st(&dxr[2 * units + j], dn);
        keel_st(&dpr[j], dz);
        keel_st(&dpr[units + j], dr);
        keel_st(&dpr[2 * units + j], dn * rg);
        keel_st(&dh_prev[e], d * z);
    }
}

#define KEEL_GRU(TN, T, C)                                                                                    \
    extern "C" __global__ void gru_cell_fwd_##TN(const T* __restrict__ x, i64 ldx, const T* __restrict__ p,    \
                                                 i64 ldp, const T* __restrict__ h_prev, T* __restrict__ h,     \
                                                 T* __restrict__ gates, i64 batch, i64 units) {                \
        gru_cell_fwd_t<T, C>(x, ldx, p, ldp, h_prev, h, gates, batch, units);                                 \
    }                                                                                                         \
    extern "C" __global__ void gru_cell_bwd_##TN(const T* __restrict__ gates, const T* __restrict__ p, i64 ldp, \
                                                 const T* __restrict__ h_prev, const T* __restrict__ dh,       \
                                                 T* __restrict__ dx, T* __restrict__ dp,                       \
                                                 T* __restrict__ dh_prev, i64 batch, i64 units) {              \
        gru_cell_bwd_t<T, C>(gates, p, ldp, h_prev, dh, dx, dp, dh_prev, batch, units);                       \
    }
KEEL_GRU(f32, float, float)
KEEL_GRU(f16, keel_f16, float)
KEEL_GRU(bf16, keel_bf16, float)
KEEL_GRU(f64, double, double)
