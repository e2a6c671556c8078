//! Projective (affine) image transforms over NHWC data.

use crate::{Result, Var};
use keel_tensor::{AffineParams, FillMode, ImageInterpolation, Tensor};

impl Var {
    /// Resample NHWC images `[n, h, w, c]` through projective `transforms` (`[n, 8]` or
    /// `[1, 8]`, a constant: TensorFlow/Keras's convention, see
    /// [`Tensor::affine_transform`]). The rule is the transpose of the sampling
    /// ([`Tensor::affine_transform_grad`]) and keeps only the transforms; no gradient
    /// reaches them.
    pub fn affine_transform(
        &self,
        transforms: &Tensor,
        interpolation: ImageInterpolation,
        fill_mode: FillMode,
        fill_value: f64,
    ) -> Result<Var> {
        let out = self.value().affine_transform(transforms, interpolation, fill_mode, fill_value)?;
        let p = AffineParams::new(
            "affine_transform",
            self.shape(),
            transforms.shape(),
            interpolation,
            fill_mode,
            fill_value,
        )?;
        Var::record("affine_transform", &[self], out, |needs| {
            let t = needs[0].then(|| transforms.clone());
            move |g: &Tensor| match &t {
                Some(t) => Ok(vec![Some(g.affine_transform_grad(t, &p)?)]),
                None => Ok(vec![None]),
            }
        })
    }
}
