//! Fused recurrent-cell math: one LSTM step's gates, cell state and output
//! ([`Tensor::lstm_cell`]) and its backward ([`Tensor::lstm_cell_grad`]). On CUDA each is
//! one kernel launch where the composed elementwise ops take about 11 and 25 per
//! timestep; on the CPU one pass over the step's elements instead of a dozen.
//!
//! `z` holds the gate pre-activations `[batch, 4 * units]` in Keras's gate order
//! (input, forget, candidate, output); the states are `[batch, units]`. The gates are
//! `i = σ(z_i)`, `f = σ(z_f)`, `g = tanh(z_c)`, `o = σ(z_o)` (σ the logistic sigmoid,
//! Keras's default `recurrent_activation`; tanh its default `activation`), and
//! `c = f c_prev + i g`, `h = o tanh(c)`. The forward also returns the gate activations
//! `[i, f, g, o]` (in `z`'s layout), which the backward reads instead of recomputing them
//! (PyTorch's fused cell keeps the same workspace): the backward evaluates one tanh per
//! element rather than five transcendentals. F32 and F64 compute in their own type with the
//! composed ops' formulas and order (an F32 forward step has their bits); F16/BF16
//! compute in F32 and round each output once (the composed ops round every
//! intermediate).
//!
//! [`Tensor::gru_cell`] and [`Tensor::gru_cell_grad`] do the same for a GRU step in Keras's
//! default `reset_after=True` form (gate order z, r, h): from the input projection
//! `x = x_t W + b` and the recurrent one `p = h_prev U + b'` (both `[batch, 3 * units]`),
//! `z = σ(x_z + p_z)`, `r = σ(x_r + p_r)`, `n = tanh(x_h + r p_h)` and
//! `h = n + z (h_prev - n)` (Keras's `z h_prev + (1 - z) n`, in the form the composed ops
//! evaluate). The workspace is `[z, r, n]`. The input projection may be a row-strided view
//! (one timestep of a `[batch, time, 3 * units]` projection): it is read in place.

use crate::storage::Storage;
use crate::{DType, Error, Result, Tensor};

impl Tensor {
    /// One LSTM step from the gate pre-activations `self` (`[batch, 4 * units]`) and the
    /// previous cell state `c_prev` (`[batch, units]`): `(h, c, gates)`, `gates` the gate
    /// activations for [`Tensor::lstm_cell_grad`] (see the module docs).
    pub fn lstm_cell(&self, c_prev: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        const OP: &str = "lstm_cell";
        let (b, u) = lstm_dims(OP, self, c_prev, &[])?;
        if matches!(self.dtype(), DType::F16 | DType::BF16) && self.device() == crate::Device::Cpu {
            let (h, c, g) = self.to_dtype(DType::F32)?.lstm_cell(&c_prev.to_dtype(DType::F32)?)?;
            let dt = self.dtype();
            return Ok((h.to_dtype(dt)?, c.to_dtype(dt)?, g.to_dtype(dt)?));
        }
        let (z, c0) = (self.contiguous()?, c_prev.contiguous()?);
        let [h, c, g] = {
            let (zs, cs) = (z.storage(), c0.storage());
            match (&*zs, &*cs) {
                #[cfg(feature = "cpu")]
                (Storage::Cpu(zs), Storage::Cpu(cs)) => {
                    cpu::lstm_cell(OP, (zs, z.layout()), (cs, c0.layout()), u)?.map(Storage::Cpu)
                }
                #[cfg(feature = "cuda")]
                (Storage::Cuda(zs), Storage::Cuda(cs)) => {
                    crate::cuda::rnn::lstm_cell((zs, z.layout()), (cs, c0.layout()), b, u)?.map(Storage::Cuda)
                }
                (x, y) => return Err(mismatch(OP, x, y)),
            }
        };
        Ok((Tensor::from_storage(h, [b, u]), Tensor::from_storage(c, [b, u]), Tensor::from_storage(g, [b, 4 * u])))
    }

