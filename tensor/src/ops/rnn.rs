//! Fused recurrent-cell math: one LSTM step's gates, cell state and output
//! ([`Tensor::lstm_cell`]) and its backward ([`Tensor::lstm_cell_grad`]). On CUDA each is
//! one kernel launch where the composed elementwise ops take about 11 and 25 per
//! timestep; on the CPU one pass over the step's elements instead of a dozen.
//!
//! The LSTM's gate pre-activations `z = x + p` are `[batch, 4 * units]` in Keras's gate
//! order (input, forget, candidate, output): `x` the input projection `x_t W + b`, `p` the
//! recurrent one `h_prev U` (optional: without it `z = x`); the states are
//! `[batch, units]`. The gates are `i = σ(z_i)`, `f = σ(z_f)`, `g = tanh(z_c)`,
//! `o = σ(z_o)` (σ the logistic sigmoid, Keras's default `recurrent_activation`; tanh its
//! default `activation`), and `c = f c_prev + i g`, `h = o tanh(c)`. The forward also
//! returns the gate activations `[i, f, g, o]` (in `z`'s layout), which the backward reads
//! instead of recomputing them (PyTorch's fused cell keeps the same workspace): the
//! backward evaluates one tanh per element rather than five transcendentals. F32 and F64
//! compute in their own type with the composed ops' formulas and order (an F32 forward
//! step has their bits); F16/BF16 compute in F32 and round each output once (the composed
//! ops round every intermediate).
//!
//! [`Tensor::gru_cell`] and [`Tensor::gru_cell_grad`] do the same for a GRU step in Keras's
//! default `reset_after=True` form (gate order z, r, h): from the input projection
//! `x = x_t W + b` and the recurrent one `p = h_prev U + b'` (both `[batch, 3 * units]`),
//! `z = σ(x_z + p_z)`, `r = σ(x_r + p_r)`, `n = tanh(x_h + r p_h)` and
//! `h = n + z (h_prev - n)` (Keras's `z h_prev + (1 - z) n`, in the form the composed ops
//! evaluate). The workspace is `[z, r, n]`.
//!
//! The input projections and the gradients reaching `h` may be row-strided views (one
//! timestep of a `[batch, time, n]` tensor): they are read in place. The backwards take
//! the gradient reaching `h` as a list of up to [`DH_TERMS`] terms they add (a step inside
//! a sequence gets one from the next step and one from the output sequence), so no
//! separate add runs.

use crate::storage::Storage;
use crate::{DType, Error, Result, Tensor};

/// The most terms [`Tensor::lstm_cell_grad`] and [`Tensor::gru_cell_grad`] add into the
/// gradient reaching `h`.
pub const DH_TERMS: usize = 3;

impl Tensor {
    /// One LSTM step from the input projection `self` (`[batch, 4 * units]`), the recurrent
    /// projection `p` (the same shape; `None`: `self` is the whole pre-activation) and the
    /// previous cell state `c_prev` (`[batch, units]`): `(h, c, gates)`, `gates` the gate
    /// activations for [`Tensor::lstm_cell_grad`] (see the module docs).
    pub fn lstm_cell(&self, p: Option<&Tensor>, c_prev: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        const OP: &str = "lstm_cell";
        let (b, u) = cell_dims(OP, 4, self, p.as_slice(), &[c_prev])?;
        if let Some(wide) = widened(self) {
            let (p, c0) = (p.map(wide).transpose()?, wide(c_prev)?);
            let (h, c, g) = wide(self)?.lstm_cell(p.as_ref(), &c0)?;
            let dt = self.dtype();
            return Ok((h.to_dtype(dt)?, c.to_dtype(dt)?, g.to_dtype(dt)?));
        }
        let (x, c0) = (rows(self)?, c_prev.contiguous()?);
        let p = p.map(Tensor::contiguous).transpose()?;
        let [h, c, g] = {
            let (xs, cs, ps) = (x.0.storage(), c0.storage(), p.as_ref().map(|t| t.storage()));
            let ps = ps.as_deref().zip(p.as_ref().map(Tensor::layout));
            match (&*xs, &*cs) {
                #[cfg(feature = "cpu")]
                (Storage::Cpu(xs), Storage::Cpu(cs)) => {
                    let p = on_cpu(OP, ps)?;
                    cpu::lstm_cell(OP, (xs, x.0.layout(), x.1), p, (cs, c0.layout()), u)?.map(Storage::Cpu)
                }
                #[cfg(feature = "cuda")]
                (Storage::Cuda(xs), Storage::Cuda(cs)) => {
                    let p = on_cuda(OP, ps)?;
                    crate::cuda::rnn::lstm_cell((xs, x.0.layout(), x.1), p, (cs, c0.layout()), b, u)?.map(Storage::Cuda)
                }
                (x, y) => return Err(mismatch(OP, x, y)),
            }
        };
        Ok((Tensor::from_storage(h, [b, u]), Tensor::from_storage(c, [b, u]), Tensor::from_storage(g, [b, 4 * u])))
    }

