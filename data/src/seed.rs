//! Deriving independent seeds from `(seed, epoch, index)` tuples.

/// SplitMix64 finaliser: a bijective 64-bit mix.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed derived from `seed` and two counters (e.g. epoch and sample index).
///
/// Depends only on its arguments, so per-image seeds do not depend on the
/// thread count or the batch size.
#[inline]
pub fn derive_seed(seed: u64, a: u64, b: u64) -> u64 {
    mix64(mix64(mix64(seed) ^ a) ^ b.rotate_left(17))
}
