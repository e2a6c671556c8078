// keel misc kernels: fill, arange, cast (one tensor or many), where/select, strided copy.
// Kernels named *_bN work on raw N-byte elements, so they serve every dtype of that size.

#define KEEL_FOR_BYTES(M) M(b1, u8) M(b2, u16) M(b4, u32) M(b8, u64)

// ---- fill: out[i] = value (value passed as raw bits) ----
#define KEEL_FILL(BN, T)                                                               \
    extern "C" __global__ void fill_##BN(T* __restrict__ out, i64 n, T value) {        \
        KEEL_GRID_LOOP(i, n) out[i] = value;                                           \
    }
KEEL_FOR_BYTES(KEEL_FILL)

// ---- arange: out[i] = start + i * step (f64 multiply and add, each rounded: no FMA) ----
extern "C" __global__ void arange_f32(float* __restrict__ out, i64 n, double start, double step) {
    KEEL_GRID_LOOP(i, n) out[i] = (float)__dadd_rn(start, __dmul_rn((double)i, step));
}
extern "C" __global__ void arange_i64(i64* __restrict__ out, i64 n, i64 start, i64 step) {
    KEEL_GRID_LOOP(i, n) out[i] = start + i * step;
}

// ---- cast between f32, f16, bf16, i64, u8 ----
// float -> integer truncates toward zero; NaN -> 0; out-of-range saturates.
// i64 -> u8 keeps the low 8 bits (wraps), as PyTorch does.
__device__ __forceinline__ i64 f32_to_i64_sat(float v) {
    if (v != v) return 0;
    if (v >= 9.2233720368547758e18f) return (i64)0x7fffffffffffffffLL;
    if (v <= -9.2233720368547758e18f) return (i64)(-0x7fffffffffffffffLL - 1);
    return (i64)v;
}
__device__ __forceinline__ u8 f32_to_u8_sat(float v) {
    if (!(v > 0.0f)) return 0;  // also NaN
    if (v >= 255.0f) return 255;
    return (u8)v;
}
template <typename D> __device__ __forceinline__ D cast_from_f32(float v) { return from_f32<D>(v); }
template <> __device__ __forceinline__ i64 cast_from_f32<i64>(float v) { return f32_to_i64_sat(v); }
template <> __device__ __forceinline__ u8 cast_from_f32<u8>(float v) { return f32_to_u8_sat(v); }

template <typename S, typename D> struct Caster {
    __device__ __forceinline__ D operator()(S v) const { return cast_from_f32<D>(to_f32(v)); }
};
template <> struct Caster<i64, u8> {
    __device__ __forceinline__ u8 operator()(i64 v) const { return (u8)(v & 0xff); }
};
template <> struct Caster<u8, i64> {
    __device__ __forceinline__ i64 operator()(u8 v) const { return (i64)v; }
};
// i64 -> f32 by round-to-odd (exact below 2^24; otherwise toward zero with the last bit
// set), so that the one rounding to f16/bf16 after it is the correctly rounded conversion
// (i64 -> f32 -> half to nearest twice can round a tie the wrong way), as on the CPU.
__device__ __forceinline__ float i64_to_f32_odd(i64 v) {
    const u64 m = v < 0 ? (u64)0 - (u64)v : (u64)v;
    int shift = 0;
    while ((m >> shift) >= ((u64)1 << 24)) ++shift;
    const u64 kept = m >> shift;
    const float f = (float)((((kept << shift) != m) ? (kept | 1) : kept) << shift);  // <= 24 bits: exact
    return v < 0 ? -f : f;
}
template <> struct Caster<i64, keel_f16> {
    __device__ __forceinline__ keel_f16 operator()(i64 v) const { return from_f32<keel_f16>(i64_to_f32_odd(v)); }
};
template <> struct Caster<i64, keel_bf16> {
    __device__ __forceinline__ keel_bf16 operator()(i64 v) const { return from_f32<keel_bf16>(i64_to_f32_odd(v)); }
};
template <typename T> struct Caster<T, T> {
    __device__ __forceinline__ T operator()(T v) const { return v; }
};

