//! [`Hashing`]: integer values to hash bins, with TensorFlow's own hashes (Keras's
//! preprocessing layer, for integer inputs).

use super::categorical::{
    categorical_layer_common, check_batch, encoded_sample_shape, ids_output, rank_error, read_ids, who, OutputMode,
};
use crate::layer::{common_builders, layer_common, with_name, Ctx, Layer};
use crate::{Error, Result};
use keel_autograd::Var;

/// Keras's `Hashing(num_bins, mask_value, salt)` for integer inputs (I64, U8, or floats holding
/// whole numbers; keel has no string tensors): each value, written in decimal as TensorFlow's
/// `as_string` does, hashed as Keras 3 hashes it (TensorFlow's `to_hash_bucket_fast`, FarmHash
/// `Fingerprint64`, without a salt; `to_hash_bucket_strong`, SipHash-2-4 keyed by the two salt
/// words, with one) and taken modulo the bins. With a `mask_value`, bin 0 is that value's and the
/// others hash into `1..num_bins`. Output I64 bins ([`OutputMode::Int`], Keras's int64) or
/// their encoding (F32). Not differentiable; computed on the host, the output on the input's
/// device.
///
/// ```
/// use keel_nn::{Ctx, Hashing, Layer};
/// use keel_autograd::Var;
/// use keel_tensor::Tensor;
/// let layer = Hashing::new(3);
/// let x = Tensor::from_vec(vec![1i64, 2, 3, 4], (4, 1))?;
/// let y = layer.forward(&Var::constant(x), &mut Ctx::inference())?;
/// assert_eq!(y.value().to_vec::<i64>()?, vec![0, 1, 0, 2]); // Keras's bins
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Hashing {
    name: String,
    input_shape: Option<Vec<usize>>,
    num_bins: usize,
    mask_value: Option<i64>,
    salt: Option<[u64; 2]>,
    mode: OutputMode,
    built: bool,
}

common_builders!(Hashing);

impl Hashing {
    /// Hash into `num_bins` bins (FarmHash, no mask, int output).
    pub fn new(num_bins: usize) -> Self {
        Hashing {
            name: String::new(),
            input_shape: None,
            num_bins,
            mask_value: None,
            salt: None,
            mode: OutputMode::Int,
            built: false,
        }
    }

    /// Reserve bin 0 for this value.
    pub fn mask_value(mut self, value: Option<i64>) -> Self {
        self.mask_value = value;
        self
    }

    /// Hash with SipHash keyed by `salt` (Keras's `salt=[a, b]`; `salt=n` is `[n, n]`).
    pub fn salt(mut self, salt: Option<[u64; 2]>) -> Self {
        self.salt = salt;
        self
    }

    /// Output bins ([`OutputMode::Int`], the default) or their encoding.
    pub fn output_mode(mut self, mode: OutputMode) -> Self {
        self.mode = mode;
        self
    }

    fn who(&self) -> String {
        who(&self.name, "Hashing")
    }

    fn check(&self) -> Result<()> {
        if self.num_bins == 0 {
            return Err(Error::config(self.who(), "num_bins must be >= 1"));
        }
        Ok(())
    }

    /// The bin of `v`.
    fn bin(&self, v: i64) -> i64 {
        let mut bins = self.num_bins as u64;
        let masked = self.mask_value.is_some() && bins > 1;
        if masked {
            if self.mask_value == Some(v) {
                return 0;
            }
            bins -= 1;
        }
        let s = v.to_string();
        let h = match self.salt {
            Some([k0, k1]) => siphash24(k0, k1, s.as_bytes()),
            None => fingerprint64(s.as_bytes()),
        };
        (h % bins) as i64 + i64::from(masked)
    }
}

const K0: u64 = 0xc3a5_c85c_97cb_3127;
const K1: u64 = 0xb492_b66f_be98_f273;
const K2: u64 = 0x9ae1_6a3b_2f90_404f;

fn fetch64(s: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&s[i..i + 8]);
    u64::from_le_bytes(b)
}

