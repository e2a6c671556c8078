//! Compiles every CUDA kernel program keel loads into the on-disk kernel cache, so that no
//! training run waits for NVRTC. Needs NVRTC (`cuda-kernels/install-nvrtc.sh`), no GPU:
//! run it when building a container image, or once on a new machine.
//!
//! `cargo run --release -p keel-examples --features cuda --example prebuild_kernels -- [--arch sm_90,sm_80]`
//!
//! `--arch` lists the GPU architectures (sm_90: H100/H200, sm_80: A100, sm_89: L4/L40,
//! sm_86: A10/RTX 30xx); without it, those of the GPUs present. The cache folder is
//! `KEEL_KERNEL_CACHE` if set, else `~/.cache/keel/kernels`. Prints one line per program
//! and architecture, then one JSON line per architecture.

use std::error::Error;
use std::time::Instant;

use keel::tensor::cuda::{kernel_cache_dir, prebuild_kernels};
use keel_examples::Args;

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::from_env();
    let archs: Vec<String> = match args.get_str("arch") {
        Some(list) => list.split(',').map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect(),
        None => present_archs(),
    };
    if archs.is_empty() {
        return Err("no GPU found to take the architecture from: pass --arch (e.g. --arch sm_90 for an H100/H200, \
                    sm_80 for an A100)"
            .into());
    }
    let dir = kernel_cache_dir().ok_or("the kernel disk cache is off: set KEEL_KERNEL_CACHE to a folder")?;
    println!("kernel cache: {}", dir.display());
    for arch in &archs {
        let start = Instant::now();
        let built = prebuild_kernels(arch)?;
        let seconds = start.elapsed().as_secs_f64();
        for p in &built {
            let how = if p.from_disk_cache { "already cached" } else { "compiled" };
            println!("{arch} {:<32} {:>4} kernels  {how}", p.name, p.kernels);
        }
        let compiled = built.iter().filter(|p| !p.from_disk_cache).count();
        let json = serde_json::json!({
            "arch": arch,
            "programs": built.len(),
            "kernels": built.iter().map(|p| p.kernels).sum::<usize>(),
            "compiled": compiled,
            "already_cached": built.len() - compiled,
            "seconds": (seconds * 10.0).round() / 10.0,
            "cache": dir.display().to_string(),
        });
        println!("{json}");
    }
    Ok(())
}

/// The architectures (`sm_XY`) of the GPUs present, without repeats; empty without a GPU.
fn present_archs() -> Vec<String> {
    let n = keel_cuda_kernels::device_count().unwrap_or(0);
    let mut archs: Vec<String> = Vec::new();
    for ordinal in 0..n {
        if let Ok(dev) = keel_cuda_kernels::CudaDevice::get(ordinal) {
            if !archs.iter().any(|a| a == dev.arch()) {
                archs.push(dev.arch().to_string());
            }
        }
    }
    archs
}
