//! The calibration solver's sufficient statistics on the device (feature `gpu`;
//! `Compute::cal_stats`, kernels/calstats.cu): the group's baselines go up in batches
//! sized to the budget (visibilities and half-float weights as they are, 10 bytes a
//! sample), each batch's partial sums per (run, channel, pol) are made and summed into
//! the listed cells there, and the cells' sums of every baseline come down once at the
//! end (5 f64 a cell and baseline) to be added into the caller's cells, so that an error
//! leaves them as they were. The model is evaluated on the device from its tables (a few
//! MB): the host predicts nothing.

use super::cal_stats::{CalStatsJob, SUMS};
use super::device::{as_f32_ref, cuda, Gpu};
use super::{launch, GpuError, NoGpu};
use cudarc::driver::CudaFunction;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

/// The functions of calstats.cu.
pub(super) struct CalStatsKernels {
    partial: CudaFunction,
    cells: CudaFunction,
}

impl CalStatsKernels {
    pub(super) fn load(
        load: impl Fn(&'static str, &'static str) -> Result<CudaFunction, NoGpu>,
    ) -> Result<Self, NoGpu> {
        Ok(CalStatsKernels {
            partial: load("calstats.cu", "calstats_partial")?,
            cells: load("calstats.cu", "calstats_cells")?,
        })
    }
}

