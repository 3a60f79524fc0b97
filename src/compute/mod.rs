//! The compute seam: a CPU backend (rayon) always, a GPU backend (cudarc, one device per
//! rank, kernels from `kernels/*.cu` compiled at run time by NVRTC) with the `gpu` feature.
//! Both implement [`Compute`]; the pipeline calls that and never asks which it has.
//!
//! Device choice: the node-local rank (OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID,
//! MPI_LOCALRANKID, else 0) modulo the visible devices. `gpu: auto` uses a device when the
//! CUDA driver, NVRTC and cuFFT libraries and a device are there and says once why not
//! otherwise; `required`
//! fails with that reason; `off` never looks. cudarc panics when libcuda is absent, so the
//! library's presence is checked before any call.

pub mod cal_stats;
pub mod convolve;
pub mod degridder;
#[cfg(feature = "gpu")]
pub mod device;
#[cfg(feature = "gpu")]
mod device_calstats;
#[cfg(feature = "gpu")]
mod device_convolve;
#[cfg(feature = "gpu")]
mod device_dft;
#[cfg(feature = "gpu")]
mod device_flag;
#[cfg(feature = "gpu")]
mod device_held;
#[cfg(feature = "gpu")]
mod device_minor;
#[cfg(feature = "gpu")]
mod device_outliers;
#[cfg(feature = "gpu")]
mod device_planes;
#[cfg(feature = "gpu")]
mod device_residual;
#[cfg(feature = "gpu")]
mod device_stack;
#[cfg(feature = "gpu")]
mod device_timing;
#[cfg(feature = "gpu")]
mod device_unstack;
pub mod dft;
#[cfg(test)]
mod dft_kernel_tests;
#[cfg(all(test, feature = "gpu"))]
mod emulator_tests;
#[cfg(all(test, feature = "gpu"))]
pub(crate) mod failing_device;
pub mod flag_pass;
pub mod flag_planes;
pub mod flagging;
pub mod gridder;
pub mod held_images;
#[cfg(test)]
mod host_kernels;
pub mod kernels;
pub mod launch;
pub mod minor;
pub mod monitor;
pub mod outlier_fit;
pub mod point_model;
pub mod sir;
pub mod stack;
pub mod twins;
/// Shared test vectors of the kernels and their twins (tests only).
#[cfg(test)]
pub mod vectors;

use crate::compute::degridder::{WUnstack, Weights};
use crate::compute::gridder::{GridSpec, Planes, VisBlock, WStack};
use num_complex::Complex32;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GpuMode {
    #[default]
    Auto,
    Off,
    Required,
}

/// `compute` in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComputeConfig {
    /// auto | off | required (see the module documentation).
    pub gpu: GpuMode,
    /// GPU memory one rank may use for its buffers (GiB); 0 = 80 % of the device's free
    /// memory shared among the node's ranks that use the same device.
    pub gpu_memory_gib: f64,
    /// Read, flag and prepare (calibrate, combine into Stokes I, rephasing geometry,
    /// outliers) a rank's next group on a second thread while the current one is imaged
    /// (one group ahead: one more group in memory).
    pub prefetch: bool,
}

impl Default for ComputeConfig {
    fn default() -> Self {
        ComputeConfig {
            gpu: GpuMode::Auto,
            gpu_memory_gib: 0.0,
            prefetch: true,
        }
    }
}

