//! The direct prediction of point components on the device (feature `gpu`):
//! `kernels/dft.cu`, one thread a row and run of channels summing every component in f64.
//! The components and their amplitude table go up once a call; the rows go up in chunks of
//! whole baselines sized to the rank's budget, and each chunk's sums come back to be added
//! to the caller's samples, or are subtracted from a group held on the device.

use super::device::{as_f32, cuda, Gpu};
use super::dft::{DftBlock, Point};
use super::{launch, Compute, GpuError};
use cudarc::driver::CudaSlice;
use num_complex::Complex32;

/// Device bytes a row takes beside its samples: (u, v, w), dw, its use flag.
const ROW_BYTES: usize = 33;
/// Channels a thread of dft.cu sums (its DFT_CHANNELS).
const DFT_CHANNELS: usize = 8;
/// Samples a chunk at most (64 MB of them; each comes back through a host copy of that
/// size, so that a failed download leaves the caller's samples as they were).
const CHUNK_SAMPLES: usize = 8 << 20;

/// Where a chunk of direct sums goes: (its rows, its sums on the device).
type ChunkSink<'a> =
    dyn FnMut(std::ops::Range<usize>, &CudaSlice<f32>) -> Result<(), GpuError> + 'a;

impl Gpu {
    /// Compute::predict_points on the device.
    pub(super) fn predict_points_dev(
        &self,
        b: &DftBlock,
        points: &[Point],
        amp: &[f32],
        out: &mut [Complex32],
    ) -> Result<(), GpuError> {
        let nc = b.freqs.len();
        assert_eq!(out.len(), b.uvw_m.len() * nc, "output size");
        let mut sink = |rows: std::ops::Range<usize>, d_out: &CudaSlice<f32>| {
            // Into a copy first: a failed download must not leave `out` half-written.
            let back = self.stream.clone_dtoh(d_out).map_err(cuda)?;
            self.stream.synchronize().map_err(cuda)?;
            let host = as_f32(&mut out[rows.start * nc..rows.end * nc]);
            host.iter_mut().zip(&back).for_each(|(o, x)| *o += x);
            Ok(())
        };
        let Err((r0, e)) = self.predict_rows(b, points, amp, &mut sink) else {
            return Ok(());
        };
        // `out` holds the sums of the chunks before: the rest on the CPU.
        let nrow = b.uvw_m.len();
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
        Ok(())
    }

    /// Compute::predict_points_subtract on the device: each chunk's sums subtracted from
    /// the held group's visibilities as they come (device_held).
    pub(super) fn predict_points_subtract_dev(
        &self,
        r: &dyn super::Resident,
        b: &DftBlock,
        points: &[Point],
        amp: &[f32],
    ) -> Result<(), GpuError> {
        let mut sink = |rows: std::ops::Range<usize>, d_out: &CudaSlice<f32>| {
            self.subtract_predicted_rows(r, rows, d_out)
        };
        self.predict_rows(b, points, amp, &mut sink)
            .map_err(|(_, e)| e)?;
        self.stream.synchronize().map_err(cuda)
    }

    /// The direct sums of the block's rows in chunks of whole baselines sized to the
    /// budget, each chunk's (its rows x channels, f32 pairs, zero where nothing was
    /// summed) handed to `sink`; Err with the first row not done.
    fn predict_rows(
        &self,
        b: &DftBlock,
        points: &[Point],
        amp: &[f32],
        sink: &mut ChunkSink,
    ) -> Result<(), (usize, GpuError)> {
        let (nt, nc, nrow) = (b.n_times.max(1), b.freqs.len(), b.uvw_m.len());
        assert_eq!(amp.len(), points.len() * nc * nt, "amplitude table size");
        if points.is_empty() || nc == 0 || nrow == 0 {
            return Ok(());
        }
        let lmn: Vec<f64> = points.iter().flat_map(|p| [p.l, p.m, p.nm1()]).collect();
        let fixed = 4 * amp.len() + 8 * (lmn.len() + nc);
        let per_row = 8 * nc + ROW_BYTES;
        let budget = self.work_budget();
        if fixed + nt * per_row > budget {
            return Err((
                0,
                GpuError::Cuda(format!(
                    "{} components' amplitudes ({} MB) do not fit this rank's GPU-memory budget",
                    points.len(),
                    (4 * amp.len()) >> 20
                )),
            ));
        }
        // Whole baselines a chunk (row r is integration r % nt).
        let rows_per_chunk = ((budget - fixed) / per_row).min(CHUNK_SAMPLES / nc) / nt * nt;
        let s = &self.stream;
        let up = |x: &[f64]| s.clone_htod(x).map_err(|e| (0, cuda(e)));
        let (d_freqs, d_lmn) = (up(b.freqs)?, up(&lmn)?);
        let d_amp = s.clone_htod(amp).map_err(|e| (0, cuda(e)))?;
        let used: Vec<u8> = (0..nrow)
            .map(|r| u8::from(b.use_row.get(r) == Some(&true)))
            .collect();
        let tables = (&d_freqs, &d_lmn, &d_amp);
        let step = rows_per_chunk.max(nt);
        for r0 in (0..nrow).step_by(step) {
            let r1 = (r0 + step).min(nrow);
            self.predict_chunk(b, &used, r0..r1, tables, points.len())
                .and_then(|d_out| sink(r0..r1, &d_out))
                .map_err(|e| (r0, e))?;
        }
        Ok(())
    }

    /// The direct sums of rows `rows` (whole baselines) of `predict_rows`, on the device.
    fn predict_chunk(
        &self,
        b: &DftBlock,
        used: &[u8],
        rows: std::ops::Range<usize>,
        (d_freqs, d_lmn, d_amp): (&CudaSlice<f64>, &CudaSlice<f64>, &CudaSlice<f32>),
        npts: usize,
    ) -> Result<CudaSlice<f32>, GpuError> {
        let (s, nc, nt) = (&self.stream, b.freqs.len(), b.n_times.max(1));
        let (r0, r1) = (rows.start, rows.end);
        let uvw = b.uvw_m.as_flattened();
        let (d_uvw, d_dw, d_used) = (
            s.clone_htod(&uvw[3 * r0..3 * r1]).map_err(cuda)?,
            s.clone_htod(&b.dw_m[r0..r1]).map_err(cuda)?,
            s.clone_htod(&used[r0..r1]).map_err(cuda)?,
        );
        let mut d_out = s.alloc_zeros::<f32>(2 * (r1 - r0) * nc).map_err(cuda)?;
        let threads = (r1 - r0) * nc.div_ceil(DFT_CHANNELS);
        let cfg = launch::for_elems_of("predict_points", threads)?;
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
        Ok(d_out)
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
