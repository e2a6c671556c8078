// keel reductions along one axis. The tensor is viewed as [outer, reduce, inner]
// (contiguous); out is [outer, inner]. Inputs are f32, f16 or bf16 storage, accumulated in
// f32, or f64 and i64 storage, accumulated in double (the CPU's f64); sum/max/min write the
// input's storage type (one rounding; i64 truncated and saturated), argmax/argmin i64.
//  *_rows: inner == 1, one 256-thread block per row, warp shuffles + shared memory.
//  *_cols: inner > 1, 32x8 blocks: x walks inner (coalesced), y splits the reduce axis.

// Each op accumulates in A: float for f32/f16/bf16 storage, double for f64/i64 (as the CPU
// does). P, the kernels' last parameter: for float a multiplier (`scale`, 1/n for a mean),
// for double a divisor (`div`, n for a mean: the CPU computes sum / n).
template <typename A>
struct SumOp {
    typedef A Acc;
    typedef A Val;
    typedef A Out;
    __device__ static Acc init() { return (A)0; }
    __device__ static Acc from(A v, i64) { return v; }
    __device__ static Acc combine(Acc a, Acc b) { return a + b; }
    __device__ static Acc shfl(Acc a, int o) { return __shfl_xor_sync(0xffffffffu, a, o); }
    __device__ static Out finish(Acc a, A p) {
        if constexpr (sizeof(A) == 4) return a * p;
        else return a / p;
    }
};
// max/min propagate NaN (as NumPy/PyTorch do).
template <typename A>
struct MaxOp {
    typedef A Acc;
    typedef A Val;
    typedef A Out;
    __device__ static Acc init() { return -(A)keel_inf(); }
    __device__ static Acc from(A v, i64) { return v; }
    __device__ static Acc combine(Acc a, Acc b) { return (a != a || a > b) ? a : b; }
    __device__ static Acc shfl(Acc a, int o) { return __shfl_xor_sync(0xffffffffu, a, o); }
    __device__ static Out finish(Acc a, A) { return a; }
};
template <typename A>
struct MinOp {
    typedef A Acc;
    typedef A Val;
    typedef A Out;
    __device__ static Acc init() { return (A)keel_inf(); }
    __device__ static Acc from(A v, i64) { return v; }
    __device__ static Acc combine(Acc a, Acc b) { return (a != a || a < b) ? a : b; }
    __device__ static Acc shfl(Acc a, int o) { return __shfl_xor_sync(0xffffffffu, a, o); }
    __device__ static Out finish(Acc a, A) { return a; }
};

template <typename A> struct ValIdx { A v; i64 i; };
// argmax/argmin: NaN counts as the extreme; ties go to the smallest index.
template <bool MAX, typename A>
struct ArgOp {
    typedef ValIdx<A> Acc;
    typedef A Val;
    typedef i64 Out;
    __device__ static Acc init() { Acc a; a.v = MAX ? -(A)keel_inf() : (A)keel_inf(); a.i = 0x7fffffffffffffffLL; return a; }
    __device__ static Acc from(A v, i64 i) { Acc a; a.v = v; a.i = i; return a; }
    __device__ static Acc combine(Acc a, Acc b) {
        const bool an = a.v != a.v, bn = b.v != b.v;
        bool take_b;
        if (an || bn) take_b = (bn && !an) || (an && bn && b.i < a.i);
        else if (a.v == b.v) take_b = b.i < a.i;
        else take_b = MAX ? (b.v > a.v) : (b.v < a.v);
        return take_b ? b : a;
    }
    __device__ static Acc shfl(Acc a, int o) {
        Acc r;
        r.v = __shfl_xor_sync(0xffffffffu, a.v, o);
        r.i = __shfl_xor_sync(0xffffffffu, a.i, o);
        return r;
    }
    __device__ static Out finish(Acc a, A) { return a.i; }
};

template <typename A> using ArgMaxOp = ArgOp<true, A>;
template <typename A> using ArgMinOp = ArgOp<false, A>;

// An element widened to the accumulator type.
template <typename A> struct Load;
template <> struct Load<float> {
    template <typename T> __device__ static float of(T v) { return to_f32(v); }
};
template <> struct Load<double> {
    __device__ static double of(double v) { return v; }
    __device__ static double of(i64 v) { return (double)v; }
};

template <class Op>
__device__ __forceinline__ typename Op::Acc warp_reduce(typename Op::Acc a) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) a = Op::combine(a, Op::shfl(a, o));
    return a;
}

