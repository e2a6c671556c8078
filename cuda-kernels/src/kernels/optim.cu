// keel fused optimizer updates: f32, out of place, the CPU's op order (same bits).
//
// Multi-tensor (multi.cuh): one launch updates up to KEEL_MULTI_MAX parameters, so an
// optimizer step costs one launch per 24 parameters instead of one per parameter (a
// MultiList of ~2 KiB).

#define KEEL_MULTI_MAX 24

// Mirrors `keel_cuda_kernels::ops::optim::MultiList` (#[repr(C)], no padding).
// in: up to 5 input arrays per tensor, out: up to 4 output arrays; an absent optional
// array (no momentum, no AMSGrad) is a null pointer. decay: decoupled weight decay, applied
// to the parameter first as p - p * decay (NaN: none).
struct MultiList {
    u64 in[5][KEEL_MULTI_MAX];
    u64 out[4][KEEL_MULTI_MAX];
    i64 n[KEEL_MULTI_MAX];
    i64 tile_start[KEEL_MULTI_MAX + 1];  // tile_start[k]: first tile of tensor k; [count]: all tiles
    float decay[KEEL_MULTI_MAX];
    i64 count;
};

// Parameter element i of tensor k, with its weight decay applied (keel-optim's
// `p.sub(p.mul_scalar(wd * lr))`: the same two roundings).
__device__ __forceinline__ float multi_param(const MultiList& L, int k, i64 i) {
    const float p = ((const float*)L.in[0][k])[i];
    const float d = L.decay[k];
    return d == d ? __fsub_rn(p, __fmul_rn(p, d)) : p;
}

#define KEEL_IN(L, a, k) ((const float*)(L).in[a][k])
#define KEEL_OUT(L, a, k) ((float*)(L).out[a][k])

// Keras SGD, out of place, with the exact f32 op order of keel-tensor's CPU `sgd_update`
// (every step a separately rounded __f*_rn, so CPU and GPU agree bit for bit).
// lr_g = g lr; no momentum (m null): p' = p - lr_g;
// momentum: m' = m momentum - lr_g, p' = p + (nesterov ? m' momentum - lr_g : m').
// in: p, grad, m; out: p, m. p is the parameter after its weight decay (multi_param).
extern "C" __global__ void sgd_multi_f32(const MultiList L, float lr, float momentum, int nesterov) {
    KEEL_MULTI_LOOP(L, k, i) {
        const float* m = KEEL_IN(L, 2, k);
        const float lr_g = __fmul_rn(KEEL_IN(L, 1, k)[i], lr);
        const float p = multi_param(L, k, i);
        if (m == nullptr) {
            KEEL_OUT(L, 0, k)[i] = __fsub_rn(p, lr_g);
            continue;
        }
        const float mi = __fsub_rn(__fmul_rn(m[i], momentum), lr_g);
        KEEL_OUT(L, 1, k)[i] = mi;
        KEEL_OUT(L, 0, k)[i] = __fadd_rn(p, nesterov ? __fsub_rn(__fmul_rn(mi, momentum), lr_g) : mi);
    }
}

// Keras Adam, out of place, with the exact f32 op order of keel-tensor's CPU `adam_update`
// (no FMA contraction: every step is a separately rounded __f*_rn, so CPU and GPU agree bit
// for bit). alpha = lr * sqrt(1 - beta2^t) / (1 - beta1^t), c1 = 1 - beta1, c2 = 1 - beta2.
// m' = m + (g - m) c1;  v' = v + (g^2 - v) c2;  vh' = max(vh, v') (amsgrad: vh non-null)
// p' = p - (m' alpha) / (sqrt(vh' or v') + eps)
// in: p, grad, m, v, vh; out: p, m, v, vh. p is the parameter after its weight decay.
extern "C" __global__ void adam_multi_f32(const MultiList L, float alpha, float c1, float c2, float eps) {
    KEEL_MULTI_LOOP(L, k, i) {
        const float g = KEEL_IN(L, 1, k)[i];
        const float m = KEEL_IN(L, 2, k)[i];
        const float v = KEEL_IN(L, 3, k)[i];
        const float mi = __fadd_rn(m, __fmul_rn(__fsub_rn(g, m), c1));
        const float vi = __fadd_rn(v, __fmul_rn(__fsub_rn(__fmul_rn(g, g), v), c2));
        float d = vi;
        const float* vh = KEEL_IN(L, 4, k);
        if (vh != nullptr) {
            const float h = vh[i];
            d = (h >= vi) ? h : vi;  // ties and NaN as the CPU's `if x >= y { x } else { y }`
            KEEL_OUT(L, 3, k)[i] = d;
        }
        KEEL_OUT(L, 1, k)[i] = mi;
        KEEL_OUT(L, 2, k)[i] = vi;
        KEEL_OUT(L, 0, k)[i] =
            __fsub_rn(multi_param(L, k, i), __fdiv_rn(__fmul_rn(mi, alpha), __fadd_rn(__fsqrt_rn(d), eps)));
    }
}
