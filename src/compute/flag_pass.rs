//! One flagging pass over a batch of planes as a single backend call: the masked
//! backgrounds, each plane's robust noise, the residuals over that noise and (optionally)
//! SumThreshold on them, of either sign — so that a device keeps the batch from upload to
//! flags. Also SIR dilation over batches of planes. The functions here are the CPU twins of
//! `kernels/residuals.cu` and `kernels/sir.cu`, and [`compose`] is every backend's default.

use super::{Compute, GpuError, Schedule, Smoothing};
use rayon::prelude::*;

/// Threads of a block of residuals.cu's plane_noise (one block a plane).
pub const NOISE_THREADS: u32 = 256;

/// A batch of consecutive nt x nf planes to flag.
pub struct FlagPass<'a> {
    pub nt: usize,
    pub nf: usize,
    pub smoothing: Smoothing,
    /// The samples left out of the backgrounds and the noise (flags, the array's cells),
    /// one per sample.
    pub mask: &'a [bool],
    /// The array's provisional cells (nt x nf; empty for none): SumThreshold reads zeros
    /// there, as if the sample sat on its background.
    pub cells: &'a [bool],
    /// SumThreshold's schedule, and whether it also runs on the negated residuals from the
    /// same starting flags; None: residuals only.
    pub sumthreshold: Option<(Schedule, bool)>,
}

/// What a pass gives back besides the residuals.
pub struct FlagPassOut {
    /// Per plane: whether its noise was usable (some unmasked finite residual, sigma > 0);
    /// the residuals of an unusable plane are 0.
    pub used: Vec<bool>,
    /// The flags after SumThreshold (the starting flags or'ed with what it found) when the
    /// pass ran it.
    pub found: Option<Vec<bool>>,
}

/// The robust noise of one plane's residuals `values - bg` (f32) over its unmasked finite
/// samples: 1.4826 x their median absolute deviation, None when no sample enters. `scratch`
/// is reused between calls. Twin of residuals.cu's plane_noise.
pub fn plane_noise(
    values: &[f32],
    bg: &[f32],
    mask: &[bool],
    scratch: &mut Vec<f64>,
) -> Option<f64> {
    scratch.clear();
    scratch.extend(
        (0..values.len())
            .filter(|&i| !mask[i])
            .map(|i| (values[i] - bg[i]) as f64)
            .filter(|x| x.is_finite()),
    );
    crate::primitives::stats::median_and_mad_sigma_mut(scratch).map(|(_, sigma)| sigma)
}

/// Each plane's residuals over its noise, in place (`values` in, residuals out; 0 on planes
/// whose noise is unusable); returns which planes were usable. Twin of residuals.cu's
/// plane_noise and normalise.
pub fn normalise_planes(values: &mut [f32], bg: &[f32], mask: &[bool], tf: usize) -> Vec<bool> {
    let tf = tf.max(1);
    values
        .par_chunks_mut(tf)
        .zip(mask.par_chunks(tf))
        .zip(bg.par_chunks(tf))
        .map_init(Vec::new, |scratch, ((a, f), bg)| {
            match plane_noise(a, bg, f, scratch) {
                Some(sigma) if sigma > 0.0 => {
                    a.iter_mut()
                        .zip(bg)
                        .for_each(|(a, &b)| *a = ((*a - b) as f64 / sigma) as f32);
                    true
                }
                _ => {
                    a.iter_mut().for_each(|a| *a = 0.0);
                    false
                }
            }
        })
        .collect()
}

/// SumThreshold's input: `sign` x the residuals, 0 on `cells` (one plane's worth, or
/// empty). Twin of residuals.cu's threshold_values.
pub fn threshold_values(res: &[f32], cells: &[bool], sign: f32, tf: usize) -> Vec<f32> {
    let tf = tf.max(1);
    let mut out = vec![0f32; res.len()];
    out.par_chunks_mut(tf)
        .zip(res.par_chunks(tf))
        .for_each(|(o, r)| {
            for (i, (o, &r)) in o.iter_mut().zip(r).enumerate() {
                *o = if cells.get(i).copied().unwrap_or(false) {
                    0.0
                } else {
                    sign * r
                };
            }
        });
    out
}

/// The pass composed of the backend's backgrounds and SumThreshold with the CPU twins
/// between them: every backend's default, and the CPU's pass.
pub fn compose<C: Compute + ?Sized>(
    c: &C,
    job: &FlagPass,
    values: &mut [f32],
    flags: &[bool],
) -> Result<FlagPassOut, GpuError> {
    let tf = job.nt * job.nf;
    let bg = c.background_planes(values, job.mask, job.nt, job.nf, &job.smoothing)?;
    let used = normalise_planes(values, &bg, job.mask, tf);
    drop(bg);
    let found = match &job.sumthreshold {
        None => None,
        Some((schedule, two_sided)) => {
            let mut found = flags.to_vec();
            if job.cells.is_empty() {
                c.sumthreshold_planes(values, &mut found, job.nt, job.nf, schedule)?;
            } else {
                let pos = threshold_values(values, job.cells, 1.0, tf);
                c.sumthreshold_planes(&pos, &mut found, job.nt, job.nf, schedule)?;
            }
            if *two_sided {
                let mut neg_found = flags.to_vec();
                let neg = threshold_values(values, job.cells, -1.0, tf);
                c.sumthreshold_planes(&neg, &mut neg_found, job.nt, job.nf, schedule)?;
                found
                    .par_iter_mut()
                    .zip(neg_found.par_iter())
                    .for_each(|(f, &n)| *f |= n);
            }
            Some(found)
        }
    };
    Ok(FlagPassOut { used, found })
}

/// The baselines' excess power per (time, channel) for the flagger's array pass
/// (flag::array): sums of (min(r^2, clip^2) - 1) and the number of samples behind each.
/// `add` is the CPU twin of planes.cu's excess_partial and excess_reduce.
pub struct ExcessPower {
    pub sum: Vec<f64>,
    pub count: Vec<u32>,
}

impl ExcessPower {
    pub fn new(cells: usize) -> Self {
        ExcessPower {
            sum: vec![0.0; cells],
            count: vec![0; cells],
        }
    }

    /// Adds one plane of normalised residuals; samples where `flagged` are left out.
    pub fn add(&mut self, residuals: &[f32], flagged: &[bool], clip: f32) {
        let clip2 = f64::from(clip).powi(2);
        for (i, (&r, &f)) in residuals.iter().zip(flagged).enumerate() {
            if !f && r.is_finite() {
                self.sum[i] += (f64::from(r) * f64::from(r)).min(clip2) - 1.0;
                self.count[i] += 1;
            }
        }
    }

    /// Merges another partial sum (of other baselines).
    pub fn merge(mut self, other: ExcessPower) -> Self {
        self.sum
            .iter_mut()
            .zip(&other.sum)
            .for_each(|(a, b)| *a += b);
        self.count
            .iter_mut()
            .zip(&other.count)
            .for_each(|(a, b)| *a += b);
        self
    }
}

/// SIR dilation of consecutive nt x nf flag planes on the CPU (see
/// flagging::sir_plane_with): the default of every backend.
pub fn sir_planes_cpu(flags: &mut [bool], nt: usize, nf: usize, eta: f64, extend: bool) {
    flags
        .par_chunks_mut((nt * nf).max(1))
        .for_each(|f| super::flagging::sir_plane_with(f, nt, nf, eta, extend));
}

#[cfg(test)]
#[path = "flag_pass_tests.rs"]
mod tests;
