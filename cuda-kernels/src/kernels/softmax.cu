// keel softmax family along the last axis of a contiguous [rows, cols] tensor.
// One block (blockDim.x a multiple of 32, <= 1024) per row, grid-stride over rows.

// Block-wide reductions; every thread gets the result. `buf` needs 32 floats.
__device__ __forceinline__ float block_sum(float v, float* buf) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();  // buf may still be read from a previous call
    if (lane == 0) buf[warp] = v;
    __syncthreads();
    v = lane < nwarps ? buf[lane] : 0.0f;
    return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float* buf) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) buf[warp] = v;
    __syncthreads();
    v = lane < nwarps ? buf[lane] : -keel_inf();
    return warp_max(v);
}

// Returns (max, sum of exp(x - max)) of one row (F16/BF16 read as f32).
template <typename T>
__device__ __forceinline__ float2 row_max_sumexp(const T* __restrict__ x, i64 cols, float* buf) {
    float m = -keel_inf();
    for (i64 c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, to_f32(x[c]));
    m = block_max(m, buf);
    float s = 0.0f;
    if (m != -keel_inf()) {
        for (i64 c = threadIdx.x; c < cols; c += blockDim.x) s += expf(to_f32(x[c]) - m);
    }
    s = block_sum(s, buf);
    return make_float2(m, s);
}

template <bool LOG>
__device__ void softmax_rows(const float* __restrict__ x, float* __restrict__ y, i64 rows, i64 cols) {
    __shared__ float buf[32];
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* xr = x + r * cols;
        float* yr = y + r * cols;
        const float2 ms = row_max_sumexp(xr, cols, buf);
        if (LOG) {
            const float lse = ms.x + logf(ms.y);
            for (i64 c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = xr[c] - lse;
        } else {
            const float inv = 1.0f / ms.y;
            for (i64 c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = expf(xr[c] - ms.x) * inv;
        }
    }
}

extern "C" __global__ void softmax_f32(const float* __restrict__ x, float* __restrict__ y, i64 rows, i64 cols) {
    softmax_rows<false>(x, y, rows, cols);
}
extern "C" __global__ void log_softmax_f32(const float* __restrict__ x, float* __restrict__ y, i64 rows, i64 cols) {
    softmax_rows<true>(x, y, rows, cols);
}

// gx = y * (gy - sum(gy * y)), y = softmax output
extern "C" __global__ void softmax_bwd_f32(const float* __restrict__ y, const float* __restrict__ gy,
                                           float* __restrict__ gx, i64 rows, i64 cols) {
    __shared__ float buf[32];
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const i64 base = r * cols;
        float d = 0.0f;
        for (i64 c = threadIdx.x; c < cols; c += blockDim.x) d += gy[base + c] * y[base + c];
        d = block_sum(d, buf);
        for (i64 c = threadIdx.x; c < cols; c += blockDim.x) gx[base + c] = y[base + c] * (gy[base + c] - d);
    }
}

// gx = gy - exp(y) * sum(gy), y = log_softmax output
extern "C" __global__ void log_softmax_bwd_f32(const float* __restrict__ y, const float* __restrict__ gy,
                                               float* __restrict__ gx, i64 rows, i64 cols) {
    __shared__ float buf[32];
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const i64 base = r * cols;
        float s = 0.0f;
        for (i64 c = threadIdx.x; c < cols; c += blockDim.x) s += gy[base + c];
        s = block_sum(s, buf);
        for (i64 c = threadIdx.x; c < cols; c += blockDim.x) gx[base + c] = gy[base + c] - expf(y[base + c]) * s;
    }
}

// The batch mean of the per-row losses in the loss kernel's own launch (no reduction
// launch after it): each block, its rows written, takes a ticket from `*ticket`; the block
// that draws the last one (every loss is then in memory) sums loss[0..rows] in a fixed
// order (thread t the rows t, t + blockDim.x, ..., then block_sum's tree), so the result
// does not depend on which block finished last; it writes sum * (1 / rows) and resets the
// counter to zero for the next launch. The caller keeps `rows` small enough for one block.
__device__ __forceinline__ void xent_mean(const float* loss, i64 rows, float* mean, unsigned* ticket, float* buf) {
    __shared__ bool last;
    __threadfence();  // this block's losses before its ticket
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(ticket, 1u) == gridDim.x - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    float s = 0.0f;
    for (i64 r = threadIdx.x; r < rows; r += blockDim.x) s += __ldcg(loss + r);
    s = block_sum(s, buf);
    if (threadIdx.x == 0) {
        *mean = s * (1.0f / (float)rows);
        *ticket = 0;
    }
}

