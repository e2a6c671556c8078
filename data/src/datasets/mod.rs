//! Ready-made datasets embedded in the crate (no download needed).
//!
//! - [`mnist`]: 10k MNIST digits (or the full set from a directory).
//! - [`breast_cancer`], [`wine`], [`iris`]: classification tables, `(x F32 [N, F], y I64 [N])`.
//! - [`diabetes`]: regression table, `(x F32 [442, 10], y F32 [442])`.
//!
//! The tables come from scikit-learn's bundled copies of the UCI datasets; see
//! `data/PROVENANCE.md`.

pub mod mnist;

use crate::csv::{parse_csv, CsvOptions};
use crate::Result;
use keel_tensor::{DType, Tensor};

static BREAST_CANCER: &str = include_str!("../../tabular/breast_cancer.csv");
static WINE: &str = include_str!("../../tabular/wine.csv");
static IRIS: &str = include_str!("../../tabular/iris.csv");
static DIABETES: &str = include_str!("../../tabular/diabetes.csv");

fn table(text: &str, name: &str, classes: bool) -> Result<(Tensor, Tensor)> {
    let t = parse_csv(text, name, &CsvOptions::new().label("target"))?;
    let y = if classes { t.y.to_dtype(DType::I64)? } else { t.y };
    Ok((t.x, y))
}

/// Breast cancer Wisconsin: x F32 `[569, 30]`, y I64 `[569]` (0 = malignant, 1 = benign).
pub fn breast_cancer() -> Result<(Tensor, Tensor)> {
    table(BREAST_CANCER, "embedded tabular/breast_cancer.csv", true)
}

/// Wine recognition: x F32 `[178, 13]`, y I64 `[178]` in {0, 1, 2}.
pub fn wine() -> Result<(Tensor, Tensor)> {
    table(WINE, "embedded tabular/wine.csv", true)
}

/// Iris: x F32 `[150, 4]`, y I64 `[150]` in {0, 1, 2}.
pub fn iris() -> Result<(Tensor, Tensor)> {
    table(IRIS, "embedded tabular/iris.csv", true)
}

/// Diabetes (raw, unscaled features): x F32 `[442, 10]`, y F32 `[442]` (disease progression).
pub fn diabetes() -> Result<(Tensor, Tensor)> {
    table(DIABETES, "embedded tabular/diabetes.csv", false)
}
