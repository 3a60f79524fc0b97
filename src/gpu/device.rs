//! The GPU backend (feature `gpu`): one CUDA device per rank through cudarc, the kernels
//! compiled by NVRTC for the device's architecture when the rank opens it (PTX kept for the
//! process), work chunked to the rank's GPU-memory budget.
//!
//! Not yet here (issue 7): pinned double-buffered transfers on two streams, the gridder,
//! degridder, SumThreshold and calibration statistics on the device, cuFFT, NVML figures.

use super::{kernels, twins, Compute, GainGrid, GpuError};
use cudarc::driver::{CudaContext, CudaFunction, CudaStream, LaunchConfig, PushKernelArg};
use num_complex::Complex32;
use std::sync::Arc;

pub struct Gpu {
    /// Kept for the device's lifetime (the stream and module also hold it).
    _ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    rephase: CudaFunction,
    apply: CudaFunction,
    name: String,
    budget: usize,
}

fn cuda(e: impl std::fmt::Debug) -> GpuError {
    GpuError::Cuda(format!("{e:?}"))
}

impl Gpu {
    /// Opens device `local_rank mod count`; Err says why there is no GPU to use.
    pub fn open(local_rank: usize, mem_gib: f64) -> Result<Self, String> {
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err("no CUDA driver library (libcuda.so) on this node".into());
        }
        if !kernels::nvrtc_present() {
            return Err("no NVRTC library (libnvrtc.so.12) to compile the kernels".into());
        }
        let n = CudaContext::device_count().map_err(|e| format!("cannot count CUDA devices: {e:?}"))?;
        if n <= 0 {
            return Err("no CUDA device visible (CUDA_VISIBLE_DEVICES?)".into());
        }
        let ordinal = local_rank % n as usize;
        let ctx = CudaContext::new(ordinal).map_err(|e| format!("device {ordinal}: {e:?}"))?;
        let (major, minor) = ctx.compute_capability().map_err(|e| format!("{e:?}"))?;
        let arch: &'static str = Box::leak(format!("compute_{major}{minor}").into_boxed_str());
        let load = |file: &str, entry: &str| -> Result<CudaFunction, String> {
            let ptx = kernels::compile(file, arch).map_err(|e| e.to_string())?;
            let m = ctx.load_module(ptx).map_err(|e| format!("{file}: {e:?}"))?;
            m.load_function(entry).map_err(|e| format!("{file}: {entry}: {e:?}"))
        };
        let rephase = load("rephase.cu", "rephase")?;
        let apply = load("calapply.cu", "apply_gains")?;
        let (free, total) = ctx.mem_get_info().map_err(|e| format!("{e:?}"))?;
        let budget = if mem_gib > 0.0 { (mem_gib * (1u64 << 30) as f64) as usize } else { free / 10 * 8 };
        let dev_name = ctx.name().unwrap_or_else(|_| "CUDA device".into());
        let name = format!("gpu {ordinal} ({dev_name}, sm_{major}{minor}, {:.1} of {:.1} GiB free, budget {:.1} GiB)", free as f64 / 1e9 * 0.931, total as f64 / 1e9 * 0.931, budget as f64 / (1u64 << 30) as f64);
        let stream = ctx.default_stream();
        Ok(Gpu { _ctx: ctx, stream, rephase, apply, name, budget })
    }
}

/// Complex32 as interleaved f32 (the kernels' float2).
fn as_f32(v: &mut [Complex32]) -> &mut [f32] {
    // SAFETY: Complex32 is repr(C) { re: f32, im: f32 }.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut f32, v.len() * 2) }
}

impl Compute for Gpu {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn rephase(&self, vis: &mut [Complex32], dw: &[f64], freqs: &[f64], npol: usize) -> Result<(), GpuError> {
        let nchan = freqs.len();
        let row_bytes = nchan * npol * 8 + 8;
        let rows_per_chunk = (self.budget / row_bytes.max(1)).clamp(1, dw.len().max(1));
        let d_freqs = self.stream.clone_htod(freqs).map_err(cuda)?;
        for (k, rows) in dw.chunks(rows_per_chunk).enumerate() {
            let r0 = k * rows_per_chunk;
            let part = &mut vis[r0 * nchan * npol..(r0 + rows.len()) * nchan * npol];
            let host = as_f32(part);
            let mut d_vis = self.stream.clone_htod(&*host).map_err(cuda)?;
            let d_dw = self.stream.clone_htod(rows).map_err(cuda)?;
            let (nrow, nc, np) = (rows.len() as i32, nchan as i32, npol as i32);
            let mut b = self.stream.launch_builder(&self.rephase);
            b.arg(&mut d_vis).arg(&d_dw).arg(&d_freqs).arg(&nrow).arg(&nc).arg(&np);
            unsafe { b.launch(LaunchConfig::for_num_elems((rows.len() * nchan) as u32)) }.map_err(cuda)?;
            self.stream.memcpy_dtoh(&d_vis, host).map_err(cuda)?;
        }
        self.stream.synchronize().map_err(cuda)
    }