impl ComputeConfig {
    /// Checks every option for range and finiteness; the error names the key.
    pub fn validate(&self) -> Result<(), crate::primitives::check::SettingError> {
        crate::primitives::check::non_negative(
            "compute.gpu_memory_gib",
            self.gpu_memory_gib,
            "0 = 80 % of the free memory",
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("gpu: required, but {0}")]
    Unavailable(Box<NoGpu>),
    #[error("NVRTC could not compile kernels/{file} for {arch}: {log}")]
    Compile {
        file: String,
        arch: String,
        log: String,
    },
    #[error("CUDA: {0}")]
    Cuda(String),
    /// A job whose tables do not fit together (a caller's mistake, on any backend).
    #[error("{0}")]
    Job(String),
}

/// Why this rank has no GPU to use: `compute.gpu: auto` runs on the CPU and says why,
/// `required` fails with it.
#[derive(Debug, thiserror::Error)]
pub enum NoGpu {
    #[error("this contimg was built without the `gpu` feature")]
    NotBuilt,
    #[error("no CUDA driver library (libcuda.so) on this node")]
    NoDriver,
    #[error("no NVRTC library (libnvrtc.so or .so.12; a CUDA 13 toolkit's libnvrtc.so.13 can be linked as libnvrtc.so) to compile the kernels")]
    NoNvrtc,
    #[error("no cuFFT library (libcufft.so, .so.12 or .so.11) for the plane transforms")]
    NoCufft,
    #[error("no CUDA device visible (CUDA_VISIBLE_DEVICES?)")]
    NoDevice,
    #[error("cannot count CUDA devices: {0}")]
    Count(GpuError),
    /// The device was found but could not be set up (context, properties, streams).
    #[error("device {ordinal}: {source}")]
    Device { ordinal: usize, source: GpuError },
    /// A kernel that did not compile or load.
    #[error("kernels/{file}: {entry}: {source}")]
    Kernel {
        file: &'static str,
        entry: &'static str,
        source: GpuError,
    },
}

/// The per-visibility kernels of the pipeline, on one backend.
pub trait Compute: Send + Sync {
    /// "cpu" or a description of the device.
    fn name(&self) -> String;
    /// Whether this backend is an accelerator (CLEAN's round subtraction then always goes
    /// by FFT, imaging::clark).
    fn is_device(&self) -> bool {
        false
    }
    /// A block's w-stacked gridding (see compute::gridder::WStack): the (dirty, psf) block
    /// images before the w-taper correction.
    fn grid_wstack(&self, job: &WStack) -> Result<(Vec<f64>, Vec<f64>), GpuError>;
    /// Several dirty images of one block on the same planes, image k's samples multiplied
    /// by `factors[k]` per channel, in one pass where the backend can (the CPU's shares
    /// the samples' geometry and taps); by default one `grid_wstack` each.
    fn grid_wstack_dirties(
        &self,
        spec: &GridSpec,
        b: &VisBlock,
        planes: &Planes,
        factors: &[&[f64]],
    ) -> Result<Vec<Vec<f64>>, GpuError> {
        factors
            .iter()
            .map(|f| {
                self.grid_wstack(&WStack {
                    spec,
                    b,
                    planes,
                    dirty_factor: Some(f),
                    psf_factor: None,
                })
                .map(|(d, _)| d)
            })
            .collect()
    }
    /// A block's w-stacked prediction (see compute::degridder::WUnstack), written to `out`
    /// (zero on entry) for the job's rows.
    fn degrid_wstack(&self, job: &WUnstack, out: &mut [Complex32]) -> Result<(), GpuError>;
    /// The weighted sum of several predictions of one block (`jobs` share the spec, the
    /// block and the planes; `out` zero on entry; see primitives::wgridder::Weights): by
    /// default one `degrid_wstack` each, summed; the CPU backend runs them in one pass.
    fn degrid_wstack_sum(
        &self,
        jobs: &[WUnstack],
        weights: &[Weights],
        out: &mut [Complex32],
    ) -> Result<(), GpuError> {
        let nchan = jobs.first().map_or(1, |j| j.b.freqs.len()).max(1);
        let mut one = vec![Complex32::new(0.0, 0.0); out.len()];
        for (job, w) in jobs.iter().zip(weights) {
            one.iter_mut().for_each(|v| *v = Complex32::new(0.0, 0.0));
            self.degrid_wstack(job, &mut one)?;
            out.par_chunks_mut(nchan)
                .zip(one.par_chunks(nchan))
                .enumerate()
                .for_each(|(r, (o, p))| {
                    let wr = w.row.map_or(1.0, |x| x[r]);
                    for (c, (o, p)) in o.iter_mut().zip(p).enumerate() {
                        *o += p * (wr * w.chan.map_or(1.0, |x| x[c]));
                    }
                });
        }
        Ok(())
    }
    /// Keeps all of `b`'s samples (visibilities, weights, geometry) in the backend's own
    /// memory, so that gridding or degridding a block that names them
    /// (`VisBlock::resident`) reads them there instead of copying them in on every call,
    /// and `degrid_subtract` subtracts predictions there (CLEAN's major cycles on a
    /// device). None where the backend has no memory of its own (the CPU) or no room for
    /// them beside its work.
    fn hold(&self, _b: &VisBlock) -> Result<Option<Box<dyn Resident>>, GpuError> {
        Ok(None)
    }
    /// `hold` from the group reader's thread, ahead of the image loop, while the loop's
    /// passes may run: the copy counts against the reader's share of the backend's memory
    /// (the flagger's) until the loop `adopt`s it, so that no pass already sized finds
    /// less room than it counted on. None where `hold` would give none, or no room is left
    /// beside the next group's flagging.
    fn hold_ahead(&self, _b: &VisBlock) -> Result<Option<Box<dyn Resident>>, GpuError> {
        Ok(None)
    }
    /// Counts a copy held ahead (`hold_ahead`) as the image loop's from now on, as `hold`'s
    /// (on the loop's thread, between its passes). Nothing for a copy already the loop's.
    fn adopt(&self, _r: &dyn Resident) {}
    /// The held visibilities (row x channel x polarization, as `VisBlock::vis`) into `vis`.
    fn fetch_resident(&self, _r: &dyn Resident, _vis: &mut [Complex32]) -> Result<(), GpuError> {
        Err(not_held())
    }
    /// Subtracts `scale` times the weighted sum of the jobs' predictions (as
    /// `degrid_wstack_sum` makes it, for the jobs' rows) from every polarization of the held
    /// visibilities; the jobs' block names `r`. After an Err the held visibilities may have
    /// lost part of it: the caller gives them up.
    fn degrid_subtract(
        &self,
        _r: &dyn Resident,
        _jobs: &[WUnstack],
        _weights: &[Weights],
        _scale: f32,
    ) -> Result<(), GpuError> {
        Err(not_held())
    }
    /// Subtracts point components' direct prediction (as `predict_points` adds it) from
    /// the held visibilities `r` (every polarization) of the block `b` describes. After an
    /// Err the held visibilities may have lost part of it.
    fn predict_points_subtract(
        &self,
        _r: &dyn Resident,
        _b: &dft::DftBlock,
        _points: &[dft::Point],
        _amp: &[f32],
    ) -> Result<(), GpuError> {
        Err(not_held())
    }
    /// The outliers' normal equations (2 unknowns a source: flux and slope; see
    /// outlier_fit::UnitModel and imaging::outliers) from the visibilities and weights held
    /// in `r`, summed on the backend: the right side A^T W v, and with `with_ata` the
    /// normal matrix A^T W A (k x k, symmetric; the first fit's).
    fn outlier_normal(
        &self,
        _r: &dyn Resident,
        _m: &outlier_fit::UnitModel,
        _with_ata: bool,
    ) -> Result<(Vec<f64>, Option<Vec<f64>>), GpuError> {
        Err(not_held())
    }
    /// Subtracts the outliers' fitted increment `delta` from the visibilities held in `r`.
    /// After an Err they may have lost part of it: the caller gives them up.
    fn outlier_subtract(
        &self,
        _r: &dyn Resident,
        _m: &outlier_fit::UnitModel,
        _delta: &[f64],
    ) -> Result<(), GpuError> {
        Err(not_held())
    }
    /// SumThreshold with AOFlagger's schedule on consecutive nt x nf planes: `flags` (one
    /// per sample) in, the combined flags out. Twin: compute::flagging::sumthreshold_plane.
    fn sumthreshold_planes(
        &self,
        values: &[f32],
        flags: &mut [bool],
        nt: usize,
        nf: usize,
        s: &Schedule,
    ) -> Result<(), GpuError>;
    /// The flagger's masked Gaussian background on consecutive nt x nf planes (twin:
    /// compute::flagging::masked_smooth per plane).
    fn background_planes(
        &self,
        values: &[f32],
        flags: &[bool],
        nt: usize,
        nf: usize,
        s: &Smoothing,
    ) -> Result<Vec<f32>, GpuError>;
    /// One flagging pass over a batch of planes (see flag_pass::FlagPass): `values` (the
    /// amplitudes) in, their residuals over each plane's robust noise out; `flags` are the
    /// samples flagged before the pass, SumThreshold's start. By default the backend's
    /// backgrounds and SumThreshold with the CPU's noise between them.
    fn flag_pass(
        &self,
        job: &flag_pass::FlagPass,
        values: &mut [f32],
        flags: &[bool],
    ) -> Result<flag_pass::FlagPassOut, GpuError> {
        flag_pass::compose(self, job, values, flags)
    }
    /// A PSF's centred transform in single precision (see convolve::PsfHat::new), made
    /// once per image; a device also keeps it for the round convolutions.
    fn psf_hat(&self, psf: &[f64], m: usize) -> Result<convolve::PsfHat, GpuError> {
        Ok(convolve::PsfHat::new(psf, m))
    }
    /// CLEAN's round convolution (see compute::convolve::convolve_cpu): for each residual
    /// term t', the sum over terms t of `comps[t]` convolved with PSF t + t', n x n.
    fn convolve_components(
        &self,
        comps: &[Vec<(usize, f64)>],
        hats: &[&convolve::PsfHat],
        n: usize,
    ) -> Result<Vec<Vec<f64>>, GpuError> {
        Ok(convolve::convolve_cpu(comps, hats, n))
    }
    /// A minor cycle's residual images (one a term, n x n) held in the backend's memory
    /// with the pixels that may take components (see held_images::HeldImages); None where
    /// the backend keeps none (the CPU) or has no room.
    fn hold_images(
        &self,
        _images: &[Vec<f64>],
        _eligible: &[bool],
        _n: usize,
    ) -> Result<Option<Box<dyn held_images::HeldImages + '_>>, GpuError> {
        Ok(None)
    }
    /// One Clark round's minor-cycle iterations over its pixel list (see
    /// minor::minor_cpu, the twin every backend's result equals to the last bit).
    fn minor_cycle(&self, job: &minor::MinorJob) -> Result<minor::MinorOut, GpuError> {
        Ok(minor::minor_cpu(job))
    }
    /// SIR dilation (see flagging::sir_plane_with) of consecutive nt x nf flag planes.
    fn sir_planes(
        &self,
        flags: &mut [bool],
        nt: usize,
        nf: usize,
        eta: f64,
        extend: bool,
    ) -> Result<(), GpuError> {
        flag_pass::sir_planes_cpu(flags, nt, nf, eta, extend);
        Ok(())
    }
    /// Adds point components' visibilities to `out` by a direct Fourier sum (see
    /// dft::predict_points, the CPU's; a device sums in f64, dft.cu). A backend returns Err
    /// only with `out` as it was (the CPU then redoes the call).
    fn predict_points(
        &self,
        b: &dft::DftBlock,
        points: &[dft::Point],
        amp: &[f32],
        out: &mut [Complex32],
    ) -> Result<(), GpuError> {
        dft::predict_points(b, points, amp, out);
        Ok(())
    }
    /// Keeps a group's flagging planes (amplitudes and flags, see flag_planes) in the
    /// backend's own memory for the whole flagger, filled through `fill`. None where the
    /// backend has none (the CPU: the stage flags the group in place) or no room for them
    /// beside the passes' work.
    fn hold_planes(
        &self,
        _shape: &flag_planes::PlanesShape,
        _fill: &mut flag_planes::PlanesFill,
    ) -> Result<Option<Box<dyn flag_planes::FlagPlanes + '_>>, GpuError> {
        Ok(None)
    }
    /// How many flagging planes to hand over at once: a few per thread on the CPU (they
    /// stay in cache), thousands on a GPU (transfers and launches amortised).
    fn planes_per_batch(&self) -> usize {
        8 * rayon::current_num_threads().max(1)
    }
    /// Adds a calibrator group's sufficient statistics into the solver's cells (see
    /// cal_stats::CalStatsJob; the CPU twin cal_stats::cal_stats_cpu). A backend returns
    /// Err only with `out` as it was (the CPU then redoes the call).
    fn cal_stats(&self, job: &cal_stats::CalStatsJob, out: &mut [f64]) -> Result<(), GpuError> {
        cal_stats::cal_stats_cpu(job, out).map_err(|e| GpuError::Job(e.to_string()))
    }
    /// The device's PCI (domain, bus, device) for NVML; None on the CPU.
    fn pci(&self) -> Option<(u32, u32, u32)> {
        None
    }
}

