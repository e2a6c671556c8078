//! Philox4x32-10 counter-based random numbers (`kernels/rng.cu`), with a bit-exact CPU
//! reference.
//!
//! # Algorithm (the CPU side must reproduce this exactly)
//!
//! * Key `(k0, k1) = (lo32(seed), hi32(seed))`.
//! * Element `e` of a stream (`e = start + i` for output index `i`) belongs to block
//!   `q = e / 4` and uses word `e % 4` of that block.
//! * Block `q` is Philox4x32-10 of counter `(c0, c1, c2, c3) = (lo32(q), hi32(q),
//!   lo32(subseq), hi32(subseq))`: ten rounds of
//!   `hi0:lo0 = 0xD2511F53 * c0`, `hi1:lo1 = 0xCD9E8D57 * c2` (32x32 -> 64-bit products),
//!   `(c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)`, and after each round
//!   `k0 += 0x9E3779B9`, `k1 += 0xBB67AE85` (wrapping). The output words are the final
//!   `(c0, c1, c2, c3)`. With `subseq = 0` the counter of element `i` is `(i / 4, 0, 0, 0)`.
//! * Uniform: `u = (word >> 8) * 2^-24` in `[0, 1)`; `out = low + u * (high - low)` in f32
//!   with separate roundings (no FMA). Bit-exact on CPU and GPU.
//! * Normal (Box-Muller, per word pair (0,1) and (2,3) of a block), in f64:
//!   `u1 = ((w_even >> 8) + 1) * 2^-24` in `(0, 1]`, `u2 = (w_odd >> 8) * 2^-24`,
//!   `r = sqrt(-2 ln u1)`, `t = 2 pi u2`; the even element is `r cos t`, the odd one
//!   `r sin t`; `out = (f32)(mean + std * z)`, the f64 multiply and add each rounded (no
//!   FMA), then one rounding to f32. The words are bit-exact; the f64 `log`/`sin`/`cos` of
//!   CUDA (within 1-2 ulp) and of the host libm may differ in the last f64 bits, which
//!   changes the f32 result only in rare rounding-boundary cases.
//! * Dropout: element kept when its uniform `u >= p`; `out = x / (1 - p)` or 0.

use cudarc::driver::{CudaView, CudaViewMut};

use crate::device::{check_len, CudaDevice};
use crate::error::{Error, Result};
use crate::sources::programs;

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;
/// 2^-24.
const TWO_POW_M24: f64 = 1.0 / 16_777_216.0;

/// Philox4x32-10 of one counter under one key (CPU reference).
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let [mut c0, mut c1, mut c2, mut c3] = counter;
    let [mut k0, mut k1] = key;
    for _ in 0..10 {
        let p0 = u64::from(M0) * u64::from(c0);
        let p1 = u64::from(M1) * u64::from(c2);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0);
        k0 = k0.wrapping_add(W0);
        k1 = k1.wrapping_add(W1);
    }
    [c0, c1, c2, c3]
}

/// The four words of block `q` of stream (`seed`, `subseq`).
pub fn philox_block(q: u64, seed: u64, subseq: u64) -> [u32; 4] {
    philox4x32_10(
        [q as u32, (q >> 32) as u32, subseq as u32, (subseq >> 32) as u32],
        [seed as u32, (seed >> 32) as u32],
    )
}