impl Gpu {
    /// Compute::cal_stats on the device.
    pub(super) fn cal_stats_dev(&self, job: &CalStatsJob, out: &mut [f64]) -> Result<(), GpuError> {
        job.check(out.len())
            .map_err(|e| GpuError::Job(e.to_string()))?;
        let (cells, starts, entries) = job.cell_lists();
        let nbl = job.rows.len();
        if nbl == 0 || cells.is_empty() {
            return Ok(());
        }
        let (nt, nc, np, n_run) = (job.nt, job.nc, job.np, job.n_run());
        let row_len = nt * nc * np;
        let width = n_run * nc * np;
        let sums_bytes = cells.len() * nbl * SUMS * 8;
        let per_baseline = row_len * 10 + width * SUMS * 8;
        let budget = self.work_budget() / 2;
        if sums_bytes + per_baseline > budget {
            return Err(GpuError::Cuda(format!(
                "the calibration statistics need {:.2} GB of device memory, {:.2} GB allowed",
                (sums_bytes + per_baseline) as f64 / 1e9,
                budget as f64 / 1e9
            )));
        }
        let batch = ((budget - sums_bytes) / per_baseline).clamp(1, nbl);
        let s = &self.stream;
        let m = &job.model;
        let i32s = |v: Vec<i32>| s.clone_htod(&v).map_err(cuda);
        let d_keep = s
            .clone_htod(&job.keep.iter().map(|&k| u8::from(k)).collect::<Vec<u8>>())
            .map_err(cuda)?;
        let d_run = i32s(job.run_of.iter().map(|&r| r as i32).collect())?;
        let d_starts = i32s(starts.iter().map(|&x| x as i32).collect())?;
        let d_entries = i32s(entries.iter().map(|&x| x as i32).collect())?;
        let up = |x: &[f64]| s.clone_htod(x).map_err(cuda);
        let (d_proj, d_freqs) = (up(job.proj_m)?, up(m.freqs)?);
        let (d_amp, d_delay, d_smear) = (up(m.amp)?, up(m.delay)?, up(m.smear)?);
        let premul: Vec<f64> = job
            .premul
            .map_or(vec![0.0], |p| p.iter().flat_map(|z| [z.re, z.im]).collect());
        let d_premul = up(&premul)?;
        let mut d_sums = s
            .alloc_zeros::<f64>(cells.len() * nbl * SUMS)
            .map_err(cuda)?;
        let mut d_partial = unsafe { s.alloc::<f64>(batch * width * SUMS) }.map_err(cuda)?;
        for j0 in (0..nbl).step_by(batch) {
            let j1 = (j0 + batch).min(nbl);
            let (lo, hi) = (job.rows[j0] as usize, job.rows[j1 - 1] as usize + 1);
            let d_vis = s
                .clone_htod(as_f32_ref(&job.vis[lo * row_len..hi * row_len]))
                .map_err(cuda)?;
            let w: &[u16] = job.weight[lo * row_len..hi * row_len].reinterpret_cast();
            let d_wt = s.clone_htod(w).map_err(cuda)?;
            let d_rows = i32s(job.rows[j0..j1].iter().map(|&r| r as i32).collect())?;
            let d_a = i32s(job.ants[j0..j1].iter().map(|&(a, _)| a as i32).collect())?;
            let d_b = i32s(job.ants[j0..j1].iter().map(|&(_, b)| b as i32).collect())?;
            let n = (j1 - j0) * nc;
            let cfg = launch::for_elems_of("calstats_partial", n)?;
            // SAFETY: one thread a (batch baseline, channel); the batch's rows lo..hi of
            // samples and weights are up, every table sized as the job's check holds.
            unsafe {
                launch::calstats_partial(
                    s,
                    &self.calstats.partial,
                    cfg,
                    &d_vis,
                    &d_wt,
                    job.weight_scale,
                    lo as i32,
                    &d_rows,
                    &d_a,
                    &d_b,
                    (j1 - j0) as i32,
                    nt as i32,
                    nc as i32,
                    np as i32,
                    &d_keep,
                    &d_run,
                    n_run as i32,
                    &d_proj,
                    job.uv_min_lambda,
                    &d_freqs,
                    m.ns as i32,
                    m.n_ant as i32,
                    &d_amp,
                    &d_delay,
                    &d_smear,
                    &d_premul,
                    i32::from(job.premul.is_some()),
                    &mut d_partial,
                )
            }
            .map_err(cuda)?;
            // SAFETY: one thread a (listed cell, batch baseline); the sums hold every
            // listed cell for all nbl baselines.
            unsafe {
                launch::calstats_cells(
                    s,
                    &self.calstats.cells,
                    launch::for_elems(cells.len() * (j1 - j0))?,
                    &d_partial,
                    (j1 - j0) as i32,
                    width as i32,
                    &d_starts,
                    &d_entries,
                    cells.len() as i32,
                    nbl as i32,
                    j0 as i32,
                    &mut d_sums,
                )
            }
            .map_err(cuda)?;
            // The batch's uploads are freed when the stream has used them.
            s.synchronize().map_err(cuda)?;
        }
        let sums = s.clone_dtoh(&d_sums).map_err(cuda)?;
        // Nothing of `out` changes before every batch has run.
        let n_target = job.n_target;
        let by_cell: Vec<(u32, &[f64])> =
            cells.iter().copied().zip(sums.chunks(nbl * SUMS)).collect();
        out.par_chunks_mut(n_target * SUMS)
            .enumerate()
            .for_each(|(cell, o)| {
                let Ok(i) = by_cell.binary_search_by_key(&(cell as u32), |x| x.0) else {
                    return;
                };
                for (j, x) in by_cell[i].1.chunks(SUMS).enumerate() {
                    let t = job.target[j] as usize;
                    o[t * SUMS..(t + 1) * SUMS]
                        .iter_mut()
                        .zip(x)
                        .for_each(|(o, x)| *o += x);
                }
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::compute::cal_stats::tests::{direct, tables, worst};
    use crate::compute::cal_stats::{cal_stats_cpu, SUMS};
    use crate::compute::Compute;

    /// The device's sums equal the definition's (a sine and cosine per source, as the
    /// device evaluates the model) and the CPU twin's, per channel and per run of
    /// integrations, with and without the premultiplier, in one batch and in many (a
    /// budget of a few hundred kB); a lost device leaves the cells as they were.
    #[test]
    fn device_sums_are_the_cpus() {
        let Some(roomy) = crate::compute::device::tests::device() else {
            return;
        };
        let Some(tight) = crate::compute::device::tests::device_with(0.0005) else {
            return;
        };
        for (per_channel, moved, premul) in [
            (true, false, false),
            (true, true, true),
            (false, false, true),
            (false, true, false),
        ] {
            let tb = tables(per_channel, moved, 11);
            let job = tb.job(premul);
            let n = job.n_cell * job.n_target * SUMS;
            let want = direct(&job);
            let mut cpu = vec![0.0; n];
            cal_stats_cpu(&job, &mut cpu).unwrap();
            for (name, gpu) in [("one batch", &roomy), ("batches", &tight)] {
                let mut got = vec![1.0; n];
                gpu.cal_stats(&job, &mut got).unwrap();
                got.iter_mut().for_each(|x| *x -= 1.0);
                let (rel, counts) = worst(&got, &want);
                let (rel_cpu, _) = worst(&got, &cpu);
                println!(
                    "per channel {per_channel}, moved {moved}, premul {premul}, {name}: \
                     vs definition A {:.1e} B {:.1e} C {:.1e}; vs CPU A {:.1e}",
                    rel[0], rel[1], rel[2], rel_cpu[0]
                );
                assert!(counts, "{name}: sample counts differ");
                assert!(rel.iter().all(|&r| r < 1e-14), "{name}: {rel:?}");
                assert!(rel_cpu.iter().all(|&r| r < 6e-12), "{name}: {rel_cpu:?}");
            }
            let lost = crate::compute::failing_device::Failing::new(&roomy, 1);
            let mut kept = vec![0.5; n];
            assert!(lost.cal_stats(&job, &mut kept).is_err());
            assert!(kept.iter().all(|&x| x == 0.5));
        }
    }
}
