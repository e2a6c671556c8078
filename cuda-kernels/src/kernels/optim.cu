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
