//! Indexing: `index_select` / `index_add` along an axis, PyTorch-style `gather` /
//! `scatter_add`, `one_hot`, and joining/splitting (`concat`, `stack`, `split`).
//!
//! Indices are I64; an out-of-range index is an error, never a panic.

use crate::storage::{dispatch2, BackendStorage};
use crate::{DType, Error, Result, Shape, Storage, Tensor};

fn check_index_dtype(op: &'static str, idx: &Tensor) -> Result<()> {
    if idx.dtype() != DType::I64 {
        return Err(Error::UnsupportedDType {
            op,
            dtype: idx.dtype(),
            hint: "indices must be I64; use `.to_dtype(DType::I64)`",
        });
    }
    Ok(())
}

impl Tensor {
    /// Entries `indices` (1-D, I64) along `axis`: `out.dims()[axis] == indices.len()`.
    pub fn index_select(&self, indices: &Tensor, axis: isize) -> Result<Tensor> {
        check_index_dtype("index_select", indices)?;
        let a = self.shape().axis("index_select", axis)?;
        if indices.rank() != 1 {
            return Err(Error::InvalidShape {
                op: "index_select",
                shape: indices.shape().clone(),
                msg: "indices must be 1-D".into(),
            });
        }
        let mut dims = self.dims().to_vec();
        dims[a] = indices.elem_count();
        let (s, i) = (self.storage(), indices.storage());
        let out = dispatch2!("index_select", &*s, &*i, |x, y| x.index_select(self.layout(), y, indices.layout(), a))?;
        Ok(Tensor::from_storage(out, dims))
    }

    /// Zeros of `dims`, plus slice `i` of `self` added at `indices[i]` along `axis`
    /// (the backward of [`Tensor::index_select`]; repeated indices accumulate, in index
    /// order on every device: the same bits on every run).
    pub fn index_add_into(&self, indices: &Tensor, axis: isize, dims: &Shape) -> Result<Tensor> {
        check_index_dtype("index_add", indices)?;
        let a = self.shape().axis("index_add", axis)?;
        if dims.rank() != self.rank() || (0..self.rank()).any(|d| d != a && dims.dims()[d] != self.dims()[d]) {
            return Err(Error::shape_mismatch("index_add", self.shape(), dims, "dims other than the axis must match"));
        }
        let (s, i) = (self.storage(), indices.storage());
        let out =
            dispatch2!("index_add", &*s, &*i, |x, y| x.index_add(self.layout(), y, indices.layout(), a, dims.dims()))?;
        Ok(Tensor::from_storage(out, dims.clone()))
    }

    /// PyTorch `gather`: `out[i][j] = self[index[i][j]][j]` for `axis = 0`, and so on;
    /// `index` has the output shape and the same rank as `self`.
    pub fn gather(&self, index: &Tensor, axis: isize) -> Result<Tensor> {
        check_index_dtype("gather", index)?;
        let a = self.shape().axis("gather", axis)?;
        if index.rank() != self.rank() || (0..self.rank()).any(|d| d != a && index.dims()[d] > self.dims()[d]) {
            return Err(Error::shape_mismatch(
                "gather",
                self.shape(),
                index.shape(),
                "index must have the same rank and fit outside the axis",
            ));
        }
        let (s, i) = (self.storage(), index.storage());
        let out = dispatch2!("gather", &*s, &*i, |x, y| x.gather(self.layout(), y, index.layout(), a))?;
        Ok(Tensor::from_storage(out, index.shape().clone()))
    }

    /// Zeros of `dims`, then `out[index[i][j]][j] += self[i][j]` for `axis = 0`, and so on
    /// (the backward of [`Tensor::gather`]; repeated targets accumulate in `self`'s order on
    /// every device).
    pub fn scatter_add_into(&self, index: &Tensor, axis: isize, dims: &Shape) -> Result<Tensor> {
        check_index_dtype("scatter_add", index)?;
        let a = self.shape().axis("scatter_add", axis)?;
        if index.shape() != self.shape() || dims.rank() != self.rank() {
            return Err(Error::shape_mismatch(
                "scatter_add",
                self.shape(),
                index.shape(),
                "source and index must have one shape",
            ));
        }
        let (s, i) = (self.storage(), index.storage());
        let out = dispatch2!("scatter_add", &*s, &*i, |x, y| x.scatter_add(
            self.layout(),
            y,
            index.layout(),
            a,
            dims.dims()
        ))?;
        Ok(Tensor::from_storage(out, dims.clone()))
    }