    /// The backward of [`Tensor::lstm_cell`] from its gate activations `self`
    /// (`[batch, 4 * units]`), `c_prev` and `c`: from the gradients reaching `h` and `c`
    /// (`None` where none flows), `(dz, dc_prev)`.
    pub fn lstm_cell_grad(
        &self,
        c_prev: &Tensor,
        c: &Tensor,
        dh: Option<&Tensor>,
        dc: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        const OP: &str = "lstm_cell_grad";
        let more: Vec<&Tensor> = std::iter::once(c).chain(dh).chain(dc).collect();
        let (b, u) = lstm_dims(OP, self, c_prev, &more)?;
        if matches!(self.dtype(), DType::F16 | DType::BF16) && self.device() == crate::Device::Cpu {
            let wide = |t: &Tensor| t.to_dtype(DType::F32);
            let (dh, dc) = (dh.map(wide).transpose()?, dc.map(wide).transpose()?);
            let (dz, dc0) = wide(self)?.lstm_cell_grad(&wide(c_prev)?, &wide(c)?, dh.as_ref(), dc.as_ref())?;
            return Ok((dz.to_dtype(self.dtype())?, dc0.to_dtype(self.dtype())?));
        }
        let contig = |t: &Tensor| t.contiguous();
        let (g, c0, c) = (contig(self)?, contig(c_prev)?, contig(c)?);
        let (dh, dc) = (dh.map(contig).transpose()?, dc.map(contig).transpose()?);
        let [dz, dc0] = {
            let (gs, c0s, cs) = (g.storage(), c0.storage(), c.storage());
            let (dhs, dcs) = (dh.as_ref().map(|t| t.storage()), dc.as_ref().map(|t| t.storage()));
            let dhs = dhs.as_deref().zip(dh.as_ref().map(Tensor::layout));
            let dcs = dcs.as_deref().zip(dc.as_ref().map(Tensor::layout));
            match (&*gs, &*c0s, &*cs) {
                #[cfg(feature = "cpu")]
                (Storage::Cpu(gs), Storage::Cpu(c0s), Storage::Cpu(cs)) => {
                    let ops = [(gs, g.layout()), (c0s, c0.layout()), (cs, c.layout())];
                    cpu::lstm_cell_grad(OP, ops, [on_cpu(OP, dhs)?, on_cpu(OP, dcs)?], u)?.map(Storage::Cpu)
                }
                #[cfg(feature = "cuda")]
                (Storage::Cuda(gs), Storage::Cuda(c0s), Storage::Cuda(cs)) => {
                    let ops = [(gs, g.layout()), (c0s, c0.layout()), (cs, c.layout())];
                    crate::cuda::rnn::lstm_cell_grad(ops, [on_cuda(OP, dhs)?, on_cuda(OP, dcs)?], b, u)?
                        .map(Storage::Cuda)
                }
                (x, y, _) => return Err(mismatch(OP, x, y)),
            }
        };
        Ok((Tensor::from_storage(dz, [b, 4 * u]), Tensor::from_storage(dc0, [b, u])))
    }
}

impl Tensor {
    /// One GRU step (`reset_after=True`) from the input projection `self` and the recurrent
    /// projection `hp` (both `[batch, 3 * units]`, gate order z, r, h) and `h_prev`
    /// (`[batch, units]`): `(h, gates)`, `gates` the activations `[z, r, n]` for
    /// [`Tensor::gru_cell_grad`] (see the module docs).
    pub fn gru_cell(&self, hp: &Tensor, h_prev: &Tensor) -> Result<(Tensor, Tensor)> {
        const OP: &str = "gru_cell";
        let (b, u) = gru_dims(OP, self, &[hp], &[h_prev])?;
        if matches!(self.dtype(), DType::F16 | DType::BF16) && self.device() == crate::Device::Cpu {
            let wide = |t: &Tensor| t.to_dtype(DType::F32);
            let (h, g) = wide(self)?.gru_cell(&wide(hp)?, &wide(h_prev)?)?;
            return Ok((h.to_dtype(self.dtype())?, g.to_dtype(self.dtype())?));
        }
        let (x, hp, h0) = (rows(self)?, rows(hp)?, h_prev.contiguous()?);
        let [h, g] = {
            let (xs, ps, hs) = (x.0.storage(), hp.0.storage(), h0.storage());
            match (&*xs, &*ps, &*hs) {
                #[cfg(feature = "cpu")]
                (Storage::Cpu(xs), Storage::Cpu(ps), Storage::Cpu(hs)) => {
                    let rows = [(xs, x.0.layout(), x.1), (ps, hp.0.layout(), hp.1)];
                    cpu::gru_cell(OP, rows, (hs, h0.layout()), (b, u))?.map(Storage::Cpu)
                }
                #[cfg(feature = "cuda")]
                (Storage::Cuda(xs), Storage::Cuda(ps), Storage::Cuda(hs)) => {
                    let rows = [(xs, x.0.layout(), x.1), (ps, hp.0.layout(), hp.1)];
                    crate::cuda::rnn::gru_cell(rows, (hs, h0.layout()), b, u)?.map(Storage::Cuda)
                }
                (x, y, z) => return Err(mismatch3(OP, [x, y, z])),
            }
        };
        Ok((Tensor::from_storage(h, [b, u]), Tensor::from_storage(g, [b, 3 * u])))
    }

