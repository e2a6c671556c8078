//! [`CudaDevice`]: one CUDA context + one stream per device ordinal, with a module cache
//! and stream-ordered memory helpers.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use cudarc::driver::{
    sys as cusys, CudaContext, CudaEvent, CudaFunction, CudaModule, CudaSlice, CudaStream, CudaView, CudaViewMut,
    DevicePtr, DevicePtrMut, DeviceRepr, DriverError, LaunchConfig, ValidAsZeroBits,
};
use cudarc::nvrtc::Ptx;

use crate::compile::{compile_for_arch, ensure_nvrtc};
use crate::error::{Error, Result};
use crate::sources::Program;

/// Element types the kernels know, with the suffix used in kernel names.
pub trait DType: DeviceRepr + ValidAsZeroBits + Copy + Default + Send + Sync + 'static {
    /// Kernel-name suffix, e.g. `f32`.
    const NAME: &'static str;
}
impl DType for f32 {
    const NAME: &'static str = "f32";
}
impl DType for half::f16 {
    const NAME: &'static str = "f16";
}
impl DType for half::bf16 {
    const NAME: &'static str = "bf16";
}
impl DType for i64 {
    const NAME: &'static str = "i64";
}
impl DType for u32 {
    const NAME: &'static str = "u32";
}
impl DType for u8 {
    const NAME: &'static str = "u8";
}

/// Floating-point storage types (computed in f32 inside the kernels).
pub trait FloatDType: DType {}
impl FloatDType for f32 {}
impl FloatDType for half::f16 {}
impl FloatDType for half::bf16 {}

/// Float storage of the kernels that compute in f32 or f64 (pooling, the fused recurrent
/// cells): `f32`, `f16` and `bf16` (computed in f32, rounded once on the store), and `i64`
/// buffers holding F64 bit patterns (keel-tensor's F64 storage), computed in double.
pub trait FloatStorage: DType {
    /// Kernel-name suffix (`f32`, `f16`, `bf16`, `f64`).
    const KERNEL: &'static str;
}
impl FloatStorage for f32 {
    const KERNEL: &'static str = "f32";
}
impl FloatStorage for half::f16 {
    const KERNEL: &'static str = "f16";
}
impl FloatStorage for half::bf16 {
    const KERNEL: &'static str = "bf16";
}
impl FloatStorage for i64 {
    const KERNEL: &'static str = "f64";
}

/// Kernel-name suffix for raw N-byte element kernels (`b1`, `b2`, `b4`, `b8`).
pub(crate) fn bytes_suffix<T>() -> Result<&'static str> {
    match std::mem::size_of::<T>() {
        1 => Ok("b1"),
        2 => Ok("b2"),
        4 => Ok("b4"),
        8 => Ok("b8"),
        n => Err(Error::arg("bytes", format!("unsupported element size {n}"))),
    }
}

/// Whether the CUDA driver library can be loaded (probed once; never panics).
pub fn driver_available() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: only tries to dlopen candidate library names.
    *PRESENT.get_or_init(|| unsafe { cusys::is_culib_present() })
}

/// Number of CUDA devices, or an error when no driver is installed.
pub fn device_count() -> Result<usize> {
    if !driver_available() {
        return Err(Error::DriverNotFound);
    }
    let n = CudaContext::device_count().map_err(|e| Error::Driver(format!("{e:?}")))?;
    Ok(n.max(0) as usize)
}

