//! MNIST handwritten digits, like `keras.datasets.mnist`.
//!
//! [`load`] returns the 10,000-image subset embedded in this crate (8,000 train,
//! 2,000 test; see `data/PROVENANCE.md`), so examples and tests need no
//! download. [`load_from_dir`] reads the four standard MNIST files from any
//! directory (raw or `.gz`), e.g. the full 60k/10k set.
//!
//! Shapes and dtypes follow Keras: `x` is U8 `[N, 28, 28]`, `y` is U8 `[N]`.
//! [`prepare`] (or [`load_prepared`]) turns them into what a CNN wants: F32
//! `[N, 28, 28, 1]` scaled to `[0, 1]` and F32 one-hot labels `[N, 10]`.

use crate::{idx, Error, Result};
use keel_tensor::{DType, Tensor};
use std::path::Path;

/// `((x_train, y_train), (x_test, y_test))`, as `keras.datasets.mnist.load_data()` returns.
pub type Split = ((Tensor, Tensor), (Tensor, Tensor));

/// The four standard file names: train images, train labels, test images, test labels.
pub const FILE_NAMES: [&str; 4] =
    ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

static EMBEDDED: [&[u8]; 4] = [
    include_bytes!("../../mnist-10k/train-images-idx3-ubyte.gz"),
    include_bytes!("../../mnist-10k/train-labels-idx1-ubyte.gz"),
    include_bytes!("../../mnist-10k/t10k-images-idx3-ubyte.gz"),
    include_bytes!("../../mnist-10k/t10k-labels-idx1-ubyte.gz"),
];

/// Load the embedded 10k MNIST subset: x U8 `[N, 28, 28]`, y U8 `[N]` (8,000 train / 2,000 test).
pub fn load() -> Result<Split> {
    let t: Vec<Tensor> = EMBEDDED
        .iter()
        .zip(FILE_NAMES)
        .map(|(b, n)| idx::decode(b, &format!("embedded mnist-10k/{n}.gz")))
        .collect::<Result<_>>()?;
    assemble(&t, "embedded mnist-10k")
}

/// Load MNIST from `dir` holding the four standard files ([`FILE_NAMES`], each raw or `.gz`).
pub fn load_from_dir(dir: impl AsRef<Path>) -> Result<Split> {
    let dir = dir.as_ref();
    let mut t = Vec::with_capacity(4);
    for name in FILE_NAMES {
        let raw = dir.join(name);
        let gz = dir.join(format!("{name}.gz"));
        let path = if raw.is_file() {
            raw
        } else if gz.is_file() {
            gz
        } else {
            return Err(Error::format(
                dir.display().to_string(),
                format!(
                    "neither {name} nor {name}.gz exists in this directory; put the four MNIST \
                     files ({}) there, raw or gzipped",
                    FILE_NAMES.join(", ")
                ),
            ));
        };
        t.push(idx::read(&path)?);
    }
    assemble(&t, &dir.display().to_string())
}

/// [`load`] then [`prepare`] on both splits: x F32 `[N, 28, 28, 1]` in `[0, 1]`, y F32 one-hot `[N, 10]`.
pub fn load_prepared() -> Result<Split> {
    let ((xtr, ytr), (xte, yte)) = load()?;
    Ok((prepare(&xtr, &ytr)?, prepare(&xte, &yte)?))
}

/// Images U8 `[N, H, W]` -> F32 `[N, H, W, 1]` / 255; labels -> F32 one-hot `[N, 10]`.
pub fn prepare(x: &Tensor, y: &Tensor) -> Result<(Tensor, Tensor)> {
    if x.rank() != 3 {
        return Err(Error::invalid("mnist::prepare", format!("expected images [N, H, W], got shape {:?}", x.dims())));
    }
    let n = x.dims();
    let v: Vec<f32> = x.to_dtype(DType::F32)?.to_vec::<f32>()?.into_iter().map(|p| p / 255.0).collect();
    let x = Tensor::from_vec(v, (n[0], n[1], n[2], 1))?;
    let y = crate::preprocessing::to_categorical(y, Some(10))?;
    Ok((x, y))
}

fn assemble(t: &[Tensor], source: &str) -> Result<Split> {
    let check = |imgs: &Tensor, labels: &Tensor, which: &str| -> Result<()> {
        let bad = |msg: String| Err(Error::format(source, format!("{which}: {msg}")));
        if imgs.rank() != 3 || imgs.dtype() != DType::U8 {
            return bad(format!("images must be u8 [N, rows, cols], got {} {:?}", imgs.dtype(), imgs.dims()));
        }
        if labels.rank() != 1 || labels.dtype() != DType::U8 {
            return bad(format!("labels must be u8 [N], got {} {:?}", labels.dtype(), labels.dims()));
        }
        if imgs.dims()[0] != labels.dims()[0] {
            return bad(format!(
                "{} images but {} labels; the files do not belong together",
                imgs.dims()[0],
                labels.dims()[0]
            ));
        }
        if let Some(l) = labels.to_vec::<u8>()?.into_iter().find(|&l| l > 9) {
            return bad(format!("label {l} is not a digit 0..=9"));
        }
        Ok(())
    };
    check(&t[0], &t[1], "train")?;
    check(&t[2], &t[3], "test")?;
    Ok(((t[0].clone(), t[1].clone()), (t[2].clone(), t[3].clone())))
}
