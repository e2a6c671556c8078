//! Compiles every kernel program through NVRTC for sm_80 and sm_90, to PTX and on to SASS
//! (no GPU needed), and fails on any error or warning.
//!
//! Without NVRTC the test prints why it is skipped; with `KEEL_REQUIRE_NVRTC=1` (CI) it
//! fails instead.

use std::collections::BTreeSet;
use std::sync::Arc;

use keel_cuda_kernels::ops::elementwise::{binary_unary_source, builtin, elementwise_source};
use keel_cuda_kernels::sources::{program_part, programs, Program};
use keel_cuda_kernels::{
    all_sources, assemble_check, compile_many, compile_uncached, nvrtc_available, nvrtc_version, CompiledPtx, Stage,
};

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

/// Every program as the kernels' users load it (the GEMM sources a part at a time; their
/// wholes are never loaded), plus the generated elementwise program of the reference op
/// table. The longest compiles come first.
fn runtime_programs() -> Vec<Program> {
    let mut v: Vec<Program> = programs::all().into_iter().cloned().collect();
    let builtin = elementwise_source(builtin::UNARY, builtin::BINARY, builtin::UNARY_BACKWARD)
        + &binary_unary_source(builtin::BINARY_UNARY);
    v.insert(PARTED.iter().map(|(_, n)| *n as usize).sum(), Program::new("elementwise_builtin", builtin));
    v
}

/// The sources compiled a part at a time, with their number of parts, in the order
/// `programs::all` lists their parts.
const PARTED: [(fn() -> &'static Program, u32); 2] =
    [(programs::gemm_tc, programs::GEMM_TC_PARTS), (programs::gemm, programs::GEMM_PARTS)];

/// The failures of one program compiled to SASS for `arch`: errors, NVRTC or ptxas warnings,
/// a PTX without kernels. Prints the kernel count and any register spills.
fn check(name: &str, arch: &str, compiled: &Result<Arc<CompiledPtx>, keel_cuda_kernels::Error>) -> Option<String> {
    let compiled = match compiled {
        Err(e) => return Some(format!("{name} for {arch}: {e}")),
        Ok(c) => c,
    };
    let entries = compiled.entries().len();
    println!("{name} {arch}: {entries} kernels, {} bytes of PTX", compiled.ptx.len());
    let log = &compiled.log;
    let spills = log.lines().filter(|l| l.contains("spill") && !l.contains(" 0 bytes spill stores")).count();
    if spills > 0 {
        println!("{name} {arch}: {spills} function(s) spill registers");
    }
    let warnings: Vec<&str> = log.lines().filter(|l| l.to_lowercase().contains("warning")).collect();
    if !warnings.is_empty() {
        Some(format!("{name} for {arch} compiled with warnings:\n{}", warnings.join("\n")))
    } else if entries == 0 {
        Some(format!("{name} for {arch}: no kernels in PTX"))
    } else {
        None
    }
}

/// The failures of a part-wise source: together its parts (their sm_90 PTX) must hold
/// exactly the whole source's kernels, each in one part.
fn check_partition(base: &Program, whole: &CompiledPtx, parts: &[&CompiledPtx]) -> Option<String> {
    let whole: BTreeSet<String> = whole.entries().into_iter().collect();
    let mut seen = BTreeSet::new();
    for part in parts {
        for name in part.entries() {
            if !seen.insert(name.clone()) {
                return Some(format!("{name} is in two parts of {}", base.name()));
            }
        }
    }
    (seen != whole).then(|| {
        let missing: Vec<_> = whole.difference(&seen).collect();
        let extra: Vec<_> = seen.difference(&whole).collect();
        format!("the parts of {} do not add up to it: missing {missing:?}, not in the whole {extra:?}", base.name())
    })
}

/// Every program, for every architecture, compiles to PTX and assembles to SASS (one NVRTC
/// run gives both; ptxas also checks inline PTX such as `mma.sync`), and the GEMM sources'
/// parts partition them (their wholes are compiled to PTX for sm_90 only for that).
#[test]
fn every_kernel_compiles_without_warnings() {
    if !nvrtc_or_skip() {
        return;
    }
    println!("NVRTC version: {:?}", nvrtc_version());
    let programs = runtime_programs();
    // the wholes first: each is the longest single compile
    let mut jobs: Vec<(&Program, &str, Stage)> = PARTED.iter().map(|(base, _)| (base(), "sm_90", Stage::Ptx)).collect();
    jobs.extend(programs.iter().flat_map(|p| ARCHS.iter().map(move |a| (p, *a, Stage::Sass))));
    let results = compile_many(&jobs);
    let mut failures: Vec<String> =
        jobs.iter().zip(&results).skip(PARTED.len()).filter_map(|((p, arch, _), r)| check(p.name(), arch, r)).collect();
    for ((base, parts), whole) in PARTED.iter().zip(&results) {
        let base = base();
        let Ok(whole) = whole else {
            failures.push(format!("{} (whole) does not compile: {:?}", base.name(), whole.as_ref().err()));
            continue;
        };
        let compiled: Vec<&CompiledPtx> = (1..=*parts)
            .filter_map(|part| {
                let name = program_part(base, part).name();
                let i = jobs.iter().position(|(p, arch, _)| p.name() == name && *arch == "sm_90")?;
                results[i].as_deref().ok()
            })
            .collect();
        if compiled.len() == *parts as usize {
            failures.extend(check_partition(base, whole, &compiled));
        }
    }
    assert!(failures.is_empty(), "NVRTC failures:\n{}", failures.join("\n\n"));
}

/// `programs::all` holds every static source: whole, or a part at a time.
#[test]
fn every_source_is_a_runtime_program() {
    let names: BTreeSet<&str> = programs::all().into_iter().map(|p| p.name()).collect();
    for (name, _) in all_sources() {
        let whole = names.contains(name);
        let parts = PARTED.iter().find(|(base, _)| base().name() == *name).map(|(_, n)| *n);
        match parts {
            None => assert!(whole, "{name} is missing from programs::all()"),
            Some(n) => {
                assert!(!whole, "{name} is loaded a part at a time, yet listed whole");
                for part in 1..=n {
                    assert!(names.contains(format!("{name}_part{part}").as_str()), "{name} part {part} is missing");
                }
                assert!(!names.contains(format!("{name}_part{}", n + 1).as_str()), "{name} has more than {n} parts");
            }
        }
    }
}

/// The PTX that [`assemble_check`] returns is the PTX [`compile_uncached`] gives.
#[test]
fn assembled_ptx_is_the_compiled_ptx() {
    if !nvrtc_or_skip() {
        return;
    }
    let p = programs::optim();
    let assembled = assemble_check(p.source(), p.name(), "sm_90").expect("assembles");
    let compiled = compile_uncached(p.source(), p.name(), "sm_90").expect("compiles");
    assert_eq!(assembled.arch, compiled.arch);
    assert_eq!(assembled.ptx, compiled.ptx);
    assert!(assembled.log.contains("registers"), "no ptxas resource usage in the log: {}", assembled.log);
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
