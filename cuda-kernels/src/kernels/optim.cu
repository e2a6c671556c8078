// keel fused optimizer updates: f32 and f64, out of place, the CPU's op order (same bits).
//
// Multi-tensor (multi.cuh): one launch updates up to KEEL_MULTI_MAX parameters, so an
// optimizer step costs one launch per 24 parameters instead of one per parameter (a
// MultiList of ~2.3 KiB).

#define KEEL_MULTI_MAX 24

// Mirrors `keel_cuda_kernels::ops::optim::MultiList` (#[repr(C)], no padding).
// in: up to 5 input arrays per tensor, out: up to 4 output arrays; an absent optional
// array (no momentum, no AMSGrad) is a null pointer. decay: decoupled weight decay, applied
// to the parameter first as p - p * decay (NaN: none); held in double, an f32 update's
// decay is an f32 value (exact in double).
struct MultiList {
    u64 in[5][KEEL_MULTI_MAX];
    u64 out[4][KEEL_MULTI_MAX];
    i64 n[KEEL_MULTI_MAX];
    i64 tile_start[KEEL_MULTI_MAX + 1];  // tile_start[k]: first tile of tensor k; [count]: all tiles
    double decay[KEEL_MULTI_MAX];
    i64 count;
};

// Each step one IEEE operation rounded once (no FMA contraction), in the update's type:
// the arithmetic of the CPU's loops, so CPU and GPU agree bit for bit.
__device__ __forceinline__ float rn_add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float rn_sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ float rn_mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float rn_div(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ float rn_sqrt(float a) { return __fsqrt_rn(a); }
__device__ __forceinline__ double rn_add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ double rn_sub(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ double rn_mul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ double rn_div(double a, double b) { return __ddiv_rn(a, b); }
__device__ __forceinline__ double rn_sqrt(double a) { return __dsqrt_rn(a); }

// Parameter element i of tensor k, with its weight decay applied (keel-optim's
// `p.sub(p.mul_scalar(wd * lr))`: the same two roundings).
template <typename T>
__device__ __forceinline__ T multi_param(const MultiList& L, int k, i64 i) {
    const T p = ((const T*)L.in[0][k])[i];
    const T d = (T)L.decay[k];
    return d == d ? rn_sub(p, rn_mul(p, d)) : p;
}

#define KEEL_IN(T, L, a, k) ((const T*)(L).in[a][k])
#define KEEL_OUT(T, L, a, k) ((T*)(L).out[a][k])

// Keras SGD, out of place, with the exact op order of keel-tensor's CPU `sgd_update`
// (every step separately rounded, so CPU and GPU agree bit for bit).
// lr_g = g lr; no momentum (m null): p' = p - lr_g;
// momentum: m' = m momentum - lr_g, p' = p + (nesterov ? m' momentum - lr_g : m').
// in: p, grad, m; out: p, m. p is the parameter after its weight decay (multi_param).
template <typename T>
__device__ __forceinline__ void sgd_multi(const MultiList& L, T lr, T momentum, int nesterov) {
    KEEL_MULTI_LOOP(L, k, i) {
        const T* m = KEEL_IN(T, L, 2, k);
        const T lr_g = rn_mul(KEEL_IN(T, L, 1, k)[i], lr);
        const T p = multi_param<T>(L, k, i);
        if (m == nullptr) {
            KEEL_OUT(T, L, 0, k)[i] = rn_sub(p, lr_g);
            continue;
        }
        const T mi = rn_sub(rn_mul(m[i], momentum), lr_g);
        KEEL_OUT(T, L, 1, k)[i] = mi;
        KEEL_OUT(T, L, 0, k)[i] = rn_add(p, nesterov ? rn_sub(rn_mul(mi, momentum), lr_g) : mi);
    }
}

// Keras Adam, out of place, with the exact op order of keel-tensor's CPU `adam_update`
// (every step separately rounded, so CPU and GPU agree bit for bit).
// alpha = lr * sqrt(1 - beta2^t) / (1 - beta1^t), c1 = 1 - beta1, c2 = 1 - beta2.
// m' = m + (g - m) c1;  v' = v + (g^2 - v) c2;  vh' = max(vh, v') (amsgrad: vh non-null)
// p' = p - (m' alpha) / (sqrt(vh' or v') + eps)
// in: p, grad, m, v, vh; out: p, m, v, vh. p is the parameter after its weight decay.
template <typename T>
__device__ __forceinline__ void adam_multi(const MultiList& L, T alpha, T c1, T c2, T eps) {
    KEEL_MULTI_LOOP(L, k, i) {
        const T g = KEEL_IN(T, L, 1, k)[i];
        const T m = KEEL_IN(T, L, 2, k)[i];
        const T v = KEEL_IN(T, L, 3, k)[i];
        const T mi = rn_add(m, rn_mul(rn_sub(g, m), c1));
        const T vi = rn_add(v, rn_mul(rn_sub(rn_mul(g, g), v), c2));
        T d = vi;
        const T* vh = KEEL_IN(T, L, 4, k);
        if (vh != nullptr) {
            const T h = vh[i];
            d = (h >= vi) ? h : vi;  // ties and NaN as the CPU's `if x >= y { x } else { y }`
            KEEL_OUT(T, L, 3, k)[i] = d;
        }
        KEEL_OUT(T, L, 1, k)[i] = mi;
        KEEL_OUT(T, L, 2, k)[i] = vi;
        KEEL_OUT(T, L, 0, k)[i] =
            rn_sub(multi_param<T>(L, k, i), rn_div(rn_mul(mi, alpha), rn_add(rn_sqrt(d), eps)));
    }
}

#define KEEL_OPTIM_KERNELS(TN, T)                                                                  \
    extern "C" __global__ void sgd_multi_##TN(const MultiList L, T lr, T momentum, int nesterov) {  \
        sgd_multi<T>(L, lr, momentum, nesterov);                                                   \
    }                                                                                              \
    extern "C" __global__ void adam_multi_##TN(const MultiList L, T alpha, T c1, T c2, T eps) {     \
        adam_multi<T>(L, alpha, c1, c2, eps);                                                      \
    }

KEEL_OPTIM_KERNELS(f32, float)
KEEL_OPTIM_KERNELS(f64, double)
