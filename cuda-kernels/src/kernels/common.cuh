// keel common CUDA helpers: prepended to every kernel source (no system headers needed).
typedef long long i64;
typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

#define KEEL_MAX_RANK 8

// Which part of a large source to compile (`sources::program_part`): the Rust side puts
// `#define KEEL_PART n` in front to get only part n's kernels, a fraction of the NVRTC
// time; 0 (the default) compiles every kernel of the source.
#ifndef KEEL_PART
#define KEEL_PART 0
#endif

// Shape plus K stride vectors (one per operand), all for the same logical index space.
// Mirrors `keel_cuda_kernels::layout::BroadcastLayout<K>` (#[repr(C)]).
template <int K>
struct Layout {
    int rank;
    int _pad;
    i64 shape[KEEL_MAX_RANK];
    i64 strides[K][KEEL_MAX_RANK];
};

// Element offsets of linear (row-major) index `linear` for each of the K operands.
template <int K>
__device__ __forceinline__ void layout_offsets(const Layout<K>& l, i64 linear, i64 (&off)[K]) {
#pragma unroll
    for (int k = 0; k < K; ++k) off[k] = 0;
    for (int d = l.rank - 1; d >= 0; --d) {
        const i64 extent = l.shape[d];
        const i64 idx = linear % extent;
        linear /= extent;
#pragma unroll
        for (int k = 0; k < K; ++k) off[k] += idx * l.strides[k][d];
    }
}

// ---- half / bfloat16 as raw 16-bit storage, converted through f32 ----
#ifdef KEEL_CUDA_EMU  // tools/cuda-emu: the same conversions on the host
__device__ __forceinline__ float f16_to_f32(u16 h) { return keel_emu_f16_to_f32(h); }
__device__ __forceinline__ u16 f32_to_f16(float f) { return keel_emu_f32_to_f16(f); }
#else
__device__ __forceinline__ float f16_to_f32(u16 h) {
    float f;
    asm("{ .reg .b16 t; mov.b16 t, %1; cvt.f32.f16 %0, t; }" : "=f"(f) : "h"(h));
    return f;
}
__device__ __forceinline__ u16 f32_to_f16(float f) {
    u16 h;
    asm("{ .reg .b16 t; cvt.rn.f16.f32 t, %1; mov.b16 %0, t; }" : "=h"(h) : "f"(f));
    return h;
}
#endif
__device__ __forceinline__ float bf16_to_f32(u16 h) { return __uint_as_float(((u32)h) << 16); }
__device__ __forceinline__ u16 f32_to_bf16(float f) {
    u32 u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u16)((u >> 16) | 0x40u);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);                                       // round to nearest even
    return (u16)(u >> 16);
}

// Storage types: f32 = float, f16 = struct keel_f16, bf16 = struct keel_bf16 (both 16-bit).
struct keel_f16 { u16 bits; };
struct keel_bf16 { u16 bits; };

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(keel_f16 x) { return f16_to_f32(x.bits); }
__device__ __forceinline__ float to_f32(keel_bf16 x) { return bf16_to_f32(x.bits); }
__device__ __forceinline__ float to_f32(i64 x) { return (float)x; }
__device__ __forceinline__ float to_f32(u8 x) { return (float)x; }

template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ keel_f16 from_f32<keel_f16>(float x) { keel_f16 r; r.bits = f32_to_f16(x); return r; }
template <> __device__ __forceinline__ keel_bf16 from_f32<keel_bf16>(float x) { keel_bf16 r; r.bits = f32_to_bf16(x); return r; }

// Grid-stride loop over [0, n).
#define KEEL_GRID_LOOP(i, n) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)blockDim.x * gridDim.x)

__device__ __forceinline__ float keel_nan() { return __int_as_float(0x7fc00000); }
__device__ __forceinline__ float keel_inf() { return __int_as_float(0x7f800000); }

// Warp-level reductions.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
