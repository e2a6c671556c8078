//! The embedded CUDA C sources and the [`Program`] handle used to load them.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::compile::source_hash;

/// Helpers prepended to every source (typedefs, layouts, f16/bf16 conversion, warp ops).
pub const COMMON: &str = include_str!("kernels/common.cuh");
/// Elementwise templates that generated sources instantiate.
pub const ELEMENTWISE_TEMPLATES: &str = include_str!("kernels/elementwise.cuh");

/// Concatenates the common header with a kernel file at compile time.
macro_rules! with_common {
    ($file:literal) => {
        concat!(include_str!("kernels/common.cuh"), "\n", include_str!($file))
    };
}

/// Concatenates the common header and the multi-tensor helpers with a kernel file.
macro_rules! with_multi {
    ($file:literal) => {
        concat!(include_str!("kernels/common.cuh"), "\n", include_str!("kernels/multi.cuh"), "\n", include_str!($file))
    };
}

/// fill / arange / cast (one tensor or many) / where / strided copy.
pub const MISC: &str = with_multi!("kernels/misc.cu");
/// Philox4x32-10 uniform and normal generators.
pub const RNG: &str = with_common!("kernels/rng.cu");
/// sum / max / min / argmax / argmin along an axis.
pub const REDUCE: &str = with_common!("kernels/reduce.cu");
/// softmax, log_softmax (+ backward) and fused softmax cross-entropy.
pub const SOFTMAX: &str = with_common!("kernels/softmax.cu");
/// gather / index_select / one_hot / concat and their deterministic scatter-add backwards.
pub const INDEX: &str = with_multi!("kernels/index.cu");
/// Stable LSD radix sort of u32 keys with their source positions.
pub const SORT: &str = with_common!("kernels/sort.cu");
/// Fused recurrent cells: one LSTM step forward and backward.
pub const RNN: &str = with_common!("kernels/rnn.cu");
/// NHWC max/avg pooling forward and backward.
pub const POOL: &str = with_common!("kernels/pool.cu");
/// NHWC depthwise convolution: forward, grad-input (gather), grad-kernel (block reduction).
pub const DEPTHWISE: &str = with_common!("kernels/depthwise.cu");
/// Fused SGD / Adam / AdamW parameter updates.
pub const OPTIM: &str = with_multi!("kernels/optim.cu");
/// Tiled SIMT f32 GEMM (batched, NN/NT/TN/TT, bias + activation epilogue). Parts (see
/// [`program_part`]): 1 element loads, 2 `_vec4`, 3 `_vec4_2b`, 4 `_db`, 5 `_vec4_db`.
pub const GEMM: &str = concat!(
    include_str!("kernels/common.cuh"),
    "\n",
    include_str!("kernels/gemm_core.cuh"),
    "\n",
    include_str!("kernels/gemm.cu")
);
/// Tensor-core (mma.sync) GEMM for TF32 / F16 / BF16 inputs with f32 accumulation, plus the
/// cp.async-pipelined F16/BF16 kernels (`gemm_tc_pipe.cu`) and the F16/BF16 tensor-core
/// convolutions built on them (`conv_tc.cu`). Parts (see [`program_part`]): 1 TF32, 2 F16,
/// 3 BF16 (element and `_vec` loads), 4 F16 `_pipe`, 5 BF16 `_pipe`, 6 F16 and 7 BF16
/// convolutions, 8 F16 and BF16 `_pipe_w` (the wide tuning candidate).
pub const GEMM_TC: &str = concat!(
    include_str!("kernels/common.cuh"),
    "\n",
    include_str!("kernels/gemm_core.cuh"),
    "\n",
    include_str!("kernels/gemm_tc.cu"),
    "\n",
    include_str!("kernels/gemm_tc_pipe.cu"),
    "\n",
    include_str!("kernels/conv_params.cuh"),
    "\n",
    include_str!("kernels/conv_tc.cu")
);
/// Implicit-GEMM NHWC convolution: forward, grad-input, grad-kernel.
pub const CONV: &str = concat!(
    include_str!("kernels/common.cuh"),
    "\n",
    include_str!("kernels/gemm_core.cuh"),
    "\n",
    include_str!("kernels/conv_params.cuh"),
    "\n",
    include_str!("kernels/conv.cu")
);
/// NHWC projective (affine) image transforms: forward resampling and the image gradient.
pub const IMAGE: &str = with_common!("kernels/image.cu");