/// A block's samples kept in a backend's own memory between calls (`Compute::hold`);
/// dropping it frees that memory.
pub trait Resident: Send + Sync {
    fn as_any(&self) -> &dyn std::any::Any;
}

fn not_held() -> GpuError {
    GpuError::Cuda("this backend holds no samples of its own".into())
}

/// SumThreshold's schedule (AOFlagger): windows M = 1, 2, 4, ... up to the limit along
/// each axis (time, frequency), thresholds chi1 / rho^log2(M).
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub chi1: f32,
    pub rho: f32,
    pub max_m_time: usize,
    pub max_m_freq: usize,
}

impl Schedule {
    /// The windows and their thresholds, in order.
    pub fn windows(&self) -> impl Iterator<Item = (usize, f32)> + '_ {
        std::iter::successors(Some(1usize), |m| Some(m * 2))
            .take_while(|&m| m <= self.max_m_time.max(self.max_m_freq))
            .map(|m| (m, self.chi1 / self.rho.powf((m as f32).log2())))
    }
}

/// The flagger's background window: Gaussian sigmas (samples) along time and frequency,
/// local-linear (true) or local-constant fits.
#[derive(Debug, Clone, Copy)]
pub struct Smoothing {
    pub sigma_t: f64,
    pub sigma_f: f64,
    pub linear: bool,
}

