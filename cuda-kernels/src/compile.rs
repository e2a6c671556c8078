//! NVRTC compilation of kernel sources to PTX, with a per-process and an on-disk cache.
//!
//! * [`compile_for_arch`] compiles (or fetches from a cache) one source for one
//!   architecture. It needs NVRTC but no GPU.
//! * [`compile_uncached`] always runs NVRTC and returns its log (used by the CI test
//!   that fails on warnings); [`assemble_check`] goes on to SASS.
//! * [`compile_many`] runs any of these over many programs on every core (NVRTC compiles
//!   one program on one thread): the CI test, and prebuilding a disk cache.
//!
//! Disk cache: one file per (source hash, arch, NVRTC version) in [`cache_dir`]
//! (env `KEEL_KERNEL_CACHE`, else `$XDG_CACHE_HOME/keel/kernels`, else
//! `~/.cache/keel/kernels`; `KEEL_KERNEL_CACHE=off` disables it). Files are written to
//! a temporary name and renamed, so a crash never leaves a truncated entry. Any disk
//! cache failure is ignored (the kernel is simply compiled again).

use std::collections::HashMap;
use std::ffi::{c_char, CString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use cudarc::nvrtc::{result as nv, sys as nvsys};

use crate::error::{Error, Result};
use crate::sources::Program;

/// Options every keel kernel is compiled with (besides the architecture).
const BASE_OPTIONS: &[&str] = &["--std=c++17", "--fmad=true", "-default-device"];

/// The PTX of one compiled source, plus the NVRTC log of the compilation.
#[derive(Debug, Clone)]
pub struct CompiledPtx {
    /// Name given to the source (e.g. `gemm`).
    pub name: String,
    /// Normalized virtual architecture, e.g. `compute_90`.
    pub arch: String,
    /// PTX text (no trailing NUL).
    pub ptx: String,
    /// NVRTC's log (warnings); empty when it came from the disk cache.
    pub log: String,
    /// Whether this came from the disk cache rather than a fresh NVRTC run.
    pub from_disk_cache: bool,
}

impl CompiledPtx {
    /// The names of the kernels in the PTX (its `.entry` functions), in order of appearance.
    pub fn entries(&self) -> Vec<String> {
        self.ptx
            .lines()
            .filter_map(|l| l.split(".entry ").nth(1))
            .map(|rest| rest.split('(').next().unwrap_or(rest).trim().to_string())
            .collect()
    }
}

/// Stable 64-bit FNV-1a hash of a source (stable across processes and Rust versions).
pub fn source_hash(source: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in source.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Normalizes `sm_90` / `compute_90` / `90` / `9.0` to the virtual arch `compute_90`.
pub fn normalize_arch(arch: &str) -> Result<String> {
    let a = arch.trim();
    let digits = a.strip_prefix("sm_").or_else(|| a.strip_prefix("compute_")).unwrap_or(a).replace('.', "");
    // Allow an arch-specific suffix such as `90a`.
    let (num, suffix) = match digits.strip_suffix('a') {
        Some(n) => (n, "a"),
        None => (digits.as_str(), ""),
    };
    if num.len() < 2 || num.len() > 3 || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidArch(arch.to_string()));
    }
    Ok(format!("compute_{num}{suffix}"))
}

/// Directories searched for `libnvrtc.so.13` before the system search path.
fn nvrtc_candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut push_install = |root: PathBuf| {
        dirs.push(root.join("nvidia").join("cu13").join("lib"));
        dirs.push(root.join("lib"));
        dirs.push(root);
    };
    if let Some(d) = std::env::var_os("KEEL_NVRTC_DIR") {
        push_install(PathBuf::from(d));
    }
    if let Some(home) = std::env::var_os("HOME") {
        push_install(PathBuf::from(home).join(".local").join("keel-nvrtc"));
    }
    dirs
}

/// Keeps pre-loaded NVRTC libraries alive for the whole process.
static PRELOADED: OnceLock<Vec<libloading::Library>> = OnceLock::new();