#define KEEL_CAST(SN, S, DN, D)                                                               \
    extern "C" __global__ void cast_##SN##_##DN(const S* __restrict__ in, D* __restrict__ out, \
                                                i64 n) {                                      \
        Caster<S, D> c;                                                                       \
        KEEL_GRID_LOOP(i, n) out[i] = c(in[i]);                                               \
    }
#define KEEL_CAST_FROM(SN, S)                 \
    KEEL_CAST(SN, S, f32, float)              \
    KEEL_CAST(SN, S, f16, keel_f16)           \
    KEEL_CAST(SN, S, bf16, keel_bf16)         \
    KEEL_CAST(SN, S, i64, i64)                \
    KEEL_CAST(SN, S, u8, u8)
KEEL_CAST_FROM(f32, float)
KEEL_CAST_FROM(f16, keel_f16)
KEEL_CAST_FROM(bf16, keel_bf16)
KEEL_CAST_FROM(i64, i64)
KEEL_CAST_FROM(u8, u8)

// ---- multi-tensor cast between the float types (multi.cuh): one launch casts up to
// KEEL_CAST_MULTI_MAX tensors, e.g. every weight of a mixed-precision model to its compute
// dtype, or their gradients back; the same Caster as cast_* (the same bits) ----
#define KEEL_CAST_MULTI_MAX 64
// Mirrors `keel_cuda_kernels::ops::misc::CastList` (#[repr(C)], no padding).
struct CastList {
    u64 in[KEEL_CAST_MULTI_MAX];
    u64 out[KEEL_CAST_MULTI_MAX];
    i64 n[KEEL_CAST_MULTI_MAX];
    i64 tile_start[KEEL_CAST_MULTI_MAX + 1];
    i64 count;
};
#define KEEL_CAST_MULTI(SN, S, DN, D)                                                    \
    extern "C" __global__ void cast_multi_##SN##_##DN(const CastList L) {                \
        Caster<S, D> c;                                                                   \
        KEEL_MULTI_LOOP(L, k, i) ((D*)L.out[k])[i] = c(((const S*)L.in[k])[i]);           \
    }
KEEL_CAST_MULTI(f32, float, f16, keel_f16)
KEEL_CAST_MULTI(f32, float, bf16, keel_bf16)
KEEL_CAST_MULTI(f16, keel_f16, f32, float)
KEEL_CAST_MULTI(bf16, keel_bf16, f32, float)

// ---- where / select: out = cond ? a : b (cond is u8, nonzero = true) ----
#define KEEL_WHERE(BN, T)                                                                     \
    extern "C" __global__ void where_##BN(const u8* __restrict__ cond, const T* __restrict__ a, \
                                          const T* __restrict__ b, T* __restrict__ out, i64 n) { \
        KEEL_GRID_LOOP(i, n) out[i] = cond[i] ? a[i] : b[i];                                  \
    }                                                                                         \
    extern "C" __global__ void where_##BN##_strided(const u8* cond, const T* a, const T* b,   \
                                                    T* out, i64 n, Layout<4> l) {             \
        KEEL_GRID_LOOP(i, n) {                                                                \
            i64 off[4];                                                                       \
            layout_offsets<4>(l, i, off);                                                     \
            out[off[3]] = cond[off[0]] ? a[off[1]] : b[off[2]];                               \
        }                                                                                     \
    }
KEEL_FOR_BYTES(KEEL_WHERE)

// ---- strided copy: dst[layout.strides[1] . idx] = src[layout.strides[0] . idx] ----
// Makes views contiguous, writes into a strided slice of a bigger tensor (concat, slice
// assignment), materializes broadcasts (stride 0).
#define KEEL_COPY(BN, T)                                                                      \
    extern "C" __global__ void copy_strided_##BN(const T* src, T* dst, i64 n, Layout<2> l) {  \
        KEEL_GRID_LOOP(i, n) {                                                                \
            i64 off[2];                                                                       \
            layout_offsets<2>(l, i, off);                                                     \
            dst[off[1]] = src[off[0]];                                                        \
        }                                                                                     \
    }
KEEL_FOR_BYTES(KEEL_COPY)