/// A CUDA device ready to run keel kernels: context, a single stream, module cache.
///
/// Every operation issued through one `CudaDevice` goes to its one stream, so they are
/// ordered; cudarc's per-allocation event tracking is therefore turned off.
#[derive(Debug)]
pub struct CudaDevice {
    ordinal: usize,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    cc: (i32, i32),
    arch: String,
    sm_count: u32,
    smem_optin: usize,
    name: String,
    /// Loaded modules by program hash, each behind its own lock so that a program is compiled
    /// and loaded once even when several threads ask for it together (two copies would give
    /// two handles for one kernel, and a function attribute set on one would miss the other).
    modules: Mutex<HashMap<u64, Arc<Mutex<Option<Arc<CudaModule>>>>>>,
    functions: Mutex<HashMap<(u64, String), CudaFunction>>,
    /// Dynamic shared memory each kernel was allowed through its function attribute.
    smem_limits: Mutex<HashMap<(u64, String), usize>>,
    /// The device-side index checks' report `{op code, index, size}` (allocated on first use).
    index_report: Mutex<Option<CudaSlice<i64>>>,
    /// Op names of the index checks; code `k` is `index_ops[k - 1]`.
    index_ops: Mutex<Vec<&'static str>>,
    /// Set when a check was queued since the report was last read.
    index_checks_queued: AtomicBool,
    /// Split reductions' scratch (allocated on first use): partial accumulators, and
    /// ticket counters that are zero between launches (also the split-K GEMMs' tickets).
    reduce_scratch: Mutex<Option<ReduceScratch>>,
    /// While a kernel profile runs ([`CudaDevice::start_profile`]): the thread it profiles,
    /// and each of that thread's launches with the events recorded before and after it.
    profile: Mutex<Option<(std::thread::ThreadId, Vec<(String, CudaEvent, CudaEvent)>)>>,
    /// True while `profile` is `Some` (read on every launch without taking the lock).
    profiling: AtomicBool,
}

/// One kernel's share of a profile ([`CudaDevice::finish_profile`]).
#[derive(Debug, Clone, PartialEq)]
pub struct KernelTime {
    /// The kernel's name (`gemm_f32_nn_vec4`, `softmax_xent_dense_f32`, ...).
    pub kernel: String,
    /// How many times it was launched.
    pub launches: u64,
    /// GPU time of those launches in milliseconds, each from an event recorded just
    /// before it to one just after it on the device's stream.
    pub total_ms: f64,
}

/// Device memory of split reductions ([`CudaDevice::with_reduce_scratch`]).
#[derive(Debug)]
pub(crate) struct ReduceScratch {
    /// Room for [`ReduceScratch::PART_BYTES`] bytes of partial accumulators.
    pub(crate) part: CudaSlice<u8>,
    /// [`ReduceScratch::TICKETS`] u32 counters, zero between launches.
    pub(crate) tickets: CudaSlice<u8>,
}

impl ReduceScratch {
    /// Bytes of partial accumulators one split reduction may use.
    pub(crate) const PART_BYTES: usize = 256 << 10;
    /// Ticket counters: one per output row, per (outer index, 32-column tile), or per
    /// 128x128 tile of a split-K GEMM.
    pub(crate) const TICKETS: usize = 1024;
}

/// What [`ThreadCounts`] counts (indices into its rows).
const WAITS: usize = 0;
const HTOD_BYTES: usize = 1;
const LAUNCHES: usize = 2;

thread_local! {
    /// Per device ordinal, this thread's counts: how many times it waited for the device's
    /// stream ([`WAITS`]), how many bytes it copied to the device ([`HTOD_BYTES`]) and how
    /// many kernels it launched ([`LAUNCHES`]).
    static THREAD_COUNTS: RefCell<Vec<[u64; 3]>> = const { RefCell::new(Vec::new()) };
}

/// Adds `n` to this thread's count `which` for device `ordinal`.
fn count(ordinal: usize, which: usize, n: u64) {
    THREAD_COUNTS.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() <= ordinal {
            c.resize(ordinal + 1, [0; 3]);
        }
        c[ordinal][which] += n;
    });
}

/// This thread's count `which` for device `ordinal`.
fn counted(ordinal: usize, which: usize) -> u64 {
    THREAD_COUNTS.with(|c| c.borrow().get(ordinal).map_or(0, |r| r[which]))
}

/// One shared [`CudaDevice`] per ordinal.
fn registry() -> &'static Mutex<HashMap<usize, Arc<CudaDevice>>> {
    static REG: OnceLock<Mutex<HashMap<usize, Arc<CudaDevice>>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashMap::new()))
}

impl CudaDevice {
    /// True when a driver, a device with this ordinal and NVRTC are all present.
    pub fn is_available(ordinal: usize) -> bool {
        driver_available() && crate::compile::nvrtc_available() && device_count().map(|n| ordinal < n).unwrap_or(false)
    }