    /// The backward of [`Tensor::lstm_cell`] from its gate activations `self`
    /// (`[batch, 4 * units]`), `c_prev` and `c`: from the gradient reaching `h` (the sum of
    /// the terms `dh`, at most [`DH_TERMS`]; none: zero) and the one reaching `c` (`None`:
    /// zero), `(dz, dc_prev)`.
    pub fn lstm_cell_grad(
        &self,
        c_prev: &Tensor,
        c: &Tensor,
        dh: &[&Tensor],
        dc: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        const OP: &str = "lstm_cell_grad";
        let states: Vec<&Tensor> = [c_prev, c].into_iter().chain(dh.iter().copied()).chain(dc).collect();
        let (b, u) = cell_dims(OP, 4, self, &[], &states)?;
        check_terms(OP, dh)?;
        if let Some(wide) = widened(self) {
            let dh = dh.iter().map(|t| wide(t)).collect::<Result<Vec<_>>>()?;
            let dc = dc.map(wide).transpose()?;
            let (dz, dc0) =
                wide(self)?.lstm_cell_grad(&wide(c_prev)?, &wide(c)?, &dh.iter().collect::<Vec<_>>(), dc.as_ref())?;
            return Ok((dz.to_dtype(self.dtype())?, dc0.to_dtype(self.dtype())?));
        }
        let contig = |t: &Tensor| t.contiguous();
        let (g, c0, c, dc) = (contig(self)?, contig(c_prev)?, contig(c)?, dc.map(contig).transpose()?);
        let dh = dh.iter().map(|t| rows(t)).collect::<Result<Vec<_>>>()?;
        let [dz, dc0] = {
            let (gs, c0s, cs) = (g.storage(), c0.storage(), c.storage());
            let dcs = dc.as_ref().map(|t| t.storage());
            let dcs = dcs.as_deref().zip(dc.as_ref().map(Tensor::layout));
            let dhs: Vec<_> = dh.iter().map(|t| t.0.storage()).collect();
            let dhs: Vec<_> = dhs.iter().zip(&dh).map(|(s, t)| (&**s, t.0.layout(), t.1)).collect();
            match (&*gs, &*c0s, &*cs) {
                #[cfg(feature = "cpu")]
                (Storage::Cpu(gs), Storage::Cpu(c0s), Storage::Cpu(cs)) => {
                    let ops = [(gs, g.layout()), (c0s, c0.layout()), (cs, c.layout())];
                    let dh = dhs.iter().map(|&t| row_on_cpu(OP, t)).collect::<Result<Vec<_>>>()?;
                    cpu::lstm_cell_grad(OP, ops, &dh, on_cpu(OP, dcs)?, u)?.map(Storage::Cpu)
                }
                #[cfg(feature = "cuda")]
                (Storage::Cuda(gs), Storage::Cuda(c0s), Storage::Cuda(cs)) => {
                    let ops = [(gs, g.layout()), (c0s, c0.layout()), (cs, c.layout())];
                    let dh = dhs.iter().map(|&t| row_on_cuda(OP, t)).collect::<Result<Vec<_>>>()?;
                    crate::cuda::rnn::lstm_cell_grad(ops, &dh, on_cuda(OP, dcs)?, b, u)?.map(Storage::Cuda)
                }
                (x, y, _) => return Err(mismatch(OP, x, y)),
            }
        };
        Ok((Tensor::from_storage(dz, [b, 4 * u]), Tensor::from_storage(dc0, [b, u])))
    }

