//! `Display` for tensors, in NumPy's `str()` style: nested brackets, aligned
//! columns, and `...` for tensors over 1000 elements (three items each edge).

use crate::Tensor;
use std::fmt;

const THRESHOLD: usize = 1000;
const EDGE: usize = 3;

fn fmt_value(v: f64, is_float: bool) -> String {
    if !is_float {
        return format!("{}", v as i64);
    }
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e8).contains(&a) {
        return format!("{v:.4e}");
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0');
    s.to_string()
}

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values = match self.to_vec_f64() {
            Ok(v) => v,
            Err(e) => return write!(f, "<tensor {:?}: {e}>", self.shape()),
        };
        let is_float = self.dtype().is_float();
        let dims = self.dims().to_vec();
        let summarize = values.len() > THRESHOLD;
        let strs: Vec<String> = values.iter().map(|&v| fmt_value(v, is_float)).collect();
        let width = strs.iter().map(|s| s.len()).max().unwrap_or(1);
        if dims.is_empty() {
            return f.write_str(strs.first().map(String::as_str).unwrap_or(""));
        }
        let strides = crate::Shape::from(dims.clone()).contiguous_strides();
        fn rec(
            f: &mut fmt::Formatter<'_>,
            strs: &[String],
            dims: &[usize],
            strides: &[usize],
            d: usize,
            base: usize,
            width: usize,
            summarize: bool,
        ) -> fmt::Result {
            f.write_str("[")?;
            let n = dims[d];
            let show: Vec<Option<usize>> = if summarize && n > 2 * EDGE {
                (0..EDGE).map(Some).chain(std::iter::once(None)).chain((n - EDGE..n).map(Some)).collect()
            } else {
                (0..n).map(Some).collect()
            };
            for (j, item) in show.iter().enumerate() {
                if j > 0 {
                    if d + 1 == dims.len() {
                        f.write_str(" ")?;
                    } else {
                        let blank = dims.len() - d - 1;
                        f.write_str(&"\n".repeat(blank))?;
                        f.write_str(&" ".repeat(d + 1))?;
                    }
                }
                match item {
                    None => f.write_str("...")?,
                    Some(i) => {
                        let off = base + i * strides[d];
                        if d + 1 == dims.len() {
                            write!(f, "{:>width$}", strs[off])?;
                        } else {
                            rec(f, strs, dims, strides, d + 1, off, width, summarize)?;
                        }
                    }
                }
            }
            f.write_str("]")
        }
        if values.is_empty() {
            return f.write_str("[]");
        }
        rec(f, &strs, &dims, &strides, 0, 0, width, summarize)
    }
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    #[test]
    fn prints_like_numpy() {
        let t = Tensor::from_vec(vec![1.0f32, 2.5, -3.0, 4.0], (2, 2)).unwrap();
        assert_eq!(t.to_string(), "[[ 1. 2.5]\n [-3.  4.]]");
        let i = Tensor::from_vec(vec![1i64, 2, 3], 3).unwrap();
        assert_eq!(i.to_string(), "[1 2 3]");
        let big = Tensor::from_vec((0..2000).map(|x| x as i64).collect::<Vec<_>>(), 2000).unwrap();
        assert_eq!(big.to_string(), "[   0    1    2 ... 1997 1998 1999]");
    }
}
