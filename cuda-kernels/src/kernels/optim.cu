// keel fused optimizer updates: f32, out of place, the CPU's op order (same bits).

// Keras SGD, out of place, with the exact f32 op order of keel-tensor's CPU `sgd_update`
// (every step a separately rounded __f*_rn, so CPU and GPU agree bit for bit).
// lr_g = g lr; no momentum (m null): p' = p - lr_g;
// momentum: m' = m momentum - lr_g, p' = p + (nesterov ? m' momentum - lr_g : m').
extern "C" __global__ void sgd_step_f32(const float* __restrict__ p, const float* __restrict__ grad,
                                        const float* __restrict__ m, float* __restrict__ out_p,
                                        float* __restrict__ out_m, i64 n, float lr, float momentum,
                                        int nesterov) {
    KEEL_GRID_LOOP(i, n) {
        const float lr_g = __fmul_rn(grad[i], lr);
        if (m == nullptr) {
            out_p[i] = __fsub_rn(p[i], lr_g);
            continue;
        }
        const float mi = __fsub_rn(__fmul_rn(m[i], momentum), lr_g);
        out_m[i] = mi;
        out_p[i] = __fadd_rn(p[i], nesterov ? __fsub_rn(__fmul_rn(mi, momentum), lr_g) : mi);
    }
}

// Keras Adam, out of place, with the exact f32 op order of keel-tensor's CPU `adam_update`
// (no FMA contraction: every step is a separately rounded __f*_rn, so CPU and GPU agree bit
// for bit). alpha = lr * sqrt(1 - beta2^t) / (1 - beta1^t), c1 = 1 - beta1, c2 = 1 - beta2.
// m' = m + (g - m) c1;  v' = v + (g^2 - v) c2;  vh' = max(vh, v') (amsgrad: vh/nvh non-null)
// p' = p - (m' alpha) / (sqrt(vh' or v') + eps)
extern "C" __global__ void adam_step_f32(const float* __restrict__ p, const float* __restrict__ grad,
                                         const float* __restrict__ m, const float* __restrict__ v,
                                         const float* __restrict__ vh, float* __restrict__ out_p,
                                         float* __restrict__ out_m, float* __restrict__ out_v,
                                         float* __restrict__ out_vh, i64 n, float alpha, float c1,
                                         float c2, float eps) {
    KEEL_GRID_LOOP(i, n) {
        const float g = grad[i];
        const float mi = __fadd_rn(m[i], __fmul_rn(__fsub_rn(g, m[i]), c1));
        const float vi = __fadd_rn(v[i], __fmul_rn(__fsub_rn(__fmul_rn(g, g), v[i]), c2));
        float d = vi;
        if (vh != nullptr) {
            const float h = vh[i];
            d = (h >= vi) ? h : vi;  // ties and NaN as the CPU's `if x >= y { x } else { y }`
            out_vh[i] = d;
        }
        out_m[i] = mi;
        out_v[i] = vi;
        out_p[i] = __fsub_rn(p[i], __fdiv_rn(__fmul_rn(mi, alpha), __fadd_rn(__fsqrt_rn(d), eps)));
    }
}
