//! Keras's one-batch methods: `train_on_batch`, `test_on_batch` and `predict_on_batch`, for
//! training loops written by hand (a GAN's alternating steps, a curriculum, a custom schedule).

use super::{as_input, check_xy, KerasModel};
use crate::step_results::{EpochLogs, StepQueue};
use crate::{Error, Inputs, Result, Targets};
use keel_nn::Network;
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Tensor};

/// The stream tag of the dropout generator of `train_on_batch`
/// (`derive_seed(0, call number, ON_BATCH_STREAM)`).
const ON_BATCH_STREAM: u64 = 0x4F4E_4254;

impl<N: Network> KerasModel<N> {
    /// One optimizer step on the batch `(x, y)` (Keras's `train_on_batch`): returns the
    /// batch's loss and metrics by name, as [`KerasModel::evaluate_all`] does (`loss`, then
    /// each output's loss and the metrics), computed in the forward pass of the step, before
    /// the update.
    ///
    /// As in Keras 3, the metrics cover this batch alone (they are reset at every call), an
    /// unbuilt model is built from `x`, the optimizer's state (moments, step count, learning
    /// rate schedule) carries over from call to call and from `fit`, and weight constraints
    /// are applied after the step. Dropout and the other random layers draw from the call's
    /// number (the first call of a model is 0): the same calls on the CPU give the same bits.
    /// A batch whose loss is not finite leaves the weights unchanged, as in `fit`.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use keel_nn::{Activation, Dense, Loss};
    /// use keel_optim::Sgd;
    /// use keel_tensor::Tensor;
    /// use keel_train::Sequential;
    ///
    /// let mut model = Sequential::with_seed(1);
    /// model.add(Dense::new(1).activation(Activation::Sigmoid));
    /// model.compile(Sgd::new(0.5), Loss::BinaryCrossentropy, &["accuracy"])?;
    /// let x = Tensor::from_vec(vec![0.0f32, 1.0, 1.0, 0.0], [4, 1])?;
    /// let y = Tensor::from_vec(vec![0.0f32, 1.0, 1.0, 0.0], [4, 1])?;
    /// let first = model.train_on_batch(&x, &y)?;
    /// for _ in 0..20 {
    ///     model.train_on_batch(&x, &y)?;
    /// }
    /// let logs = model.test_on_batch(&x, &y)?;
    /// assert_eq!(logs[0].0, "loss");
    /// assert!(logs[0].1 < first[0].1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn train_on_batch<'x, 'y>(
        &mut self,
        x: impl Into<Inputs<'x>>,
        y: impl Into<Targets<'y>>,
    ) -> Result<Vec<(String, f64)>> {
        self.train_batch(x.into(), y.into(), None)
    }

    /// [`KerasModel::train_on_batch`] with per-sample weights (Keras's
    /// `train_on_batch(x, y, sample_weight=w)`): `sample_weight` (`[n]`, one per sample)
    /// weights the loss and the `weighted_metrics` of [`KerasModel::compile_weighted`], as
    /// in `fit`. Keras's `class_weight` is such a weight: one per sample, its class's.
    pub fn train_on_batch_weighted<'x, 'y>(
        &mut self,
        x: impl Into<Inputs<'x>>,
        y: impl Into<Targets<'y>>,
        sample_weight: &Tensor,
    ) -> Result<Vec<(String, f64)>> {
        self.train_batch(x.into(), y.into(), Some(sample_weight))
    }

    /// Loss and metrics on the batch `(x, y)`, by name (Keras's `test_on_batch`): the whole
    /// batch in one forward pass, in inference mode, metrics over this batch alone.
    pub fn test_on_batch<'x, 'y>(
        &self,
        x: impl Into<Inputs<'x>>,
        y: impl Into<Targets<'y>>,
    ) -> Result<Vec<(String, f64)>> {
        let ys = self.check_targets("test_on_batch", y.into())?;
        let (xs, n) = self.check_inputs("test_on_batch", x.into(), Some(&ys[0]))?;
        check_xy("test_on_batch", &xs[0], &ys[0])?;
        self.evaluate_logs(&xs, &ys, None, n, "")
    }

    /// [`KerasModel::test_on_batch`] with per-sample weights (Keras's
    /// `test_on_batch(x, y, sample_weight=w)`), as [`KerasModel::evaluate_weighted`] weights.
    pub fn test_on_batch_weighted<'x, 'y>(
        &self,
        x: impl Into<Inputs<'x>>,
        y: impl Into<Targets<'y>>,
        sample_weight: &Tensor,
    ) -> Result<Vec<(String, f64)>> {
        let ys = self.check_targets("test_on_batch", y.into())?;
        let (xs, n) = self.check_inputs("test_on_batch", x.into(), Some(&ys[0]))?;
        check_xy("test_on_batch", &xs[0], &ys[0])?;
        check_weight("test_on_batch", sample_weight, n)?;
        self.evaluate_logs(&xs, &ys, Some(sample_weight), n, "")
    }

    /// The model's output for the batch `x` in one forward pass with no tape (Keras's
    /// `predict_on_batch`), returned on `x`'s device; a model with several outputs returns
    /// them through [`KerasModel::predict_outputs`].
    pub fn predict_on_batch<'x>(&self, x: impl Into<Inputs<'x>>) -> Result<Tensor> {
        let xs = x.into();
        let n = xs.0.first().and_then(|x| x.dims().first().copied()).unwrap_or(0);
        self.predict(xs, n.max(1))
    }

    fn train_batch(&mut self, xs: Inputs<'_>, ys: Targets<'_>, w: Option<&Tensor>) -> Result<Vec<(String, f64)>> {
        const OP: &str = "train_on_batch";
        self.add_loss_scaling();
        let ys = self.check_targets(OP, ys)?;
        let (xs, n) = self.check_inputs(OP, xs, Some(&ys[0]))?;
        check_xy(OP, &xs[0], &ys[0])?;
        if let Some(w) = w {
            check_weight(OP, w, n)?;
        }
        let dev = self.device;
        let xs = xs
            .iter()
            .enumerate()
            .map(|(i, x)| as_input(&x.to_device(&dev)?, self.input_dtype_at(i)))
            .collect::<Result<Vec<_>>>()?;
        self.ensure_built(&xs)?;
        // weights built lazily (or added after `to_device`) join the model's device
        self.net.to_device(&dev)?;
        let params = self.net.trainable_params();
        let constraints = self.net.weight_constraints();
        let compiled = self.compiled.as_ref().ok_or(Error::NotCompiled(OP))?;
        let mut logs = EpochLogs::new(&compiled.metrics, &compiled.outputs)?;
        let mut queue = StepQueue::new(1, &logs);
        let yd = ys.iter().map(|y| y.to_device(&dev)).collect::<std::result::Result<Vec<_>, _>>()?;
        let w = w.map(|w| w.to_dtype(DType::F32)).transpose()?;
        let wd = w.as_ref().map(|w| w.to_device(&dev)).transpose()?;
        let call = self.batch_calls;
        self.batch_calls += 1;
        let mut rng = Rng::new(keel_data::seed::derive_seed(0, call, ON_BATCH_STREAM));
        let (batch_loss, y_pred, masks) =
            self.train_step((&params, &constraints), &xs, (&ys, &yd), wd.as_ref(), &mut rng, true)?;
        queue.push(batch_loss, n, (&ys, &y_pred, &masks), w.as_ref());
        queue.flush(&mut logs)?;
        Ok(logs.logs(""))
    }
}

/// A per-sample weight must have shape `[n]`: else an error of `op` saying so.
fn check_weight(op: &'static str, w: &Tensor, n: usize) -> Result<()> {
    if w.dims() != [n] {
        return Err(Error::invalid(
            op,
            format!("sample_weight must have shape [{n}] (one per sample), got {}", w.shape()),
        ));
    }
    Ok(())
}
