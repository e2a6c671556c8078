//! Counter-based random numbers (Philox4x32-10).
//!
//! Element `i` of a random tensor depends only on `(seed, i)`: block `i / 4` of
//! the Philox stream with key `seed`, lane `i % 4`. So results do not depend on
//! thread count or (later) CUDA launch shape, and the same seed gives the same
//! bits on every run.
//!
//! Spec (the CUDA kernels implement the same):
//! - key `(k0, k1) = (seed as u32, (seed >> 32) as u32)`; counter
//!   `(c0, c1, c2, c3) = (block as u32, (block >> 32) as u32, stream as u32, (stream >> 32) as u32)`.
//! - 10 rounds of `(hi0, lo0) = mulhilo(0xD2511F53, c0); (hi1, lo1) = mulhilo(0xCD9E8D57, c2);
//!   c = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)`, bumping the key by
//!   `(0x9E3779B9, 0xBB67AE85)` between rounds.
//! - uniform `u = (x >> 8) * 2^-24` in `[0, 1)`; value `lo + (hi - lo) * u` in f32.
//! - normal: Box-Muller on lanes (0, 1) and (2, 3): `u1 = ((x0 >> 8) + 1) * 2^-24`,
//!   `u2 = (x1 >> 8) * 2^-24`, `r = sqrt(-2 ln u1)`, `z0 = r cos(2 pi u2)`, `z1 = r sin(2 pi u2)`.

/// One Philox4x32-10 block: four 32-bit outputs for `counter` under `key`.
pub fn philox4x32(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (counter, key);
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(0x9E37_79B9);
            k[1] = k[1].wrapping_add(0xBB67_AE85);
        }
        let p0 = 0xD251_1F53u64 * c[0] as u64;
        let p1 = 0xCD9E_8D57u64 * c[2] as u64;
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

fn block(seed: u64, stream: u64, block: u64) -> [u32; 4] {
    philox4x32(
        [block as u32, (block >> 32) as u32, stream as u32, (stream >> 32) as u32],
        [seed as u32, (seed >> 32) as u32],
    )
}

