//! Element types: [`DType`] and the [`WithDType`] trait linking Rust scalars to it.

use half::{bf16, f16};
use serde::{Deserialize, Serialize};

/// The element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DType {
    /// 32-bit float, the default.
    F32,
    /// 64-bit float, used for references and finite-difference gradient checks.
    F64,
    /// IEEE half precision (storage only; ops accumulate in f32).
    F16,
    /// bfloat16 (storage only; ops accumulate in f32).
    BF16,
    /// 64-bit signed integer, for labels and indices.
    I64,
    /// 8-bit unsigned integer, for raw images and boolean masks.
    U8,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::F16 | DType::BF16 => 2,
            DType::U8 => 1,
        }
    }

    /// True for the floating-point dtypes.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
    }

    /// Every dtype, in declaration order.
    pub const ALL: [DType; 6] = [DType::F32, DType::F64, DType::F16, DType::BF16, DType::I64, DType::U8];

    /// Lower-case name as NumPy spells it (`float32`, `int64`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::I64 => "int64",
            DType::U8 => "uint8",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Rust scalar type that can be the element of a tensor.
pub trait WithDType: Copy + Send + Sync + 'static + std::fmt::Debug + PartialOrd {
    /// The dtype this scalar maps to.
    const DTYPE: DType;
    /// Convert to f64 (exact for every dtype but large i64).
    fn to_f64(self) -> f64;
    /// Convert from f64, rounding (floats) or truncating and saturating (integers).
    fn from_f64(v: f64) -> Self;
    /// Wrap a vector of this type as CPU storage.
    fn to_cpu_storage(v: Vec<Self>) -> crate::CpuStorage;
    /// Borrow the slice of this type from CPU storage, if the dtype matches.
    fn cpu_slice(s: &crate::CpuStorage) -> Option<&[Self]>;
}

macro_rules! with_dtype {
    ($t:ty, $dt:ident, $to:expr, $from:expr) => {
        impl WithDType for $t {
            const DTYPE: DType = DType::$dt;
            #[inline]
            fn to_f64(self) -> f64 {
                $to(self)
            }
            #[inline]
            fn from_f64(v: f64) -> Self {
                $from(v)
            }
            fn to_cpu_storage(v: Vec<Self>) -> crate::CpuStorage {
                crate::CpuStorage::$dt(v)
            }
            fn cpu_slice(s: &crate::CpuStorage) -> Option<&[Self]> {
                match s {
                    crate::CpuStorage::$dt(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}

with_dtype!(f32, F32, |x: f32| x as f64, |v: f64| v as f32);
with_dtype!(f64, F64, |x: f64| x, |v: f64| v);
with_dtype!(f16, F16, |x: f16| x.to_f64(), f64_to_f16);
with_dtype!(bf16, BF16, |x: bf16| x.to_f64(), f64_to_bf16);
with_dtype!(i64, I64, |x: i64| x as f64, |v: f64| v as i64);
with_dtype!(u8, U8, |x: u8| x as f64, |v: f64| v as u8);

/// `v` rounded to f32 by round-to-odd: exact values stay, any other rounds toward zero and
/// sets the last bit. Rounding that to a format with at least two fewer bits (f16, bf16)
/// to nearest-even is the correctly rounded conversion of `v` (no double rounding).
fn f64_to_f32_odd(v: f64) -> f32 {
    let t = v as f32;
    if v.is_nan() || t as f64 == v {
        return t;
    }
    // rounded away from zero (|t| > |v|, so t != 0; an overflow to inf steps to f32::MAX)
    let bits = if (t as f64).abs() > v.abs() { t.to_bits() - 1 } else { t.to_bits() };
    f32::from_bits(bits | 1)
}

/// `v` rounded to f32 by round-to-odd (exact below 2^24; see [`f64_to_f32_odd`]).
fn i64_to_f32_odd(v: i64) -> f32 {
    let m = v.unsigned_abs();
    let shift = (u64::BITS - m.leading_zeros()).saturating_sub(f32::MANTISSA_DIGITS);
    let kept = m >> shift;
    // at most 24 significant bits: the conversion is exact
    let f = ((kept | u64::from(kept << shift != m)) << shift) as f32;
    if v < 0 {
        -f
    } else {
        f
    }
}

/// `v` correctly rounded (to nearest, ties to even) to f16; overflow gives +-inf.
pub(crate) fn f64_to_f16(v: f64) -> f16 {
    f16::from_f32(f64_to_f32_odd(v))
}

/// `v` correctly rounded (to nearest, ties to even) to bf16; overflow gives +-inf.
pub(crate) fn f64_to_bf16(v: f64) -> bf16 {
    bf16::from_f32(f64_to_f32_odd(v))
}

/// `v` correctly rounded (to nearest, ties to even) to f16.
pub(crate) fn i64_to_f16(v: i64) -> f16 {
    f16::from_f32(i64_to_f32_odd(v))
}

/// `v` correctly rounded (to nearest, ties to even) to bf16.
pub(crate) fn i64_to_bf16(v: i64) -> bf16 {
    bf16::from_f32(i64_to_f32_odd(v))
}
