// keel fused optimizer updates (f32 parameters and state, in place).

// Keras-style SGD. g' = grad + weight_decay * p (L2 coupled to the gradient).
// momentum == 0: p -= lr * g'
// else:          v = momentum * v - lr * g'
//                p += nesterov ? momentum * v - lr * g' : v
extern "C" __global__ void sgd_f32(float* __restrict__ p, const float* __restrict__ grad,
                                   float* __restrict__ velocity, i64 n, float lr, float momentum,
                                   float weight_decay, int nesterov) {
    KEEL_GRID_LOOP(i, n) {
        const float pi = p[i];
        const float g = grad[i] + weight_decay * pi;
        if (momentum == 0.0f) {
            p[i] = pi - lr * g;
        } else {
            const float v = momentum * velocity[i] - lr * g;
            velocity[i] = v;
            p[i] = pi + (nesterov ? momentum * v - lr * g : v);
        }
    }
}

// Adam / AdamW. bias_c1 = 1 - beta1^t, bias_c2 = 1 - beta2^t (computed by the caller, t >= 1).
// decoupled == 0 (Adam):  g = grad + weight_decay * p
// decoupled != 0 (AdamW): p *= (1 - lr * weight_decay) before the Adam step
// m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
// p -= lr * (m / bias_c1) / (sqrt(v / bias_c2) + eps)
extern "C" __global__ void adam_f32(float* __restrict__ p, const float* __restrict__ grad,
                                    float* __restrict__ m, float* __restrict__ v, i64 n, float lr,
                                    float beta1, float beta2, float eps, float weight_decay,
                                    float bias_c1, float bias_c2, int decoupled) {
    KEEL_GRID_LOOP(i, n) {
        float pi = p[i];
        float g = grad[i];
        if (decoupled) pi *= 1.0f - lr * weight_decay;
        else g += weight_decay * pi;
        const float mi = beta1 * m[i] + (1.0f - beta1) * g;
        const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - lr * (mi / bias_c1) / (sqrtf(vi / bias_c2) + eps);
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
