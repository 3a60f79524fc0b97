//! The direct prediction of point components on the device (feature `gpu`):
//! `kernels/dft.cu`, one thread a row and run of channels summing every component in f64.
//! The components and their amplitude table go up once a call; the rows go up in chunks of
//! whole baselines sized to the rank's budget, with the samples the sum is added to, and
//! come back.

use super::device::{as_f32, cuda, Gpu};
use super::dft::{DftBlock, Point};
use super::{launch, Compute, GpuError};
use cudarc::driver::{CudaSlice, LaunchConfig};
use num_complex::Complex32;

/// Device bytes a row takes beside its samples: (u, v, w), dw, its use flag.
const ROW_BYTES: usize = 33;
/// Channels a thread of dft.cu sums (its DFT_CHANNELS).
const DFT_CHANNELS: usize = 8;
/// Samples a chunk at most (64 MB of them; each comes back through a host copy of that
/// size, so that a failed download leaves the caller's samples as they were).
const CHUNK_SAMPLES: usize = 8 << 20;

impl Gpu {
    /// Compute::predict_points on the device.
    pub(super) fn predict_points_dev(
        &self,
        b: &DftBlock,
        points: &[Point],
        amp: &[f32],
        out: &mut [Complex32],
    ) -> Result<(), GpuError> {
        let (nt, nc, nrow) = (b.n_times.max(1), b.freqs.len(), b.uvw_m.len());
        assert_eq!(amp.len(), points.len() * nc * nt, "amplitude table size");
        assert_eq!(out.len(), nrow * nc, "output size");
        if points.is_empty() || nc == 0 || nrow == 0 {
            return Ok(());
        }
        let lmn: Vec<f64> = points.iter().flat_map(|p| [p.l, p.m, p.nm1()]).collect();
        let fixed = 4 * amp.len() + 8 * (lmn.len() + nc);
        let per_row = 8 * nc + ROW_BYTES;
        let budget = self.work_budget();
        if fixed + nt * per_row > budget {
            return Err(GpuError::Cuda(format!(
                "{} components' amplitudes ({} MB) do not fit this rank's GPU-memory budget",
                points.len(),
                (4 * amp.len()) >> 20
            )));
        }
        // Whole baselines a chunk (row r is integration r % nt).
        let rows_per_chunk = ((budget - fixed) / per_row).min(CHUNK_SAMPLES / nc) / nt * nt;
        let s = &self.stream;
        let (d_freqs, d_lmn, d_amp) = (
            s.clone_htod(b.freqs).map_err(cuda)?,
            s.clone_htod(&lmn).map_err(cuda)?,
            s.clone_htod(amp).map_err(cuda)?,
        );
        let used: Vec<u8> = (0..nrow)
            .map(|r| u8::from(b.use_row.get(r) == Some(&true)))
            .collect();
        let tables = (&d_freqs, &d_lmn, &d_amp);
        let step = rows_per_chunk.max(nt);
        for r0 in (0..nrow).step_by(step) {
            let r1 = (r0 + step).min(nrow);
            if let Err(e) = self.predict_chunk(b, &used, r0..r1, tables, points.len(), out) {
                // `out` holds the sums of the chunks before: the rest on the CPU.
                log::warn!(
                    "direct prediction on {} failed at row {r0} of {nrow} ({e}); the rest on the CPU",
                    self.name()
                );
                let rest = DftBlock {
                    uvw_m: &b.uvw_m[r0..],
                    dw_m: &b.dw_m[r0..],
                    use_row: b.use_row.get(r0..).unwrap_or(&[]),
                    ..*b
                };
                super::dft::predict_points(&rest, points, amp, &mut out[r0 * nc..]);
                return Ok(());
            }
        }
        Ok(())
    }