// Fused softmax cross-entropy, one row per block: the per-row loss, and on request the
// gradient and the probabilities. Targets are integer labels (SPARSE) or dense rows t
// (one-hot or probabilities):
// * loss[r] = (max - x[r, label]) + log(sum exp(x - max)) for a label (rather than
//   lse - x: lse rounded at the logits' magnitude would lose the small loss of a confident
//   row), sum_c t[c] * ((max - x[c]) + log(sum)) for dense targets;
// * grad[r, c] = grad_scale * (softmax(x[r])[c] * sum(t) - t[c]) when grad is not null;
// * probs[r, c] = softmax(x[r])[c] when probs is not null, computed as softmax_f32 computes
//   it (same launch shape, same arithmetic: the same bits).
// * mean[0] = the mean of loss[0..rows] when mean is not null (see xent_mean).
// A label outside [0, cols) counts as a row of zeros (one_hot's row for it): loss 0 and a
// zero gradient row, so the weights stay finite; callers check the labels on the device
// (keel-tensor queues `check_index_range`), which reports it at the next read-back.
// F16/BF16 logits (T) are read as f32, so every output is that of their f32 values.
template <bool SPARSE, typename T>
__device__ void xent_rows(const T* __restrict__ x, const i64* __restrict__ labels,
                          const float* __restrict__ t, float* __restrict__ loss, float* __restrict__ grad,
                          float* __restrict__ probs, float* mean, unsigned* ticket, i64 rows, i64 cols,
                          float grad_scale) {
    __shared__ float buf[32];
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * cols;
        const float2 ms = row_max_sumexp(xr, cols, buf);
        const float ls = logf(ms.y);
        i64 label = -1;
        float ts;  // sum of the row's targets
        if (SPARSE) {
            label = labels[r];
            const bool valid = label >= 0 && label < cols;
            if (!valid) label = -1;
            if (threadIdx.x == 0) loss[r] = valid ? (ms.x - to_f32(xr[label])) + ls : 0.0f;
            ts = valid ? 1.0f : 0.0f;
        } else {
            const float* tr = t + r * cols;
            float l = 0.0f;
            ts = 0.0f;
            for (i64 c = threadIdx.x; c < cols; c += blockDim.x) {
                const float tc = tr[c];
                ts += tc;
                if (tc != 0.0f) l += tc * ((ms.x - to_f32(xr[c])) + ls);
            }
            l = block_sum(l, buf);
            ts = block_sum(ts, buf);
            if (threadIdx.x == 0) loss[r] = l;
        }
        if (grad == nullptr && probs == nullptr) continue;
        const float inv = 1.0f / ms.y;
        for (i64 c = threadIdx.x; c < cols; c += blockDim.x) {
            const float p = expf(to_f32(xr[c]) - ms.x) * inv;
            if (probs != nullptr) probs[r * cols + c] = p;
            if (grad != nullptr) {
                const float tc = SPARSE ? (c == label ? 1.0f : 0.0f) : t[r * cols + c];
                grad[r * cols + c] = grad_scale * (p * ts - tc);
            }
        }
    }
    if (mean != nullptr) xent_mean(loss, rows, mean, ticket, buf);
}

// softmax_xent_{sparse,dense}_{f32,f16,bf16}: the logits' storage type in the name; the
// targets (f32 rows or i64 labels) and every output are f32.
#define KEEL_XENT(TN, T)                                                                                  \
    extern "C" __global__ void softmax_xent_sparse_##TN(const T* x, const i64* labels, float* loss,       \
                                                         float* grad, float* probs, float* mean,           \
                                                         unsigned* ticket, i64 rows, i64 cols,             \
                                                         float grad_scale) {                               \
        xent_rows<true, T>(x, labels, nullptr, loss, grad, probs, mean, ticket, rows, cols, grad_scale);  \
    }                                                                                                     \
    extern "C" __global__ void softmax_xent_dense_##TN(const T* x, const float* t, float* loss,           \
                                                        float* grad, float* probs, float* mean,            \
                                                        unsigned* ticket, i64 rows, i64 cols,              \
                                                        float grad_scale) {                                \
        xent_rows<false, T>(x, nullptr, t, loss, grad, probs, mean, ticket, rows, cols, grad_scale);      \
    }
KEEL_XENT(f32, float)
KEEL_XENT(f16, keel_f16)
KEEL_XENT(bf16, keel_bf16)
