//! 2-D convolution (also depthwise) and pooling over NHWC data (kernels HWIO).

use crate::{Result, Var};
use keel_tensor::{Conv2dParams, Padding, Pool2dParams, Tensor};

impl Var {
    /// 2-D convolution: `self` is `[n, h, w, c]`, `kernel` is `[kh, kw, c, o]`.
    /// The rule uses `conv2d_grad_input` / `conv2d_grad_kernel`.
    pub fn conv2d(
        &self,
        kernel: &Var,
        strides: (usize, usize),
        padding: Padding,
        dilation: (usize, usize),
    ) -> Result<Var> {
        let p = Conv2dParams::new("conv2d", self.shape(), kernel.shape(), strides, padding, dilation)?;
        let out = self.value().conv2d_with(kernel.value(), &p)?;
        Var::record("conv2d", &[self, kernel], out, |needs| {
            let (need_x, need_k) = (needs[0], needs[1]);
            let x = need_k.then(|| self.value().clone());
            let k = need_x.then(|| kernel.value().clone());
            move |g: &Tensor| {
                let gx = match &k {
                    Some(k) => Some(g.conv2d_grad_input(k, &p)?),
                    None => None,
                };
                let gk = match &x {
                    Some(x) => Some(x.conv2d_grad_kernel(g, &p)?),
                    None => None,
                };
                Ok(vec![gx, gk])
            }
        })
    }

    /// Transposed 2-D convolution (the gradient of [`Var::conv2d`] wrt its
    /// input, Keras's `Conv2DTranspose`): `self` is `[n, h, w, c]`, `kernel` is
    /// `[kh, kw, o, c]` and `out_hw` the output's `(height, width)`; the output
    /// `[n, oh, ow, o]` is the input of the forward convolution that `p` would
    /// map back onto `self`'s shape. The rule uses `conv2d` / `conv2d_grad_kernel`.
    pub fn conv2d_transpose(
        &self,
        kernel: &Var,
        out_hw: (usize, usize),
        strides: (usize, usize),
        padding: Padding,
        dilation: (usize, usize),
    ) -> Result<Var> {
        let p = Conv2dParams::transposed(
            "conv2d_transpose",
            self.shape(),
            kernel.shape(),
            out_hw,
            strides,
            padding,
            dilation,
        )?;
        let out = self.value().conv2d_grad_input(kernel.value(), &p)?;
        Var::record("conv2d_transpose", &[self, kernel], out, |needs| {
            let (need_x, need_k) = (needs[0], needs[1]);
            let x = need_k.then(|| self.value().clone());
            let k = need_x.then(|| kernel.value().clone());
            move |g: &Tensor| {
                let gx = match &k {
                    Some(k) => Some(g.conv2d_with(k, &p)?),
                    None => None,
                };
                let gk = match &x {
                    Some(x) => Some(g.conv2d_grad_kernel(x, &p)?),
                    None => None,
                };
                Ok(vec![gx, gk])
            }
        })
    }

    /// `relu(conv2d(self, kernel) + bias)` as one op (`bias` `[o]`): the values
    /// and gradients of `conv2d` then [`Var::add_relu`], without the
    /// intermediate tensor. The rule saves the output (for the ReLU mask), the
    /// input and the kernel.
    pub fn conv2d_bias_relu(
        &self,
        kernel: &Var,
        bias: &Var,
        strides: (usize, usize),
        padding: Padding,
        dilation: (usize, usize),
    ) -> Result<Var> {
        let p = Conv2dParams::new("conv2d", self.shape(), kernel.shape(), strides, padding, dilation)?;
        let out = self.value().conv2d_bias_relu(kernel.value(), bias.value(), &p)?;
        Var::record("conv2d_bias_relu", &[self, kernel, bias], out.clone(), |needs| {
            let (need_x, need_k, need_b) = (needs[0], needs[1], needs[2]);
            let x = need_k.then(|| self.value().clone());
            let k = need_x.then(|| kernel.value().clone());
            let bias_shape = need_b.then(|| bias.shape().clone());
            move |g: &Tensor| {
                let (gz, gb) = crate::ops::relu_bias_grads(&out, g, bias_shape.as_ref())?;
                let gx = match &k {
                    Some(k) => Some(gz.conv2d_grad_input(k, &p)?),
                    None => None,
                };
                let gk = match &x {
                    Some(x) => Some(x.conv2d_grad_kernel(&gz, &p)?),
                    None => None,
                };
                Ok(vec![gx, gk, gb])
            }
        })
    }

    /// Max pooling over `[n, h, w, c]`; the gradient goes to each window's
    /// (first) maximum. The rule saves only the argmax indices.
    pub fn max_pool2d(&self, pool: (usize, usize), strides: (usize, usize), padding: Padding) -> Result<Var> {
        let p = Pool2dParams::new("max_pool2d", self.shape(), pool, strides, padding)?;
        let (out, argmax) = self.value().max_pool2d(pool, strides, padding)?;
        Var::record("max_pool2d", &[self], out, |_| move |g: &Tensor| Ok(vec![Some(g.max_pool2d_grad(&argmax, &p)?)]))
    }

    /// Average pooling over `[n, h, w, c]` (padding excluded from the counts);
    /// the rule saves nothing.
    pub fn avg_pool2d(&self, pool: (usize, usize), strides: (usize, usize), padding: Padding) -> Result<Var> {
        let p = Pool2dParams::new("avg_pool2d", self.shape(), pool, strides, padding)?;
        let out = self.value().avg_pool2d(pool, strides, padding)?;
        Var::record("avg_pool2d", &[self], out, |_| move |g: &Tensor| Ok(vec![Some(g.avg_pool2d_grad(&p)?)]))
    }
}

impl Var {
    /// Depthwise 2-D convolution: `self` is `[n, h, w, c]`, `kernel` is `[kh, kw, c, m]`,
    /// the output `[n, oh, ow, c * m]` (channel `ci * m + j`, TensorFlow's order). The rule
    /// uses `depthwise_conv2d_grad_input` / `depthwise_conv2d_grad_kernel`.
    pub fn depthwise_conv2d(
        &self,
        kernel: &Var,
        strides: (usize, usize),
        padding: Padding,
        dilation: (usize, usize),
    ) -> Result<Var> {
        let p = keel_tensor::DepthwiseConv2dParams::new(
            "depthwise_conv2d",
            self.shape(),
            kernel.shape(),
            strides,
            padding,
            dilation,
        )?;
        let out = self.value().depthwise_conv2d_with(kernel.value(), &p)?;
        Var::record("depthwise_conv2d", &[self, kernel], out, |needs| {
            let (need_x, need_k) = (needs[0], needs[1]);
            let x = need_k.then(|| self.value().clone());
            let k = need_x.then(|| kernel.value().clone());
            move |g: &Tensor| {
                let gx = match &k {
                    Some(k) => Some(g.depthwise_conv2d_grad_input(k, &p)?),
                    None => None,
                };
                let gk = match &x {
                    Some(x) => Some(x.depthwise_conv2d_grad_kernel(g, &p)?),
                    None => None,
                };
                Ok(vec![gx, gk])
            }
        })
    }
}
