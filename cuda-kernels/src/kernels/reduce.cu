// keel reductions along one axis. The tensor is viewed as [outer, reduce, inner]
// (contiguous); out is [outer, inner]. Inputs are f32, f16 or bf16 storage, accumulated in
// f32, f64 storage, accumulated in double (the CPU's f64), or i64 storage, accumulated in
// i64 (exact; the sum wraps, as the CPU's); sum/max/min write the input's storage type
// (one rounding for the float types), argmax/argmin i64.
//  *_rows: inner == 1, one 256-thread block per row, warp shuffles + shared memory.
//  *_cols: inner > 1, 32x8 blocks: x walks inner (coalesced), y splits the reduce axis.
// Either splits a long axis over several blocks per output when there are few outputs
// ("Split reductions" below).

// Each op accumulates in A: float for f32/f16/bf16 storage, double for f64, i64 for i64 (as
// the CPU does). P, the kernels' `scale` parameter: for float a multiplier (`scale`, 1/n for
// a mean), for double and i64 a divisor (`div`, n for a mean: the CPU computes sum / n).

// The accumulators' extremes (the identities of max and min) and their addition (i64 wraps).
template <typename A> struct Lim {
    __device__ static A lowest() { return -(A)keel_inf(); }
    __device__ static A highest() { return (A)keel_inf(); }
};
template <> struct Lim<i64> {
    __device__ static i64 lowest() { return (i64)(-0x7fffffffffffffffLL - 1); }
    __device__ static i64 highest() { return (i64)0x7fffffffffffffffLL; }
};
__device__ __forceinline__ float acc_add(float a, float b) { return a + b; }
__device__ __forceinline__ double acc_add(double a, double b) { return a + b; }
__device__ __forceinline__ i64 acc_add(i64 a, i64 b) { return (i64)((u64)a + (u64)b); }

template <typename A>
struct SumOp {
    typedef A Acc;
    typedef A Val;
    typedef A Out;
    __device__ static Acc init() { return (A)0; }
    __device__ static Acc from(A v, i64) { return v; }
    __device__ static Acc combine(Acc a, Acc b) { return acc_add(a, b); }
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
    __device__ static Acc init() { return Lim<A>::lowest(); }
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
    __device__ static Acc init() { return Lim<A>::highest(); }
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
    __device__ static Acc init() { Acc a; a.v = MAX ? Lim<A>::lowest() : Lim<A>::highest(); a.i = 0x7fffffffffffffffLL; return a; }
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
};
template <> struct Load<i64> {
    __device__ static i64 of(i64 v) { return v; }
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

// A partial accumulator written by another block of this launch: read past L1 (which is
// not coherent across SMs).
__device__ __forceinline__ float part_load(const float* p) { return __ldcg(p); }
__device__ __forceinline__ double part_load(const double* p) { return __ldcg(p); }
__device__ __forceinline__ i64 part_load(const i64* p) { return __ldcg(p); }
template <typename A>
__device__ __forceinline__ ValIdx<A> part_load(const ValIdx<A>* p) {
    ValIdx<A> a;
    a.v = __ldcg(&p->v);
    a.i = __ldcg(&p->i);
    return a;
}

// Split reductions. A long axis with few outputs (a bias gradient over a batch of images,
// the sum of a whole tensor) would leave most of the GPU idle with one block per output,
// each thread walking thousands of elements. The launcher then cuts the axis into chunks
// of `chunk` elements (`splits` of them): one block per (output, chunk) stores its partial
// accumulator in `part`, then takes a ticket from its output's counter in `tickets`; the
// block that draws the last ticket combines the partials in chunk order (fixed, so the
// result is deterministic), writes the output and resets the counter to zero, as every
// counter is between launches. `chunk >= r` (one chunk) is the plain reduction; `part`
// and `tickets` are then unused (null).
__device__ __forceinline__ i64 split_count(i64 r, i64 chunk) { return r > chunk ? (r + chunk - 1) / chunk : 1; }

// The reduction of one value per thread over the block (1-D), in thread 0; `buf` holds 32.
template <class Op>
__device__ __forceinline__ typename Op::Acc block_reduce(typename Op::Acc acc, typename Op::Acc* buf) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    acc = warp_reduce<Op>(acc);
    if (lane == 0) buf[warp] = acc;
    __syncthreads();
    if (warp == 0) {
        acc = lane < nwarps ? buf[lane] : Op::init();
        acc = warp_reduce<Op>(acc);
    }
    return acc;
}