/// The CPU backend: the twins, run with rayon.
pub struct Cpu;

impl Compute for Cpu {
    fn name(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }
    fn grid_wstack(&self, job: &WStack) -> Result<(Vec<f64>, Vec<f64>), GpuError> {
        Ok(crate::compute::gridder::wstack_cpu(job))
    }
    fn grid_wstack_dirties(
        &self,
        spec: &GridSpec,
        b: &VisBlock,
        planes: &Planes,
        factors: &[&[f64]],
    ) -> Result<Vec<Vec<f64>>, GpuError> {
        Ok(crate::compute::gridder::wstack_cpu_dirties(
            spec, b, planes, factors,
        ))
    }
    fn background_planes(
        &self,
        values: &[f32],
        flags: &[bool],
        nt: usize,
        nf: usize,
        s: &Smoothing,
    ) -> Result<Vec<f32>, GpuError> {
        let tf = (nt * nf).max(1);
        let mut out = vec![0f32; values.len()];
        out.par_chunks_mut(tf)
            .zip(values.par_chunks(tf))
            .zip(flags.par_chunks(tf))
            .for_each(|((o, v), f)| {
                o.copy_from_slice(&crate::compute::flagging::masked_smooth(
                    v, f, nt, nf, s.sigma_t, s.sigma_f, s.linear,
                ));
            });
        Ok(out)
    }
    fn sumthreshold_planes(
        &self,
        values: &[f32],
        flags: &mut [bool],
        nt: usize,
        nf: usize,
        s: &Schedule,
    ) -> Result<(), GpuError> {
        flags
            .par_chunks_mut(nt * nf)
            .zip(values.par_chunks(nt * nf))
            .for_each(|(f, v)| {
                let new = crate::compute::flagging::sumthreshold_plane(
                    v,
                    f,
                    nt,
                    nf,
                    s.chi1,
                    s.rho,
                    s.max_m_time,
                    s.max_m_freq,
                );
                f.copy_from_slice(&new);
            });
        Ok(())
    }
    fn degrid_wstack(&self, job: &WUnstack, out: &mut [Complex32]) -> Result<(), GpuError> {
        crate::compute::degridder::unstack_cpu(job, out);
        Ok(())
    }
    fn degrid_wstack_sum(
        &self,
        jobs: &[WUnstack],
        weights: &[Weights],
        out: &mut [Complex32],
    ) -> Result<(), GpuError> {
        crate::compute::degridder::unstack_cpu_sum(jobs, weights, out);
        Ok(())
    }
}