    /// One GRU step (`reset_after=True`) from the input projection `self` and the recurrent
    /// projection `hp` (both `[batch, 3 * units]`, gate order z, r, h) and `h_prev`
    /// (`[batch, units]`): `(h, gates)`, `gates` the activations `[z, r, n]` for
    /// [`Tensor::gru_cell_grad`] (see the module docs).
    pub fn gru_cell(&self, hp: &Tensor, h_prev: &Tensor) -> Result<(Tensor, Tensor)> {
        const OP: &str = "gru_cell";
        let (b, u) = cell_dims(OP, 3, self, &[hp], &[h_prev])?;
        if let Some(wide) = widened(self) {
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
                    cpu::gru_cell(OP, rows, (hs, h0.layout()), u)?.map(Storage::Cpu)
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
    /// reaching `h` (the sum of the terms `dh`, at most [`DH_TERMS`]; none: zero),
    /// `(dx, dhp, dh_prev)`: the gradients of the input projection, of the recurrent
    /// projection, and of `h_prev` along its direct path (`dh z`; the path through `hp` is
    /// `dhp U^T`).
    pub fn gru_cell_grad(&self, hp: &Tensor, h_prev: &Tensor, dh: &[&Tensor]) -> Result<(Tensor, Tensor, Tensor)> {
        const OP: &str = "gru_cell_grad";
        let states: Vec<&Tensor> = std::iter::once(h_prev).chain(dh.iter().copied()).collect();
        let (b, u) = cell_dims(OP, 3, self, &[hp], &states)?;
        check_terms(OP, dh)?;
        if let Some(wide) = widened(self) {
            let dh = dh.iter().map(|t| wide(t)).collect::<Result<Vec<_>>>()?;
            let (dx, dp, dh0) =
                wide(self)?.gru_cell_grad(&wide(hp)?, &wide(h_prev)?, &dh.iter().collect::<Vec<_>>())?;
            let dt = self.dtype();
            return Ok((dx.to_dtype(dt)?, dp.to_dtype(dt)?, dh0.to_dtype(dt)?));
        }
        let (g, hp, h0) = (self.contiguous()?, rows(hp)?, h_prev.contiguous()?);
        let dh = dh.iter().map(|t| rows(t)).collect::<Result<Vec<_>>>()?;
        let [dx, dp, dh0] = {
            let (gs, ps, hs) = (g.storage(), hp.0.storage(), h0.storage());
            let dhs: Vec<_> = dh.iter().map(|t| t.0.storage()).collect();
            let dhs: Vec<_> = dhs.iter().zip(&dh).map(|(s, t)| (&**s, t.0.layout(), t.1)).collect();
            match (&*gs, &*ps, &*hs) {
                #[cfg(feature = "cpu")]
                (Storage::Cpu(gs), Storage::Cpu(ps), Storage::Cpu(hs)) => {
                    let dh = dhs.iter().map(|&t| row_on_cpu(OP, t)).collect::<Result<Vec<_>>>()?;
                    let ops = [(gs, g.layout()), (hs, h0.layout())];
                    cpu::gru_cell_grad(OP, ops, (ps, hp.0.layout(), hp.1), &dh, u)?.map(Storage::Cpu)
                }
                #[cfg(feature = "cuda")]
                (Storage::Cuda(gs), Storage::Cuda(ps), Storage::Cuda(hs)) => {
                    let dh = dhs.iter().map(|&t| row_on_cuda(OP, t)).collect::<Result<Vec<_>>>()?;
                    let ops = [(gs, g.layout()), (hs, h0.layout())];
                    crate::cuda::rnn::gru_cell_grad(ops, (ps, hp.0.layout(), hp.1), &dh, b, u)?.map(Storage::Cuda)
                }
                (x, y, z) => return Err(mismatch3(OP, [x, y, z])),
            }
        };
        let (g3, g1) = ([b, 3 * u], [b, u]);
        Ok((Tensor::from_storage(dx, g3), Tensor::from_storage(dp, g3), Tensor::from_storage(dh0, g1)))
    }
}

/// For F16/BF16 on the CPU, the widening to F32 the cell computes in.
fn widened(t: &Tensor) -> Option<fn(&Tensor) -> Result<Tensor>> {
    let cpu_half = matches!(t.dtype(), DType::F16 | DType::BF16) && t.device() == crate::Device::Cpu;
    cpu_half.then_some(|t: &Tensor| t.to_dtype(DType::F32))
}

fn check_terms(op: &'static str, dh: &[&Tensor]) -> Result<()> {
    if dh.len() > DH_TERMS {
        return Err(Error::invalid(op, format!("{} gradient terms for h, at most {DH_TERMS}", dh.len())));
    }
    Ok(())
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

/// A row operand's CPU storage (an error when it is elsewhere).
#[cfg(feature = "cpu")]
fn row_on_cpu<'a>(
    op: &'static str,
    (s, l, ld): (&'a Storage, &'a crate::Layout, usize),
) -> Result<(&'a crate::CpuStorage, &'a crate::Layout, usize)> {
    let (s, l) = on_cpu(op, Some((s, l)))?.ok_or_else(|| Error::invalid(op, "internal: no operand"))?;
    Ok((s, l, ld))
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

/// A row operand's CUDA storage (an error when it is elsewhere).
#[cfg(feature = "cuda")]
fn row_on_cuda<'a>(
    op: &'static str,
    (s, l, ld): (&'a Storage, &'a crate::Layout, usize),
) -> Result<(&'a crate::CudaStorage, &'a crate::Layout, usize)> {
    let (s, l) = on_cuda(op, Some((s, l)))?.ok_or_else(|| Error::invalid(op, "internal: no operand"))?;
    Ok((s, l, ld))
}

fn mismatch(op: &'static str, x: &Storage, y: &Storage) -> Error {
    Error::DeviceMismatch { op, lhs: x.device().to_string(), rhs: y.device().to_string() }
}

fn mismatch3(op: &'static str, s: [&Storage; 3]) -> Error {
    let other = s.iter().find(|x| x.device() != s[0].device()).unwrap_or(&s[1]);
    mismatch(op, s[0], other)
}

/// `(batch, units)` of `first` (`[batch, k * units]`), the other `[batch, k * units]`
/// tensors `wide` and the `[batch, units]` tensors `states`, all of one float dtype.
fn cell_dims(
    op: &'static str,
    k: usize,
    first: &Tensor,
    wide: &[&Tensor],
    states: &[&Tensor],
) -> Result<(usize, usize)> {
    if !first.dtype().is_float() {
        return Err(Error::UnsupportedDType { op, dtype: first.dtype(), hint: "the gates must be a float dtype" });
    }
    let what = format!("the gates must be [batch, {k} * units] and the states [batch, units]");
    let bad = |t: &Tensor| Error::shape_mismatch(op, first.shape(), t.shape(), what.clone());
    let &[b, uk] = first.dims() else { return Err(bad(states[0])) };
    let u = uk / k;
    if uk % k != 0 {
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
        want(t, [b, k * u])?;
    }
    for t in states {
        want(t, [b, u])?;
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
    }
    impl CellFloat for f32 {
        const ZERO: Self = 0.0;
        const ONE: Self = 1.0;
    }
    impl CellFloat for f64 {
        const ZERO: Self = 0.0;
        const ONE: Self = 1.0;
    }

    /// Rows per rayon task at least (a batch of 32 rows splits four ways).
    const MIN_ROWS: usize = 8;

    type Operand<'a> = (&'a CpuStorage, &'a Layout);
    /// An operand read as rows `ld` apart (see `super::rows`).
    pub(super) type RowOperand<'a> = (&'a CpuStorage, &'a Layout, usize);
    /// A row operand's elements from its first, and its row stride.
    type RowSlice<'a, T> = (&'a [T], usize);

    /// The elements `l` (contiguous) selects in `s`, as `T`.
    fn slice<'a, T: WithDType>(op: &'static str, s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
        let all = T::cpu_slice(s).ok_or(Error::DTypeMismatch { op, lhs: T::DTYPE, rhs: s.dtype() })?;
        let (a, b) = l.contiguous_range().ok_or_else(|| Error::invalid(op, "internal: operand not contiguous"))?;
        Ok(&all[a..b])
    }