    /// The backward of [`Tensor::gru_cell`] from its gate activations `self`
    /// (`[batch, 3 * units]`), the recurrent projection `hp` and `h_prev`: from the gradient
    /// `dh` reaching `h`, `(dx, dhp, dh_prev)` (the gradients of the input projection, the
    /// recurrent projection and `h_prev`).
    pub fn gru_cell_grad(&self, hp: &Tensor, h_prev: &Tensor, dh: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        const OP: &str = "gru_cell_grad";
        let (b, u) = gru_dims(OP, self, &[hp], &[h_prev, dh])?;
        if matches!(self.dtype(), DType::F16 | DType::BF16) && self.device() == crate::Device::Cpu {
            let wide = |t: &Tensor| t.to_dtype(DType::F32);
            let (dx, dp, dh0) = wide(self)?.gru_cell_grad(&wide(hp)?, &wide(h_prev)?, &wide(dh)?)?;
            let dt = self.dtype();
            return Ok((dx.to_dtype(dt)?, dp.to_dtype(dt)?, dh0.to_dtype(dt)?));
        }
        let (g, hp) = (self.contiguous()?, rows(hp)?);
        let (h0, dh) = (h_prev.contiguous()?, dh.contiguous()?);
        let [dx, dp, dh0] = {
            let (gs, ps, hs, ds) = (g.storage(), hp.0.storage(), h0.storage(), dh.storage());
            match (&*gs, &*ps, &*hs, &*ds) {
                #[cfg(feature = "cpu")]
                (Storage::Cpu(gs), Storage::Cpu(ps), Storage::Cpu(hs), Storage::Cpu(ds)) => {
                    let ops = [(gs, g.layout()), (hs, h0.layout()), (ds, dh.layout())];
                    cpu::gru_cell_grad(OP, ops, (ps, hp.0.layout(), hp.1), (b, u))?.map(Storage::Cpu)
                }
                #[cfg(feature = "cuda")]
                (Storage::Cuda(gs), Storage::Cuda(ps), Storage::Cuda(hs), Storage::Cuda(ds)) => {
                    let ops = [(gs, g.layout()), (hs, h0.layout()), (ds, dh.layout())];
                    crate::cuda::rnn::gru_cell_grad(ops, (ps, hp.0.layout(), hp.1), b, u)?.map(Storage::Cuda)
                }
                (x, y, z, _) => return Err(mismatch3(OP, [x, y, z])),
            }
        };
        let (g3, g1) = ([b, 3 * u], [b, u]);
        Ok((Tensor::from_storage(dx, g3), Tensor::from_storage(dp, g3), Tensor::from_storage(dh0, g1)))
    }
}

/// `t` (`[rows, cols]`) with unit column stride and its row stride: `t` itself when it is
/// laid out that way (a timestep of a `[batch, time, cols]` tensor is), else a contiguous copy.
fn rows(t: &Tensor) -> Result<(Tensor, usize)> {
    let l = t.layout();
    match (l.dims(), l.strides()) {
        (&[_, c], &[ld, cs]) if cs == 1 || c <= 1 => Ok((t.clone(), ld)),
        _ => {
            let t = t.contiguous()?;
            let ld = t.dims().get(1).copied().unwrap_or(1);
            Ok((t, ld))
        }
    }
}