    /// One-hot encode integer labels (any integer dtype) into `[..., num_classes]` of `dtype`.
    pub fn one_hot(&self, num_classes: usize, dtype: DType) -> Result<Tensor> {
        if self.dtype().is_float() {
            return Err(Error::UnsupportedDType {
                op: "one_hot",
                dtype: self.dtype(),
                hint: "labels must be an integer dtype",
            });
        }
        let labels = self.to_dtype(DType::I64)?;
        labels.check_indices(num_classes, "one_hot")?;
        let classes = Tensor::arange(0.0, num_classes as f64, 1.0, DType::I64, &self.device())?;
        labels.unsqueeze(-1)?.eq(&classes)?.to_dtype(dtype)
    }

    /// Check that every element of this I64 tensor is an index in `0..size`, for `op`.
    /// On CUDA the check runs on the device and a bad index is reported by the next
    /// read-back (see [`crate::BackendStorage::check_indices`]).
    pub fn check_indices(&self, size: usize, op: &'static str) -> Result<()> {
        check_index_dtype(op, self)?;
        match &*self.storage() {
            Storage::Cpu(s) => s.check_indices(self.layout(), size, op),
            Storage::Cuda(s) => s.check_indices(self.layout(), size, op),
        }
    }

    /// Join tensors along `axis`; all other dims must agree.
    pub fn concat(tensors: &[Tensor], axis: isize) -> Result<Tensor> {
        let first = tensors.first().ok_or_else(|| Error::invalid("concat", "need at least one tensor"))?;
        let a = first.shape().axis("concat", axis)?;
        let mut dims = first.dims().to_vec();
        dims[a] = 0;
        for t in tensors {
            if t.dtype() != first.dtype() {
                return Err(Error::DTypeMismatch { op: "concat", lhs: first.dtype(), rhs: t.dtype() });
            }
            if t.rank() != first.rank() || (0..t.rank()).any(|d| d != a && t.dims()[d] != first.dims()[d]) {
                return Err(Error::shape_mismatch(
                    "concat",
                    first.shape(),
                    t.shape(),
                    format!("dims other than axis {a} must match"),
                ));
            }
            dims[a] += t.dims()[a];
        }
        let guards: Vec<_> = tensors.iter().map(|t| t.storage()).collect();
        let out = match &*guards[0] {
            Storage::Cpu(_) => {
                let parts = tensors
                    .iter()
                    .zip(&guards)
                    .map(|(t, g)| match &**g {
                        Storage::Cpu(s) => Ok((s, t.layout())),
                        other => Err(Error::DeviceMismatch {
                            op: "concat",
                            lhs: "cpu".into(),
                            rhs: other.device().to_string(),
                        }),
                    })
                    .collect::<Result<Vec<_>>>()?;
                Storage::Cpu(crate::CpuStorage::concat(&parts, a)?)
            }
            Storage::Cuda(_) => {
                let parts = tensors
                    .iter()
                    .zip(&guards)
                    .map(|(t, g)| match &**g {
                        Storage::Cuda(s) => Ok((s, t.layout())),
                        other => Err(Error::DeviceMismatch {
                            op: "concat",
                            lhs: "cuda".into(),
                            rhs: other.device().to_string(),
                        }),
                    })
                    .collect::<Result<Vec<_>>>()?;
                Storage::Cuda(crate::CudaStorage::concat(&parts, a)?)
            }
        };
        Ok(Tensor::from_storage(out, dims))
    }

    /// Join tensors of one shape along a new `axis`.
    pub fn stack(tensors: &[Tensor], axis: isize) -> Result<Tensor> {
        let parts = tensors.iter().map(|t| t.unsqueeze(axis)).collect::<Result<Vec<_>>>()?;
        Tensor::concat(&parts, axis)
    }

