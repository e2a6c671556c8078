// keel reductions along one axis. The tensor is viewed as [outer, reduce, inner]
// (contiguous); out is [outer, inner].
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

template <class Op>
__device__ void reduce_rows(const float* __restrict__ in, typename Op::Out* __restrict__ out,
                            i64 outer, i64 r, float scale) {
    __shared__ typename Op::Acc partial[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    for (i64 row = blockIdx.x; row < outer; row += gridDim.x) {
        const float* p = in + row * r;
        typename Op::Acc acc = Op::init();
        for (i64 k = threadIdx.x; k < r; k += blockDim.x) acc = Op::combine(acc, Op::from(p[k], k));
        acc = warp_reduce<Op>(acc);
        if (lane == 0) partial[warp] = acc;
        __syncthreads();
        if (warp == 0) {
            acc = lane < nwarps ? partial[lane] : Op::init();
            acc = warp_reduce<Op>(acc);
            if (lane == 0) out[row] = Op::finish(acc, scale);
        }
        __syncthreads();
    }
}

// blockDim = (32, 8)
template <class Op>
__device__ void reduce_cols(const float* __restrict__ in, typename Op::Out* __restrict__ out,
                            i64 outer, i64 r, i64 inner, float scale) {
    __shared__ typename Op::Acc partial[8][33];
    const i64 col = (i64)blockIdx.x * 32 + threadIdx.x;
    for (i64 o = blockIdx.y; o < outer; o += gridDim.y) {
        typename Op::Acc acc = Op::init();
        if (col < inner) {
            const float* p = in + o * r * inner + col;
            for (i64 k = threadIdx.y; k < r; k += 8) acc = Op::combine(acc, Op::from(p[k * inner], k));
        }
        partial[threadIdx.y][threadIdx.x] = acc;
        __syncthreads();
        if (threadIdx.y == 0 && col < inner) {
#pragma unroll
            for (int y = 1; y < 8; ++y) acc = Op::combine(acc, partial[y][threadIdx.x]);
            out[o * inner + col] = Op::finish(acc, scale);
        }
        __syncthreads();
    }
}

#define KEEL_REDUCE(NAME, OP)                                                                   \
    extern "C" __global__ void reduce_##NAME##_f32_rows(const float* __restrict__ in,           \
                                                        OP::Out* __restrict__ out, i64 outer,   \
                                                        i64 r, i64 inner, float scale) {        \
        (void)inner;                                                                            \
        reduce_rows<OP>(in, out, outer, r, scale);                                              \
    }                                                                                           \
    extern "C" __global__ void reduce_##NAME##_f32_cols(const float* __restrict__ in,           \
                                                        OP::Out* __restrict__ out, i64 outer,   \
                                                        i64 r, i64 inner, float scale) {        \
        reduce_cols<OP>(in, out, outer, r, inner, scale);                                       \
    }
KEEL_REDUCE(sum, SumOp)
KEEL_REDUCE(max, MaxOp)
KEEL_REDUCE(min, MinOp)
typedef ArgOp<true> ArgMaxOp;
typedef ArgOp<false> ArgMinOp;
KEEL_REDUCE(argmax, ArgMaxOp)
KEEL_REDUCE(argmin, ArgMinOp)