// The elements a reduction reads: its input's (`Elems`), or a ReLU's backward (`ReluGrad`).
template <typename T>
struct Elems {
    const T* __restrict__ in;
    __device__ __forceinline__ T operator()(i64 i) const { return in[i]; }
};
// g * relu'(y) for the ReLU's output y, computed as unary_grad computes it (so a zero
// gradient keeps g's sign and a NaN stays NaN), written to gz as it is read: the bias
// gradient of a fused bias + ReLU layer and the gradient it passes on, from one pass.
template <typename T>
struct ReluGrad {
    const T* __restrict__ y;
    const T* __restrict__ g;
    T* __restrict__ gz;
    __device__ __forceinline__ float operator()(i64 i) const {
        const float v = to_f32(g[i]) * (to_f32(y[i]) > 0.f ? 1.f : 0.f);
        gz[i] = from_f32<T>(v);
        return v;
    }
};

template <class Op, class Src, typename O>
__device__ void reduce_rows(Src in, O* __restrict__ out, i64 outer, i64 r, i64 chunk,
                            typename Op::Val scale, typename Op::Acc* part, unsigned* tickets) {
    typedef typename Op::Acc Acc;
    __shared__ Acc buf[32];
    __shared__ bool last;
    const i64 splits = split_count(r, chunk);
    for (i64 b = blockIdx.x; b < outer * splits; b += gridDim.x) {
        const i64 row = b / splits, s = b % splits;
        const i64 begin = s * chunk, end = splits == 1 || begin + chunk > r ? r : begin + chunk;
        Acc acc = Op::init();
        for (i64 k = begin + threadIdx.x; k < end; k += blockDim.x)
            acc = Op::combine(acc, Op::from(Load<typename Op::Val>::of(in(row * r + k)), k));
        acc = block_reduce<Op>(acc, buf);
        if (splits == 1) {
            if (threadIdx.x == 0) put(out + row, Op::finish(acc, scale));
            __syncthreads();
            continue;
        }
        if (threadIdx.x == 0) {
            part[row * splits + s] = acc;
            __threadfence();
            last = atomicAdd(tickets + row, 1u) == (unsigned)(splits - 1);
        }
        __syncthreads();
        if (last) {  // block-uniform
            __threadfence();
            Acc a = Op::init();
            for (i64 t = threadIdx.x; t < splits; t += blockDim.x) a = Op::combine(a, part_load(part + row * splits + t));
            a = block_reduce<Op>(a, buf);
            if (threadIdx.x == 0) {
                put(out + row, Op::finish(a, scale));
                tickets[row] = 0;
            }
        }
        __syncthreads();
    }
}

