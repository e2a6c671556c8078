//! [`MaxPooling2D`]: the maximum over each window of an NHWC image.

use crate::layer::{check_batch_rank, common_builders, layer_common, with_name, Ctx, IntoPair, Layer};
use crate::layers::Pool2DConfig;
use crate::Result;
use keel_autograd::Var;
use keel_tensor::rng::Rng;
use keel_tensor::Padding;

/// 2-D max pooling (`strides` default to `pool_size`, padding `valid`).
pub struct MaxPooling2D {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: Pool2DConfig,
    built: bool,
}

common_builders!(MaxPooling2D);

impl MaxPooling2D {
    /// Pool over `pool_size` windows, stride = `pool_size`.
    pub fn new(pool_size: impl IntoPair) -> Self {
        MaxPooling2D::from_config(Pool2DConfig::new(pool_size.into_pair()))
    }

    /// From a config.
    pub fn from_config(cfg: Pool2DConfig) -> Self {
        MaxPooling2D { name: String::new(), input_shape: None, cfg, built: false }
    }

    /// Set the strides.
    pub fn strides(mut self, s: impl IntoPair) -> Self {
        self.cfg.strides = s.into_pair();
        self
    }

    /// Set the padding.
    pub fn padding(mut self, p: Padding) -> Self {
        self.cfg.padding = p;
        self
    }
}

impl Layer for MaxPooling2D {
    layer_common!("MaxPooling2D");

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<()> {
        self.output_shape(input_shape)?;
        self.built = true;
        Ok(())
    }

    fn is_built(&self) -> bool {
        self.built
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        self.cfg.output_shape(&self.name, "MaxPooling2D", input_shape)
    }

    fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
        check_batch_rank(x, 3, self)?;
        Ok(x.max_pool2d(self.cfg.pool_size, self.cfg.strides, self.cfg.padding)?)
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::to_value(&self.cfg).unwrap_or_default())
    }
}