/// Loads NVRTC (and its builtins library) by full path from the keel install dirs, so
/// that cudarc's by-name lookup finds the already loaded library without
/// `LD_LIBRARY_PATH`.
fn preload_nvrtc() {
    PRELOADED.get_or_init(|| {
        let mut libs = Vec::new();
        for dir in nvrtc_candidate_dirs() {
            let main = dir.join("libnvrtc.so.13");
            if !main.is_file() {
                continue;
            }
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for entry in rd.flatten() {
                    let fname = entry.file_name();
                    let fname = fname.to_string_lossy();
                    if fname.starts_with("libnvrtc-builtins.so.13") {
                        // SAFETY: loading NVIDIA's builtins library runs no user-visible
                        // initializers; it is what libnvrtc itself would dlopen.
                        if let Ok(l) = unsafe { libloading::Library::new(entry.path()) } {
                            libs.push(l);
                        }
                    }
                }
            }
            // SAFETY: as above; this is the library cudarc would load by name.
            if let Ok(l) = unsafe { libloading::Library::new(&main) } {
                libs.push(l);
                break;
            }
        }
        libs
    });
}

/// Whether NVRTC can be loaded (probed once per process; never panics).
pub fn nvrtc_available() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    *PRESENT.get_or_init(|| {
        preload_nvrtc();
        // SAFETY: only tries to dlopen candidate library names.
        unsafe { nvsys::is_culib_present() }
    })
}

/// Returns an error unless NVRTC is loadable.
pub fn ensure_nvrtc() -> Result<()> {
    if nvrtc_available() {
        Ok(())
    } else {
        Err(Error::NvrtcNotFound)
    }
}

/// The NVRTC version as `(major, minor)`.
pub fn nvrtc_version() -> Result<(i32, i32)> {
    ensure_nvrtc()?;
    let (mut major, mut minor) = (0i32, 0i32);
    // SAFETY: the library is present (checked above); both pointers are valid.
    let r = unsafe { nvsys::nvrtcVersion(&mut major, &mut minor) };
    r.result().map_err(|e| Error::Nvrtc(format!("nvrtcVersion: {e:?}")))?;
    Ok((major, minor))
}

/// Converts a NUL-terminated `c_char` buffer from NVRTC into a `String`.
fn c_buf_to_string(buf: &[c_char]) -> String {
    let bytes: Vec<u8> = buf.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Runs NVRTC once. `gpu_arch` is passed verbatim to `--gpu-architecture`; returns the
/// log and, when `want_ptx`, the PTX.
fn run_nvrtc(source: &str, name: &str, gpu_arch: &str, extra: &[&str], want_ptx: bool) -> Result<(String, String)> {
    ensure_nvrtc()?;
    let src =
        CString::new(source).map_err(|_| Error::arg("compile", format!("source `{name}` contains a NUL byte")))?;
    let cname =
        CString::new(format!("{name}.cu")).map_err(|_| Error::arg("compile", "source name contains a NUL byte"))?;
    let prog = nv::create_program(&src, Some(&cname))
        .map_err(|e| Error::Nvrtc(format!("nvrtcCreateProgram({name}): {e:?}")))?;
    let mut options: Vec<String> = BASE_OPTIONS.iter().map(|s| s.to_string()).collect();
    options.push(format!("--gpu-architecture={gpu_arch}"));
    options.extend(extra.iter().map(|s| s.to_string()));
    // SAFETY: `prog` was just created and is destroyed exactly once below.
    let compiled = unsafe { nv::compile_program(prog, &options) };
    // SAFETY: `prog` is alive.
    let log = unsafe { nv::get_program_log(prog) }.map(|b| c_buf_to_string(&b)).unwrap_or_default();
    let result = match compiled {
        Err(_) => Err(Error::Compile { name: name.to_string(), arch: gpu_arch.to_string(), log: log.clone() }),
        Ok(()) if !want_ptx => Ok((log.trim().to_string(), String::new())),
        // SAFETY: `prog` is alive and compiled successfully.
        Ok(()) => match unsafe { nv::get_ptx(prog) } {
            Ok(buf) => Ok((log.trim().to_string(), c_buf_to_string(&buf))),
            Err(e) => Err(Error::Nvrtc(format!("nvrtcGetPTX({name}): {e:?}"))),
        },
    };
    // SAFETY: `prog` is alive and not used after this call.
    let _ = unsafe { nv::destroy_program(prog) };
    result
}

/// Compiles `source` with NVRTC to PTX for `arch`, bypassing every cache.
///
/// Works without a GPU. On success the returned log holds NVRTC's warnings (if any).
pub fn compile_uncached(source: &str, name: &str, arch: &str) -> Result<CompiledPtx> {
    let arch = normalize_arch(arch)?;
    let (log, ptx) = run_nvrtc(source, name, &arch, &[], true)?;
    Ok(CompiledPtx { name: name.to_string(), arch, ptx, log, from_disk_cache: false })
}

/// Compiles `source` all the way to machine code (SASS) for the real architecture
/// `sm_XX` of `arch`, which also runs ptxas over inline PTX such as `mma.sync`. Returns
/// the PTX generated on the way (the same text [`compile_uncached`] gives for `arch`)
/// and a log that adds ptxas' resource usage (`-v`: registers, spills) to NVRTC's warnings.
///
/// Works without a GPU; used by the CI test to catch errors that PTX generation alone
/// would not, at little more than the cost of PTX generation.
pub fn assemble_check(source: &str, name: &str, arch: &str) -> Result<CompiledPtx> {
    let virt = normalize_arch(arch)?;
    let real = virt.replacen("compute_", "sm_", 1);
    let (log, ptx) = run_nvrtc(source, name, &real, &["--ptxas-options=-v"], true)?;
    Ok(CompiledPtx { name: name.to_string(), arch: virt, ptx, log, from_disk_cache: false })
}

/// The on-disk cache directory, or `None` when disabled or no home is known.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("KEEL_KERNEL_CACHE") {
        let s = d.to_string_lossy();
        if s.is_empty() || s == "off" || s == "0" {
            return None;
        }
        return Some(PathBuf::from(d));
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME") {
        if !x.is_empty() {
            return Some(PathBuf::from(x).join("keel").join("kernels"));
        }
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("keel").join("kernels"))
}

