// keel reductions along one axis. The tensor is viewed as [outer, reduce, inner]
// (contiguous); out is [outer, inner]. Inputs are f32, f16 or bf16 storage, accumulated in
// f32; sum/max/min write the input's storage type (one rounding), argmax/argmin i64.
//  *_rows: inner == 1, one 256-thread block per row, warp shuffles + shared memory.
//  *_cols: inner > 1, 32x8 blocks: x walks inner (coalesced), y splits the reduce axis.

struct SumOp {
    typedef float Acc;
    typedef float Out;
    __device__ static Acc init() { return 0.0f; }
    __device__ static Acc from(float v, i64) { return v; }
    __device__ static Acc combine(Acc a, Acc b) { return a + b; }
    __device__ static Acc shfl(Acc a, int o) { return __shfl_xor_sync(0xffffffffu, a, o); }
    __device__ static Out finish(Acc a, float scale) { return a * scale; }
};
// max/min propagate NaN (as NumPy/PyTorch do).
struct MaxOp {
    typedef float Acc;
    typedef float Out;
    __device__ static Acc init() { return -keel_inf(); }
    __device__ static Acc from(float v, i64) { return v; }
    __device__ static Acc combine(Acc a, Acc b) { return (a != a || a > b) ? a : b; }
    __device__ static Acc shfl(Acc a, int o) { return __shfl_xor_sync(0xffffffffu, a, o); }
    __device__ static Out finish(Acc a, float) { return a; }
};
struct MinOp {
    typedef float Acc;
    typedef float Out;
    __device__ static Acc init() { return keel_inf(); }
    __device__ static Acc from(float v, i64) { return v; }
    __device__ static Acc combine(Acc a, Acc b) { return (a != a || a < b) ? a : b; }
    __device__ static Acc shfl(Acc a, int o) { return __shfl_xor_sync(0xffffffffu, a, o); }
    __device__ static Out finish(Acc a, float) { return a; }
};

struct ValIdx { float v; i64 i; };
// argmax/argmin: NaN counts as the extreme; ties go to the smallest index.
template <bool MAX>
struct ArgOp {
    typedef ValIdx Acc;
    typedef i64 Out;
    __device__ static Acc init() { ValIdx a; a.v = MAX ? -keel_inf() : keel_inf(); a.i = 0x7fffffffffffffffLL; return a; }
    __device__ static Acc from(float v, i64 i) { ValIdx a; a.v = v; a.i = i; return a; }
    __device__ static Acc combine(Acc a, Acc b) {
        const bool an = a.v != a.v, bn = b.v != b.v;
        bool take_b;
        if (an || bn) take_b = (bn && !an) || (an && bn && b.i < a.i);
        else if (a.v == b.v) take_b = b.i < a.i;
        else take_b = MAX ? (b.v > a.v) : (b.v < a.v);
        return take_b ? b : a;
    }
    __device__ static Acc shfl(Acc a, int o) {
        ValIdx r;
        r.v = __shfl_xor_sync(0xffffffffu, a.v, o);
        r.i = __shfl_xor_sync(0xffffffffu, a.i, o);
        return r;
    }
    __device__ static Out finish(Acc a, float) { return a.i; }
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

template <class Op, typename T, typename O>
__device__ void reduce_rows(const T* __restrict__ in, O* __restrict__ out, i64 outer, i64 r, float scale) {
    __shared__ typename Op::Acc partial[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    for (i64 row = blockIdx.x; row < outer; row += gridDim.x) {
        const T* p = in + row * r;
        typename Op::Acc acc = Op::init();
        for (i64 k = threadIdx.x; k < r; k += blockDim.x) acc = Op::combine(acc, Op::from(to_f32(p[k]), k));
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
                            float scale) {
    __shared__ typename Op::Acc partial[8][33];
    const i64 col = (i64)blockIdx.x * 32 + threadIdx.x;
    for (i64 o = blockIdx.y; o < outer; o += gridDim.y) {
        typename Op::Acc acc = Op::init();
        if (col < inner) {
            const T* p = in + o * r * inner + col;
            for (i64 k = threadIdx.y; k < r; k += 8) acc = Op::combine(acc, Op::from(to_f32(p[k * inner]), k));
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

// reduce_<op>_<type>_rows / _cols: input storage T, output O (T, or i64 for arg ops).
#define KEEL_REDUCE(NAME, OP, TN, T, O)                                                              \
    extern "C" __global__ void reduce_##NAME##_##TN##_rows(const T* __restrict__ in, O* __restrict__ out, \
                                                          i64 outer, i64 r, i64 inner, float scale) {    \
        (void)inner;                                                                                \
        reduce_rows<OP>(in, out, outer, r, scale);                                                  \
    }                                                                                               \
    extern "C" __global__ void reduce_##NAME##_##TN##_cols(const T* __restrict__ in, O* __restrict__ out, \
                                                          i64 outer, i64 r, i64 inner, float scale) {    \
        reduce_cols<OP>(in, out, outer, r, inner, scale);                                           \
    }
typedef ArgOp<true> ArgMaxOp;
typedef ArgOp<false> ArgMinOp;
#define KEEL_REDUCE_ALL(TN, T)                  \
    KEEL_REDUCE(sum, SumOp, TN, T, T)           \
    KEEL_REDUCE(max, MaxOp, TN, T, T)           \
    KEEL_REDUCE(min, MinOp, TN, T, T)           \
    KEEL_REDUCE(argmax, ArgMaxOp, TN, T, i64)   \
    KEEL_REDUCE(argmin, ArgMinOp, TN, T, i64)
KEEL_REDUCE_ALL(f32, float)
KEEL_REDUCE_ALL(f16, keel_f16)
KEEL_REDUCE_ALL(bf16, keel_bf16)