    fn apply_gains(&self, vis: &mut [Complex32], weight: &mut [f32], gains: &GainGrid, baselines: &[(usize, usize)]) -> Result<(), GpuError> {
        let plane = gains.n_times * gains.n_chan * gains.n_pol;
        let bytes_per_bl = plane * 12 + 8;
        let gain_bytes = gains.gains.len() * 17;
        if gain_bytes + bytes_per_bl > self.budget {
            // The gain grid alone does not fit the budget: the CPU twin does it.
            twins::apply_gains(vis, weight, gains, baselines);
            return Ok(());
        }
        let per_chunk = ((self.budget - gain_bytes) / bytes_per_bl).clamp(1, baselines.len().max(1));
        let g: Vec<f64> = gains.gains.iter().flat_map(|x| x.map(|c| [c.re, c.im]).unwrap_or([0.0, 0.0])).collect();
        let valid: Vec<u8> = gains.gains.iter().map(|x| u8::from(x.is_some())).collect();
        let d_g = self.stream.clone_htod(&g).map_err(cuda)?;
        let d_valid = self.stream.clone_htod(&valid).map_err(cuda)?;
        for (k, bls) in baselines.chunks(per_chunk).enumerate() {
            let b0 = k * per_chunk;
            let range = b0 * plane..(b0 + bls.len()) * plane;
            let host_v = as_f32(&mut vis[range.clone()]);
            let mut d_v = self.stream.clone_htod(&*host_v).map_err(cuda)?;
            let mut d_w = self.stream.clone_htod(&weight[range.clone()]).map_err(cuda)?;
            let a1: Vec<i32> = bls.iter().map(|x| x.0 as i32).collect();
            let a2: Vec<i32> = bls.iter().map(|x| x.1 as i32).collect();
            let (d_a1, d_a2) = (self.stream.clone_htod(&a1).map_err(cuda)?, self.stream.clone_htod(&a2).map_err(cuda)?);
            let dims = [bls.len() as i32, gains.n_times as i32, gains.n_chan as i32, gains.n_pol as i32, gains.n_ant as i32];
            let mut b = self.stream.launch_builder(&self.apply);
            b.arg(&mut d_v).arg(&mut d_w).arg(&d_g).arg(&d_valid).arg(&d_a1).arg(&d_a2);
            for d in &dims {
                b.arg(d);
            }
            unsafe { b.launch(LaunchConfig::for_num_elems((bls.len() * plane) as u32)) }.map_err(cuda)?;
            self.stream.memcpy_dtoh(&d_v, host_v).map_err(cuda)?;
            self.stream.memcpy_dtoh(&d_w, &mut weight[range]).map_err(cuda)?;
        }
        self.stream.synchronize().map_err(cuda)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::vectors;

    fn device() -> Option<Gpu> {
        match Gpu::open(0, 0.0) {
            Ok(g) => Some(g),
            Err(why) => {
                eprintln!("SKIPPED: GPU-vs-CPU kernel test: {why}");
                None
            }
        }
    }

    #[test]
    fn rephase_kernel_matches_the_vectors() {
        let Some(g) = device() else { return };
        let v = vectors::rephase();
        let mut vis = v.vis.clone();
        g.rephase(&mut vis, &v.dw, &v.freqs, v.npol).unwrap();
        let err = vis.iter().zip(&v.expected).map(|(a, b)| (a - b).norm()).fold(0f32, f32::max);
        assert!(err < 2e-6, "max error {err}");
    }

    #[test]
    fn gains_kernel_matches_the_vectors() {
        let Some(g) = device() else { return };
        let v = vectors::gains();
        let (mut vis, mut w) = (v.vis.clone(), v.weight.clone());
        g.apply_gains(&mut vis, &mut w, &v.gains, &v.baselines).unwrap();
        let err = vis.iter().zip(&v.expected_vis).zip(&w).filter(|(_, &w)| w > 0.0).map(|((a, b), _)| (a - b).norm() / b.norm().max(1e-3)).fold(0f32, f32::max);
        assert!(err < 1e-6, "max relative error {err}");
        assert_eq!(w.iter().map(|&x| x == 0.0).collect::<Vec<_>>(), v.expected_weight.iter().map(|&x| x == 0.0).collect::<Vec<_>>());
    }
}