/// The storage range a `[rows, cols]` operand with row stride `ld` reads.
pub(crate) fn rows_range(l: &crate::Layout, ld: usize) -> (usize, usize) {
    let (r, c) = (l.dims()[0], l.dims()[1]);
    let len = if r == 0 || c == 0 { 0 } else { (r - 1) * ld + c };
    (l.offset(), l.offset() + len)
}

fn mismatch3(op: &'static str, s: [&Storage; 3]) -> Error {
    let other = s.iter().find(|x| x.device() != s[0].device()).unwrap_or(&s[1]);
    mismatch(op, s[0], other)
}

/// `(batch, units)` of `first` (`[batch, 3 * units]`), the other `[batch, 3 * units]`
/// tensors `wide` and the `[batch, units]` tensors `states`, all of one float dtype.
fn gru_dims(op: &'static str, first: &Tensor, wide: &[&Tensor], states: &[&Tensor]) -> Result<(usize, usize)> {
    if !first.dtype().is_float() {
        return Err(Error::UnsupportedDType {
            op,
            dtype: first.dtype(),
            hint: "the projections must be a float dtype",
        });
    }
    const WHAT: &str = "the projections must be [batch, 3 * units] and the state [batch, units]";
    let bad = |t: &Tensor| Error::shape_mismatch(op, first.shape(), t.shape(), WHAT.to_string());
    let &[b, u3] = first.dims() else { return Err(bad(states[0])) };
    let u = u3 / 3;
    if u3 % 3 != 0 {
        return Err(bad(states[0]));
    }
    let want = |t: &Tensor, d: [usize; 2]| -> Result<()> {
        if t.dims() != d {
            return Err(bad(t));
        }
        if t.dtype() != first.dtype() {
            return Err(Error::DTypeMismatch { op, lhs: first.dtype(), rhs: t.dtype() });
        }
        Ok(())
    };
    for t in wide {
        want(t, [b, 3 * u])?;
    }
    for t in states {
        want(t, [b, u])?;
    }
    Ok((b, u))
}

/// A gradient operand's CPU storage (an error when it is elsewhere).
#[cfg(feature = "cpu")]
fn on_cpu<'a>(
    op: &'static str,
    o: Option<(&'a Storage, &'a crate::Layout)>,
) -> Result<Option<(&'a crate::CpuStorage, &'a crate::Layout)>> {
    o.map(|(s, l)| match s {
        Storage::Cpu(c) => Ok((c, l)),
        other => Err(Error::DeviceMismatch { op, lhs: "cpu".into(), rhs: other.device().to_string() }),
    })
    .transpose()
}

/// A gradient operand's CUDA storage (an error when it is elsewhere).
#[cfg(feature = "cuda")]
fn on_cuda<'a>(
    op: &'static str,
    o: Option<(&'a Storage, &'a crate::Layout)>,
) -> Result<Option<(&'a crate::CudaStorage, &'a crate::Layout)>> {
    o.map(|(s, l)| match s {
        Storage::Cuda(c) => Ok((c, l)),
        other => Err(Error::DeviceMismatch { op, lhs: "cuda".into(), rhs: other.device().to_string() }),
    })
    .transpose()
}

fn mismatch(op: &'static str, x: &Storage, y: &Storage) -> Error {
    Error::DeviceMismatch { op, lhs: x.device().to_string(), rhs: y.device().to_string() }
}

/// `(batch, units)` of `z` (or the gates) `[batch, 4 * units]` and the `[batch, units]`
/// tensors `c_prev` and `more`, all of one float dtype.
fn lstm_dims(op: &'static str, z: &Tensor, c_prev: &Tensor, more: &[&Tensor]) -> Result<(usize, usize)> {
    if !z.dtype().is_float() {
        return Err(Error::UnsupportedDType { op, dtype: z.dtype(), hint: "the gates must be a float dtype" });
    }
    let bad = |t: &Tensor, what: &str| Error::shape_mismatch(op, z.shape(), t.shape(), what.to_string());
    let &[b, u4] = z.dims() else {
        return Err(bad(c_prev, "the gates must be [batch, 4 * units] and the state [batch, units]"));
    };
    let u = u4 / 4;
    if u4 % 4 != 0 || c_prev.dims() != [b, u] {
        return Err(bad(c_prev, "the gates must be [batch, 4 * units] and the state [batch, units]"));
    }
    for t in std::iter::once(c_prev).chain(more.iter().copied()) {
        if t.dims() != [b, u] {
            return Err(bad(t, "states and their gradients must be [batch, units]"));
        }
        if t.dtype() != z.dtype() {
            return Err(Error::DTypeMismatch { op, lhs: z.dtype(), rhs: t.dtype() });
        }
    }
    Ok((b, u))
}