/// Maps a word to `[0, 1)` with 24 bits.
pub fn word_to_unit(w: u32) -> f32 {
    (w >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// CPU reference of [`uniform_f32`]: `n` values starting at stream element `start`.
pub fn uniform_cpu(seed: u64, subseq: u64, start: u64, n: usize, low: f32, high: f32) -> Vec<f32> {
    let span = high - low;
    (0..n as u64)
        .map(|i| {
            let e = start + i;
            let w = philox_block(e / 4, seed, subseq)[(e % 4) as usize];
            low + word_to_unit(w) * span
        })
        .collect()
}

/// CPU reference of [`normal_f32`].
pub fn normal_cpu(seed: u64, subseq: u64, start: u64, n: usize, mean: f32, std: f32) -> Vec<f32> {
    (0..n as u64)
        .map(|i| {
            let e = start + i;
            let w = philox_block(e / 4, seed, subseq);
            let pair = ((e % 4) / 2) as usize;
            let u1 = f64::from((w[2 * pair] >> 8) + 1) * TWO_POW_M24;
            let u2 = f64::from(w[2 * pair + 1] >> 8) * TWO_POW_M24;
            let r = (-2.0 * u1.ln()).sqrt();
            let t = std::f64::consts::TAU * u2;
            let z = if e % 2 == 0 { r * t.cos() } else { r * t.sin() };
            (f64::from(mean) + f64::from(std) * z) as f32
        })
        .collect()
}

fn rng_cfg(dev: &CudaDevice, start: u64, n: usize) -> cudarc::driver::LaunchConfig {
    let blocks = ((start + n as u64).div_ceil(4) - start / 4) as usize;
    dev.cfg_1d(blocks)
}

/// Fills `out` with uniform values in `[low, high)` from stream (`seed`, `subseq`),
/// elements `start .. start + out.len()`.
pub fn uniform_f32(
    dev: &CudaDevice,
    out: &mut CudaViewMut<'_, f32>,
    seed: u64,
    subseq: u64,
    start: u64,
    low: f32,
    high: f32,
) -> Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let n = out.len() as i64;
    let cfg = rng_cfg(dev, start, out.len());
    launch!(dev, programs::rng(), "rng_uniform_f32", cfg, [out, &n, &seed, &subseq, &start, &low, &high])
}

/// Fills `out` with normal values (`mean`, `std`) from stream (`seed`, `subseq`).
pub fn normal_f32(
    dev: &CudaDevice,
    out: &mut CudaViewMut<'_, f32>,
    seed: u64,
    subseq: u64,
    start: u64,
    mean: f32,
    std: f32,
) -> Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let n = out.len() as i64;
    let cfg = rng_cfg(dev, start, out.len());
    launch!(dev, programs::rng(), "rng_normal_f32", cfg, [out, &n, &seed, &subseq, &start, &mean, &std])
}

/// Inverted dropout with drop probability `p`: `out = keep ? x / (1 - p) : 0`, `mask = keep`.
pub fn dropout_f32(
    dev: &CudaDevice,
    x: &CudaView<'_, f32>,
    out: &mut CudaViewMut<'_, f32>,
    mask: &mut CudaViewMut<'_, u8>,
    seed: u64,
    subseq: u64,
    start: u64,
    p: f32,
) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::arg("dropout", format!("p = {p} is not in [0, 1]")));
    }
    check_len("dropout", "out", out.len(), x.len())?;
    check_len("dropout", "mask", mask.len(), x.len())?;
    if x.is_empty() {
        return Ok(());
    }
    let n = x.len() as i64;
    let cfg = rng_cfg(dev, start, x.len());
    launch!(dev, programs::rng(), "rng_dropout_f32", cfg, [x, out, mask, &n, &seed, &subseq, &start, &p])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors of Philox4x32-10 (Random123's kat_vectors).
    #[test]
    fn philox_known_answers() {
        assert_eq!(philox4x32_10([0, 0, 0, 0], [0, 0]), [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]);
        assert_eq!(philox4x32_10([u32::MAX; 4], [u32::MAX; 2]), [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]);
        assert_eq!(
            philox4x32_10([0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344], [0xa409_3822, 0x299f_31d0]),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn uniform_range_and_offsets() {
        let a = uniform_cpu(7, 0, 0, 10, -1.0, 1.0);
        let b = uniform_cpu(7, 0, 3, 7, -1.0, 1.0);
        assert_eq!(&a[3..], &b[..]);
        assert!(a.iter().all(|v| (-1.0..1.0).contains(v)));
        let n = normal_cpu(7, 0, 0, 4000, 0.0, 1.0);
        let mean: f32 = n.iter().sum::<f32>() / n.len() as f32;
        assert!(mean.abs() < 0.1, "{mean}");
    }
}
