//! Safe launch wrappers, one module per kernel family.
//!
//! Conventions: inputs are `&CudaView<T>`, outputs `&mut CudaViewMut<T>` (get them from a
//! `CudaSlice` with `.as_view()` / `.as_view_mut()`, or `.slice(a..b)` for an offset);
//! every wrapper checks lengths and returns a [`crate::Result`]; kernels run on the
//! device's stream and are asynchronous.

/// Launches `$kernel` of `$program` on `$dev`'s stream with the listed arguments.
/// With `smem = BYTES`, the launch gets that much dynamic shared memory (the kernel's limit
/// raised first when it exceeds 48 KiB).
macro_rules! launch {
    ($dev:expr, $program:expr, $kernel:expr, $cfg:expr, [$($arg:expr),* $(,)?]) => {
        launch!($dev, $program, $kernel, $cfg, smem = 0, [$($arg),*])
    };
    ($dev:expr, $program:expr, $kernel:expr, $cfg:expr, smem = $smem:expr, [$($arg:expr),* $(,)?]) => {{
        let kernel_name: &str = &$kernel;
        let smem: usize = $smem;
        let mut cfg: cudarc::driver::LaunchConfig = $cfg;
        // fits u32: function_with_smem rejects more than the device allows
        cfg.shared_mem_bytes = smem as u32;
        let func = $dev.function_with_smem($program, kernel_name, smem)?;
        #[allow(unused_imports)]
        use cudarc::driver::PushKernelArg as _;
        let mut builder = $dev.stream().launch_builder(&func);
        $( builder.arg($arg); )*
        // SAFETY: the argument list matches the kernel's C signature (checked by the
        // wrapper that expands this macro) and buffer sizes were validated beforehand.
        $dev.launch_counted(kernel_name, || unsafe { builder.launch(cfg) })
            .map(|_| ())
            .map_err(|e| crate::error::Error::from_launch(e, kernel_name))
    }};
}

pub mod conv;
pub mod depthwise;
pub mod elementwise;
pub mod gemm;
pub mod image;
pub mod index;
pub mod misc;
mod multi;
pub mod optim;
pub mod pool;
pub mod reduce;
pub mod rng;
pub mod rnn;
pub mod softmax;
pub mod sort;
