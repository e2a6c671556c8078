// keel sort kernels: a stable LSD radix sort of u32 keys carrying their source positions,
// 8 bits of the key a pass, over tiles of KEEL_SORT_TILE keys (one per thread of a block).
//
// A pass is three launches. radix_histogram counts each tile's digits into `hist`, digit
// major (all tiles' counts of digit 0, then all of digit 1, ...); radix_scan turns those
// counts into exclusive prefix sums, so hist[d * tiles + b] becomes the first output
// position of tile b's keys with digit d; radix_scatter moves each key there, after the
// keys of its tile with the same digit that come before it. Equal digits keep their order,
// so every pass is stable and the sort orders equal keys by source position: no atomics
// decide an order (the histogram's shared-memory counts are integers), and the result does
// not depend on the launch.

#define KEEL_SORT_TILE 256
#define KEEL_SORT_BINS 256
#define KEEL_SCAN_THREADS 512

// hist[d * tiles + b] = how many of tile b's keys have digit (key >> shift) & 255 == d.
extern "C" __global__ void radix_histogram(const u32* __restrict__ keys, i64 n, i64 shift, u32* __restrict__ hist,
                                           i64 tiles) {
    __shared__ u32 count[KEEL_SORT_BINS];
    const int t = threadIdx.x;
    count[t] = 0u;
    __syncthreads();
    const i64 e = (i64)blockIdx.x * KEEL_SORT_TILE + t;
    if (e < n) atomicAdd(&count[(keys[e] >> shift) & (KEEL_SORT_BINS - 1)], 1u);
    __syncthreads();
    hist[(i64)t * tiles + blockIdx.x] = count[t];
}

// In place exclusive prefix sum of hist[0..m), by one block of KEEL_SCAN_THREADS threads:
// each sums a contiguous stretch, the block scans those sums, each writes its stretch.
extern "C" __global__ void radix_scan(u32* __restrict__ hist, i64 m) {
    __shared__ u32 sums[KEEL_SCAN_THREADS];
    const int t = threadIdx.x;
    const i64 per = (m + KEEL_SCAN_THREADS - 1) / KEEL_SCAN_THREADS;
    const i64 lo = t * per < m ? t * per : m;
    const i64 hi = lo + per < m ? lo + per : m;
    u32 s = 0u;
    for (i64 i = lo; i < hi; ++i) s += hist[i];
    sums[t] = s;
    __syncthreads();
    for (int off = 1; off < KEEL_SCAN_THREADS; off <<= 1) {
        const u32 v = t >= off ? sums[t - off] : 0u;
        __syncthreads();
        sums[t] += v;
        __syncthreads();
    }
    u32 run = t > 0 ? sums[t - 1] : 0u;
    for (i64 i = lo; i < hi; ++i) {
        const u32 c = hist[i];
        hist[i] = run;
        run += c;
    }
}

// One pass's move: key e of tile b (digit d) goes to start[d * tiles + b] plus the number of
// keys before it in its tile with digit d. Its value goes with it: vals[e], or e itself on
// the first pass (first != 0), which is how the values become source positions.
extern "C" __global__ void radix_scatter(const u32* __restrict__ keys, const u32* __restrict__ vals, i64 n, i64 shift,
                                         i64 first, const u32* __restrict__ start, i64 tiles,
                                         u32* __restrict__ keys_out, u32* __restrict__ vals_out) {
    __shared__ u32 digits[KEEL_SORT_TILE];
    const int t = threadIdx.x;
    const i64 e = (i64)blockIdx.x * KEEL_SORT_TILE + t;
    const bool live = e < n;
    const u32 k = live ? keys[e] : 0u;
    const u32 d = live ? (k >> shift) & (KEEL_SORT_BINS - 1) : (u32)KEEL_SORT_BINS;
    digits[t] = d;
    __syncthreads();
    if (!live) return;
    u32 rank = 0u;
    for (int i = 0; i < t; ++i) rank += digits[i] == d ? 1u : 0u;
    const u32 at = start[(i64)d * tiles + blockIdx.x] + rank;
    keys_out[at] = k;
    vals_out[at] = first ? (u32)e : vals[e];
}