/// Runs `job` on `compute`; when that backend fails (a GPU out of memory, a driver error)
/// logs why and runs `job` again on the CPU backend, whose results are the same. `job`'s
/// second argument is true on that retry: the job then first restores whatever the failed
/// attempt may have half-written (its outputs, in-place buffers). Every CPU fallback of the
/// stages goes through here.
pub fn or_cpu<T>(
    compute: &dyn Compute,
    what: &str,
    mut job: impl FnMut(&dyn Compute, bool) -> Result<T, GpuError>,
) -> T {
    match job(compute, false) {
        Ok(v) => v,
        Err(e) => {
            log::warn!(
                "{what} on {} failed ({e}); running it on the CPU",
                compute.name()
            );
            // The CPU backend returns Ok from every method.
            job(&Cpu, true).expect("the CPU backend does not fail")
        }
    }
}

/// This process's rank among the ranks of its node, from the launcher's environment.
pub fn local_rank() -> usize {
    local_rank_from(|k| std::env::var(k).ok())
}

/// The first launcher variable that is set and numeric, in order of precedence.
fn local_rank_from(get: impl Fn(&str) -> Option<String>) -> usize {
    first_number(
        &get,
        &[
            "OMPI_COMM_WORLD_LOCAL_RANK",
            "SLURM_LOCALID",
            "MPI_LOCALRANKID",
            "PMI_LOCAL_RANK",
        ],
    )
    .unwrap_or(0)
}

