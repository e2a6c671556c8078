//! The global pooling layers: the mean or the maximum over every spatial axis, per
//! channel (`GlobalAveragePooling1D/2D/3D`, `GlobalMaxPooling1D/2D/3D`).

use crate::layer::{check_batch_rank, common_builders, layer_common, with_name, Ctx, Layer};
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::rng::Rng;
use keel_tensor::Tensor;

/// Define a global pooling layer: name, Keras class name, the spatial rank, the
/// per-sample layout it expects, and the `Var` reduction.
macro_rules! global_pool_layer {
    ($(#[$doc:meta])* $name:ident, $class:literal, $spatial:literal, $layout:literal, $op:ident $(, $masked:ident!())?) => {
        $(#[$doc])*
        #[derive(Default)]
        pub struct $name {
            name: String,
            input_shape: Option<Vec<usize>>,
            built: bool,
            keepdims: bool,
        }

        common_builders!($name);

        impl $name {
            /// A new layer.
            pub fn new() -> Self {
                Self::default()
            }

            /// Keep the pooled axes with size 1 (Keras's `keepdims`; `[.., c]` becomes
            /// `[1, .., 1, c]`).
            pub fn keepdims(mut self, on: bool) -> Self {
                self.keepdims = on;
                self
            }
        }

        impl Layer for $name {
            layer_common!($class);

            fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<()> {
                self.output_shape(input_shape)?;
                self.built = true;
                Ok(())
            }

            fn is_built(&self) -> bool {
                self.built
            }

            fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
                if input_shape.len() != $spatial + 1 || input_shape.iter().any(|&d| d == 0) {
                    return Err(Error::IncompatibleInput {
                        layer: self.name.clone(),
                        class: $class,
                        expected: format!("{} (rank {}, channels last, no empty axis)", $layout, $spatial + 1),
                        got: input_shape.to_vec(),
                    });
                }
                let mut out = if self.keepdims { vec![1; $spatial] } else { Vec::new() };
                out.push(input_shape[$spatial]);
                Ok(out)
            }

            fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
                check_batch_rank(x, $spatial + 1, self)?;
                let axes: Vec<isize> = (1..=$spatial).collect();
                Ok(x.$op(&axes, self.keepdims)?)
            }

            fn config(&self) -> serde_json::Value {
                with_name(&self.name, serde_json::json!({ "keepdims": self.keepdims }))
            }

            $($masked!();)?
        }
    };
}

/// `GlobalAveragePooling1D`'s masked mean (Keras): the mean over the unmasked steps;
/// the output carries no mask. A sequence with no unmasked step gives 0/0 (NaN), as in Keras.
macro_rules! masked_mean {
    () => {
        fn supports_masking(&self) -> bool {
            true
        }

        fn compute_mask(&self, _xs: &[Var], _masks: &[Option<Tensor>]) -> Result<Option<Tensor>> {
            Ok(None)
        }

        fn forward_logits_masked(&self, xs: &[Var], masks: &[Option<Tensor>], ctx: &mut Ctx<'_>) -> Result<Var> {
            let ([x], [Some(m)]) = (xs, masks) else { return self.forward_logits_multi(xs, ctx) };
            check_batch_rank(x, 2, self)?;
            if m.dims() != &x.dims()[..2] {
                return Err(Error::IncompatibleInput {
                    layer: self.name.clone(),
                    class: "GlobalAveragePooling1D",
                    expected: format!("a mask [batch, steps] = {:?} for the input", &x.dims()[..2]),
                    got: m.dims().to_vec(),
                });
            }
            let w = m.ne(&m.scalar_like(0.0)?)?.to_dtype(x.dtype())?.unsqueeze(-1)?; // [B, T, 1]
            let count = w.sum(&[1], self.keepdims)?; // [B, 1] ([B, 1, 1] with keepdims)
            Ok(x.mul(&Var::constant(w))?.sum(&[1], self.keepdims)?.div(&Var::constant(count))?)
        }
    };
}

global_pool_layer!(
    /// `[steps, c] -> [c]`: the mean over the steps (over the unmasked steps when the input
    /// carries a mask, e.g. after `Embedding(mask_zero)`).
    GlobalAveragePooling1D, "GlobalAveragePooling1D", 1, "[steps, channels]", mean, masked_mean!()
);
global_pool_layer!(
    /// `[steps, c] -> [c]`: the maximum over the steps (tied maxima share the gradient).
    GlobalMaxPooling1D, "GlobalMaxPooling1D", 1, "[steps, channels]", max
);
global_pool_layer!(
    /// `[h, w, c] -> [c]`: the mean over height and width.
    GlobalAveragePooling2D, "GlobalAveragePooling2D", 2, "[height, width, channels]", mean
);
global_pool_layer!(
    /// `[h, w, c] -> [c]`: the maximum over height and width (tied maxima share the gradient).
    GlobalMaxPooling2D, "GlobalMaxPooling2D", 2, "[height, width, channels]", max
);
global_pool_layer!(
    /// `[d, h, w, c] -> [c]`: the mean over depth, height and width.
    GlobalAveragePooling3D, "GlobalAveragePooling3D", 3, "[depth, height, width, channels]", mean
);
global_pool_layer!(
    /// `[d, h, w, c] -> [c]`: the maximum over depth, height and width (tied maxima share the
    /// gradient).
    GlobalMaxPooling3D, "GlobalMaxPooling3D", 3, "[depth, height, width, channels]", max
);