    /// Returns the shared handle for device `ordinal`, creating it on first use.
    pub fn get(ordinal: usize) -> Result<Arc<Self>> {
        let mut reg = registry().lock().map_err(|_| Error::Driver("device registry lock poisoned".into()))?;
        if let Some(d) = reg.get(&ordinal) {
            return Ok(d.clone());
        }
        let dev = Arc::new(Self::create(ordinal)?);
        reg.insert(ordinal, dev.clone());
        Ok(dev)
    }

    fn create(ordinal: usize) -> Result<Self> {
        let count = device_count()?;
        if ordinal >= count {
            return Err(Error::NoDevice { ordinal, count });
        }
        ensure_nvrtc()?;
        let ctx = CudaContext::new(ordinal)?;
        // SAFETY: all work issued through this handle uses the single stream below, so
        // stream order already serializes every access (see the struct docs).
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream()?;
        let cc = ctx.compute_capability()?;
        let sm_count =
            ctx.attribute(cusys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?.max(1) as u32;
        // Stream-ordered allocations come from the device's default pool. By default it gives
        // freed memory back to the driver at every synchronisation (threshold 0), so a
        // training loop that reads its loss each step would map and unmap its activations
        // every step; keep it instead (a caching allocator), and trim on out-of-memory.
        keep_freed_memory(&ctx);
        let smem_optin = ctx
            .attribute(cusys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
            .unwrap_or(0)
            .max(0) as usize;
        let name = ctx.name().unwrap_or_else(|_| "unknown CUDA device".into());
        Ok(Self {
            ordinal,
            ctx,
            stream,
            cc,
            arch: format!("sm_{}{}", cc.0, cc.1),
            sm_count,
            smem_optin,
            name,
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
            smem_limits: Mutex::new(HashMap::new()),
            index_report: Mutex::new(None),
            index_ops: Mutex::new(Vec::new()),
            index_checks_queued: AtomicBool::new(false),
            reduce_scratch: Mutex::new(None),
            profile: Mutex::new(None),
            profiling: AtomicBool::new(false),
        })
    }

    /// The device ordinal.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// The device's marketing name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Compute capability `(major, minor)`.
    pub fn compute_capability(&self) -> (i32, i32) {
        self.cc
    }

    /// Architecture kernels are compiled for, e.g. `sm_90`.
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// Number of streaming multiprocessors.
    pub fn sm_count(&self) -> u32 {
        self.sm_count
    }

    /// The underlying cudarc context.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The device's stream (every keel kernel and copy runs on it).
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Blocks until all work queued on the stream has finished; reports async errors.
    ///
    /// It also reports an out-of-range index that a device-side index check
    /// ([`crate::ops::index::check_index_range`]) found since the last wait, as
    /// [`Error::IndexOutOfRange`]; the report is then cleared.
    pub fn synchronize(&self) -> Result<()> {
        count(self.ordinal, WAITS, 1);
        self.stream.synchronize().map_err(|e| Error::Launch(format!("asynchronous error: {e:?}")))?;
        self.take_index_report()
    }

    /// Runs `queue` with the index-check report buffer and the code of `op`, and marks a
    /// check as queued (for [`CudaDevice::synchronize`] to read the report).
    pub(crate) fn with_index_report(
        &self,
        op: &'static str,
        queue: impl FnOnce(&mut CudaSlice<i64>, i64) -> Result<()>,
    ) -> Result<()> {
        // the guarded state is plain numbers, valid even after a panic elsewhere
        let code = {
            let mut ops = self.index_ops.lock().unwrap_or_else(PoisonError::into_inner);
            match ops.iter().position(|&o| o == op) {
                Some(k) => k + 1,
                None => {
                    ops.push(op);
                    ops.len()
                }
            }
        };
        let mut report = self.index_report.lock().unwrap_or_else(PoisonError::into_inner);
        let buf = match report.as_mut() {
            Some(buf) => buf,
            None => report.insert(self.alloc_zeros::<i64>(3)?),
        };
        queue(buf, code as i64)?;
        // under the lock, so a reader sees the flag and the queued check together
        self.index_checks_queued.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// After a stream sync: the bad index found by the queued checks, if any.
    fn take_index_report(&self) -> Result<()> {
        if !self.index_checks_queued.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut report = self.index_report.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(buf) = report.as_mut() else { return Ok(()) };
        let mut r = [0i64; 3];
        self.stream.memcpy_dtoh(buf, &mut r)?;
        self.stream.synchronize()?;
        // cleared only once read (a failed read leaves the report for the next wait)
        self.index_checks_queued.store(false, Ordering::SeqCst);
        if r[0] <= 0 {
            return Ok(());
        }
        self.stream.memset_zeros(buf)?;
        let ops = self.index_ops.lock().unwrap_or_else(PoisonError::into_inner);
        let op = ops.get(r[0] as usize - 1).copied().unwrap_or("an index op");
        Err(Error::IndexOutOfRange { op, index: r[1], size: r[2].max(0) as usize })
    }

    /// How many times the calling thread has waited for this device's stream so far:
    /// every [`CudaDevice::synchronize`], so every device-to-host copy (reading the index
    /// checks' report after a wait is not counted). Each wait drains the
    /// queue and leaves the GPU idle until the host queues more work, so a training step
    /// should have none; compare this count before and after a loop to find them.
    ///
    /// Counted per thread (the waits of the calling thread), so that other threads using
    /// the device do not disturb a measurement.
    pub fn host_waits(&self) -> u64 {
        counted(self.ordinal, WAITS)
    }

    /// How many bytes the calling thread has copied from the host to this device so far
    /// ([`CudaDevice::htod`], [`CudaDevice::htod_into`]); counted per thread like
    /// [`CudaDevice::host_waits`].
    pub fn bytes_to_device(&self) -> u64 {
        counted(self.ordinal, HTOD_BYTES)
    }

    /// How many kernels the calling thread has launched on this device so far (every
    /// launch made through [`CudaDevice::launch_counted`], as this crate's wrappers make
    /// them); counted per thread like [`CudaDevice::host_waits`].
    /// A test compares the count before and after a step to check what the step launches.
    pub fn launches(&self) -> u64 {
        counted(self.ordinal, LAUNCHES)
    }

    /// Runs `launch`, the launch of `kernel` on this device's stream, counted for
    /// [`CudaDevice::launches`] and timed while a profile runs. This crate's wrappers
    /// launch through it; a launch made elsewhere with cudarc's launch builder on
    /// [`CudaDevice::stream`] should too.
    pub fn launch_counted<R>(&self, kernel: &str, launch: impl FnOnce() -> R) -> R {
        count(self.ordinal, LAUNCHES, 1);
        if !self.profiling.load(Ordering::Relaxed) {
            return launch();
        }
        let me = std::thread::current().id();
        let profiled = |p: &Option<(std::thread::ThreadId, _)>| p.as_ref().is_some_and(|(t, _)| *t == me);
        if !profiled(&self.profile.lock().unwrap_or_else(PoisonError::into_inner)) {
            return launch();
        }
        let timing = Some(cusys::CUevent_flags::CU_EVENT_DEFAULT);
        let start = self.stream.record_event(timing);
        let r = launch();
        if let (Ok(start), Ok(end)) = (start, self.stream.record_event(timing)) {
            if let Some((_, list)) = self.profile.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
                list.push((kernel.to_string(), start, end));
            }
        }
        r
    }

    /// Starts timing every kernel the calling thread launches on this device until
    /// [`CudaDevice::finish_profile`] (other threads' launches are not recorded, as
    /// [`CudaDevice::launches`] counts per thread): two events per launch, so profile a few
    /// steps, not a whole run. A profile already running starts over.
    pub fn start_profile(&self) {
        *self.profile.lock().unwrap_or_else(PoisonError::into_inner) = Some((std::thread::current().id(), Vec::new()));
        self.profiling.store(true, Ordering::Relaxed);
    }

    /// Ends the profile that [`CudaDevice::start_profile`] began: waits for the stream,
    /// then returns the GPU time of each kernel launched since, summed by kernel name,
    /// the longest first (empty when none ran or no profile was started). Gaps between
    /// kernels (launch latency, the host not keeping up) are in no row: compare the sum
    /// with the wall time of the same work.
    pub fn finish_profile(&self) -> Result<Vec<KernelTime>> {
        self.profiling.store(false, Ordering::Relaxed);
        let list = self.profile.lock().unwrap_or_else(PoisonError::into_inner).take().map(|p| p.1).unwrap_or_default();
        self.synchronize()?;
        let mut rows: Vec<KernelTime> = Vec::new();
        for (kernel, start, end) in list {
            let ms = f64::from(start.elapsed_ms(&end)?);
            match rows.iter_mut().find(|r| r.kernel == kernel) {
                Some(r) => {
                    r.launches += 1;
                    r.total_ms += ms;
                }
                None => rows.push(KernelTime { kernel, launches: 1, total_ms: ms }),
            }
        }
        rows.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
        Ok(rows)
    }

    /// `(free, total)` device memory in bytes.
    pub fn mem_info(&self) -> Result<(usize, usize)> {
        Ok(self.ctx.mem_get_info()?)
    }

    /// Allocates `len` elements (stream-ordered); contents are unspecified.
    pub fn alloc<T: DType>(&self, len: usize) -> Result<CudaSlice<T>> {
        let bytes = len.saturating_mul(std::mem::size_of::<T>());
        // SAFETY (ok: why): the memory is uninitialized, but every `DType` is valid for
        // any bit pattern, so whatever is read back is a valid value.
        retry_out_of_memory(bytes, || unsafe { self.stream.alloc::<T>(len) }, || self.release_cached_memory())
    }

    /// Runs `f` (which launches a split reduction) with the device's reduction scratch,
    /// allocated zeroed on first use. The lock is held across the launch, so no two split
    /// reductions share the scratch: their launches queue in lock order on the one stream.
    pub(crate) fn with_reduce_scratch<R>(&self, f: impl FnOnce(&mut ReduceScratch) -> Result<R>) -> Result<R> {
        let mut scratch = self.reduce_scratch.lock().unwrap_or_else(PoisonError::into_inner);
        let scratch = match scratch.as_mut() {
            Some(s) => s,
            None => scratch.insert(ReduceScratch {
                part: self.alloc_zeros::<u8>(ReduceScratch::PART_BYTES)?,
                tickets: self.alloc_zeros::<u8>(4 * ReduceScratch::TICKETS)?,
            }),
        };
        f(scratch)
    }

    /// Allocates `len` zeroed elements (stream-ordered).
    pub fn alloc_zeros<T: DType>(&self, len: usize) -> Result<CudaSlice<T>> {
        let bytes = len.saturating_mul(std::mem::size_of::<T>());
        retry_out_of_memory(bytes, || self.stream.alloc_zeros::<T>(len), || self.release_cached_memory())
    }

    /// Waits for the stream, then hands the memory pool's unused blocks back to the driver
    /// (PyTorch's `empty_cache`). Allocations retry once after this when the device is full.
    pub fn release_cached_memory(&self) -> Result<()> {
        // the stream alone: a pending index report stays for the next read-back
        self.stream.synchronize()?;
        self.ctx.bind_to_thread()?;
        // SAFETY: the device handle comes from the context; the pool is the device's own.
        unsafe {
            let pool = cudarc::driver::result::device::get_default_mem_pool(self.ctx.cu_device())?;
            cudarc::driver::result::mem_pool::trim_to(pool, 0)?;
        }
        Ok(())
    }

    /// Copies a host slice into a new device buffer.
    pub fn htod<T: DType>(&self, src: &[T]) -> Result<CudaSlice<T>> {
        let mut dst = self.alloc::<T>(src.len())?;
        self.htod_into(src, &mut dst.as_view_mut())?;
        Ok(dst)
    }

    /// Copies a host slice into an existing device view of the same length.
    pub fn htod_into<T: DType>(&self, src: &[T], dst: &mut CudaViewMut<'_, T>) -> Result<()> {
        if src.len() != dst.len() {
            return Err(Error::arg("htod_into", format!("host has {} elements, device view {}", src.len(), dst.len())));
        }
        self.stream.memcpy_htod(src, dst)?;
        count(self.ordinal, HTOD_BYTES, std::mem::size_of_val(src) as u64);
        Ok(())
    }

    /// Copies a device view back to a new host vector (waits for the stream).
    pub fn dtoh<T: DType>(&self, src: &CudaView<'_, T>) -> Result<Vec<T>> {
        let mut out = vec![T::default(); src.len()];
        self.stream.memcpy_dtoh(src, &mut out)?;
        self.synchronize()?;
        Ok(out)
    }

    /// Device-to-device copy of equal-length views.
    pub fn dtod<T: DType>(&self, src: &CudaView<'_, T>, dst: &mut CudaViewMut<'_, T>) -> Result<()> {
        if src.len() != dst.len() {
            return Err(Error::arg("dtod", format!("source has {} elements, destination {}", src.len(), dst.len())));
        }
        Ok(self.stream.memcpy_dtod(src, dst)?)
    }

    /// Loads (compiling and caching as needed) a program and returns one of its kernels.
    pub fn function(&self, program: &Program, kernel: &str) -> Result<CudaFunction> {
        let key = (program.hash(), kernel.to_string());
        if let Ok(f) = self.functions.lock() {
            if let Some(func) = f.get(&key) {
                return Ok(func.clone());
            }
        }
        let module = self.module(program)?;
        let func = module
            .load_function(kernel)
            .map_err(|_| Error::UnknownKernel { module: program.name().to_string(), kernel: kernel.to_string() })?;
        if let Ok(mut f) = self.functions.lock() {
            f.insert(key, func.clone());
        }
        Ok(func)
    }

    /// Like [`function`](Self::function), for a kernel launched with `smem_bytes` of dynamic
    /// shared memory: raises the kernel's limit (`MAX_DYNAMIC_SHARED_SIZE_BYTES`) the first
    /// time it is needed, which CUDA requires above 48 KiB.
    pub fn function_with_smem(&self, program: &Program, kernel: &str, smem_bytes: usize) -> Result<CudaFunction> {
        let func = self.function(program, kernel)?;
        if smem_bytes <= 48 * 1024 {
            return Ok(func);
        }
        if smem_bytes > self.smem_optin {
            return Err(Error::arg(
                "launch",
                format!("`{kernel}` needs {smem_bytes} bytes of shared memory; this device allows {}", self.smem_optin),
            ));
        }
        let key = (program.hash(), kernel.to_string());
        let mut limits = self.smem_limits.lock().map_err(|_| Error::Driver("kernel attribute lock poisoned".into()))?;
        if limits.get(&key).is_none_or(|&l| l < smem_bytes) {
            let value =
                i32::try_from(smem_bytes).map_err(|_| Error::arg("launch", "shared memory size overflows i32"))?;
            // cudarc's set_attribute does not make the context current; this thread may not have it.
            self.ctx.bind_to_thread()?;
            func.set_attribute(cusys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, value)
                .map_err(|e| Error::Driver(format!("raising the shared memory limit of `{kernel}`: {e:?}")))?;
            limits.insert(key, smem_bytes);
        }
        Ok(func)
    }

    /// Most shared memory one block may use once its kernel opts in (bytes).
    pub fn max_shared_memory_per_block_optin(&self) -> usize {
        self.smem_optin
    }

    /// Loads (compiling and caching as needed) a program as a CUDA module.
    pub fn module(&self, program: &Program) -> Result<Arc<CudaModule>> {
        // the maps only ever gain entries, so a poisoned lock still holds valid ones
        let slot =
            self.modules.lock().unwrap_or_else(PoisonError::into_inner).entry(program.hash()).or_default().clone();
        // held while compiling and loading: other threads wait for this program only
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(module) = slot.as_ref() {
            return Ok(module.clone());
        }
        let compiled = compile_for_arch(program.source(), program.name(), &self.arch)?;
        let module = self
            .ctx
            .load_module(Ptx::from_src(compiled.ptx.clone()))
            .map_err(|e| Error::Driver(format!("loading module `{}` ({}): {e:?}", program.name(), compiled.arch)))?;
        *slot = Some(module.clone());
        Ok(module)
    }

    /// A 1-D grid-stride launch configuration for `n` elements.
    pub fn cfg_1d(&self, n: usize) -> LaunchConfig {
        let threads = 256u32;
        let max_blocks = (self.sm_count as usize) * 16;
        let blocks = n.div_ceil(threads as usize).clamp(1, max_blocks.max(1)) as u32;
        LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (threads, 1, 1), shared_mem_bytes: 0 }
    }

    /// Device address of a view (for alignment checks).
    pub(crate) fn addr<T>(&self, v: &CudaView<'_, T>) -> u64 {
        let (p, _sync) = v.device_ptr(&self.stream);
        p
    }

    /// Device address of a mutable view (for kernels that take an optional output).
    pub(crate) fn addr_mut<T>(&self, v: &mut CudaViewMut<'_, T>) -> u64 {
        let (p, _sync) = v.device_ptr_mut(&self.stream);
        p
    }
}

/// Checks that a buffer has exactly `want` elements.
pub(crate) fn check_len(op: &'static str, what: &str, have: usize, want: usize) -> Result<()> {
    if have != want {
        return Err(Error::arg(op, format!("`{what}` has {have} elements, expected {want}")));
    }
    Ok(())
}

/// Checks that a buffer has at least `want` elements.
pub(crate) fn check_min_len(op: &'static str, what: &str, have: usize, want: usize) -> Result<()> {
    if have < want {
        return Err(Error::arg(op, format!("`{what}` has {have} elements, needs at least {want}")));
    }
    Ok(())
}

/// Converts a size to `i64` for a kernel argument.
pub(crate) fn to_i64(op: &'static str, v: usize) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::arg(op, format!("size {v} does not fit in i64")))
}

/// Sets the device's default memory pool to keep freed memory (release threshold: all).
/// Best effort: without memory pools (old drivers) allocations are synchronous anyway.
fn keep_freed_memory(ctx: &CudaContext) {
    let mut keep = u64::MAX;
    // SAFETY: the device handle comes from the context; the attribute takes a u64.
    let _ = unsafe {
        cudarc::driver::result::device::get_default_mem_pool(ctx.cu_device()).and_then(|pool| {
            cudarc::driver::result::mem_pool::set_attribute(
                pool,
                cusys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                (&mut keep as *mut u64).cast(),
            )
        })
    };
}

/// Runs `alloc`; when the device is out of memory, runs `release` (give cached blocks
/// back) and tries once more. A second failure is [`Error::OutOfMemory`] naming `bytes`.
pub(crate) fn retry_out_of_memory<T>(
    bytes: usize,
    mut alloc: impl FnMut() -> std::result::Result<T, DriverError>,
    release: impl FnOnce() -> Result<()>,
) -> Result<T> {
    match alloc() {
        Err(e) if e.0 == cusys::CUresult::CUDA_ERROR_OUT_OF_MEMORY => {
            release()?;
            alloc().map_err(|e| Error::from_alloc(e, bytes))
        }
        r => r.map_err(|e| Error::from_alloc(e, bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oom() -> DriverError {
        DriverError(cusys::CUresult::CUDA_ERROR_OUT_OF_MEMORY)
    }

    #[test]
    fn out_of_memory_releases_the_cache_and_retries_once() {
        let (mut calls, mut released) = (0, false);
        let r = retry_out_of_memory(
            64,
            || {
                calls += 1;
                if calls == 1 {
                    Err(oom())
                } else {
                    Ok(7)
                }
            },
            || {
                released = true;
                Ok(())
            },
        );
        assert_eq!(r.ok(), Some(7));
        assert!(released);
        assert_eq!(calls, 2);

        let r: Result<u8> = retry_out_of_memory(1 << 20, || Err(oom()), || Ok(()));
        let e = r.unwrap_err();
        assert!(matches!(e, Error::OutOfMemory { bytes } if bytes == 1 << 20), "{e}");
        assert!(e.to_string().contains("1048576 bytes"), "{e}");
    }
}