/// The number of ranks on this node (1 when the launcher does not say).
pub fn local_size() -> usize {
    local_size_from(|k| std::env::var(k).ok())
}

fn local_size_from(get: impl Fn(&str) -> Option<String>) -> usize {
    first_number(
        &get,
        &[
            "OMPI_COMM_WORLD_LOCAL_SIZE",
            "MPI_LOCALNRANKS",
            "PMI_LOCAL_SIZE",
            "SLURM_NTASKS_PER_NODE",
        ],
    )
    .unwrap_or(1)
    .max(1)
}

/// The device a rank uses: its node-local rank modulo the node's devices (several ranks
/// share a device round-robin when there are more ranks than devices).
pub fn device_ordinal(local_rank: usize, devices: usize) -> usize {
    local_rank % devices.max(1)
}

/// Bytes of device `ordinal`'s memory one rank may use: `mem_gib` when set, else 80 % of
/// the device's `free` bytes split evenly among the node's ranks that use it (those whose
/// local rank is `ordinal` modulo the device count).
pub fn rank_share(
    ordinal: usize,
    local_size: usize,
    devices: usize,
    free: usize,
    mem_gib: f64,
) -> usize {
    if mem_gib > 0.0 {
        return (mem_gib * (1u64 << 30) as f64) as usize;
    }
    let sharing = local_size
        .saturating_sub(ordinal)
        .div_ceil(devices.max(1))
        .max(1);
    free / 10 * 8 / sharing
}

fn first_number(get: &impl Fn(&str) -> Option<String>, keys: &[&str]) -> Option<usize> {
    keys.iter()
        .find_map(|k| get(k).and_then(|v| v.parse().ok()))
}

/// Chooses the backend for this rank. Returns it with a line saying what was chosen and why.
pub fn select(cfg: &ComputeConfig) -> Result<(Box<dyn Compute>, String), GpuError> {
    if cfg.gpu == GpuMode::Off {
        return Ok((Box::new(Cpu), "compute: cpu (gpu: off)".into()));
    }
    match probe(cfg) {
        Ok(dev) => {
            let line = format!("compute: {}", dev.name());
            Ok((dev, line))
        }
        Err(why) if cfg.gpu == GpuMode::Auto => {
            Ok((Box::new(Cpu), format!("compute: cpu (gpu: auto, {why})")))
        }
        Err(why) => Err(GpuError::Unavailable(Box::new(why))),
    }
}

#[cfg(feature = "gpu")]
fn probe(cfg: &ComputeConfig) -> Result<Box<dyn Compute>, NoGpu> {
    device::Gpu::open(local_rank(), local_size(), cfg.gpu_memory_gib)
        .map(|g| Box::new(g) as Box<dyn Compute>)
}