/// File name of a disk cache entry.
fn cache_file_name(name: &str, hash: u64, len: usize, arch: &str, ver: (i32, i32)) -> String {
    let safe: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).collect();
    format!("{safe}-{hash:016x}-{len}-{arch}-nvrtc{}.{}.ptx", ver.0, ver.1)
}

/// Writes `data` to `path` atomically (temp file in the same dir + rename).
fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        path.file_name().map(|f| f.to_string_lossy()).unwrap_or_default()
    ));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Process-wide cache: (source hash, source length, arch) -> compiled PTX.
type MemCache = Mutex<HashMap<(u64, usize, String), Arc<CompiledPtx>>>;

fn mem_cache() -> &'static MemCache {
    static CACHE: OnceLock<MemCache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Says once per process, on stderr, that kernels are being compiled (the first GPU op on a
/// machine without the disk cache waits a few seconds for NVRTC) and where they are kept.
fn note_first_compile(arch: &str, path: Option<&Path>) {
    static SAID: AtomicBool = AtomicBool::new(false);
    if SAID.swap(true, Ordering::Relaxed) {
        return;
    }
    match path.and_then(Path::parent) {
        Some(dir) => eprintln!(
            "keel: compiling CUDA kernels for {arch} with NVRTC (first use; kept in {} for later runs; the \
             prebuild_kernels example compiles them all ahead of time)",
            dir.display()
        ),
        None => eprintln!(
            "keel: compiling CUDA kernels for {arch} with NVRTC (no disk cache: set KEEL_KERNEL_CACHE to a folder to \
             keep them)"
        ),
    }
}

/// Compiles `source` for `arch` (e.g. `sm_90`), using the process and disk caches.
///
/// Works without a GPU (only NVRTC is needed). `name` labels the source in errors and
/// cache file names.
pub fn compile_for_arch(source: &str, name: &str, arch: &str) -> Result<Arc<CompiledPtx>> {
    ensure_nvrtc()?;
    let arch = normalize_arch(arch)?;
    let key = (source_hash(source), source.len(), arch.clone());
    if let Ok(cache) = mem_cache().lock() {
        if let Some(hit) = cache.get(&key) {
            return Ok(hit.clone());
        }
    }
    let ver = nvrtc_version()?;
    let disk_path = cache_dir().map(|d| d.join(cache_file_name(name, key.0, key.1, &arch, ver)));
    let mut compiled = None;
    if let Some(p) = &disk_path {
        if let Ok(ptx) = std::fs::read_to_string(p) {
            if ptx.contains(".entry") || ptx.contains(".version") {
                compiled = Some(CompiledPtx {
                    name: name.to_string(),
                    arch: arch.clone(),
                    ptx,
                    log: String::new(),
                    from_disk_cache: true,
                });
            }
        }
    }
    let compiled = match compiled {
        Some(c) => c,
        None => {
            note_first_compile(&arch, disk_path.as_deref());
            let c = compile_uncached(source, name, &arch)?;
            if let Some(p) = &disk_path {
                let _ = write_atomic(p, c.ptx.as_bytes());
            }
            c
        }
    };
    let compiled = Arc::new(compiled);
    if let Ok(mut cache) = mem_cache().lock() {
        cache.insert(key, compiled.clone());
    }
    Ok(compiled)
}

/// How far [`compile_many`] takes each program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// PTX through the process and disk caches, as a kernel launch would ([`compile_for_arch`]).
    Cached,
    /// PTX, bypassing every cache ([`compile_uncached`]).
    Ptx,
    /// PTX and SASS, bypassing every cache ([`assemble_check`]).
    Sass,
}