/// Every static kernel source as `(name, full source)`; generated elementwise sources
/// are not included (see [`crate::ops::elementwise`]).
pub fn all_sources() -> &'static [(&'static str, &'static str)] {
    &[
        ("misc", MISC),
        ("rng", RNG),
        ("reduce", REDUCE),
        ("softmax", SOFTMAX),
        ("index", INDEX),
        ("sort", SORT),
        ("rnn", RNN),
        ("pool", POOL),
        ("depthwise", DEPTHWISE),
        ("optim", OPTIM),
        ("gemm", GEMM),
        ("gemm_tc", GEMM_TC),
        ("conv", CONV),
        ("image", IMAGE),
    ]
}

/// A named kernel source with its precomputed hash: the unit that is compiled and loaded
/// as one CUDA module.
#[derive(Debug, Clone)]
pub struct Program {
    name: Cow<'static, str>,
    source: Cow<'static, str>,
    hash: u64,
}

impl Program {
    /// Wraps a source; hashing happens once here.
    pub fn new(name: impl Into<Cow<'static, str>>, source: impl Into<Cow<'static, str>>) -> Self {
        let source = source.into();
        let hash = source_hash(&source);
        Self { name: name.into(), source, hash }
    }

    /// The program's name (used in errors and cache file names).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The full CUDA C source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Stable hash of the source.
    pub fn hash(&self) -> u64 {
        self.hash
    }
}

/// Part `part` (1, 2, ...) of a static program whose source groups its kernels under
/// `#if KEEL_PART == n` (the GEMMs: [`GEMM`] and [`GEMM_TC`] list their parts): the same
/// source with `#define KEEL_PART {part}` in front, so NVRTC compiles and the driver loads
/// only that part's kernels. The whole f32 GEMM source takes NVRTC about 11 s and the
/// tensor-core one about 15 s (this machine's CPU), which a first matmul would otherwise wait
/// for; a part takes a fifth to a seventh of that. Built once per (program, part).
pub fn program_part(base: &'static Program, part: u32) -> &'static Program {
    static PARTS: OnceLock<Mutex<HashMap<(u64, u32), &'static Program>>> = OnceLock::new();
    let parts = PARTS.get_or_init(Default::default);
    // the map only ever grows; a poisoned lock still holds valid entries
    let mut map = parts.lock().unwrap_or_else(PoisonError::into_inner);
    map.entry((base.hash(), part)).or_insert_with(|| {
        let source = format!("#define KEEL_PART {part}\n{}", base.source());
        Box::leak(Box::new(Program::new(format!("{}_part{part}", base.name()), source)))
    })
}

/// Declares a lazily built static [`Program`] for one embedded source.
macro_rules! static_program {
    ($fn_name:ident, $name:literal, $src:expr) => {
        /// The static program for this kernel family.
        pub fn $fn_name() -> &'static Program {
            static P: OnceLock<Program> = OnceLock::new();
            P.get_or_init(|| Program::new($name, $src))
        }
    };
}

/// Static programs, one per kernel family.
pub mod programs {
    use super::*;
    static_program!(misc, "misc", MISC);
    static_program!(rng, "rng", RNG);
    static_program!(reduce, "reduce", REDUCE);
    static_program!(softmax, "softmax", SOFTMAX);
    static_program!(index, "index", INDEX);
    static_program!(sort, "sort", SORT);
    static_program!(rnn, "rnn", RNN);
    static_program!(pool, "pool", POOL);
    static_program!(depthwise, "depthwise", DEPTHWISE);
    static_program!(optim, "optim", OPTIM);
    static_program!(gemm, "gemm", GEMM);
    static_program!(gemm_tc, "gemm_tc", GEMM_TC);
    static_program!(conv, "conv", CONV);
    static_program!(image, "image", IMAGE);

    /// The number of parts of [`gemm`] (see [`program_part`]).
    pub const GEMM_PARTS: u32 = 6;
    /// The number of parts of [`gemm_tc`] (see [`program_part`]).
    pub const GEMM_TC_PARTS: u32 = 8;

    /// Every static program as the launch wrappers load it: the GEMM sources a part at a
    /// time (their wholes are never loaded), longest to compile first, then the rest whole.
    pub fn all() -> Vec<&'static Program> {
        let mut v: Vec<&'static Program> = (1..=GEMM_TC_PARTS).map(|p| program_part(gemm_tc(), p)).collect();
        v.extend((1..=GEMM_PARTS).map(|p| program_part(gemm(), p)));
        v.extend([conv(), reduce(), misc(), pool(), depthwise(), index(), sort(), rnn(), softmax(), rng(), optim()]);
        v.push(image());
        v
    }
}
