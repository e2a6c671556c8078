//! Compiles every kernel source through NVRTC for sm_80 and sm_90 (no GPU needed) and
//! fails on any error or warning.
//!
//! Without NVRTC the test prints why it is skipped; with `KEEL_REQUIRE_NVRTC=1` (CI) it
//! fails instead.

use keel_cuda_kernels::ops::elementwise::{builtin, elementwise_source};
use keel_cuda_kernels::{all_sources, assemble_check, compile_uncached, nvrtc_available, nvrtc_version};

const ARCHS: &[&str] = &["sm_80", "sm_90"];

fn nvrtc_or_skip() -> bool {
    if nvrtc_available() {
        return true;
    }
    let msg = "NVRTC (libnvrtc.so.13) not found: run cuda-kernels/install-nvrtc.sh and add its \
               output to LD_LIBRARY_PATH (or set KEEL_NVRTC_DIR)";
    if std::env::var("KEEL_REQUIRE_NVRTC").as_deref() == Ok("1") {
        panic!("KEEL_REQUIRE_NVRTC=1 but {msg}");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

fn sources() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = all_sources().iter().map(|(n, s)| (n.to_string(), s.to_string())).collect();
    v.push((
        "elementwise_builtin".to_string(),
        elementwise_source(builtin::UNARY, builtin::BINARY, builtin::UNARY_BACKWARD),
    ));
    v
}

/// Assembles to SASS (runs ptxas on inline PTX); fails on warnings, reports spills.
fn check_sass(src: &str, name: &str, arch: &str) -> Option<String> {
    match assemble_check(src, name, arch) {
        Err(e) => Some(format!("{name} for {arch} (ptxas): {e}")),
        Ok(log) => {
            let spills: Vec<&str> =
                log.lines().filter(|l| l.contains("spill") && !l.contains(" 0 bytes spill stores")).collect();
            if !spills.is_empty() {
                println!("{name} {arch}: {} function(s) spill registers", spills.len());
            }
            let warnings: Vec<&str> = log.lines().filter(|l| l.to_lowercase().contains("warning")).collect();
            if warnings.is_empty() {
                None
            } else {
                Some(format!("{name} for {arch} (ptxas) warnings:\n{}", warnings.join("\n")))
            }
        }
    }
}

#[test]
fn every_kernel_compiles_without_warnings() {
    if !nvrtc_or_skip() {
        return;
    }
    println!("NVRTC version: {:?}", nvrtc_version());
    let sources = sources();
    // Compile in parallel: each (source, arch) pair is independent.
    let jobs: Vec<(String, String, &str)> =
        sources.iter().flat_map(|(n, s)| ARCHS.iter().map(move |a| (n.clone(), s.clone(), *a))).collect();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(name, src, arch)| {
                scope.spawn(move || match compile_uncached(src, name, arch) {
                    Err(e) => Some(format!("{name} for {arch}: {e}")),
                    Ok(ptx) => {
                        let entries = ptx.ptx.matches(".entry").count();
                        println!("{name} {arch}: {entries} kernels, {} bytes of PTX", ptx.ptx.len());
                        if ptx.log.to_lowercase().contains("warning") {
                            Some(format!("{name} for {arch} compiled with warnings:\n{}", ptx.log))
                        } else if entries == 0 {
                            Some(format!("{name} for {arch}: no kernels in PTX"))
                        } else {
                            check_sass(src, name, arch)
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(r) => r,
                Err(_) => Some("compile thread panicked".to_string()),
            })
            .collect()
    });
    assert!(failures.is_empty(), "NVRTC failures:\n{}", failures.join("\n\n"));
}

#[test]
fn cached_compile_matches() {
    if !nvrtc_or_skip() {
        return;
    }
    let (name, src) = all_sources()[0];
    let a = keel_cuda_kernels::compile_for_arch(src, name, "sm_80").expect("compiles");
    let b = keel_cuda_kernels::compile_for_arch(src, name, "compute_80").expect("cached");
    assert_eq!(a.ptx, b.ptx);
}

#[test]
fn compile_errors_are_reported() {
    if !nvrtc_or_skip() {
        return;
    }
    let err =
        compile_uncached("extern \"C\" __global__ void k() { this is not C; }", "bad", "sm_80").expect_err("must fail");
    let msg = err.to_string();
    assert!(msg.contains("bad") && msg.contains("compute_80"), "{msg}");
}

/// The GEMM sources are compiled a part at a time (`sources::program_part`): every part
/// compiles on its own without warnings, and together the parts hold exactly the whole
/// source's kernels, each in one part.
#[test]
fn program_parts_partition_the_gemm_sources() {
    use keel_cuda_kernels::sources::{program_part, programs};
    if !nvrtc_or_skip() {
        return;
    }
    for (base, parts) in [(programs::gemm(), 5), (programs::gemm_tc(), 7)] {
        // the whole source and each part, compiled in parallel
        let mut jobs = vec![base];
        jobs.extend((1..=parts).map(|part| program_part(base, part)));
        let compiled: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> =
                jobs.iter().map(|p| scope.spawn(move || compile_uncached(p.source(), p.name(), "sm_90"))).collect();
            handles.into_iter().map(|h| h.join().expect("compile thread")).collect()
        });
        let whole: std::collections::BTreeSet<String> =
            compiled[0].as_ref().expect("whole").entries().into_iter().collect();
        let mut seen = std::collections::BTreeSet::new();
        for (p, ptx) in jobs.iter().zip(&compiled).skip(1) {
            let ptx = ptx.as_ref().expect("part compiles");
            assert!(!ptx.log.to_lowercase().contains("warning"), "{}: {}", p.name(), ptx.log);
            let names = ptx.entries();
            assert!(!names.is_empty(), "{} has no kernels", p.name());
            for n in names {
                assert!(seen.insert(n.clone()), "{n} is in two parts of {}", base.name());
            }
        }
        assert_eq!(seen, whole, "the parts of {} do not add up to it", base.name());
    }
}
