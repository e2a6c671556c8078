//! Conversion between dtypes (`Tensor::to_dtype`). Floats round to nearest (ties to
//! even), once: every conversion is correctly rounded (I64 and F64 to F16/BF16 too);
//! float to integer truncates toward zero and saturates (NaN becomes 0), as Rust's `as`
//! does; I64 to U8 clamps.

use crate::dtype::{f64_to_bf16, f64_to_f16, i64_to_bf16, i64_to_f16};
use crate::{CpuStorage, DType, Layout, Result, WithDType};
use half::{bf16, f16};

fn convert<T: WithDType>(v: &[T], l: &Layout, dtype: DType) -> CpuStorage {
    let mut idx = Vec::with_capacity(l.shape().elem_count());
    match l.contiguous_range() {
        Some((s, e)) => idx.extend(s..e),
        None => l.for_each_offset(|o| idx.push(o)),
    }
    macro_rules! to {
        ($variant:ident, $f:expr) => {
            CpuStorage::$variant(idx.iter().map(|&i| $f(v[i])).collect())
        };
    }
    // float and U8 sources: `to_f64` is exact, then one rounding (I64 sources: `cpu_to_dtype`)
    match (T::DTYPE, dtype) {
        (DType::F32, DType::F16) => to!(F16, |x: T| f16::from_f32(x.to_f64() as f32)),
        (DType::F32, DType::BF16) => to!(BF16, |x: T| bf16::from_f32(x.to_f64() as f32)),
        (_, DType::F32) => to!(F32, |x: T| x.to_f64() as f32),
        (_, DType::F64) => to!(F64, |x: T| x.to_f64()),
        (_, DType::F16) => to!(F16, |x: T| f64_to_f16(x.to_f64())),
        (_, DType::BF16) => to!(BF16, |x: T| f64_to_bf16(x.to_f64())),
        (_, DType::I64) => to!(I64, |x: T| x.to_f64() as i64),
        (_, DType::U8) => to!(U8, |x: T| x.to_f64() as u8),
    }
}

/// A contiguous copy of the elements `l` selects, converted to `dtype`.
pub(crate) fn cpu_to_dtype(s: &CpuStorage, l: &Layout, dtype: DType) -> Result<CpuStorage> {
    if s.dtype() == dtype {
        return s.copy_strided(l);
    }
    Ok(match s {
        CpuStorage::F32(v) => convert(v, l, dtype),
        CpuStorage::F64(v) => convert(v, l, dtype),
        CpuStorage::F16(v) => convert(v, l, dtype),
        CpuStorage::BF16(v) => convert(v, l, dtype),
        // from the integers themselves, rounded once (no f64 detour, which rounds above 2^53)
        CpuStorage::I64(v) => {
            let xs = l.offsets().into_iter().map(|i| v[i]);
            match dtype {
                DType::U8 => CpuStorage::U8(xs.map(|x| x.clamp(0, 255) as u8).collect()),
                DType::F32 => CpuStorage::F32(xs.map(|x| x as f32).collect()),
                DType::F64 => CpuStorage::F64(xs.map(|x| x as f64).collect()),
                DType::F16 => CpuStorage::F16(xs.map(i64_to_f16).collect()),
                DType::BF16 => CpuStorage::BF16(xs.map(i64_to_bf16).collect()),
                DType::I64 => CpuStorage::I64(xs.collect()),
            }
        }
        CpuStorage::U8(v) => match dtype {
            DType::I64 => CpuStorage::I64(l.offsets().into_iter().map(|i| v[i] as i64).collect()),
            _ => convert(v, l, dtype),
        },
    })
}