// blockDim = (32, 8): x walks 32 columns (coalesced), y splits the rows of the chunk.
template <class Op, class Src, typename O>
__device__ void reduce_cols(Src in, O* __restrict__ out, i64 outer, i64 r, i64 inner, i64 chunk,
                            typename Op::Val scale, typename Op::Acc* part, unsigned* tickets) {
    typedef typename Op::Acc Acc;
    __shared__ Acc partial[8][33];
    __shared__ bool last;
    const i64 col = (i64)blockIdx.x * 32 + threadIdx.x;
    const i64 splits = split_count(r, chunk);
    for (i64 b = blockIdx.y; b < outer * splits; b += gridDim.y) {
        const i64 o = b / splits, s = b % splits;
        const i64 begin = s * chunk, end = splits == 1 || begin + chunk > r ? r : begin + chunk;
        Acc acc = Op::init();
        if (col < inner) {
            const i64 base = o * r * inner + col;
            for (i64 k = begin + threadIdx.y; k < end; k += 8)
                acc = Op::combine(acc, Op::from(Load<typename Op::Val>::of(in(base + k * inner)), k));
        }
        partial[threadIdx.y][threadIdx.x] = acc;
        __syncthreads();
        if (threadIdx.y == 0) {
#pragma unroll
            for (int y = 1; y < 8; ++y) acc = Op::combine(acc, partial[y][threadIdx.x]);
        }
        if (splits == 1) {
            if (threadIdx.y == 0 && col < inner) put(out + o * inner + col, Op::finish(acc, scale));
            __syncthreads();
            continue;
        }
        if (threadIdx.y == 0 && col < inner) {
            part[(o * splits + s) * inner + col] = acc;
            __threadfence();
        }
        __syncthreads();
        unsigned* ticket = tickets + o * gridDim.x + blockIdx.x;
        if (threadIdx.x == 0 && threadIdx.y == 0) last = atomicAdd(ticket, 1u) == (unsigned)(splits - 1);
        __syncthreads();
        if (last) {  // block-uniform
            __threadfence();
            Acc a = Op::init();
            if (col < inner) {
                for (i64 t = threadIdx.y; t < splits; t += 8)
                    a = Op::combine(a, part_load(part + (o * splits + t) * inner + col));
            }
            partial[threadIdx.y][threadIdx.x] = a;
            __syncthreads();
            if (threadIdx.y == 0) {
#pragma unroll
                for (int y = 1; y < 8; ++y) a = Op::combine(a, partial[y][threadIdx.x]);
                if (col < inner) put(out + o * inner + col, Op::finish(a, scale));
                if (threadIdx.x == 0) *ticket = 0;
            }
        }
        __syncthreads();
    }
}

// reduce_<op>_<type>_rows / _cols: input storage T, output O (T, or i64 for arg ops); the
// scale parameter P is float (a multiplier) for f32/f16/bf16, double (a divisor) for f64,
// i64 (a divisor) for i64; `chunk`, `part` (the op's accumulators) and `tickets` as for split reductions.
#define KEEL_REDUCE(NAME, OP, TN, T, O, P)                                                               \
    extern "C" __global__ void reduce_##NAME##_##TN##_rows(const T* __restrict__ in, O* __restrict__ out,     \
                                                          i64 outer, i64 r, i64 inner, i64 chunk, P scale,    \
                                                          void* part, unsigned* tickets) {                    \
        (void)inner;                                                                                    \
        reduce_rows<OP>(Elems<T>{in}, out, outer, r, chunk, scale, (typename OP::Acc*)part, tickets);             \
    }                                                                                                   \
    extern "C" __global__ void reduce_##NAME##_##TN##_cols(const T* __restrict__ in, O* __restrict__ out,     \
                                                          i64 outer, i64 r, i64 inner, i64 chunk, P scale,    \
                                                          void* part, unsigned* tickets) {                    \
        reduce_cols<OP>(Elems<T>{in}, out, outer, r, inner, chunk, scale, (typename OP::Acc*)part, tickets);      \
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
KEEL_REDUCE_ALL(i64, i64, i64)

// relu_bwd_sum_<type>: for a ReLU's output y and the gradient g reaching it, both
// [r, inner], gz = g * relu'(y) and bias = the column sums of gz, in one pass (the columns
// kernel, split as any sum; the sums' bits are those of sum(gz) over the rows).
#define KEEL_RELU_BWD_SUM(TN, T)                                                                          \
    extern "C" __global__ void relu_bwd_sum_##TN(const T* __restrict__ y, const T* __restrict__ g,           \
                                                 T* __restrict__ gz, T* __restrict__ bias, i64 r, i64 inner,  \
                                                 i64 chunk, void* part, unsigned* tickets) {                  \
        reduce_cols<SumOp<float>>(ReluGrad<T>{y, g, gz}, bias, 1, r, inner, chunk, 1.0f, (float*)part, tickets); \
    }
KEEL_RELU_BWD_SUM(f32, float)
KEEL_RELU_BWD_SUM(f16, keel_f16)
KEEL_RELU_BWD_SUM(bf16, keel_bf16)
