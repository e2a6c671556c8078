//! The fused LSTM and GRU cells on CUDA (`keel_cuda_kernels::ops::rnn`): one launch for a
//! step's gate math, one for its backward. F32/F16/BF16 storage is read as stored and computed in
//! f32 (each output rounded once), F64 in double.

use super::*;
use crate::storage::BackendStorage;
use crate::{DType, Error, Layout, Result};
use keel_cuda_kernels as kk;
use kk::cudarc::driver::{CudaSlice, CudaView};
use kk::ops::rnn as kr;

type Operand<'a> = (&'a CudaStorage, &'a Layout);

/// A float storage type of the fused cells: its buffer in [`Data`] (F64: the `i64` bits),
/// and the poison of fresh buffers.
trait CellElem: kk::FloatStorage {
    const POISON: Self;
    fn of(d: &Data) -> Option<&CudaSlice<Self>>;
    fn wrap(buf: CudaSlice<Self>) -> Data;
}

macro_rules! cell_elem {
    ($t:ty, $v:ident, $poison:expr) => {
        impl CellElem for $t {
            const POISON: Self = $poison;
            fn of(d: &Data) -> Option<&CudaSlice<Self>> {
                match d {
                    Data::$v(x) => Some(x),
                    _ => None,
                }
            }
            fn wrap(buf: CudaSlice<Self>) -> Data {
                Data::$v(buf)
            }
        }
    };
}
cell_elem!(f32, F32, f32::NAN);
cell_elem!(half::f16, F16, half::f16::NAN);
cell_elem!(half::bf16, BF16, half::bf16::NAN);
cell_elem!(i64, F64, F64_POISON);

/// `f::<T>` for `z`'s float dtype.
macro_rules! by_dtype {
    ($op:expr, $z:expr, $f:ident($($arg:expr),*)) => {
        match $z.dtype() {
            DType::F32 => $f::<f32>($($arg),*),
            DType::F16 => $f::<half::f16>($($arg),*),
            DType::BF16 => $f::<half::bf16>($($arg),*),
            DType::F64 => $f::<i64>($($arg),*),
            dtype => Err(Error::UnsupportedDType { op: $op, dtype, hint: "cast to a float dtype first" }),
        }
    };
}

/// `(s, l)`'s buffer as `T`, or a dtype mismatch against `z`'s dtype.
fn typed<'a, T: CellElem>(
    op: &'static str,
    z: &CudaStorage,
    (s, l): Operand<'a>,
) -> Result<(&'a CudaSlice<T>, &'a Layout)> {
    z.same_device(op, s)?;
    let x = T::of(&s.data).ok_or(Error::DTypeMismatch { op, lhs: z.dtype(), rhs: s.dtype() })?;
    Ok((x, l))
}

/// `o` as a contiguous buffer of `T` (a copy when it is a strided view).
fn contig_of<'a, T: CellElem>(
    op: &'static str,
    dev: &kk::CudaDevice,
    first: &CudaStorage,
    o: Operand<'a>,
) -> Result<Contig<'a, T>> {
    let (x, l) = typed::<T>(op, first, o)?;
    contig(dev, x, l, T::POISON)
}

/// An operand read as rows `ld` apart in place (see `ops::rnn::rows`).
type RowOperand<'a> = (&'a CudaStorage, &'a Layout, usize);

/// The elements a row operand reads, from its first, as `T`, and its row stride.
fn row_view<'a, T: CellElem>(
    op: &'static str,
    first: &CudaStorage,
    (s, l, ld): RowOperand<'a>,
) -> Result<(CudaView<'a, T>, usize)> {
    let (x, _) = typed::<T>(op, first, (s, l))?;
    let (a, b) = crate::ops::rnn::rows_range(l, ld);
    Ok((x.slice(a..b), ld))
}

/// The `dh` terms as row views.
fn dh_views<'a, T: CellElem>(
    op: &'static str,
    first: &CudaStorage,
    dh: &[RowOperand<'a>],
) -> Result<Vec<(CudaView<'a, T>, usize)>> {
    dh.iter().map(|&t| row_view::<T>(op, first, t)).collect()
}

pub(crate) fn lstm_cell(
    x: RowOperand<'_>,
    p: Option<Operand<'_>>,
    c0: Operand<'_>,
    b: usize,
    u: usize,
) -> Result<[CudaStorage; 3]> {
    by_dtype!("lstm_cell", x.0, lstm_fwd_t(x, p, c0, (b, u)))
}

fn lstm_fwd_t<T: CellElem>(
    x: RowOperand<'_>,
    p: Option<Operand<'_>>,
    c0: Operand<'_>,
    (b, u): (usize, usize),
) -> Result<[CudaStorage; 3]> {
    const OP: &str = "lstm_cell";
    let xs = x.0;
    let dev = &*xs.dev;
    let x = row_view::<T>(OP, xs, x)?;
    let p = p.map(|o| contig_of::<T>(OP, dev, xs, o)).transpose()?;
    let c0 = contig_of::<T>(OP, dev, xs, c0)?;
    let n = b * u;
    let (mut h, mut c) = (alloc_fill(dev, n, T::POISON)?, alloc_fill(dev, n, T::POISON)?);
    let mut g = alloc_fill(dev, 4 * n, T::POISON)?;
    let (mut hv, mut cv, mut gv) = (head_mut(&mut h, n), head_mut(&mut c, n), head_mut(&mut g, 4 * n));
    let pv = p.as_ref().map(Contig::view);
    kr::lstm_cell(dev, b, u, (&x.0, x.1), pv.as_ref(), &c0.view(), &mut hv, &mut cv, &mut gv).ctx(OP)?;
    Ok([xs.like(T::wrap(h), n), xs.like(T::wrap(c), n), xs.like(T::wrap(g), 4 * n)])
}