fn fetch32(s: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&s[i..i + 4]);
    u64::from(u32::from_le_bytes(b))
}

fn hash_len16(u: u64, v: u64, mul: u64) -> u64 {
    let mut a = (u ^ v).wrapping_mul(mul);
    a ^= a >> 47;
    let mut b = (v ^ a).wrapping_mul(mul);
    b ^= b >> 47;
    b.wrapping_mul(mul)
}

/// FarmHash's `Fingerprint64` (`farmhashna::Hash64`) for strings of at most 32 bytes (an i64
/// in decimal has at most 20), as TensorFlow's `Fingerprint64`.
fn fingerprint64(s: &[u8]) -> u64 {
    let n = s.len();
    let mul = K2.wrapping_add(2 * n as u64);
    match n {
        0 => K2,
        1..=3 => {
            let (a, b, c) = (u32::from(s[0]), u32::from(s[n >> 1]), u32::from(s[n - 1]));
            let y = a.wrapping_add(b << 8);
            let z = (n as u32).wrapping_add(c << 2);
            let m = u64::from(y).wrapping_mul(K2) ^ u64::from(z).wrapping_mul(K0);
            (m ^ (m >> 47)).wrapping_mul(K2)
        }
        4..=7 => hash_len16((n as u64).wrapping_add(fetch32(s, 0) << 3), fetch32(s, n - 4), mul),
        8..=16 => {
            let a = fetch64(s, 0).wrapping_add(K2);
            let b = fetch64(s, n - 8);
            let c = b.rotate_right(37).wrapping_mul(mul).wrapping_add(a);
            let d = a.rotate_right(25).wrapping_add(b).wrapping_mul(mul);
            hash_len16(c, d, mul)
        }
        _ => {
            // 17..=32 bytes (longer strings are never written by an i64)
            let a = fetch64(s, 0).wrapping_mul(K1);
            let b = fetch64(s, 8);
            let c = fetch64(s, n - 8).wrapping_mul(mul);
            let d = fetch64(s, n - 16).wrapping_mul(K2);
            hash_len16(
                a.wrapping_add(b).rotate_right(43).wrapping_add(c.rotate_right(30)).wrapping_add(d),
                a.wrapping_add(b.wrapping_add(K2).rotate_right(18)).wrapping_add(c),
                mul,
            )
        }
    }
}

/// SipHash-2-4 keyed by `(k0, k1)`, as TensorFlow's `StrongKeyedHash`.
fn siphash24(k0: u64, k1: u64, m: &[u8]) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let round = |v: &mut [u64; 4]| {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    };
    let end = m.len() - m.len() % 8;
    for i in (0..end).step_by(8) {
        let w = fetch64(m, i);
        v[3] ^= w;
        round(&mut v);
        round(&mut v);
        v[0] ^= w;
    }
    let mut last = ((m.len() & 0xff) as u64) << 56;
    for (j, &b) in m[end..].iter().enumerate() {
        last |= u64::from(b) << (8 * j);
    }
    v[3] ^= last;
    round(&mut v);
    round(&mut v);
    v[0] ^= last;
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

impl Layer for Hashing {
    layer_common!("Hashing");
    categorical_layer_common!(check);

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        encoded_sample_shape(input_shape, self.mode, self.num_bins)
            .ok_or_else(|| rank_error(&self.name, "Hashing", self.mode, input_shape))
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        self.check()?;
        check_batch(x, &self.name, "Hashing")?;
        self.output_shape(&x.dims()[1..])?;
        let bins: Vec<i64> = read_ids(x.value(), &self.who())?.into_iter().map(|v| self.bin(v)).collect();
        ids_output(bins, x, self.mode, self.num_bins, &self.who(), ctx)
    }

    fn config(&self) -> serde_json::Value {
        with_name(
            &self.name,
            serde_json::json!({
                "num_bins": self.num_bins,
                "mask_value": self.mask_value,
                "salt": self.salt,
                "output_mode": self.mode,
                "sparse": false,
            }),
        )
    }
}