    /// The elements a row operand reads, from its first, and its row stride.
    fn row_slice<'a, T: WithDType>(op: &'static str, (s, l, ld): RowOperand<'a>) -> Result<RowSlice<'a, T>> {
        let all = T::cpu_slice(s).ok_or(Error::DTypeMismatch { op, lhs: T::DTYPE, rhs: s.dtype() })?;
        let (a, b) = super::rows_range(l, ld);
        Ok((&all[a..b], ld))
    }

    /// The sum of the `dh` terms' row `r` into `out` (`units` long), term by term (a loop
    /// the compiler vectorizes, where a per-element sum over the terms is not).
    fn dh_row<T: CellFloat>(dh: &[RowSlice<'_, T>], r: usize, out: &mut [T]) {
        out.fill(T::ZERO);
        for &(d, ld) in dh {
            for (o, &v) in out.iter_mut().zip(&d[r * ld..]) {
                *o = *o + v;
            }
        }
    }

    crate::cpu::simd_fn! {
        /// One LSTM step per row (the module docs' formulas in the composed ops' order:
        /// `x + p`, then the gates, `(f * c_prev) + (i * g)` and `o * tanh(c)`). Each
        /// gate block is its own slice of exactly `u`, so the element loop has no bounds
        /// checks and vectorizes (in F32 with `vmath`'s exp and tanh; AVX2 where the CPU
        /// has it).
        fn lstm_fwd[T: CellFloat][T](x: RowSlice<'_, T>, p: Option<&[T]>, c0: &[T], u: usize) -> [Vec<T>; 3] {
            let uu = u.max(1);
            let (mut h, mut c, mut gates) = (vec![T::ZERO; c0.len()], vec![T::ZERO; c0.len()], vec![T::ZERO; 4 * c0.len()]);
            h.par_chunks_mut(uu)
                .zip(c.par_chunks_mut(uu))
                .zip(gates.par_chunks_mut(4 * uu))
                .enumerate()
                .with_min_len(MIN_ROWS)
                .for_each_init(
                    || if p.is_some() { vec![T::ZERO; 4 * u] } else { Vec::new() },
                    |sum, (r, ((hr, cr), gr))| {
                        let xr = &x.0[r * x.1..r * x.1 + 4 * u];
                        // z = x + p, the row at once; x itself without p
                        let zr: &[T] = match p {
                            Some(p) => {
                                for ((z, &a), &b) in sum.iter_mut().zip(xr).zip(&p[r * 4 * u..]) {
                                    *z = a + b;
                                }
                                sum
                            }
                            None => xr,
                        };
                        let [zi, zf, zg, zo] = blocks(zr, u);
                        let [gi, gf, gg, go] = blocks_mut(gr, u);
                        let (c0r, hr, cr) = (&c0[r * u..(r + 1) * u], &mut hr[..u], &mut cr[..u]);
                        for j in 0..u {
                            let (i, f, g, o) = (zi[j].sigmoid_(), zf[j].sigmoid_(), zg[j].tanh_(), zo[j].sigmoid_());
                            let cn = f * c0r[j] + i * g;
                            cr[j] = cn;
                            hr[j] = o * cn.tanh_();
                            (gi[j], gf[j], gg[j], go[j]) = (i, f, g, o);
                        }
                    },
                );
            [h, c, gates]
        }
    }

    crate::cpu::simd_fn! {
        /// The LSTM step's gradient per row, compiled like [`lstm_fwd`].
        fn lstm_bwd[T: CellFloat][T](
            gates: &[T],
            c0: &[T],
            c: &[T],
            dh: &[RowSlice<'_, T>],
            dc: Option<&[T]>,
            u: usize,
        ) -> [Vec<T>; 2] {
            let (mut dz, mut dc0) = (vec![T::ZERO; gates.len()], vec![T::ZERO; c0.len()]);
            let uu = u.max(1);
            dz.par_chunks_mut(4 * uu)
                .zip(dc0.par_chunks_mut(uu))
                .zip(gates.par_chunks(4 * uu))
                .enumerate()
                .with_min_len(MIN_ROWS)
                .for_each_init(
                    // the dh row's sum, and zeros standing for an absent dc (no branch in the loop)
                    || (vec![T::ZERO; u], if dc.is_some() { Vec::new() } else { vec![T::ZERO; u] }),
                    |(dhr, zeros), (r, ((dzr, dc0r), gr))| {
                        dh_row(dh, r, dhr);
                        let [gi, gf, gg, go] = blocks(gr, u);
                        let [dzi, dzf, dzg, dzo] = blocks_mut(dzr, u);
                        let row = r * u..(r + 1) * u;
                        let (c0r, cr, dhr, dc0r) = (&c0[row.clone()], &c[row.clone()], &dhr[..u], &mut dc0r[..u]);
                        let dcr = match dc {
                            Some(d) => &d[row],
                            None => &zeros[..u],
                        };
                        for j in 0..u {
                            let (i, f, g, o) = (gi[j], gf[j], gg[j], go[j]);
                            let (cp, tc) = (c0r[j], cr[j].tanh_());
                            let dhv = dhr[j];
                            let dct = dcr[j] + dhv * o * (T::ONE - tc * tc);
                            dzi[j] = dct * g * i * (T::ONE - i);
                            dzf[j] = dct * cp * f * (T::ONE - f);
                            dzg[j] = dct * i * (T::ONE - g * g);
                            dzo[j] = dhv * tc * o * (T::ONE - o);
                            dc0r[j] = dct * f;
                        }
                    },
                );
            [dz, dc0]
        }
    }

    crate::cpu::simd_fn! {
        /// One GRU step per row (the module docs' formulas in the composed ops' order: `x + p`
        /// then σ, `x_h + (r p_h)` then tanh, `n + z (h_prev - n)`), compiled like [`lstm_fwd`].
        fn gru_fwd[T: CellFloat][T](x: RowSlice<'_, T>, p: RowSlice<'_, T>, h0: &[T], u: usize) -> [Vec<T>; 2] {
            let uu = u.max(1);
            let (mut h, mut gates) = (vec![T::ZERO; h0.len()], vec![T::ZERO; 3 * h0.len()]);
            h.par_chunks_mut(uu).zip(gates.par_chunks_mut(3 * uu)).enumerate().with_min_len(MIN_ROWS).for_each(
                |(r, (hr, gr))| {
                    let [xz, xr, xh] = blocks(&x.0[r * x.1..], u);
                    let [pz, pr, ph] = blocks(&p.0[r * p.1..], u);
                    let [gz, grr, gn] = blocks_mut(gr, u);
                    let (h0r, hr) = (&h0[r * u..(r + 1) * u], &mut hr[..u]);
                    for j in 0..u {
                        let z = (xz[j] + pz[j]).sigmoid_();
                        let rg = (xr[j] + pr[j]).sigmoid_();
                        let n = (xh[j] + rg * ph[j]).tanh_();
                        hr[j] = n + z * (h0r[j] - n);
                        (gz[j], grr[j], gn[j]) = (z, rg, n);
                    }
                },
            );
            [h, gates]
        }
    }

    crate::cpu::simd_fn! {
        /// The GRU step's gradient per row, compiled like [`lstm_fwd`].
        fn gru_bwd[T: CellFloat][T](
            gates: &[T],
            p: RowSlice<'_, T>,
            h0: &[T],
            dh: &[RowSlice<'_, T>],
            u: usize,
        ) -> [Vec<T>; 3] {
            let uu = u.max(1);
            let (mut dx, mut dp, mut dh0) =
                (vec![T::ZERO; gates.len()], vec![T::ZERO; gates.len()], vec![T::ZERO; h0.len()]);
            dx.par_chunks_mut(3 * uu)
                .zip(dp.par_chunks_mut(3 * uu))
                .zip(dh0.par_chunks_mut(uu))
                .enumerate()
                .with_min_len(MIN_ROWS)
                .for_each_init(
                    || vec![T::ZERO; u],
                    |dhr, (r, ((dxr, dpr), dh0r))| {
                        dh_row(dh, r, dhr);
                        let [gz, grr, gn] = blocks(&gates[r * 3 * u..], u);
                        let ph = &p.0[r * p.1 + 2 * u..r * p.1 + 3 * u];
                        let [dxz, dxr, dxn] = blocks_mut(dxr, u);
                        let [dpz, dpr, dpn] = blocks_mut(dpr, u);
                        let (h0r, dhr, dh0r) = (&h0[r * u..(r + 1) * u], &dhr[..u], &mut dh0r[..u]);
                        for j in 0..u {
                            let (z, rg, n) = (gz[j], grr[j], gn[j]);
                            let d = dhr[j];
                            let dn = d * (T::ONE - z) * (T::ONE - n * n);
                            let dz = d * (h0r[j] - n) * z * (T::ONE - z);
                            let dr = dn * ph[j] * rg * (T::ONE - rg);
                            (dxz[j], dxr[j], dxn[j]) = (dz, dr, dn);
                            (dpz[j], dpr[j], dpn[j]) = (dz, dr, dn * rg);
                            dh0r[j] = d * z;
                        }
                    },
                );
            [dx, dp, dh0]
        }
    }

    /// The first `N` blocks of `u` elements of `v`, each a slice of exactly `u` (so loops
    /// over `0..u` index them without bounds checks).
    fn blocks<T, const N: usize>(v: &[T], u: usize) -> [&[T]; N] {
        std::array::from_fn(|k| &v[k * u..(k + 1) * u])
    }

    /// [`blocks`] for writing.
    fn blocks_mut<T, const N: usize>(v: &mut [T], u: usize) -> [&mut [T]; N] {
        let mut rest = v;
        std::array::from_fn(|_| {
            let (block, tail) = std::mem::take(&mut rest).split_at_mut(u);
            rest = tail;
            block
        })
    }

    /// Wraps F32/F64 results back into storage of their type.
    fn wrap<const N: usize, T: WithDType>(v: [Vec<T>; N]) -> [CpuStorage; N] {
        v.map(T::to_cpu_storage)
    }

    /// `f::<f32>` or `f::<f64>` for `s`'s dtype.
    macro_rules! by_float {
        ($op:expr, $s:expr, $f:ident($($arg:expr),*)) => {
            match $s {
                CpuStorage::F32(_) => $f::<f32>($($arg),*),
                CpuStorage::F64(_) => $f::<f64>($($arg),*),
                other => Err(Error::UnsupportedDType { op: $op, dtype: other.dtype(), hint: "internal: F32 or F64 here" }),
            }
        };
    }

    fn rows_of<'a, T: WithDType>(op: &'static str, dh: &[RowOperand<'a>]) -> Result<Vec<RowSlice<'a, T>>> {
        dh.iter().map(|&t| row_slice(op, t)).collect()
    }

    pub(super) fn lstm_cell(
        op: &'static str,
        x: RowOperand<'_>,
        p: Option<Operand<'_>>,
        c0: Operand<'_>,
        u: usize,
    ) -> Result<[CpuStorage; 3]> {
        fn run<T: CellFloat>(
            op: &'static str,
            x: RowOperand<'_>,
            p: Option<Operand<'_>>,
            c0: Operand<'_>,
            u: usize,
        ) -> Result<[CpuStorage; 3]> {
            let p = p.map(|(s, l)| slice::<T>(op, s, l)).transpose()?;
            Ok(wrap(lstm_fwd::<T>(row_slice(op, x)?, p, slice(op, c0.0, c0.1)?, u)))
        }
        by_float!(op, x.0, run(op, x, p, c0, u))
    }

    pub(super) fn lstm_cell_grad(
        op: &'static str,
        ops: [Operand<'_>; 3],
        dh: &[RowOperand<'_>],
        dc: Option<Operand<'_>>,
        u: usize,
    ) -> Result<[CpuStorage; 2]> {
        fn run<T: CellFloat>(
            op: &'static str,
            [g, c0, c]: [Operand<'_>; 3],
            dh: &[RowOperand<'_>],
            dc: Option<Operand<'_>>,
            u: usize,
        ) -> Result<[CpuStorage; 2]> {
            let dc = dc.map(|(s, l)| slice::<T>(op, s, l)).transpose()?;
            let (g, c0, c) = (slice(op, g.0, g.1)?, slice(op, c0.0, c0.1)?, slice(op, c.0, c.1)?);
            Ok(wrap(lstm_bwd::<T>(g, c0, c, &rows_of(op, dh)?, dc, u)))
        }
        by_float!(op, ops[0].0, run(op, ops, dh, dc, u))
    }

    pub(super) fn gru_cell(
        op: &'static str,
        [x, p]: [RowOperand<'_>; 2],
        h0: Operand<'_>,
        u: usize,
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
        by_float!(op, x.0, run(op, x, p, h0, u))
    }

    pub(super) fn gru_cell_grad(
        op: &'static str,
        ops: [Operand<'_>; 2],
        p: RowOperand<'_>,
        dh: &[RowOperand<'_>],
        u: usize,
    ) -> Result<[CpuStorage; 3]> {
        fn run<T: CellFloat>(
            op: &'static str,
            [g, h0]: [Operand<'_>; 2],
            p: RowOperand<'_>,
            dh: &[RowOperand<'_>],
            u: usize,
        ) -> Result<[CpuStorage; 3]> {
            let (g, h0) = (slice(op, g.0, g.1)?, slice(op, h0.0, h0.1)?);
            Ok(wrap(gru_bwd::<T>(g, row_slice(op, p)?, h0, &rows_of(op, dh)?, u)))
        }
        by_float!(op, ops[0].0, run(op, ops, p, dh, u))
    }
}
