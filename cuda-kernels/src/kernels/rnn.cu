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

// The pre-activation of row r, column k: x's (rows ldx apart) plus p's ([batch, 4 * units];
// a null pointer: none), added as the composed `x + p` does.
template <typename T, typename C>
__device__ __forceinline__ C lstm_z(const T* __restrict__ x, i64 ldx, const T* __restrict__ p, i64 r, i64 k, i64 units) {
    const C v = keel_ld(x[r * ldx + k]);
    return p != nullptr ? keel_add(v, keel_ld(p[r * 4 * units + k])) : v;
}

// The gradient reaching h at (r, j): the sum of up to three terms (a null pointer: none),
// each [batch, units] with rows ld apart (e.g. the next step's recurrent matmul's gradient
// and a timestep of the output sequence's).
template <typename T, typename C>
__device__ __forceinline__ C dh_sum(const T* d0, i64 l0, const T* d1, i64 l1, const T* d2, i64 l2, i64 r, i64 j) {
    C s = (C)0;
    if (d0 != nullptr) s += keel_ld(d0[r * l0 + j]);
    if (d1 != nullptr) s += keel_ld(d1[r * l1 + j]);
    if (d2 != nullptr) s += keel_ld(d2[r * l2 + j]);
    return s;
}

// z = x + p (the input projection, rows ldx apart, and the recurrent one h_prev U; p may be
// null: z = x); c = f * c_prev + i * g, h = o * tanh(c); the gates' activations (i, f, g, o,
// in z's layout) go to `gates` for the backward (PyTorch's fused cell keeps the same
// workspace).
template <typename T, typename C>
__device__ __forceinline__ void lstm_cell_fwd_t(const T* __restrict__ x, i64 ldx, const T* __restrict__ p,
                                                const T* __restrict__ c_prev, T* __restrict__ h, T* __restrict__ c,
                                                T* __restrict__ gates, i64 batch, i64 units) {
    const i64 total = batch * units;
    KEEL_GRID_LOOP(e, total) {
        const i64 r = e / units;
        const i64 j = e - r * units;
        const C i = keel_sigmoid(lstm_z<T, C>(x, ldx, p, r, j, units));
        const C f = keel_sigmoid(lstm_z<T, C>(x, ldx, p, r, units + j, units));
        const C g = keel_tanh(lstm_z<T, C>(x, ldx, p, r, 2 * units + j, units));
        const C o = keel_sigmoid(lstm_z<T, C>(x, ldx, p, r, 3 * units + j, units));
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

// From dh (the gradient reaching h, as dh_sum's terms) and dc (reaching c; null: none), the
// forward's gate activations, c_prev and c: dz (the four gates' pre-activations) and dc_prev.
template <typename T, typename C>
__device__ __forceinline__ void lstm_cell_bwd_t(const T* __restrict__ gates, const T* __restrict__ c_prev,
                                                const T* __restrict__ c, const T* dh0, i64 ld0, const T* dh1,
                                                i64 ld1, const T* dh2, i64 ld2, const T* __restrict__ dc,
                                                T* __restrict__ dz, T* __restrict__ dc_prev, i64 batch,
                                                i64 units) {
    const i64 total = batch * units;
    KEEL_GRID_LOOP(e, total) {
        const i64 r = e / units;
        const i64 j = e - r * units;
        const T* gr = gates + r * 4 * units;
        const C i = keel_ld(gr[j]), f = keel_ld(gr[units + j]), g = keel_ld(gr[2 * units + j]),
                o = keel_ld(gr[3 * units + j]);
        const C cp = keel_ld(c_prev[e]);
        const C tc = keel_tanh(keel_ld(c[e]));
        const C dhv = dh_sum<T, C>(dh0, ld0, dh1, ld1, dh2, ld2, r, j);
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
    extern "C" __global__ void lstm_cell_fwd_##TN(const T* __restrict__ x, i64 ldx, const T* __restrict__ p,  \
                                                  const T* __restrict__ c_prev, T* __restrict__ h,            \
                                                  T* __restrict__ c, T* __restrict__ gates, i64 batch,        \
                                                  i64 units) {                                                \
        lstm_cell_fwd_t<T, C>(x, ldx, p, c_prev, h, c, gates, batch, units);                                  \
    }                                                                                                        \
    extern "C" __global__ void lstm_cell_bwd_##TN(const T* __restrict__ gates, const T* __restrict__ c_prev,  \
                                                  const T* __restrict__ c, const T* dh0, i64 ld0,             \
                                                  const T* dh1, i64 ld1, const T* dh2, i64 ld2, const T* dc,  \
                                                  T* __restrict__ dz, T* __restrict__ dc_prev, i64 batch,     \
                                                  i64 units) {                                                \
        lstm_cell_bwd_t<T, C>(gates, c_prev, c, dh0, ld0, dh1, ld1, dh2, ld2, dc, dz, dc_prev, batch, units); \
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

// From dh (the gradient reaching h, as dh_sum's terms), the forward's gates, p and h_prev:
// dx (the input projection's gradient), dp (the recurrent projection's) and dh_prev. dx and dp agree but
// for the candidate block, where dp carries the reset gate's factor.
template <typename T, typename C>
__device__ __forceinline__ void gru_cell_bwd_t(const T* __restrict__ gates, const T* __restrict__ p, i64 ldp,
                                               const T* __restrict__ h_prev, const T* dh0, i64 ld0, const T* dh1,
                                               i64 ld1, const T* dh2, i64 ld2, T* __restrict__ dx,
                                               T* __restrict__ dp, T* __restrict__ dh_prev, i64 batch, i64 units) {
    const i64 total = batch * units;
    KEEL_GRID_LOOP(e, total) {
        const i64 r = e / units;
        const i64 j = e - r * units;
        const T* gr = gates + r * 3 * units;
        const C z = keel_ld(gr[j]), rg = keel_ld(gr[units + j]), n = keel_ld(gr[2 * units + j]);
        const C ph = keel_ld(p[r * ldp + 2 * units + j]);
        const C d = dh_sum<T, C>(dh0, ld0, dh1, ld1, dh2, ld2, r, j);
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
                                                 const T* __restrict__ h_prev, const T* dh0, i64 ld0,          \
                                                 const T* dh1, i64 ld1, const T* dh2, i64 ld2,                 \
                                                 T* __restrict__ dx, T* __restrict__ dp,                       \
                                                 T* __restrict__ dh_prev, i64 batch, i64 units) {              \
        gru_cell_bwd_t<T, C>(gates, p, ldp, h_prev, dh0, ld0, dh1, ld1, dh2, ld2, dx, dp, dh_prev, batch, units); \
    }
KEEL_GRU(f32, float, float)
KEEL_GRU(f16, keel_f16, float)
KEEL_GRU(bf16, keel_bf16, float)
KEEL_GRU(f64, double, double)
