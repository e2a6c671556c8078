//! [`UpSampling3D`]: each voxel of an NDHWC volume repeated along depth, height and width.

use crate::layer::{common_builders, layer_common, with_name, Ctx, IntoTriple, Layer};
use crate::layers::spatial::{per_sample, repeat_axes, repeated_shape};
use crate::Result;
use keel_autograd::Var;

/// Keras's `UpSampling3D(size=(2, 2, 2))`: `[d, h, w, c] -> [d * size_d, h * size_h,
/// w * size_w, c]`, each voxel repeated in place (nearest). No weights.
pub struct UpSampling3D {
    name: String,
    input_shape: Option<Vec<usize>>,
    size: (usize, usize, usize),
    built: bool,
}

common_builders!(UpSampling3D);

impl UpSampling3D {
    /// Enlarge by `size` (`2` or `(depth, rows, cols)`, each at least 1).
    pub fn new(size: impl IntoTriple) -> Self {
        UpSampling3D { name: String::new(), input_shape: None, size: size.into_triple(), built: false }
    }

    /// The `(depth, rows, cols)` factors.
    pub fn size(&self) -> (usize, usize, usize) {
        self.size
    }

    fn factors(&self) -> [usize; 3] {
        [self.size.0, self.size.1, self.size.2]
    }
}

impl Default for UpSampling3D {
    fn default() -> Self {
        UpSampling3D::new(2)
    }
}

impl Layer for UpSampling3D {
    layer_common!("UpSampling3D");

    crate::layer::weightless_build!();

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        repeated_shape(&self.factors(), &self.name, "UpSampling3D", input_shape)
    }

    fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
        self.output_shape(per_sample(x))?;
        repeat_axes(x, &self.factors())
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({ "size": self.size }))
    }
}