pub(crate) fn lstm_cell_grad(
    ops: [Operand<'_>; 3],
    dh: &[RowOperand<'_>],
    dc: Option<Operand<'_>>,
    b: usize,
    u: usize,
) -> Result<[CudaStorage; 2]> {
    by_dtype!("lstm_cell_grad", ops[0].0, lstm_bwd_t(ops, dh, dc, (b, u)))
}

fn lstm_bwd_t<T: CellElem>(
    ops: [Operand<'_>; 3],
    dh: &[RowOperand<'_>],
    dc: Option<Operand<'_>>,
    (b, u): (usize, usize),
) -> Result<[CudaStorage; 2]> {
    const OP: &str = "lstm_cell_grad";
    let gs = ops[0].0;
    let dev = &*gs.dev;
    let [g, c0, c] = ops.map(|o| contig_of::<T>(OP, dev, gs, o));
    let (g, c0, c) = (g?, c0?, c?);
    let dc = dc.map(|o| contig_of::<T>(OP, dev, gs, o)).transpose()?;
    let dh = dh_views::<T>(OP, gs, dh)?;
    let dh: Vec<_> = dh.iter().map(|(v, ld)| (v, *ld)).collect();
    let dcv = dc.as_ref().map(Contig::view);
    let n = b * u;
    let (mut dz, mut dc0) = (alloc_fill(dev, 4 * n, T::POISON)?, alloc_fill(dev, n, T::POISON)?);
    let (mut dzv, mut dc0v) = (head_mut(&mut dz, 4 * n), head_mut(&mut dc0, n));
    let (gv, c0v, cv) = (g.view(), c0.view(), c.view());
    kr::lstm_cell_backward(dev, b, u, &gv, &c0v, &cv, &dh, dcv.as_ref(), &mut dzv, &mut dc0v).ctx(OP)?;
    Ok([gs.like(T::wrap(dz), 4 * n), gs.like(T::wrap(dc0), n)])
}

pub(crate) fn gru_cell(rows: [RowOperand<'_>; 2], h0: Operand<'_>, b: usize, u: usize) -> Result<[CudaStorage; 2]> {
    by_dtype!("gru_cell", rows[0].0, gru_fwd_t(rows, h0, (b, u)))
}

fn gru_fwd_t<T: CellElem>(
    [x, p]: [RowOperand<'_>; 2],
    h0: Operand<'_>,
    (b, u): (usize, usize),
) -> Result<[CudaStorage; 2]> {
    const OP: &str = "gru_cell";
    let xs = x.0;
    let dev = &*xs.dev;
    let (x, p) = (row_view::<T>(OP, xs, x)?, row_view::<T>(OP, xs, p)?);
    let h0 = contig_of::<T>(OP, dev, xs, h0)?;
    let n = b * u;
    let (mut h, mut g) = (alloc_fill(dev, n, T::POISON)?, alloc_fill(dev, 3 * n, T::POISON)?);
    let (mut hv, mut gv) = (head_mut(&mut h, n), head_mut(&mut g, 3 * n));
    kr::gru_cell(dev, b, u, (&x.0, x.1), (&p.0, p.1), &h0.view(), &mut hv, &mut gv).ctx(OP)?;
    Ok([xs.like(T::wrap(h), n), xs.like(T::wrap(g), 3 * n)])
}

pub(crate) fn gru_cell_grad(
    ops: [Operand<'_>; 2],
    p: RowOperand<'_>,
    dh: &[RowOperand<'_>],
    b: usize,
    u: usize,
) -> Result<[CudaStorage; 3]> {
    by_dtype!("gru_cell_grad", ops[0].0, gru_bwd_t(ops, p, dh, (b, u)))
}

fn gru_bwd_t<T: CellElem>(
    ops: [Operand<'_>; 2],
    p: RowOperand<'_>,
    dh: &[RowOperand<'_>],
    (b, u): (usize, usize),
) -> Result<[CudaStorage; 3]> {
    const OP: &str = "gru_cell_grad";
    let gs = ops[0].0;
    let dev = &*gs.dev;
    let p = row_view::<T>(OP, gs, p)?;
    let [g, h0] = ops.map(|o| contig_of::<T>(OP, dev, gs, o));
    let (g, h0) = (g?, h0?);
    let dh = dh_views::<T>(OP, gs, dh)?;
    let dh: Vec<_> = dh.iter().map(|(v, ld)| (v, *ld)).collect();
    let n = b * u;
    let (mut dx, mut dp, mut dh0) =
        (alloc_fill(dev, 3 * n, T::POISON)?, alloc_fill(dev, 3 * n, T::POISON)?, alloc_fill(dev, n, T::POISON)?);
    let (mut dxv, mut dpv, mut dh0v) = (head_mut(&mut dx, 3 * n), head_mut(&mut dp, 3 * n), head_mut(&mut dh0, n));
    let (gv, h0v) = (g.view(), h0.view());
    kr::gru_cell_backward(dev, b, u, &gv, (&p.0, p.1), &h0v, &dh, &mut dxv, &mut dpv, &mut dh0v).ctx(OP)?;
    Ok([gs.like(T::wrap(dx), 3 * n), gs.like(T::wrap(dp), 3 * n), gs.like(T::wrap(dh0), n)])
}
