// keel Philox4x32-10 counter-based RNG. The exact algorithm is specified in the Rust docs
// of `keel_cuda_kernels::ops::rng`; keep the two in sync.

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

struct PhiloxOut { u32 r[4]; };

__device__ __forceinline__ PhiloxOut philox4x32_10(u32 c0, u32 c1, u32 c2, u32 c3, u32 k0, u32 k1) {
#pragma unroll
    for (int round = 0; round < 10; ++round) {
        const u32 hi0 = __umulhi(PHILOX_M0, c0);
        const u32 lo0 = PHILOX_M0 * c0;
        const u32 hi1 = __umulhi(PHILOX_M1, c2);
        const u32 lo1 = PHILOX_M1 * c2;
        const u32 n0 = hi1 ^ c1 ^ k0;
        const u32 n2 = hi0 ^ c3 ^ k1;
        c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    PhiloxOut o;
    o.r[0] = c0; o.r[1] = c1; o.r[2] = c2; o.r[3] = c3;
    return o;
}

// The 4 words of Philox block q (counter = (lo(q), hi(q), lo(subseq), hi(subseq)), key = seed).
__device__ __forceinline__ PhiloxOut philox_block(u64 q, u64 seed, u64 subseq) {
    return philox4x32_10((u32)q, (u32)(q >> 32), (u32)subseq, (u32)(subseq >> 32), (u32)seed,
                         (u32)(seed >> 32));
}

// 24 high bits -> [0, 1)
__device__ __forceinline__ float u32_to_unit(u32 r) { return (float)(r >> 8) * 5.9604644775390625e-8f; }

// Element e (logical index start + i) of the stream uses word (e % 4) of block e / 4.
// out[i] = low + u * (high - low), no FMA contraction.
extern "C" __global__ void rng_uniform_f32(float* __restrict__ out, i64 n, u64 seed, u64 subseq,
                                           u64 start, float low, float high) {
    const u64 first_block = start >> 2;
    const u64 last_block = (start + (u64)n + 3) >> 2;  // exclusive
    const float span = __fsub_rn(high, low);
    for (u64 b = first_block + (u64)blockIdx.x * blockDim.x + threadIdx.x; b < last_block;
         b += (u64)blockDim.x * gridDim.x) {
        const PhiloxOut o = philox_block(b, seed, subseq);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const u64 e = (b << 2) + j;
            if (e >= start && e < start + (u64)n) {
                out[e - start] = __fadd_rn(low, __fmul_rn(u32_to_unit(o.r[j]), span));
            }
        }
    }
}

// Box-Muller on word pairs (0,1) and (2,3) of each block, in double precision:
// u1 = ((r_even >> 8) + 1) * 2^-24 in (0, 1], u2 = (r_odd >> 8) * 2^-24,
// radius = sqrt(-2 ln u1), theta = 2 pi u2; even element = radius * cos(theta),
// odd element = radius * sin(theta); out = (float)(mean + std * z) rounded once.
extern "C" __global__ void rng_normal_f32(float* __restrict__ out, i64 n, u64 seed, u64 subseq,
                                          u64 start, float mean, float stddev) {
    const u64 first_block = start >> 2;
    const u64 last_block = (start + (u64)n + 3) >> 2;
    for (u64 b = first_block + (u64)blockIdx.x * blockDim.x + threadIdx.x; b < last_block;
         b += (u64)blockDim.x * gridDim.x) {
        const PhiloxOut o = philox_block(b, seed, subseq);
#pragma unroll
        for (int p = 0; p < 2; ++p) {
            const double u1 = (double)((o.r[2 * p] >> 8) + 1u) * 5.9604644775390625e-8;
            const double u2 = (double)(o.r[2 * p + 1] >> 8) * 5.9604644775390625e-8;
            const double radius = sqrt(-2.0 * log(u1));
            const double theta = 6.283185307179586476925286766559 * u2;
            const double z[2] = {radius * cos(theta), radius * sin(theta)};
#pragma unroll
            for (int j = 0; j < 2; ++j) {
                const u64 e = (b << 2) + 2 * p + j;
                if (e >= start && e < start + (u64)n) {
                    // multiply and add rounded separately (no FMA contraction), as on the host
                    out[e - start] = (float)__dadd_rn((double)mean, __dmul_rn((double)stddev, z[j]));
                }
            }
        }
    }
}

// Inverted dropout: keep element e when its uniform u >= p; out = keep ? x / (1 - p) : 0,
// mask[i] = keep. Uses the same stream/words as rng_uniform_f32.
extern "C" __global__ void rng_dropout_f32(const float* __restrict__ x, float* __restrict__ out,
                                           u8* __restrict__ mask, i64 n, u64 seed, u64 subseq,
                                           u64 start, float p) {
    const u64 first_block = start >> 2;
    const u64 last_block = (start + (u64)n + 3) >> 2;
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    for (u64 b = first_block + (u64)blockIdx.x * blockDim.x + threadIdx.x; b < last_block;
         b += (u64)blockDim.x * gridDim.x) {
        const PhiloxOut o = philox_block(b, seed, subseq);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const u64 e = (b << 2) + j;
            if (e >= start && e < start + (u64)n) {
                const i64 i = (i64)(e - start);
                const bool keep = u32_to_unit(o.r[j]) >= p;
                out[i] = keep ? x[i] * scale : 0.0f;
                mask[i] = keep ? 1 : 0;
            }
        }
    }
}