// Stores a finished value: narrowed to the storage type, or an index.
__device__ __forceinline__ void put(float* o, float v) { *o = v; }
__device__ __forceinline__ void put(keel_f16* o, float v) { *o = from_f32<keel_f16>(v); }
__device__ __forceinline__ void put(keel_bf16* o, float v) { *o = from_f32<keel_bf16>(v); }
__device__ __forceinline__ void put(i64* o, i64 v) { *o = v; }
__device__ __forceinline__ void put(double* o, double v) { *o = v; }
// i64 storage: the double result stored as Rust's `as` converts (the CPU's from_f64)
__device__ __forceinline__ void put(i64* o, double v) {
    if (v != v) *o = 0;
    else if (v >= 9223372036854775808.0) *o = (i64)0x7fffffffffffffffLL;
    else if (v <= -9223372036854775808.0) *o = (i64)(-0x7fffffffffffffffLL - 1);
    else *o = (i64)v;
}

template <class Op, typename T, typename O>
__device__ void reduce_rows(const T* __restrict__ in, O* __restrict__ out, i64 outer, i64 r,
                            typename Op::Val scale) {
    __shared__ typename Op::Acc partial[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    for (i64 row = blockIdx.x; row < outer; row += gridDim.x) {
        const T* p = in + row * r;
        typename Op::Acc acc = Op::init();
        for (i64 k = threadIdx.x; k < r; k += blockDim.x) acc = Op::combine(acc, Op::from(Load<typename Op::Val>::of(p[k]), k));
        acc = warp_reduce<Op>(acc);
        if (lane == 0) partial[warp] = acc;
        __syncthreads();
        if (warp == 0) {
            acc = lane < nwarps ? partial[lane] : Op::init();
            acc = warp_reduce<Op>(acc);
            if (lane == 0) put(out + row, Op::finish(acc, scale));
        }
        __syncthreads();
    }
}

// blockDim = (32, 8)
template <class Op, typename T, typename O>
__device__ void reduce_cols(const T* __restrict__ in, O* __restrict__ out, i64 outer, i64 r, i64 inner,
                            typename Op::Val scale) {
    __shared__ typename Op::Acc partial[8][33];
    const i64 col = (i64)blockIdx.x * 32 + threadIdx.x;
    for (i64 o = blockIdx.y; o < outer; o += gridDim.y) {
        typename Op::Acc acc = Op::init();
        if (col < inner) {
            const T* p = in + o * r * inner + col;
            for (i64 k = threadIdx.y; k < r; k += 8) acc = Op::combine(acc, Op::from(Load<typename Op::Val>::of(p[k * inner]), k));
        }
        partial[threadIdx.y][threadIdx.x] = acc;
        __syncthreads();
        if (threadIdx.y == 0 && col < inner) {
#pragma unroll
            for (int y = 1; y < 8; ++y) acc = Op::combine(acc, partial[y][threadIdx.x]);
            put(out + o * inner + col, Op::finish(acc, scale));
        }
        __syncthreads();
    }
}

// reduce_<op>_<type>_rows / _cols: input storage T, output O (T, or i64 for arg ops); the
// last parameter P is float (a scale) for f32/f16/bf16, double (a divisor) for f64/i64.
#define KEEL_REDUCE(NAME, OP, TN, T, O, P)                                                           \
    extern "C" __global__ void reduce_##NAME##_##TN##_rows(const T* __restrict__ in, O* __restrict__ out, \
                                                          i64 outer, i64 r, i64 inner, P scale) {        \
        (void)inner;                                                                                \
        reduce_rows<OP>(in, out, outer, r, scale);                                                  \
    }                                                                                               \
    extern "C" __global__ void reduce_##NAME##_##TN##_cols(const T* __restrict__ in, O* __restrict__ out, \
                                                          i64 outer, i64 r, i64 inner, P scale) {        \
        reduce_cols<OP>(in, out, outer, r, inner, scale);                                           \
    }
#define KEEL_REDUCE_ALL(TN, T, A)                                    \
    KEEL_REDUCE(sum, SumOp<A>, TN, T, T, A)                          \
    KEEL_REDUCE(max, MaxOp<A>, TN, T, T, A)                          \
    KEEL_REDUCE(min, MinOp<A>, TN, T, T, A)                          \
    KEEL_REDUCE(argmax, ArgMaxOp<A>, TN, T, i64, A)                  \
    KEEL_REDUCE(argmin, ArgMinOp<A>, TN, T, i64, A)
KEEL_REDUCE_ALL(f32, float, float)
KEEL_REDUCE_ALL(f16, keel_f16, float)
KEEL_REDUCE_ALL(bf16, keel_bf16, float)
KEEL_REDUCE_ALL(f64, double, double)
KEEL_REDUCE_ALL(i64, i64, double)
