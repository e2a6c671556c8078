//! `cuda::prebuild_kernels` compiles every kernel program keel loads into the on-disk
//! cache (NVRTC only, no GPU), and a fresh process then finds every one of them there.
//!
//! This file is a test binary of its own, with one test: it points `KEEL_KERNEL_CACHE` at
//! a temporary folder and re-runs itself as that fresh process. Without NVRTC the test
//! prints why it skips and passes; with `KEEL_REQUIRE_NVRTC=1` it fails instead.
#![cfg(feature = "cuda")]

use std::collections::BTreeSet;

use keel_tensor::cuda::{kernel_cache_dir, prebuild_kernels};

/// Set in the re-run: the cache is already full.
const SECOND_RUN: &str = "KEEL_PREBUILD_TEST_SECOND_RUN";

#[test]
fn prebuild_fills_the_disk_cache_for_a_fresh_process() {
    if !keel_cuda_kernels::nvrtc_available() {
        let why = "NVRTC not found (run cuda-kernels/install-nvrtc.sh)";
        assert!(std::env::var("KEEL_REQUIRE_NVRTC").map_or(true, |v| v != "1"), "KEEL_REQUIRE_NVRTC=1 but {why}");
        eprintln!("skipping prebuild_fills_the_disk_cache_for_a_fresh_process: {why}");
        return;
    }
    if std::env::var_os(SECOND_RUN).is_some() {
        let again = prebuild_kernels("90").expect("prebuild from the cache");
        let compiled: Vec<&str> = again.iter().filter(|p| !p.from_disk_cache).map(|p| p.name.as_str()).collect();
        assert!(compiled.is_empty(), "compiled again instead of read from the disk cache: {compiled:?}");
        assert!(again.iter().all(|p| p.kernels > 0));
        println!("second run: {} programs, all from the disk cache", again.len());
        return;
    }
    let dir = std::env::temp_dir().join(format!("keel-prebuild-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // this binary's only test: no other thread reads the environment meanwhile
    std::env::set_var("KEEL_KERNEL_CACHE", &dir);
    assert_eq!(kernel_cache_dir(), Some(dir.clone()));

    let built = prebuild_kernels("sm_90").expect("prebuild");
    let names: BTreeSet<&str> = built.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names.len(), built.len(), "a program is listed twice");
    // the GEMM sources by part (as loaded), the other static programs, the generated ones
    for name in ["gemm_part5", "gemm_tc_part1", "gemm_tc_part7", "conv", "misc", "optim", "keel_tensor_cmp"] {
        assert!(names.contains(name), "{name} is missing from {names:?}");
    }
    for part in 1..=3 {
        assert!(names.contains(format!("keel_tensor_elementwise_part{part}").as_str()), "elementwise part {part}");
    }
    assert!(!names.contains("gemm_tc") && !names.contains("keel_tensor_elementwise"), "a whole is never loaded");
    assert!(built.iter().all(|p| !p.from_disk_cache && p.kernels > 0), "{built:?}");
    let files = std::fs::read_dir(&dir).expect("the cache folder").flatten().count();
    assert_eq!(files, built.len(), "one cache file per program");

    let rerun = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--exact", "prebuild_fills_the_disk_cache_for_a_fresh_process", "--nocapture"])
        .env(SECOND_RUN, "1")
        .env("KEEL_KERNEL_CACHE", &dir)
        .output()
        .expect("re-run");
    let out = String::from_utf8_lossy(&rerun.stdout);
    assert!(rerun.status.success(), "second run failed:\n{out}\n{}", String::from_utf8_lossy(&rerun.stderr));
    assert!(out.contains("all from the disk cache"), "the second run did not check: {out}");

    let bad = prebuild_kernels("sm_9x").expect_err("not an architecture").to_string();
    assert!(bad.contains("prebuild_kernels") && bad.contains("sm_9x"), "{bad}");
    std::env::set_var("KEEL_KERNEL_CACHE", "off");
    let off = prebuild_kernels("sm_90").expect_err("cache off").to_string();
    assert!(off.contains("KEEL_KERNEL_CACHE"), "{off}");
    let _ = std::fs::remove_dir_all(&dir);
}
