//! Safe launch wrappers, one module per kernel family.
//!
//! Conventions: inputs are `&CudaView<T>`, outputs `&mut CudaViewMut<T>` (get them from a
//! `CudaSlice` with `.as_view()` / `.as_view_mut()`, or `.slice(a..b)` for an offset);
//! every wrapper checks lengths and returns a [`crate::Result`]; kernels run on the
//! device's stream and are asynchronous.

/// Launches `$kernel` of `$program` on `$dev`'s stream with the listed arguments.
macro_rules! launch {
    ($dev:expr, $program:expr, $kernel:expr, $cfg:expr, [$($arg:expr),* $(,)?]) => {{
        let kernel_name: &str = &$kernel;
        let cfg = $cfg;
        let func = $dev.function($program, kernel_name)?;
        #[allow(unused_imports)]
        use cudarc::driver::PushKernelArg as _;
        let mut builder = $dev.stream().launch_builder(&func);
        $( builder.arg($arg); )*
        // SAFETY: the argument list matches the kernel's C signature (checked by the
        // wrapper that expands this macro) and buffer sizes were validated beforehand.
        unsafe { builder.launch(cfg) }
            .map(|_| ())
            .map_err(|e| crate::error::Error::from_launch(e, kernel_name))
    }};
}

pub mod conv;
pub mod elementwise;
pub mod gemm;
pub mod index;
pub mod misc;
pub mod optim;
pub mod pool;
pub mod reduce;
pub mod rng;
pub mod softmax;