    /// Split along `axis` into pieces of the given sizes (views, no copy).
    pub fn split(&self, sizes: &[usize], axis: isize) -> Result<Vec<Tensor>> {
        let a = self.shape().axis("split", axis)?;
        if sizes.iter().sum::<usize>() != self.dims()[a] {
            return Err(Error::InvalidShape {
                op: "split",
                shape: self.shape().clone(),
                msg: format!("sizes {sizes:?} do not add up to dim {a} of size {}", self.dims()[a]),
            });
        }
        let mut start = 0;
        sizes
            .iter()
            .map(|&len| {
                let t = self.narrow(a as isize, start, len);
                start += len;
                t
            })
            .collect()
    }

    /// Split along `axis` into `n` nearly equal pieces (the first ones one larger).
    pub fn chunk(&self, n: usize, axis: isize) -> Result<Vec<Tensor>> {
        let a = self.shape().axis("chunk", axis)?;
        if n == 0 {
            return Err(Error::invalid("chunk", "need at least one chunk"));
        }
        let d = self.dims()[a];
        let sizes: Vec<usize> = (0..n).map(|i| d / n + usize::from(i < d % n)).collect();
        self.split(&sizes, axis)
    }
}

#[cfg(feature = "cpu")]
pub(crate) mod cpu {
    use crate::{CpuStorage, Error, Layout, Result, WithDType};

    pub(crate) fn indices(op: &'static str, s: &CpuStorage, l: &Layout, size: usize) -> Result<Vec<usize>> {
        match s.copy_strided(l)? {
            CpuStorage::I64(v) => v
                .into_iter()
                .map(|i| {
                    usize::try_from(i).ok().filter(|&u| u < size).ok_or(Error::IndexOutOfRange { op, index: i, size })
                })
                .collect(),
            other => Err(Error::UnsupportedDType { op, dtype: other.dtype(), hint: "indices must be I64" }),
        }
    }

    /// (outer, axis, inner) sizes of `dims` around `axis`.
    fn split3(dims: &[usize], axis: usize) -> (usize, usize, usize) {
        (dims[..axis].iter().product(), dims[axis], dims[axis + 1..].iter().product())
    }

    pub(crate) fn index_select(
        s: &CpuStorage,
        l: &Layout,
        idx: &CpuStorage,
        il: &Layout,
        axis: usize,
    ) -> Result<CpuStorage> {
        let (outer, size, inner) = split3(l.dims(), axis);
        let ids = indices("index_select", idx, il, size)?;
        // a contiguous source is read in place (e.g. a batch picked from a whole data set)
        let copied;
        let (src, start) = match l.contiguous_range() {
            Some((start, _)) => (s, start),
            None => {
                copied = s.copy_strided(l)?;
                (&copied, 0)
            }
        };
        Ok(crate::map_cpu_storage!(src, v => {
            let v = &v[start..];
            let mut out = Vec::with_capacity(outer * ids.len() * inner);
            for o in 0..outer {
                for &i in &ids {
                    out.extend_from_slice(&v[(o * size + i) * inner..][..inner]);
                }
            }
            out
        }))
    }

    fn add_at<T: WithDType>(dst: &mut [T], i: usize, v: T) {
        dst[i] = T::from_f64(dst[i].to_f64() + v.to_f64());
    }

    pub(crate) fn index_add(
        s: &CpuStorage,
        l: &Layout,
        idx: &CpuStorage,
        il: &Layout,
        axis: usize,
        dims: &[usize],
    ) -> Result<CpuStorage> {
        let (outer, n, inner) = split3(l.dims(), axis);
        let size = dims[axis];
        let ids = indices("index_add", idx, il, size)?;
        if ids.len() != n {
            return Err(Error::invalid("index_add", format!("{} indices for an axis of size {n}", ids.len())));
        }
        let total: usize = dims.iter().product();
        Ok(crate::map_cpu_storage!(&s.copy_strided(l)?, v => {
            let mut out = vec![WithDType::from_f64(0.0); total];
            for o in 0..outer {
                for (j, &i) in ids.iter().enumerate() {
                    for k in 0..inner {
                        add_at(&mut out, (o * size + i) * inner + k, v[(o * n + j) * inner + k]);
                    }
                }
            }
            out
        }))
    }