/// Compiles each `(program, arch, stage)` job on as many threads as the machine has cores
/// (one NVRTC compile uses one core) and returns the results in the jobs' order.
///
/// Jobs are taken in order, so put the longest first. Works without a GPU.
pub fn compile_many(jobs: &[(&Program, &str, Stage)]) -> Vec<Result<Arc<CompiledPtx>>> {
    let run = |(program, arch, stage): &(&Program, &str, Stage)| {
        let (source, name) = (program.source(), program.name());
        match stage {
            Stage::Cached => compile_for_arch(source, name, arch),
            Stage::Ptx => compile_uncached(source, name, arch).map(Arc::new),
            Stage::Sass => assemble_check(source, name, arch).map(Arc::new),
        }
    };
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Result<Arc<CompiledPtx>>>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, jobs.len().max(1));
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    while let Some((job, slot)) = {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        jobs.get(i).zip(slots.get(i))
                    } {
                        let result = run(job);
                        *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
                    }
                })
            })
            .collect();
        for h in handles {
            // a worker that panicked leaves its job's slot empty: reported below
            let _ = h.join();
        }
    });
    slots
        .into_iter()
        .zip(jobs)
        .map(|(slot, (program, arch, _))| {
            slot.into_inner().unwrap_or_else(PoisonError::into_inner).unwrap_or_else(|| {
                Err(Error::Nvrtc(format!("compiling {} for {arch}: the compile thread panicked", program.name())))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_normalization() {
        assert_eq!(normalize_arch("sm_90").ok().as_deref(), Some("compute_90"));
        assert_eq!(normalize_arch("compute_80").ok().as_deref(), Some("compute_80"));
        assert_eq!(normalize_arch("86").ok().as_deref(), Some("compute_86"));
        assert_eq!(normalize_arch("9.0").ok().as_deref(), Some("compute_90"));
        assert_eq!(normalize_arch("sm_90a").ok().as_deref(), Some("compute_90a"));
        assert!(normalize_arch("sm_9x").is_err());
        assert!(normalize_arch("--foo").is_err());
    }

    /// Results come back in the jobs' order whichever worker ran them (bad architectures
    /// fail before NVRTC is needed, so this runs anywhere).
    #[test]
    fn compile_many_keeps_the_jobs_order() {
        let p = crate::sources::programs::optim();
        let archs: Vec<String> = (0..23).map(|i| format!("bad{i}")).collect();
        let jobs: Vec<(&Program, &str, Stage)> = archs.iter().map(|a| (p, a.as_str(), Stage::Ptx)).collect();
        let results = compile_many(&jobs);
        assert_eq!(results.len(), jobs.len());
        for (arch, r) in archs.iter().zip(&results) {
            let msg = r.as_ref().err().map(|e| e.to_string()).unwrap_or_default();
            assert!(msg.contains(&format!("`{arch}`")), "{arch}: {msg}");
        }
        assert!(compile_many(&[]).is_empty());
    }

    #[test]
    fn hash_is_stable() {
        assert_eq!(source_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_ne!(source_hash("a"), source_hash("b"));
    }

    #[test]
    fn atomic_write_roundtrip() {
        let dir = std::env::temp_dir().join(format!("keel-cache-test-{}", std::process::id()));
        let p = dir.join("x.ptx");
        write_atomic(&p, b"hello").ok();
        assert_eq!(std::fs::read_to_string(&p).ok().as_deref(), Some("hello"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
