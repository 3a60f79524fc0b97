//! The flagger on the device (feature `gpu`). A flagging pass over a batch of planes runs
//! from upload to flags without leaving the device: the masked backgrounds
//! (`background.cu`), each plane's robust noise and the residuals over it
//! (`residuals.cu`), SumThreshold's schedule on the residuals and their negatives
//! (`sumthreshold.cu`); only the residuals (the array pass sums them on the host), the
//! usable planes and the flags come back. SIR dilation (`sir.cu`) runs on batches of
//! flag planes. Batches are sized to the flagger's quarter of the rank's memory budget and
//! run on the flagger's own stream.

use super::device::{bool_bytes, cuda, Gpu};
use super::device_timing::Phases;
use super::flag_pass::{FlagPass, FlagPassOut};
use super::{launch, GpuError, NoGpu, Schedule, Smoothing};
use cudarc::driver::{CudaFunction, CudaSlice, LaunchConfig};
use rayon::prelude::*;

pub(super) struct FlagKernels {
    pub(super) sumthreshold: CudaFunction,
    smooth_prep: CudaFunction,
    smooth_pass: CudaFunction,
    smooth_narrow: CudaFunction,
    plane_noise: CudaFunction,
    normalise: CudaFunction,
    threshold_values: CudaFunction,
    or_flags: CudaFunction,
    sir_lines: CudaFunction,
}

impl FlagKernels {
    pub(super) fn load(
        load: &impl Fn(&'static str, &'static str) -> Result<CudaFunction, NoGpu>,
    ) -> Result<Self, NoGpu> {
        Ok(FlagKernels {
            sumthreshold: load("sumthreshold.cu", "sumthreshold_lines")?,
            smooth_prep: load("background.cu", "smooth_prep")?,
            smooth_pass: load("background.cu", "smooth_pass")?,
            smooth_narrow: load("background.cu", "smooth_narrow")?,
            plane_noise: load("residuals.cu", "plane_noise")?,
            normalise: load("residuals.cu", "normalise")?,
            threshold_values: load("residuals.cu", "threshold_values")?,
            or_flags: load("residuals.cu", "or_flags")?,
            sir_lines: load("sir.cu", "sir_lines")?,
        })
    }
}

/// Device bytes per sample of a background batch: the values, flags and result, and the
/// two passes' f64 values and weights.
const BACKGROUND_BYTES: usize = 40;
/// Device bytes per sample of a flagging pass at its peak (during the background): the
/// background's, the mask, the SumThreshold input and three flag planes.
pub(super) const PASS_BYTES: usize = 48;
/// Device bytes per sample of SumThreshold alone: the values and two flag planes.
const SUMTHRESHOLD_BYTES: usize = 6;
/// Device bytes per sample of SIR: the flags before, two dilations, one f64 of scratch.
pub(super) const SIR_BYTES: usize = 12;

/// Sigma per plane, used per plane, the residuals (noise_kernels).
#[cfg(test)]
type NoiseOut = (Vec<f64>, Vec<bool>, Vec<f32>);

impl Gpu {
    /// Planes per batch for `bytes` device bytes a sample: within the flagger's room,
    /// at least one, at most all, and few enough for the kernels' 32-bit counts.
    fn flag_batch(&self, bytes: usize, tf: usize, total: usize, line: usize) -> usize {
        self.flag_batch_in(self.flag_room(), bytes, tf, total, line)
    }

    /// `flag_batch` within `budget` bytes.
    pub(super) fn flag_batch_in(
        &self,
        budget: usize,
        bytes: usize,
        tf: usize,
        total: usize,
        line: usize,
    ) -> usize {
        (budget / (tf * bytes))
            .clamp(1, total.max(1))
            .min(i32::MAX as usize / tf.max(line).max(1))
            .max(1)
    }

    pub(super) fn taps(
        &self,
        sm: &Smoothing,
    ) -> Result<(CudaSlice<f64>, CudaSlice<f64>), GpuError> {
        let taps = |sigma: f64| crate::compute::flagging::gaussian_taps(sigma);
        let s = &self.flag_stream;
        Ok((
            s.clone_htod(&taps(sm.sigma_t)).map_err(cuda)?,
            s.clone_htod(&taps(sm.sigma_f)).map_err(cuda)?,
        ))
    }