    pub(crate) fn gather(s: &CpuStorage, l: &Layout, idx: &CpuStorage, il: &Layout, axis: usize) -> Result<CpuStorage> {
        let size = l.dims()[axis];
        let ids = indices("gather", idx, il, size)?;
        let idims = il.dims();
        let src = l.strides();
        // walk the index shape; the source offset uses the index along `axis`
        let offs = Layout::contiguous(il.shape().clone());
        let mut pos = Vec::with_capacity(ids.len());
        let mut multi = vec![0usize; idims.len()];
        for (flat, &i) in ids.iter().enumerate() {
            let mut rem = flat;
            for d in (0..idims.len()).rev() {
                multi[d] = rem % idims[d];
                rem /= idims[d];
            }
            let mut o = l.offset();
            for d in 0..idims.len() {
                o += src[d] * if d == axis { i } else { multi[d] };
            }
            pos.push(o);
        }
        let _ = offs;
        Ok(crate::map_cpu_storage!(s, v => pos.iter().map(|&o| v[o]).collect()))
    }

    pub(crate) fn scatter_add(
        s: &CpuStorage,
        l: &Layout,
        idx: &CpuStorage,
        il: &Layout,
        axis: usize,
        dims: &[usize],
    ) -> Result<CpuStorage> {
        let size = dims[axis];
        let ids = indices("scatter_add", idx, il, size)?;
        let idims = l.dims();
        for d in 0..idims.len() {
            if d != axis && idims[d] > dims[d] {
                return Err(Error::invalid("scatter_add", "source is larger than the output outside the axis"));
            }
        }
        let ostr = crate::Shape::from(dims).contiguous_strides();
        let total: usize = dims.iter().product();
        let src = s.copy_strided(l)?;
        let mut multi = vec![0usize; idims.len()];
        let targets: Vec<usize> = ids
            .iter()
            .enumerate()
            .map(|(flat, &i)| {
                let mut rem = flat;
                for d in (0..idims.len()).rev() {
                    multi[d] = rem % idims[d];
                    rem /= idims[d];
                }
                (0..idims.len()).map(|d| ostr[d] * if d == axis { i } else { multi[d] }).sum()
            })
            .collect();
        Ok(crate::map_cpu_storage!(&src, v => {
            let mut out = vec![WithDType::from_f64(0.0); total];
            for (&t, &x) in targets.iter().zip(v.iter()) {
                add_at(&mut out, t, x);
            }
            out
        }))
    }
}

impl crate::CpuStorage {
    /// Concatenate parts (same rank and dtype) along `axis`.
    pub fn concat(parts: &[(&crate::CpuStorage, &crate::Layout)], axis: usize) -> Result<crate::CpuStorage> {
        let first = parts.first().ok_or_else(|| Error::invalid("concat", "need at least one tensor"))?;
        let outer: usize = first.1.dims()[..axis].iter().product();
        let contig = parts.iter().map(|(s, l)| s.copy_strided(l)).collect::<Result<Vec<_>>>()?;
        let widths: Vec<usize> = parts.iter().map(|(_, l)| l.dims()[axis..].iter().product()).collect();
        let dtype = first.0.dtype();
        Ok(crate::map_cpu_storage!(first.0, _v => {
            let mut out = Vec::with_capacity(contig.iter().map(|c| c.len()).sum());
            for o in 0..outer {
                for (c, &w) in contig.iter().zip(&widths) {
                    let slice = <_ as SliceOf>::slice_of(c).ok_or(Error::DTypeMismatch { op: "concat", lhs: dtype, rhs: c.dtype() })?;
                    out.extend_from_slice(&slice[o * w..(o + 1) * w]);
                }
            }
            out
        }))
    }
}

trait SliceOf: Sized {
    fn slice_of(s: &crate::CpuStorage) -> Option<&[Self]>;
}

impl<T: crate::WithDType> SliceOf for T {
    fn slice_of(s: &crate::CpuStorage) -> Option<&[T]> {
        T::cpu_slice(s)
    }
}