    /// Rows `rows` (whole baselines) of `predict_points_dev`: their samples in `out` get the
    /// sum added, or are left as they were on Err.
    fn predict_chunk(
        &self,
        b: &DftBlock,
        used: &[u8],
        rows: std::ops::Range<usize>,
        (d_freqs, d_lmn, d_amp): (&CudaSlice<f64>, &CudaSlice<f64>, &CudaSlice<f32>),
        npts: usize,
        out: &mut [Complex32],
    ) -> Result<(), GpuError> {
        let (s, nc, nt) = (&self.stream, b.freqs.len(), b.n_times.max(1));
        let (r0, r1) = (rows.start, rows.end);
        let uvw = b.uvw_m.as_flattened();
        let (d_uvw, d_dw, d_used) = (
            s.clone_htod(&uvw[3 * r0..3 * r1]).map_err(cuda)?,
            s.clone_htod(&b.dw_m[r0..r1]).map_err(cuda)?,
            s.clone_htod(&used[r0..r1]).map_err(cuda)?,
        );
        let host = as_f32(&mut out[r0 * nc..r1 * nc]);
        let mut d_out = s.clone_htod(&*host).map_err(cuda)?;
        let threads = (r1 - r0) * nc.div_ceil(DFT_CHANNELS);
        let block = super::kernels::block_threads("predict_points");
        let cfg = LaunchConfig {
            grid_dim: (threads.div_ceil(block as usize) as u32, 1, 1),
            block_dim: (block, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: one thread a run of DFT_CHANNELS channels of the chunk's rows; every table
        // as long as the kernel reads for these sizes.
        unsafe {
            launch::predict_points(
                s,
                &self.dft,
                cfg,
                &d_uvw,
                &d_dw,
                &d_used,
                (r1 - r0) as i32,
                nt as i32,
                d_freqs,
                nc as i32,
                b.dnu,
                d_lmn,
                npts as i32,
                d_amp,
                &mut d_out,
            )
        }
        .map_err(cuda)?;
        // Into a copy first: a failed download must not leave `out` half-written.
        let back = s.clone_dtoh(&d_out).map_err(cuda)?;
        host.copy_from_slice(&back);
        s.synchronize().map_err(cuda)
    }
}

#[cfg(test)]
mod tests {
    use crate::compute::device::tests::device;
    use crate::compute::dft::tests::{max_difference, LongBand};
    use crate::compute::dft_kernel_tests::starting_values;
    use crate::compute::Compute;
    use num_complex::Complex64;

    /// The launch's channels a thread are the kernel's.
    #[test]
    fn launch_and_kernel_agree_on_channels_a_thread() {
        let src = crate::compute::kernels::source("dft.cu").unwrap();
        assert!(src.contains(&format!("#define DFT_CHANNELS {}\n", super::DFT_CHANNELS)));
    }

    /// The device's direct sum on a full band (768 channels, 2.8 km baselines, components
    /// up to 2.5 deg out) against the formula in f64: added to the samples, the rows not in
    /// use left alone (as the host run of dft.cu, which holds it to 1e-7 of the peak).
    #[test]
    fn direct_sum_is_the_exact_formula() {
        let Some(g) = device() else { return };
        for nt in [5, 24] {
            let case = LongBand::new(nt);
            let nc = case.freqs.len();
            let start = starting_values(case.uvw_m.len() * nc);
            let mut got = start.clone();
            g.predict_points(&case.block(), &case.points, &case.amp, &mut got)
                .unwrap();
            for (r, &u) in case.use_row.iter().enumerate() {
                if !u {
                    assert_eq!(got[r * nc..(r + 1) * nc], start[r * nc..(r + 1) * nc]);
                }
            }
            let want: Vec<Complex64> = case
                .exact()
                .iter()
                .zip(&start)
                .map(|(w, s)| w + Complex64::new(s.re as f64, s.im as f64))
                .collect();
            let (err, scale) = max_difference(&got, &want);
            println!("dft.cu on the device, {nt} integrations: {err:.2e} of {scale:.2}");
            assert!(err <= 1e-7 * scale, "{err:e} of {scale}");
        }
    }
}