    /// The masked background of `planes` consecutive nt x nf planes already on the device:
    /// prep, the pass along frequency, the pass along time (as the twin), narrowed to f32.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn background_dev(
        &self,
        d_val: &CudaSlice<f32>,
        d_mask: &CudaSlice<u8>,
        planes: usize,
        nt: usize,
        nf: usize,
        (d_kt, d_kf): (&CudaSlice<f64>, &CudaSlice<f64>),
        linear: bool,
    ) -> Result<CudaSlice<f32>, GpuError> {
        let s = &self.flag_stream;
        let tf = nt * nf;
        let n = planes * tf;
        let (mut v0, mut w0) = (
            s.alloc_zeros::<f64>(n).map_err(cuda)?,
            s.alloc_zeros::<f64>(n).map_err(cuda)?,
        );
        let (mut v1, mut w1) = (
            s.alloc_zeros::<f64>(n).map_err(cuda)?,
            s.alloc_zeros::<f64>(n).map_err(cuda)?,
        );
        let n64 = n as i64;
        // SAFETY: one thread a sample of the n the buffers hold.
        unsafe {
            launch::smooth_prep(
                s,
                &self.flag.smooth_prep,
                launch::for_elems(n)?,
                d_val,
                d_mask,
                n64,
                &mut v0,
                &mut w0,
            )
        }
        .map_err(cuda)?;
        let (lin, np, plane) = (i32::from(linear), planes as i32, tf as i64);
        // Along frequency (v0, w0) -> (v1, w1), then along time (v1, w1) -> (v0, w0).
        let pass = |src: (&CudaSlice<f64>, &CudaSlice<f64>),
                    dst: (&mut CudaSlice<f64>, &mut CudaSlice<f64>),
                    (lines, step, stride, len): (usize, usize, usize, usize),
                    kern: &CudaSlice<f64>|
         -> Result<(), GpuError> {
            let (li, st, sd, ln, h) = (
                lines as i32,
                step as i32,
                stride as i32,
                len as i32,
                (kern.len() / 2) as i32,
            );
            // SAFETY: one thread a sample; lines x len = tf per plane.
            unsafe {
                launch::smooth_pass(
                    s,
                    &self.flag.smooth_pass,
                    launch::for_elems(n)?,
                    src.0,
                    src.1,
                    li,
                    st,
                    sd,
                    ln,
                    kern,
                    h,
                    lin,
                    np,
                    plane,
                    dst.0,
                    dst.1,
                )
            }
            .map_err(cuda)
        };
        pass((&v0, &w0), (&mut v1, &mut w1), (nt, nf, 1, nf), d_kf)?;
        pass((&v1, &w1), (&mut v0, &mut w0), (nf, 1, nf, nt), d_kt)?;
        let mut narrow = unsafe { s.alloc::<f32>(n) }.map_err(cuda)?;
        // SAFETY: one thread a sample of the n both buffers hold.
        unsafe {
            launch::smooth_narrow(
                s,
                &self.flag.smooth_narrow,
                launch::for_elems(n)?,
                &v0,
                n64,
                &mut narrow,
            )
        }
        .map_err(cuda)?;
        Ok(narrow)
    }

    /// SumThreshold's schedule on `planes` planes on the device, from the flags `cur`: the
    /// flags after it.
    pub(super) fn sumthreshold_dev(
        &self,
        d_val: &CudaSlice<f32>,
        mut cur: CudaSlice<u8>,
        planes: usize,
        nt: usize,
        nf: usize,
        sched: &Schedule,
    ) -> Result<CudaSlice<u8>, GpuError> {
        let s = &self.flag_stream;
        let mut next = s.alloc_zeros::<u8>(cur.len()).map_err(cuda)?;
        let (np, plane) = (planes as i32, (nt * nf) as i64);
        for (m, thr) in sched.windows() {
            s.memcpy_dtod(&cur, &mut next).map_err(cuda)?;
            let mi = m as i32;
            // (lines, line step, stride, samples per line): along frequency, then time.
            for (on, lines, step, stride, n) in [
                (m <= sched.max_m_freq, nt, nf, 1, nf),
                (m <= sched.max_m_time, nf, 1, nf, nt),
            ] {
                if !on {
                    continue;
                }
                let (li, st, sd, ni) = (lines as i32, step as i32, stride as i32, n as i32);
                // SAFETY: one thread a line of each plane.
                unsafe {
                    launch::sumthreshold_lines(
                        s,
                        &self.flag.sumthreshold,
                        launch::for_elems(lines * planes)?,
                        d_val,
                        &cur,
                        &mut next,
                        li,
                        st,
                        sd,
                        ni,
                        mi,
                        thr,
                        np,
                        plane,
                    )
                }
                .map_err(cuda)?;
            }
            std::mem::swap(&mut cur, &mut next);
        }
        Ok(cur)
    }

    /// Each plane's noise and its residuals over it, in place on the device: (sigma, used).
    pub(super) fn residuals_dev(
        &self,
        d_val: &mut CudaSlice<f32>,
        d_bg: &CudaSlice<f32>,
        d_mask: &CudaSlice<u8>,
        planes: usize,
        tf: usize,
    ) -> Result<(CudaSlice<f64>, CudaSlice<u8>), GpuError> {
        let s = &self.flag_stream;
        let mut d_sigma = s.alloc_zeros::<f64>(planes).map_err(cuda)?;
        let mut d_used = s.alloc_zeros::<u8>(planes).map_err(cuda)?;
        let (plane, np, n) = (tf as i64, planes as i32, (planes * tf) as i64);
        let cfg = LaunchConfig {
            grid_dim: (planes as u32, 1, 1),
            block_dim: (super::flag_pass::NOISE_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: one block a plane of tf samples; sigma and used one a plane.
        unsafe {
            launch::plane_noise(
                s,
                &self.flag.plane_noise,
                cfg,
                &*d_val,
                d_bg,
                d_mask,
                plane,
                np,
                &mut d_sigma,
                &mut d_used,
            )
        }
        .map_err(cuda)?;
        // SAFETY: one thread a sample of the planes.
        unsafe {
            launch::normalise(
                s,
                &self.flag.normalise,
                launch::for_elems(planes * tf)?,
                d_val,
                d_bg,
                &d_sigma,
                &d_used,
                plane,
                n,
            )
        }
        .map_err(cuda)?;
        Ok((d_sigma, d_used))
    }

    /// SumThreshold's input from the residuals: `sign` x them, 0 on the cells.
    pub(super) fn threshold_values_dev(
        &self,
        d_res: &CudaSlice<f32>,
        d_cells: &CudaSlice<u8>,
        sign: f32,
        tf: usize,
        out: &mut CudaSlice<f32>,
    ) -> Result<(), GpuError> {
        let (plane, n) = (tf as i64, d_res.len() as i64);
        // SAFETY: one thread a residual; `out` as long, `d_cells` one a plane's sample.
        unsafe {
            launch::threshold_values(
                &self.flag_stream,
                &self.flag.threshold_values,
                launch::for_elems(d_res.len())?,
                d_res,
                d_cells,
                sign,
                plane,
                n,
                out,
            )
        }
        .map_err(cuda)
    }

    pub(super) fn or_flags_dev(
        &self,
        a: &mut CudaSlice<u8>,
        b: &CudaSlice<u8>,
    ) -> Result<(), GpuError> {
        let n = a.len() as i64;
        let len = a.len();
        // SAFETY: one thread a flag of the n both hold.
        unsafe {
            launch::or_flags(
                &self.flag_stream,
                &self.flag.or_flags,
                launch::for_elems(len)?,
                a,
                b,
                n,
            )
        }
        .map_err(cuda)
    }

    /// Compute::background_planes: batches of planes to the budget.
    pub(super) fn background_batches(
        &self,
        values: &[f32],
        flags: &[bool],
        nt: usize,
        nf: usize,
        sm: &Smoothing,
    ) -> Result<Vec<f32>, GpuError> {
        let tf = nt * nf;
        if tf == 0 || values.is_empty() {
            return Ok(Vec::new());
        }
        let per_batch = self.flag_batch(BACKGROUND_BYTES, tf, values.len() / tf, 1);
        let s = &self.flag_stream;
        let (d_kt, d_kf) = self.taps(sm)?;
        let mut out = vec![0f32; values.len()];
        for ((vals, fl), dst) in values
            .chunks(per_batch * tf)
            .zip(flags.chunks(per_batch * tf))
            .zip(out.chunks_mut(per_batch * tf))
        {
            let d_val = s.clone_htod(vals).map_err(cuda)?;
            let d_fl = s.clone_htod(bool_bytes(fl)).map_err(cuda)?;
            let bg = self.background_dev(
                &d_val,
                &d_fl,
                vals.len() / tf,
                nt,
                nf,
                (&d_kt, &d_kf),
                sm.linear,
            )?;
            s.memcpy_dtoh(&bg, dst).map_err(cuda)?;
        }
        s.synchronize().map_err(cuda)?;
        Ok(out)
    }

    /// Compute::sumthreshold_planes: batches of planes to the budget.
    pub(super) fn sumthreshold_batches(
        &self,
        values: &[f32],
        flags: &mut [bool],
        nt: usize,
        nf: usize,
        sched: &Schedule,
    ) -> Result<(), GpuError> {
        let tf = nt * nf;
        if tf == 0 || values.is_empty() {
            return Ok(());
        }
        let per_batch = self.flag_batch(SUMTHRESHOLD_BYTES, tf, values.len() / tf, nt.max(nf));
        let s = &self.flag_stream;
        for (vals, fl) in values
            .chunks(per_batch * tf)
            .zip(flags.chunks_mut(per_batch * tf))
        {
            let d_val = s.clone_htod(vals).map_err(cuda)?;
            let cur = s.clone_htod(bool_bytes(fl)).map_err(cuda)?;
            let out = self.sumthreshold_dev(&d_val, cur, vals.len() / tf, nt, nf, sched)?;
            let back = s.clone_dtoh(&out).map_err(cuda)?;
            fl.par_iter_mut()
                .zip(back.par_iter())
                .for_each(|(f, &x)| *f = x != 0);
        }
        Ok(())
    }

    /// Compute::flag_pass on the device: per batch, the amplitudes, mask and flags go up
    /// once; the residuals, the usable planes and the flags come back.
    pub(super) fn flag_pass_dev(
        &self,
        job: &FlagPass,
        values: &mut [f32],
        flags: &[bool],
    ) -> Result<FlagPassOut, GpuError> {
        let (nt, nf) = (job.nt, job.nf);
        let tf = nt * nf;
        if tf == 0 || values.is_empty() {
            return Ok(FlagPassOut {
                used: Vec::new(),
                found: job.sumthreshold.map(|_| flags.to_vec()),
            });
        }
        let total = values.len() / tf;
        let per_batch = self.flag_batch(PASS_BYTES, tf, total, nt.max(nf));
        let s = &self.flag_stream;
        let mut t = Phases::start(s, "flag_pass");
        let (d_kt, d_kf) = self.taps(&job.smoothing)?;
        let cells: Vec<u8> = if job.cells.is_empty() {
            vec![0; tf]
        } else {
            bool_bytes(job.cells).to_vec()
        };
        let d_cells = s.clone_htod(&cells).map_err(cuda)?;
        let mut used = vec![false; total];
        let mut found = job.sumthreshold.map(|_| vec![false; values.len()]);
        let chunk = per_batch * tf;
        for (k, (vals, (mask, fl))) in values
            .chunks_mut(chunk)
            .zip(job.mask.chunks(chunk).zip(flags.chunks(chunk)))
            .enumerate()
        {
            let (planes, n) = (vals.len() / tf, vals.len());
            let mut d_val = s.clone_htod(vals).map_err(cuda)?;
            let d_mask = s.clone_htod(bool_bytes(mask)).map_err(cuda)?;
            t.mark("upload");
            let bg = self.background_dev(
                &d_val,
                &d_mask,
                planes,
                nt,
                nf,
                (&d_kt, &d_kf),
                job.smoothing.linear,
            )?;
            t.mark("background");
            let (_sigma, d_used) = self.residuals_dev(&mut d_val, &bg, &d_mask, planes, tf)?;
            drop((bg, d_mask));
            t.mark("noise+residuals");
            s.memcpy_dtoh(&d_val, vals).map_err(cuda)?;
            let u = s.clone_dtoh(&d_used).map_err(cuda)?;
            used[k * per_batch..k * per_batch + planes]
                .iter_mut()
                .zip(&u)
                .for_each(|(o, &x)| *o = x != 0);
            t.mark("download");
            let (Some((sched, two_sided)), Some(found)) = (&job.sumthreshold, found.as_mut())
            else {
                continue;
            };
            let mut d_st = unsafe { s.alloc::<f32>(n) }.map_err(cuda)?;
            self.threshold_values_dev(&d_val, &d_cells, 1.0, tf, &mut d_st)?;
            let start = s.clone_htod(bool_bytes(fl)).map_err(cuda)?;
            let mut cur = self.sumthreshold_dev(&d_st, start, planes, nt, nf, sched)?;
            if *two_sided {
                self.threshold_values_dev(&d_val, &d_cells, -1.0, tf, &mut d_st)?;
                let start = s.clone_htod(bool_bytes(fl)).map_err(cuda)?;
                let neg = self.sumthreshold_dev(&d_st, start, planes, nt, nf, sched)?;
                self.or_flags_dev(&mut cur, &neg)?;
            }
            t.mark("sumthreshold");
            let back = s.clone_dtoh(&cur).map_err(cuda)?;
            found[k * chunk..k * chunk + n]
                .par_iter_mut()
                .zip(back.par_iter())
                .for_each(|(f, &x)| *f = x != 0);
            t.mark("download");
        }
        s.synchronize().map_err(cuda)?;
        t.finish();
        Ok(FlagPassOut { used, found })
    }

    /// Compute::sir_planes: the dilations along frequency and along time from the same
    /// flags, or'ed, in batches of planes to the budget.
    pub(super) fn sir_dev(
        &self,
        flags: &mut [bool],
        nt: usize,
        nf: usize,
        eta: f64,
        extend: bool,
    ) -> Result<(), GpuError> {
        let tf = nt * nf;
        if tf == 0 || flags.is_empty() || eta <= 0.0 {
            return Ok(());
        }
        let per_batch = self.flag_batch(SIR_BYTES, tf, flags.len() / tf, nt.max(nf));
        let s = &self.flag_stream;
        for fl in flags.chunks_mut(per_batch * tf) {
            let before = s.clone_htod(bool_bytes(fl)).map_err(cuda)?;
            let a = self.sir_batch_dev(&before, fl.len() / tf, nt, nf, eta, extend)?;
            let back = s.clone_dtoh(&a).map_err(cuda)?;
            fl.par_iter_mut()
                .zip(back.par_iter())
                .for_each(|(f, &x)| *f = x != 0);
        }
        Ok(())
    }

    /// SIR of `planes` nt x nf flag planes on the device: the dilations along frequency and
    /// along time of `before`, or'ed.
    pub(super) fn sir_batch_dev(
        &self,
        before: &CudaSlice<u8>,
        planes: usize,
        nt: usize,
        nf: usize,
        eta: f64,
        extend: bool,
    ) -> Result<CudaSlice<u8>, GpuError> {
        let s = &self.flag_stream;
        let (tf, n) = (nt * nf, before.len());
        let (mut a, mut b) = (
            s.alloc_zeros::<u8>(n).map_err(cuda)?,
            s.alloc_zeros::<u8>(n).map_err(cuda)?,
        );
        let mut scratch = unsafe { s.alloc::<f64>(n) }.map_err(cuda)?;
        let (ext, np, plane) = (i32::from(extend), planes as i32, tf as i64);
        // (lines, line step, stride, samples per line): along frequency, then time.
        for ((lines, step, stride, len), out) in
            [((nt, nf, 1, nf), &mut a), ((nf, 1, nf, nt), &mut b)]
        {
            let (li, st, sd, ln) = (lines as i32, step as i32, stride as i32, len as i32);
            // SAFETY: one thread a line of each plane; scratch one f64 a flag.
            unsafe {
                launch::sir_lines(
                    s,
                    &self.flag.sir_lines,
                    launch::for_elems(lines * planes)?,
                    before,
                    out,
                    &mut scratch,
                    li,
                    st,
                    sd,
                    ln,
                    eta,
                    ext,
                    np,
                    plane,
                )
            }
            .map_err(cuda)?;
        }
        self.or_flags_dev(&mut a, &b)?;
        Ok(a)
    }

    /// residuals.cu's noise and residuals on one batch, for the vector tests.
    #[cfg(test)]
    pub(super) fn noise_kernels(
        &self,
        values: &[f32],
        bg: &[f32],
        mask: &[bool],
        tf: usize,
    ) -> Result<NoiseOut, GpuError> {
        let s = &self.flag_stream;
        let mut d_val = s.clone_htod(values).map_err(cuda)?;
        let d_bg = s.clone_htod(bg).map_err(cuda)?;
        let d_mask = s.clone_htod(bool_bytes(mask)).map_err(cuda)?;
        let planes = values.len() / tf;
        let (sigma, used) = self.residuals_dev(&mut d_val, &d_bg, &d_mask, planes, tf)?;
        Ok((
            s.clone_dtoh(&sigma).map_err(cuda)?,
            s.clone_dtoh(&used)
                .map_err(cuda)?
                .into_iter()
                .map(|x| x != 0)
                .collect(),
            s.clone_dtoh(&d_val).map_err(cuda)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::compute::device::tests::device;
    use crate::compute::flag_pass::FlagPass;
    use crate::compute::{vectors, Compute, Cpu};

    #[test]
    fn noise_kernels_match_the_vectors() {
        let Some(g) = device() else { return };
        let v = vectors::noise();
        let (sigma, used, res) = g.noise_kernels(&v.values, &v.bg, &v.mask, v.tf).unwrap();
        let want: Vec<u64> = v
            .expected_sigma
            .iter()
            .map(|s| s.unwrap_or(0.0).to_bits())
            .collect();
        assert_eq!(sigma.iter().map(|s| s.to_bits()).collect::<Vec<_>>(), want);
        assert_eq!(used, v.expected_used);
        let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&res), bits(&v.expected));
    }

    #[test]
    fn sir_kernel_matches_the_definition() {
        let Some(g) = device() else { return };
        let v = vectors::sir();
        for (eta, extend, want) in &v.expected {
            let mut got = v.flags.clone();
            g.sir_planes(&mut got, v.nt, v.nf, *eta, *extend).unwrap();
            assert_eq!(&got, want, "eta {eta}, extend {extend}");
        }
    }

    /// The device's pass against the CPU's on planes with injected lines, cells and flags:
    /// the backgrounds may differ by fused multiply-adds (1e-6), so the residuals agree to
    /// 1e-4 and at most 0.1 % of the flags differ.
    #[test]
    fn flag_pass_matches_the_cpu() {
        let Some(g) = device() else { return };
        let v = vectors::flag_pass(40, 0.05);
        let job = FlagPass {
            nt: v.nt,
            nf: v.nf,
            smoothing: v.smoothing,
            mask: &v.mask,
            cells: &v.cells,
            sumthreshold: Some((v.schedule, true)),
        };
        let (mut dev, mut cpu) = (v.amp.clone(), v.amp.clone());
        let d = g.flag_pass(&job, &mut dev, &v.flags).unwrap();
        let c = Cpu.flag_pass(&job, &mut cpu, &v.flags).unwrap();
        assert_eq!(d.used, c.used);
        let err = dev
            .iter()
            .zip(&cpu)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-4, "residuals differ by {err}");
        let (df, cf) = (d.found.unwrap(), c.found.unwrap());
        let differ = df.iter().zip(&cf).filter(|(a, b)| a != b).count();
        assert!(
            differ * 1000 <= df.len(),
            "{differ} of {} flags differ",
            df.len()
        );
        assert!(cf.iter().filter(|&&f| f).count() > v.flags.iter().filter(|&&f| f).count());
    }
}