#[cfg(feature = "cpu")]
mod cpu {
    use crate::ops::unary::FloatExt;
    use crate::{CpuStorage, Error, Layout, Result, WithDType};
    use rayon::prelude::*;

    /// The float types of the fused CPU cell (F16/BF16 are widened to F32 first).
    trait CellFloat:
        WithDType
        + FloatExt
        + std::ops::Add<Output = Self>
        + std::ops::Sub<Output = Self>
        + std::ops::Mul<Output = Self>
    {
        const ZERO: Self;
        const ONE: Self;
        fn tanh(self) -> Self;
    }
    impl CellFloat for f32 {
        const ZERO: Self = 0.0;
        const ONE: Self = 1.0;
        fn tanh(self) -> Self {
            f32::tanh(self)
        }
    }
    impl CellFloat for f64 {
        const ZERO: Self = 0.0;
        const ONE: Self = 1.0;
        fn tanh(self) -> Self {
            f64::tanh(self)
        }
    }

    /// Rows per rayon task at least (a batch of 32 rows splits four ways).
    const MIN_ROWS: usize = 8;

    /// The elements `l` (contiguous) selects in `s`, as `T`.
    fn slice<'a, T: WithDType>(op: &'static str, s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
        let all = T::cpu_slice(s).ok_or(Error::DTypeMismatch { op, lhs: T::DTYPE, rhs: s.dtype() })?;
        let (a, b) = l.contiguous_range().ok_or_else(|| Error::invalid(op, "internal: operand not contiguous"))?;
        Ok(&all[a..b])
    }

    fn fwd<T: CellFloat>(z: &[T], c0: &[T], u: usize) -> [Vec<T>; 3] {
        let uu = u.max(1);
        let (mut h, mut c, mut gates) = (vec![T::ZERO; c0.len()], vec![T::ZERO; c0.len()], vec![T::ZERO; z.len()]);
        h.par_chunks_mut(uu)
            .zip(c.par_chunks_mut(uu))
            .zip(gates.par_chunks_mut(4 * uu))
            .zip(z.par_chunks(4 * uu).zip(c0.par_chunks(uu)))
            .with_min_len(MIN_ROWS)
            .for_each(|(((hr, cr), gr), (zr, c0r))| {
                for j in 0..u {
                    let (i, f, g, o) = (
                        zr[j].sigmoid_(),
                        zr[u + j].sigmoid_(),
                        CellFloat::tanh(zr[2 * u + j]),
                        zr[3 * u + j].sigmoid_(),
                    );
                    // the composed ops' order: (f * c_prev) + (i * g), then o * tanh(c)
                    let cn = f * c0r[j] + i * g;
                    cr[j] = cn;
                    hr[j] = o * CellFloat::tanh(cn);
                    (gr[j], gr[u + j], gr[2 * u + j], gr[3 * u + j]) = (i, f, g, o);
                }
            });
        [h, c, gates]
    }

    fn bwd<T: CellFloat>(gates: &[T], c0: &[T], c: &[T], dh: Option<&[T]>, dc: Option<&[T]>, u: usize) -> [Vec<T>; 2] {
        let (mut dz, mut dc0) = (vec![T::ZERO; gates.len()], vec![T::ZERO; c0.len()]);
        let uu = u.max(1);
        dz.par_chunks_mut(4 * uu)
            .zip(dc0.par_chunks_mut(uu))
            .zip(gates.par_chunks(4 * uu))
            .enumerate()
            .with_min_len(MIN_ROWS)
            .for_each(|(r, ((dzr, dc0r), gr))| {
                for j in 0..u {
                    let (i, f, g, o) = (gr[j], gr[u + j], gr[2 * u + j], gr[3 * u + j]);
                    let e = r * u + j;
                    let (cp, tc) = (c0[e], CellFloat::tanh(c[e]));
                    let dhv = dh.map_or(T::ZERO, |d| d[e]);
                    let dcv = dc.map_or(T::ZERO, |d| d[e]);
                    let dct = dcv + dhv * o * (T::ONE - tc * tc);
                    dzr[j] = dct * g * i * (T::ONE - i);
                    dzr[u + j] = dct * cp * f * (T::ONE - f);
                    dzr[2 * u + j] = dct * i * (T::ONE - g * g);
                    dzr[3 * u + j] = dhv * tc * o * (T::ONE - o);
                    dc0r[j] = dct * f;
                }
            });
        [dz, dc0]
    }

    /// One GRU step per row: `x` and `p` rows `ldx`/`ldp` apart (the module docs' formulas
    /// in the composed ops' order: `x + p` then σ, `x_h + (r p_h)` then tanh,
    /// `n + z (h_prev - n)`).
    fn gru_fwd<T: CellFloat>(x: (&[T], usize), p: (&[T], usize), h0: &[T], u: usize) -> [Vec<T>; 2] {
        let uu = u.max(1);
        let (mut h, mut gates) = (vec![T::ZERO; h0.len()], vec![T::ZERO; 3 * h0.len()]);
        h.par_chunks_mut(uu).zip(gates.par_chunks_mut(3 * uu)).enumerate().with_min_len(MIN_ROWS).for_each(
            |(r, (hr, gr))| {
                let (xr, pr, h0r) = (&x.0[r * x.1..], &p.0[r * p.1..], &h0[r * u..]);
                for j in 0..u {
                    let z = (xr[j] + pr[j]).sigmoid_();
                    let rg = (xr[u + j] + pr[u + j]).sigmoid_();
                    let n = CellFloat::tanh(xr[2 * u + j] + rg * pr[2 * u + j]);
                    hr[j] = n + z * (h0r[j] - n);
                    (gr[j], gr[u + j], gr[2 * u + j]) = (z, rg, n);
                }
            },
        );
        [h, gates]
    }

    fn gru_bwd<T: CellFloat>(gates: &[T], p: (&[T], usize), h0: &[T], dh: &[T], u: usize) -> [Vec<T>; 3] {
        let uu = u.max(1);
        let (mut dx, mut dp, mut dh0) =
            (vec![T::ZERO; gates.len()], vec![T::ZERO; gates.len()], vec![T::ZERO; h0.len()]);
        dx.par_chunks_mut(3 * uu)
            .zip(dp.par_chunks_mut(3 * uu))
            .zip(dh0.par_chunks_mut(uu))
            .enumerate()
            .with_min_len(MIN_ROWS)
            .for_each(|(r, ((dxr, dpr), dh0r))| {
                let (gr, pr) = (&gates[r * 3 * u..], &p.0[r * p.1..]);
                for j in 0..u {
                    let (z, rg, n) = (gr[j], gr[u + j], gr[2 * u + j]);
                    let (e, ph) = (r * u + j, pr[2 * u + j]);
                    let d = dh[e];
                    let dn = d * (T::ONE - z) * (T::ONE - n * n);
                    let dz = d * (h0[e] - n) * z * (T::ONE - z);
                    let dr = dn * ph * rg * (T::ONE - rg);
                    (dxr[j], dxr[u + j], dxr[2 * u + j]) = (dz, dr, dn);
                    (dpr[j], dpr[u + j], dpr[2 * u + j]) = (dz, dr, dn * rg);
                    dh0r[j] = d * z;
                }
            });
        [dx, dp, dh0]
    }

    /// An operand read as rows `ld` apart (see `super::rows`).
    type RowOperand<'a> = (&'a CpuStorage, &'a Layout, usize);

    /// The elements a row operand reads, from its first, and its row stride.
    fn row_slice<'a, T: WithDType>(op: &'static str, (s, l, ld): RowOperand<'a>) -> Result<(&'a [T], usize)> {
        let all = T::cpu_slice(s).ok_or(Error::DTypeMismatch { op, lhs: T::DTYPE, rhs: s.dtype() })?;
        let (a, b) = super::rows_range(l, ld);
        Ok((&all[a..b], ld))
    }

    pub(super) fn gru_cell(
        op: &'static str,
        [x, p]: [RowOperand<'_>; 2],
        h0: Operand<'_>,
        (_, u): (usize, usize),
    ) -> Result<[CpuStorage; 2]> {
        fn run<T: CellFloat>(
            op: &'static str,
            x: RowOperand<'_>,
            p: RowOperand<'_>,
            h0: Operand<'_>,
            u: usize,
        ) -> Result<[CpuStorage; 2]> {
            Ok(wrap(gru_fwd::<T>(row_slice(op, x)?, row_slice(op, p)?, slice(op, h0.0, h0.1)?, u)))
        }
        match x.0 {
            CpuStorage::F32(_) => run::<f32>(op, x, p, h0, u),
            CpuStorage::F64(_) => run::<f64>(op, x, p, h0, u),
            other => Err(Error::UnsupportedDType { op, dtype: other.dtype(), hint: "internal: F32 or F64 here" }),
        }
    }

    pub(super) fn gru_cell_grad(
        op: &'static str,
        ops: [Operand<'_>; 3],
        p: RowOperand<'_>,
        (_, u): (usize, usize),
    ) -> Result<[CpuStorage; 3]> {
        fn run<T: CellFloat>(
            op: &'static str,
            [g, h0, dh]: [Operand<'_>; 3],
            p: RowOperand<'_>,
            u: usize,
        ) -> Result<[CpuStorage; 3]> {
            let (g, h0, dh) = (slice(op, g.0, g.1)?, slice(op, h0.0, h0.1)?, slice(op, dh.0, dh.1)?);
            Ok(wrap(gru_bwd::<T>(g, row_slice(op, p)?, h0, dh, u)))
        }
        match ops[0].0 {
            CpuStorage::F32(_) => run::<f32>(op, ops, p, u),
            CpuStorage::F64(_) => run::<f64>(op, ops, p, u),
            other => Err(Error::UnsupportedDType { op, dtype: other.dtype(), hint: "internal: F32 or F64 here" }),
        }
    }

    type Operand<'a> = (&'a CpuStorage, &'a Layout);

    /// Wraps F32/F64 results back into storage of their type.
    fn wrap<const N: usize, T: WithDType>(v: [Vec<T>; N]) -> [CpuStorage; N] {
        v.map(T::to_cpu_storage)
    }

    pub(super) fn lstm_cell(op: &'static str, z: Operand<'_>, c0: Operand<'_>, u: usize) -> Result<[CpuStorage; 3]> {
        fn run<T: CellFloat>(op: &'static str, z: Operand<'_>, c0: Operand<'_>, u: usize) -> Result<[CpuStorage; 3]> {
            Ok(wrap(fwd::<T>(slice(op, z.0, z.1)?, slice(op, c0.0, c0.1)?, u)))
        }
        match z.0 {
            CpuStorage::F32(_) => run::<f32>(op, z, c0, u),
            CpuStorage::F64(_) => run::<f64>(op, z, c0, u),
            other => Err(Error::UnsupportedDType { op, dtype: other.dtype(), hint: "internal: F32 or F64 here" }),
        }
    }

    pub(super) fn lstm_cell_grad(
        op: &'static str,
        ops: [Operand<'_>; 3],
        grads: [Option<Operand<'_>>; 2],
        u: usize,
    ) -> Result<[CpuStorage; 2]> {
        fn run<T: CellFloat>(
            op: &'static str,
            [g, c0, c]: [Operand<'_>; 3],
            [dh, dc]: [Option<Operand<'_>>; 2],
            u: usize,
        ) -> Result<[CpuStorage; 2]> {
            let dh = dh.map(|(s, l)| slice::<T>(op, s, l)).transpose()?;
            let dc = dc.map(|(s, l)| slice::<T>(op, s, l)).transpose()?;
            let (g, c0, c) = (slice(op, g.0, g.1)?, slice(op, c0.0, c0.1)?, slice(op, c.0, c.1)?);
            Ok(wrap(bwd::<T>(g, c0, c, dh, dc, u)))
        }
        match ops[0].0 {
            CpuStorage::F32(_) => run::<f32>(op, ops, grads, u),
            CpuStorage::F64(_) => run::<f64>(op, ops, grads, u),
            other => Err(Error::UnsupportedDType { op, dtype: other.dtype(), hint: "internal: F32 or F64 here" }),
        }
    }
}
