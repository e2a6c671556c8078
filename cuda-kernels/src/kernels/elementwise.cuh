// keel elementwise templates. The Rust generator (`ops::elementwise`) appends one
// functor + one KEEL_*_KERNELS line per op of the caller's table.
//
// Parts (KEEL_PART, see `sources::program_part`): 1 the f32 kernels, 2 f16, 3 bf16; a
// program that computes in one dtype compiles a third of the source.
#if KEEL_PART == 0 || KEEL_PART == 1
#define KEEL_EW_F32(...) __VA_ARGS__
#else
#define KEEL_EW_F32(...)
#endif
#if KEEL_PART == 0 || KEEL_PART == 2
#define KEEL_EW_F16(...) __VA_ARGS__
#else
#define KEEL_EW_F16(...)
#endif
#if KEEL_PART == 0 || KEEL_PART == 3
#define KEEL_EW_BF16(...) __VA_ARGS__
#else
#define KEEL_EW_BF16(...)
#endif

template <typename T, typename F>
__device__ __forceinline__ void unary_contig(const T* __restrict__ x, T* __restrict__ y, i64 n,
                                             float a, F f) {
    if constexpr (sizeof(T) == 4) {
        // f32 fast path: 16-byte vector loads/stores when both pointers are aligned.
        if ((((u64)x | (u64)y) & 15u) == 0) {
            const i64 n4 = n >> 2;
            const float4* x4 = reinterpret_cast<const float4*>(x);
            float4* y4 = reinterpret_cast<float4*>(y);
            KEEL_GRID_LOOP(i, n4) {
                float4 v = x4[i];
                v.x = f(v.x, a); v.y = f(v.y, a); v.z = f(v.z, a); v.w = f(v.w, a);
                y4[i] = v;
            }
            for (i64 i = (n4 << 2) + (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n;
                 i += (i64)blockDim.x * gridDim.x)
                y[i] = f(x[i], a);
            return;
        }
    }
    KEEL_GRID_LOOP(i, n) y[i] = from_f32<T>(f(to_f32(x[i]), a));
}

template <typename T, typename F>
__device__ __forceinline__ void unary_strided(const T* x, T* y, i64 n, float a, const Layout<2>& l,
                                              F f) {
    KEEL_GRID_LOOP(i, n) {
        i64 off[2];
        layout_offsets<2>(l, i, off);
        y[off[1]] = from_f32<T>(f(to_f32(x[off[0]]), a));
    }
}

template <typename T, typename F>
__device__ __forceinline__ void binary_contig(const T* __restrict__ x, const T* __restrict__ y,
                                              T* __restrict__ z, i64 n, F f) {
    if constexpr (sizeof(T) == 4) {
        if ((((u64)x | (u64)y | (u64)z) & 15u) == 0) {
            const i64 n4 = n >> 2;
            const float4* x4 = reinterpret_cast<const float4*>(x);
            const float4* y4 = reinterpret_cast<const float4*>(y);
            float4* z4 = reinterpret_cast<float4*>(z);
            KEEL_GRID_LOOP(i, n4) {
                const float4 a = x4[i];
                const float4 b = y4[i];
                float4 r;
                r.x = f(a.x, b.x); r.y = f(a.y, b.y); r.z = f(a.z, b.z); r.w = f(a.w, b.w);
                z4[i] = r;
            }
            for (i64 i = (n4 << 2) + (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n;
                 i += (i64)blockDim.x * gridDim.x)
                z[i] = f(x[i], y[i]);
            return;
        }
    }
    KEEL_GRID_LOOP(i, n) z[i] = from_f32<T>(f(to_f32(x[i]), to_f32(y[i])));
}

// z = f(x, s) for a scalar right operand (already rounded to T and widened), so that
// `x.mul_scalar(s)` needs neither a filled one-element tensor nor the broadcast kernel.
template <typename T, typename F>
__device__ __forceinline__ void binary_scalar_contig(const T* __restrict__ x, float s, T* __restrict__ z, i64 n,
                                                     F f) {
    KEEL_GRID_LOOP(i, n) z[i] = from_f32<T>(f(to_f32(x[i]), s));
}

template <typename T, typename F>
__device__ __forceinline__ void binary_strided(const T* x, const T* y, T* z, i64 n,
                                               const Layout<3>& l, F f) {
    KEEL_GRID_LOOP(i, n) {
        i64 off[3];
        layout_offsets<3>(l, i, off);
        z[off[2]] = from_f32<T>(f(to_f32(x[off[0]]), to_f32(y[off[1]])));
    }
}

// out = grad * f'(x, y) where y = f(x) (the forward output), a = the op parameter.
template <typename T, typename F>
__device__ __forceinline__ void unary_bwd_contig(const T* __restrict__ x, const T* __restrict__ y,
                                                 const T* __restrict__ g, T* __restrict__ out,
                                                 i64 n, float a, F f) {
    KEEL_GRID_LOOP(i, n) {
        out[i] = from_f32<T>(to_f32(g[i]) * f(to_f32(x[i]), to_f32(y[i]), a));
    }
}

template <typename T, typename F>
__device__ __forceinline__ void unary_bwd_strided(const T* x, const T* y, const T* g, T* out,
                                                  i64 n, float a, const Layout<4>& l, F f) {
    KEEL_GRID_LOOP(i, n) {
        i64 off[4];
        layout_offsets<4>(l, i, off);
        out[off[3]] = from_f32<T>(to_f32(g[off[2]]) * f(to_f32(x[off[0]]), to_f32(y[off[1]]), a));
    }
}

#define KEEL_UNARY_KERNELS_T(NAME, T, TN)                                                        \
    extern "C" __global__ void unary_##NAME##_##TN(const T* __restrict__ x, T* __restrict__ y,   \
                                                   i64 n, float a) {                             \
        unary_contig<T>(x, y, n, a, keel_unary_##NAME());                                        \
    }                                                                                            \
    extern "C" __global__ void unary_##NAME##_##TN##_strided(const T* x, T* y, i64 n, float a,   \
                                                             Layout<2> l) {                      \
        unary_strided<T>(x, y, n, a, l, keel_unary_##NAME());                                    \
    }
#define KEEL_UNARY_KERNELS(NAME)                 \
    KEEL_EW_F32(KEEL_UNARY_KERNELS_T(NAME, float, f32))         \
    KEEL_EW_F16(KEEL_UNARY_KERNELS_T(NAME, keel_f16, f16))      \
    KEEL_EW_BF16(KEEL_UNARY_KERNELS_T(NAME, keel_bf16, bf16))

#define KEEL_BINARY_KERNELS_T(NAME, T, TN)                                                      \
    extern "C" __global__ void binary_##NAME##_##TN(const T* __restrict__ x,                    \
                                                    const T* __restrict__ y,                    \
                                                    T* __restrict__ z, i64 n) {                 \
        binary_contig<T>(x, y, z, n, keel_binary_##NAME());                                     \
    }                                                                                           \
    extern "C" __global__ void binary_##NAME##_##TN##_strided(const T* x, const T* y, T* z,     \
                                                              i64 n, Layout<3> l) {             \
        binary_strided<T>(x, y, z, n, l, keel_binary_##NAME());                                 \
    }                                                                                           \
    extern "C" __global__ void binary_##NAME##_##TN##_scalar(const T* __restrict__ x, float s,  \
                                                             T* __restrict__ z, i64 n) {        \
        binary_scalar_contig<T>(x, s, z, n, keel_binary_##NAME());                              \
    }
#define KEEL_BINARY_KERNELS(NAME)                \
    KEEL_EW_F32(KEEL_BINARY_KERNELS_T(NAME, float, f32))         \
    KEEL_EW_F16(KEEL_BINARY_KERNELS_T(NAME, keel_f16, f16))      \
    KEEL_EW_BF16(KEEL_BINARY_KERNELS_T(NAME, keel_bf16, bf16))

#define KEEL_UNARY_BWD_KERNELS_T(NAME, T, TN)                                                   \
    extern "C" __global__ void unary_bwd_##NAME##_##TN(const T* __restrict__ x,                 \
                                                       const T* __restrict__ y,                 \
                                                       const T* __restrict__ g,                 \
                                                       T* __restrict__ out, i64 n, float a) {   \
        unary_bwd_contig<T>(x, y, g, out, n, a, keel_unary_bwd_##NAME());                       \
    }                                                                                           \
    extern "C" __global__ void unary_bwd_##NAME##_##TN##_strided(                               \
        const T* x, const T* y, const T* g, T* out, i64 n, float a, Layout<4> l) {              \
        unary_bwd_strided<T>(x, y, g, out, n, a, l, keel_unary_bwd_##NAME());                   \
    }
#define KEEL_UNARY_BWD_KERNELS(NAME)                 \
    KEEL_EW_F32(KEEL_UNARY_BWD_KERNELS_T(NAME, float, f32))         \
    KEEL_EW_F16(KEEL_UNARY_BWD_KERNELS_T(NAME, keel_f16, f16))      \
    KEEL_EW_BF16(KEEL_UNARY_BWD_KERNELS_T(NAME, keel_bf16, bf16))

// z = u(b(x, y), a): a binary op and a unary op in one pass (a bias add and its
// activation), run by the binary templates with this composed op. f16/bf16 round the
// binary result to T before the unary op reads it, so the bits are those of the two ops
// run one after the other (for f32 the rounding is the identity).
template <typename T, typename B, typename U>
struct keel_binary_then_unary {
    B b;
    U u;
    float a;
    __device__ __forceinline__ float operator()(float x, float y) const {
        return u(to_f32(from_f32<T>(b(x, y))), a);
    }
};

#define KEEL_BINARY_UNARY_KERNELS_T(BNAME, UNAME, T, TN)                                          \
    extern "C" __global__ void binary_unary_##BNAME##_##UNAME##_##TN(                             \
        const T* __restrict__ x, const T* __restrict__ y, T* __restrict__ z, i64 n, float a) {    \
        binary_contig<T>(x, y, z, n,                                                              \
                         keel_binary_then_unary<T, keel_binary_##BNAME, keel_unary_##UNAME>{     \
                             keel_binary_##BNAME(), keel_unary_##UNAME(), a});                    \
    }                                                                                             \
    extern "C" __global__ void binary_unary_##BNAME##_##UNAME##_##TN##_strided(                   \
        const T* x, const T* y, T* z, i64 n, float a, Layout<3> l) {                              \
        binary_strided<T>(x, y, z, n, l,                                                          \
                          keel_binary_then_unary<T, keel_binary_##BNAME, keel_unary_##UNAME>{    \
                              keel_binary_##BNAME(), keel_unary_##UNAME(), a});                   \
    }
#define KEEL_BINARY_UNARY_KERNELS(BNAME, UNAME)                         \
    KEEL_EW_F32(KEEL_BINARY_UNARY_KERNELS_T(BNAME, UNAME, float, f32))      \
    KEEL_EW_F16(KEEL_BINARY_UNARY_KERNELS_T(BNAME, UNAME, keel_f16, f16))   \
    KEEL_EW_BF16(KEEL_BINARY_UNARY_KERNELS_T(BNAME, UNAME, keel_bf16, bf16))