/// `[0, 1)` from the top 24 bits of `x` (exact in f32).
#[inline]
pub fn u32_to_unit_f32(x: u32) -> f32 {
    (x >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// Elements per parallel task of [`fill_blocks`] (a multiple of 4: tasks start on a block).
#[cfg_attr(not(feature = "cpu"), allow(dead_code))]
const FILL_CHUNK: usize = 1 << 14;

/// `f(block, dst)` for each Philox block of stream 0 under `seed` and the (up to) four
/// elements of `out` it gives: one block per four elements, chunks in parallel when
/// `out` is large. Element `i` still depends only on `(seed, i)`.
fn fill_blocks<T: Send>(out: &mut [T], seed: u64, f: impl Fn([u32; 4], &mut [T]) + Sync) {
    let run = |start: usize, chunk: &mut [T]| {
        for (j, dst) in chunk.chunks_mut(4).enumerate() {
            f(block(seed, 0, (start / 4 + j) as u64), dst);
        }
    };
    #[cfg(feature = "cpu")]
    if out.len() >= 2 * FILL_CHUNK {
        use rayon::prelude::*;
        out.par_chunks_mut(FILL_CHUNK).enumerate().for_each(|(i, c)| run(i * FILL_CHUNK, c));
        return;
    }
    run(0, out)
}

/// `n` uniform samples in `[lo, hi)` for `seed` (element `i` depends only on `seed` and `i`).
pub fn uniform_f32(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut out = vec![0f32; n];
    fill_blocks(&mut out, seed, |b, dst| {
        for (d, &x) in dst.iter_mut().zip(&b) {
            *d = lo + (hi - lo) * u32_to_unit_f32(x);
        }
    });
    out
}

/// `n` normal samples with `mean` and `std` for `seed` (Box-Muller on Philox lanes).
pub fn normal_f32(seed: u64, n: usize, mean: f32, std: f32) -> Vec<f32> {
    let mut out = vec![0f32; n];
    fill_blocks(&mut out, seed, |b, dst| {
        // lanes (0, 1) give elements 0 (cos) and 1 (sin), lanes (2, 3) elements 2 and 3
        for (pair, d) in dst.chunks_mut(2).enumerate() {
            let u1 = ((b[2 * pair] >> 8) + 1) as f32 * (1.0 / 16_777_216.0);
            let u2 = u32_to_unit_f32(b[2 * pair + 1]);
            let r = (-2.0 * u1.ln()).sqrt();
            let theta = 2.0 * std::f32::consts::PI * u2;
            d[0] = mean + std * (r * theta.cos());
            if let Some(d1) = d.get_mut(1) {
                *d1 = mean + std * (r * theta.sin());
            }
        }
    });
    out
}

/// A sequential seeded generator (Philox stream) for shuffles, dropout masks and
/// augmentation parameters. The same seed gives the same sequence everywhere.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rng {
    seed: u64,
    counter: u64,
    buf: [u32; 4],
    used: usize,
}

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng { seed, counter: 0, buf: [0; 4], used: 4 }
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        if self.used == 4 {
            self.buf = block(self.seed, 1, self.counter);
            self.counter += 1;
            self.used = 0;
        }
        self.used += 1;
        self.buf[self.used - 1]
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        ((self.next_u32() as u64) << 32) | self.next_u32() as u64
    }

    /// Uniform in `[0, 1)` with 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }

    /// Uniform integer in `0..n` (`n > 0`), without modulo bias.
    pub fn below(&mut self, n: usize) -> usize {
        if n <= 1 {
            return 0;
        }
        let n = n as u64;
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.next_u64();
            if x < zone {
                return (x % n) as usize;
            }
        }
    }

    /// Shuffle a slice in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }

    /// A fresh seed for a derived generator or a random tensor.
    pub fn fork_seed(&mut self) -> u64 {
        self.next_u64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_known_answer() {
        // Random123 known-answer test for philox4x32-10 (counter = 0, key = 0).
        assert_eq!(philox4x32([0; 4], [0; 2]), [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]);
        // counter = key = all ones.
        assert_eq!(philox4x32([u32::MAX; 4], [u32::MAX; 2]), [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]);
    }

    #[test]
    fn uniform_is_in_range_and_deterministic() {
        let a = uniform_f32(7, 1001, -2.0, 3.0);
        assert_eq!(a, uniform_f32(7, 1001, -2.0, 3.0));
        assert!(a.iter().all(|&x| (-2.0..3.0).contains(&x)));
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        assert!((mean - 0.5).abs() < 0.15, "mean {mean}");
        // prefix property: element i depends only on (seed, i)
        assert_eq!(&uniform_f32(7, 10, -2.0, 3.0)[..], &a[..10]);
    }

    /// The per-element definitions (the module docs' spec, one block per element).
    fn uniform_spec(seed: u64, i: usize, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * u32_to_unit_f32(block(seed, 0, (i / 4) as u64)[i % 4])
    }

    fn normal_spec(seed: u64, i: usize, mean: f32, std: f32) -> f32 {
        let b = block(seed, 0, (i / 4) as u64);
        let pair = (i % 4) / 2 * 2;
        let u1 = ((b[pair] >> 8) + 1) as f32 * (1.0 / 16_777_216.0);
        let u2 = u32_to_unit_f32(b[pair + 1]);
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = 2.0 * std::f32::consts::PI * u2;
        let z = if i % 2 == 0 { r * theta.cos() } else { r * theta.sin() };
        mean + std * z
    }

    #[test]
    fn block_fill_matches_the_per_element_spec() {
        // lengths around a block, and across the parallel chunks (with a ragged end)
        for n in [0, 1, 3, 4, 5, 7, 2 * FILL_CHUNK + 6, 3 * FILL_CHUNK + 1] {
            let u = uniform_f32(11, n, -1.5, 2.0);
            let z = normal_f32(12, n, 0.5, 3.0);
            for i in 0..n {
                assert_eq!(u[i].to_bits(), uniform_spec(11, i, -1.5, 2.0).to_bits(), "uniform {i} of {n}");
                assert_eq!(z[i].to_bits(), normal_spec(12, i, 0.5, 3.0).to_bits(), "normal {i} of {n}");
            }
        }
    }

    #[test]
    fn normal_moments() {
        let v = normal_f32(3, 20000, 1.0, 2.0);
        let m = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / v.len() as f64;
        assert!((m - 1.0).abs() < 0.05, "mean {m}");
        assert!((var.sqrt() - 2.0).abs() < 0.05, "std {}", var.sqrt());
    }

    #[test]
    fn rng_shuffle_is_a_permutation() {
        let mut r = Rng::new(5);
        let mut v: Vec<usize> = (0..100).collect();
        r.shuffle(&mut v);
        let mut s = v.clone();
        s.sort();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
        assert_ne!(v, s);
    }
}