#[cfg(not(feature = "gpu"))]
fn probe(_cfg: &ComputeConfig) -> Result<Box<dyn Compute>, NoGpu> {
    Err(NoGpu::NotBuilt)
}

/// For tests that skip for want of a GPU (or of NVRTC): says so on stderr and appends a line
/// to the file `CONTIMG_SKIP_LOG` names, which scripts/test.sh counts and prints after the
/// suite (cargo hides a passing test's stderr), so that CI shows how many were skipped.
pub fn note_skipped_test(what: &str) {
    eprintln!("SKIPPED: {what}");
    if let Some(path) = std::env::var_os("CONTIMG_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{what}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_and_auto_give_the_cpu_here_and_required_fails_cleanly() {
        let (c, line) = select(&ComputeConfig {
            gpu: GpuMode::Off,
            ..Default::default()
        })
        .unwrap();
        assert!(c.name().starts_with("cpu") && line.contains("gpu: off"));
        // No machine here has a GPU (or this build has no GPU support).
        if std::env::var("CONTIMG_EXPECT_GPU").is_err() {
            let (c, line) = select(&ComputeConfig::default()).unwrap();
            assert!(c.name().starts_with("cpu"), "{line}");
            let e = select(&ComputeConfig {
                gpu: GpuMode::Required,
                ..Default::default()
            })
            .err()
            .expect("required without a GPU fails");
            assert!(e.to_string().starts_with("gpu: required, but "), "{e}");
            assert!(matches!(e, GpuError::Unavailable(_)), "{e:?}");
        }
    }

    /// Ranks and devices of a node: every device gets its ranks round-robin, and each
    /// rank's share of a device is what the device's ranks divide evenly.
    #[test]
    fn ranks_share_the_nodes_devices_evenly() {
        const GIB: usize = 1 << 30;
        let free = 100 * GIB;
        for (local_size, devices) in [(1, 1), (4, 1), (4, 2), (3, 2), (2, 4), (8, 4), (7, 3)] {
            let mut on_device = vec![0usize; devices];
            for r in 0..local_size {
                on_device[device_ordinal(r, devices)] += 1;
            }
            for r in 0..local_size {
                let d = device_ordinal(r, devices);
                assert!(d < devices);
                let share = rank_share(d, local_size, devices, free, 0.0);
                assert_eq!(
                    share,
                    free / 10 * 8 / on_device[d],
                    "{local_size} ranks, {devices} devices, rank {r}"
                );
            }
            // Together the ranks of a device use 80 % of its free memory, no more.
            for (d, &k) in on_device.iter().enumerate().filter(|(_, &k)| k > 0) {
                let total = k * rank_share(d, local_size, devices, free, 0.0);
                assert!(total <= free / 10 * 8 && total + k >= free / 10 * 8);
            }
        }
        // An explicit budget is the rank's, however many share the device.
        assert_eq!(rank_share(0, 8, 1, free, 2.5), 5 * GIB / 2);
        // Zero devices or an inconsistent launcher environment never divide by zero.
        assert_eq!(device_ordinal(5, 0), 0);
        assert_eq!(rank_share(3, 2, 1, free, 0.0), free / 10 * 8);
    }

    #[test]
    fn local_rank_reads_the_launchers_variables_in_order() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|p| p.0 == k).map(|p| p.1.to_string())
        };
        assert_eq!(local_rank_from(env(&[])), 0);
        assert_eq!(local_rank_from(env(&[("SLURM_LOCALID", "3")])), 3);
        assert_eq!(
            local_rank_from(env(&[
                ("SLURM_LOCALID", "3"),
                ("OMPI_COMM_WORLD_LOCAL_RANK", "1")
            ])),
            1
        );
        assert_eq!(
            local_rank_from(env(&[
                ("OMPI_COMM_WORLD_LOCAL_RANK", "x"),
                ("PMI_LOCAL_RANK", "2")
            ])),
            2
        );
        assert_eq!(local_size_from(env(&[])), 1);
        assert_eq!(
            local_size_from(env(&[
                ("SLURM_NTASKS_PER_NODE", "4"),
                ("OMPI_COMM_WORLD_LOCAL_SIZE", "8")
            ])),
            8
        );
    }
}
