//! Clark minor cycles (Clark 1980): most iterations run on a short list of the brightest
//! residual pixels; between rounds the round's components are subtracted from the whole
//! residual with the full PSF, by FFT convolution (or directly, when a round has few
//! components).
//!
//! A round lists the pixels above `sidelobe x peak`, `sidelobe` being the largest |PSF|
//! outside the patch, and iterates down to that level. Unlike Clark's original, listed
//! pixels are updated with the whole PSF, not the patch (the cost per iteration is the list
//! length either way), so only pixels left off the list are approximate until the round's
//! exact subtraction. The list is capped at `MAX_ACTIVE` pixels (the threshold rises to keep
//! the brightest).

use rayon::prelude::*;

use crate::compute::convolve::{convolve_cpu, PsfHat};
use crate::compute::held_images::HeldImages;
use crate::compute::minor::MinorJob;
use crate::compute::{Compute, GpuError};

/// Largest number of pixels a round iterates on.
const MAX_ACTIVE: usize = 200_000;

/// The PSF's transform on the 2n convolution grid (compute::convolve::PsfHat, single
/// precision: 8 bytes a cell, 128 MiB for a 2048^2 image, held through the whole CLEAN;
/// ~1e-7 of the peak, far below what a minor cycle resolves) and its sidelobe level outside
/// the patch (computed once per image). The PSF is 2n x 2n, peak at (n, n): every offset
/// between two pixels of the n x n image lies on it, so the circular convolution on the 2n
/// grid is the exact linear one over the image.
pub struct ClarkPsf {
    hat: PsfHat,
    sidelobe: f64,
}

impl ClarkPsf {
    /// The transform is made on `compute` (a device keeps it for the round convolutions).
    pub fn new(psf: &[f64], n: usize, half_patch: usize, compute: &dyn Compute) -> Self {
        let m = 2 * n;
        assert_eq!(psf.len(), m * m, "the PSF is 2n x 2n");
        let c = n as i64;
        let h = half_patch as i64;
        let sidelobe = psf
            .par_iter()
            .enumerate()
            .filter(|(i, _)| ((*i % m) as i64 - c).abs() > h || ((*i / m) as i64 - c).abs() > h)
            .map(|(_, v)| v.abs())
            .reduce(|| 0.0, f64::max)
            .min(0.95);
        let hat = crate::compute::or_cpu(compute, "the PSF's transform", |c, _| c.psf_hat(psf, m));
        ClarkPsf { hat, sidelobe }
    }
}

/// Whether a round's subtraction is cheaper by FFT than directly.
fn fft_pays(n_comps: usize, n: usize, m: usize) -> bool {
    n_comps as f64 * (n * n) as f64 > 10.0 * (m * m) as f64 * (m as f64).log2()
}

/// residual -= components (x) psf, the linear convolution with the 2n x 2n PSF, by the
/// route asked for.
pub(crate) fn subtract_convolved_with(
    residual: &mut [f64],
    comps: &[(usize, f64)],
    psf: &[f64],
    n: usize,
    cp: &ClarkPsf,
    by_fft: bool,
) {
    if by_fft {
        let conv = convolve_cpu(&[comps.to_vec()], &[&cp.hat], n);
        subtract(residual, &conv[0]);
        return;
    }
    let (c, m) = (n as i64, 2 * n);
    residual.par_chunks_mut(n).enumerate().for_each(|(y, row)| {
        for &(i, f) in comps {
            let (px, py) = ((i % n) as i64, (i / n) as i64);
            // Offsets within the image always lie on the 2n PSF: row sy, columns from
            // n - px on.
            let sy = (y as i64 - py + c) as usize;
            let s0 = (c - px) as usize;
            let prow = &psf[sy * m + s0..sy * m + s0 + n];
            for (r, p) in row.iter_mut().zip(prow) {
                *r -= f * p;
            }
        }
    });
}

/// residual -= image.
fn subtract(residual: &mut [f64], image: &[f64]) {
    residual
        .par_iter_mut()
        .zip(image)
        .for_each(|(r, c)| *r -= c);
}

/// Subtracts a round's components of every term from every residual term:
/// residual_t' -= sum_t comps_t (x) PSF_{t + t'}. By FFT (compute::convolve, on `compute`),
/// each term's components are transformed once and each residual term needs one inverse
/// transform; on the CPU directly where a round has few components, on a device always
/// (a few milliseconds there against n^2 operations a component on the host).
fn subtract_round(
    residuals: &mut [Vec<f64>],
    comps: &[Vec<(usize, f64)>],
    psfs: &[Vec<f64>],
    n: usize,
    cps: &[ClarkPsf],
    compute: &dyn Compute,
) {
    let n_comps: usize = comps.iter().map(Vec::len).sum();
    subtract_round_with(
        residuals,
        comps,
        psfs,
        n,
        cps,
        (compute.is_device() || fft_pays(n_comps * residuals.len(), n, 2 * n)).then_some(compute),
    );
}

/// `subtract_round` by the route asked for: by FFT on the backend given, else directly.
fn subtract_round_with(
    residuals: &mut [Vec<f64>],
    comps: &[Vec<(usize, f64)>],
    psfs: &[Vec<f64>],
    n: usize,
    cps: &[ClarkPsf],
    by_fft: Option<&dyn Compute>,
) {
    let Some(compute) = by_fft else {
        for (t, cs) in comps.iter().enumerate() {
            for (tp, res) in residuals.iter_mut().enumerate() {
                subtract_convolved_with(res, cs, &psfs[t + tp], n, &cps[t + tp], false);
            }
        }
        return;
    };
    let hats: Vec<&PsfHat> = cps.iter().map(|c| &c.hat).collect();
    let conv = crate::compute::or_cpu(compute, "CLEAN's round subtraction", |c, _| {
        c.convolve_components(comps, &hats, n)
    });
    for (res, cv) in residuals.iter_mut().zip(&conv) {
        subtract(res, cv);
    }
}

/// The residual images a minor cycle works on: the host's, or a backend's copy of them
/// (`Compute::hold_images`: on a device each round's peak, pixel list and subtraction run
/// there) with the components subtracted from it so far. While a copy is held the host's
/// images stay as they were when it was made; if the backend fails, they get every
/// component subtracted since (one convolution of their sum) and the cycle goes on on the
/// host. At the end the copy comes back into them.
struct Images<'a> {
    held: Option<Box<dyn HeldImages + 'a>>,
    since: Vec<Vec<(usize, f64)>>,
    psfs: &'a [Vec<f64>],
    n: usize,
    cps: &'a [ClarkPsf],
    compute: &'a dyn Compute,
}

impl<'a> Images<'a> {
    fn new(
        residuals: &[Vec<f64>],
        (psfs, n, cps): (&'a [Vec<f64>], usize, &'a [ClarkPsf]),
        compute: &'a dyn Compute,
    ) -> Self {
        Images {
            held: None,
            since: vec![Vec::new(); residuals.len()],
            psfs,
            n,
            cps,
            compute,
        }
    }

    /// Holds the images on a device (from a minor cycle's second round on: a cycle of one
    /// round moves one convolved image a term either way, and from the third round on
    /// the held copy moves less).
    fn hold(&mut self, residuals: &[Vec<f64>], eligible: &(dyn Fn(usize) -> bool + Sync)) {
        if !self.compute.is_device() || self.held.is_some() {
            return;
        }
        let n = self.n;
        let mask: Vec<bool> = (0..n * n).into_par_iter().map(eligible).collect();
        self.held = self
            .compute
            .hold_images(residuals, &mask, n)
            .unwrap_or_else(|e| {
                log::warn!(
                    "clark: residual images not held on {} ({e})",
                    self.compute.name()
                );
                None
            });
    }

    /// Drops the held copy after its backend failed: the host's images get the components
    /// subtracted from the copy so far.
    fn give_up(&mut self, residuals: &mut [Vec<f64>], e: &GpuError) {
        log::warn!(
            "clark: held residual images lost on {} ({e}); the minor cycle goes on on the host",
            self.compute.name()
        );
        self.held = None;
        let mut since = std::mem::take(&mut self.since);
        for cs in since.iter_mut() {
            merge(cs);
        }
        if since.iter().any(|c| !c.is_empty()) {
            subtract_round(residuals, &since, self.psfs, self.n, self.cps, self.compute);
        }
        self.since = vec![Vec::new(); residuals.len()];
    }

    /// The largest eligible |term 0|.
    fn peak(
        &mut self,
        residuals: &mut [Vec<f64>],
        eligible: &(dyn Fn(usize) -> bool + Sync),
    ) -> f64 {
        if let Some(h) = self.held.as_mut() {
            match h.peak() {
                Ok(p) => return p,
                Err(e) => self.give_up(residuals, &e),
            }
        }
        residuals[0]
            .par_iter()
            .enumerate()
            .filter(|(i, _)| eligible(*i))
            .map(|(_, v)| v.abs())
            .reduce(|| 0.0, f64::max)
    }

    /// The eligible pixels with |term 0| above `limit`, in index order, with their values.
    fn above(
        &mut self,
        residuals: &mut [Vec<f64>],
        limit: f64,
        eligible: &(dyn Fn(usize) -> bool + Sync),
    ) -> Vec<(u32, f64)> {
        if let Some(h) = self.held.as_mut() {
            match h.above(limit) {
                Ok(a) => return a,
                Err(e) => self.give_up(residuals, &e),
            }
        }
        residuals[0]
            .par_iter()
            .enumerate()
            .filter(|(i, v)| v.abs() > limit && eligible(*i))
            .map(|(i, &v)| (i as u32, v))
            .collect()
    }

    /// Every term's values at the listed pixels (term 0's from the list itself).
    fn values(&mut self, residuals: &mut [Vec<f64>], active: &[(u32, f64)]) -> Vec<Vec<f64>> {
        if let Some(h) = self.held.as_mut() {
            let idx: Vec<u32> = active.iter().map(|a| a.0).collect();
            let mut vals = vec![active.iter().map(|a| a.1).collect::<Vec<f64>>()];
            let rest: Result<Vec<Vec<f64>>, GpuError> =
                (1..residuals.len()).map(|t| h.values(t, &idx)).collect();
            match rest {
                Ok(r) => {
                    vals.extend(r);
                    return vals;
                }
                Err(e) => self.give_up(residuals, &e),
            }
        }
        (0..residuals.len())
            .map(|t| {
                active
                    .iter()
                    .map(|&(i, _)| residuals[t][i as usize])
                    .collect()
            })
            .collect()
    }

    /// Subtracts a round's components (merged per pixel) from every term.
    fn subtract(&mut self, residuals: &mut [Vec<f64>], comps: &[Vec<(usize, f64)>]) {
        if let Some(h) = self.held.as_mut() {
            let hats: Vec<&PsfHat> = self.cps.iter().map(|c| &c.hat).collect();
            match h.subtract(comps, &hats) {
                Ok(()) => {
                    for (s, c) in self.since.iter_mut().zip(comps) {
                        s.extend_from_slice(c);
                    }
                    return;
                }
                Err(e) => self.give_up(residuals, &e),
            }
        }
        subtract_round(residuals, comps, self.psfs, self.n, self.cps, self.compute);
    }

    /// The held copy back into the host's images.
    fn finish(mut self, residuals: &mut [Vec<f64>]) {
        if let Some(mut h) = self.held.take() {
            if let Err(e) = h.fetch(residuals) {
                self.held = Some(h);
                self.give_up(residuals, &e);
            }
        }
    }
}

/// Components sorted by pixel, those of one pixel summed.
fn merge(cs: &mut Vec<(usize, f64)>) {
    cs.sort_unstable_by_key(|x| x.0);
    cs.dedup_by(|a, b| {
        if a.0 == b.0 {
            b.1 += a.1;
            true
        } else {
            false
        }
    });
}

/// What a minor cycle needs to know besides the images.
pub struct Round<'a> {
    pub gain: f64,
    pub niter: usize,
    pub half_patch: usize,
    /// Never below this (the thresholds).
    pub floor: f64,
    /// The major-cycle limit (1 - mgain) x the starting peak.
    pub mgain_stop: f64,
    /// Deeper than `mgain_stop` where the PSF allows: the largest error the major cycle
    /// may find per Jy the minor cycle subtracts, over the fraction of the residual peak
    /// such an error may reach (`CleanState::error_per_jy` / `imaging.minor_error`).
    /// None: the mgain limit alone.
    pub deep: Option<f64>,
    /// The peak when the minor cycle started (divergence guard).
    pub start: f64,
    pub eligible: &'a (dyn Fn(usize) -> bool + Sync),
}

impl Round<'_> {
    /// Where the minor cycle stops once it has subtracted `subtracted` Jy (the sum of its
    /// components' |flux|): the mgain limit or, with `deep`, where the error the major cycle
    /// may find (`deep` x `subtracted`) reaches the allowed fraction of the peak, whichever
    /// is deeper; never below the thresholds.
    pub fn stop(&self, subtracted: f64) -> f64 {
        crate::compute::minor::stop_level(self.floor, self.mgain_stop, self.deep, subtracted)
    }
}

/// Runs Clark rounds until the peak of the eligible term-0 residual falls to `r.stop` or
/// the iterations run out. Returns the last peak.
///
/// Multi-term MFS (Rau & Cornwell 2011) with point components: `residuals` holds the T
/// spectral-term residuals (T = 1 to 3; term t weighted by x^t, x = (nu - nu0) / nu0) and
/// `psfs` the 2T - 1 PSFs (PSF k weighted by x^k), `cps` their transforms. A component at
/// a pixel solves H a = r there, H[i][j] = PSF_{i+j} at the centre, and removes
/// sum_t a_t PSF_{t+t'} from residual t'. With T = 1 this is plain Clark CLEAN.
#[allow(clippy::too_many_arguments)]
pub fn clark(
    residuals: &mut [Vec<f64>],
    psfs: &[Vec<f64>],
    n: usize,
    cps: &[ClarkPsf],
    r: &Round,
    iterations: &mut usize,
    models: &mut [Vec<f64>],
    deltas: &mut [Vec<f64>],
    compute: &dyn Compute,
) -> f64 {
    let nt = residuals.len();
    assert!(
        (1..=3).contains(&nt) && psfs.len() == 2 * nt - 1 && cps.len() == psfs.len(),
        "1 to 3 spectral terms"
    );
    // The PSFs are 2n x 2n with their peak at (n, n).
    let centre = 2 * n * n + n;
    let hinv: Vec<f64> = hessian_inverse(psfs, centre, nt).concat();
    let psf_ids: Vec<u64> = cps.iter().map(|c| c.hat.id()).collect();
    let mut last;
    // Rounds, their longest pixel list and the seconds of their iterations and subtractions
    // (debug log).
    let (mut rounds, mut longest, mut minor_s, mut sub_s) = (0usize, 0usize, 0.0f64, 0.0f64);
    // The sum of the components' |flux| so far (term 0).
    let mut subtracted = 0.0;
    let mut images = Images::new(residuals, (psfs, n, cps), compute);
    loop {
        let peak = images.peak(residuals, r.eligible);
        last = peak;
        if peak <= r.stop(subtracted) || peak == 0.0 || *iterations >= r.niter {
            break;
        }
        if peak > 1.05 * r.start {
            log::warn!("clean: residual peak grew from {:.4} to {peak:.4} in a minor cycle; starting a major cycle", r.start);
            break;
        }
        let mut limit = r.stop(subtracted).max(cps[0].sidelobe * peak);
        let mut active = images.above(residuals, limit, r.eligible);
        longest = longest.max(active.len().min(MAX_ACTIVE));
        if active.len() > MAX_ACTIVE {
            active.select_nth_unstable_by(MAX_ACTIVE - 1, |a, b| b.1.abs().total_cmp(&a.1.abs()));
            active.truncate(MAX_ACTIVE);
            limit = limit.max(active.iter().fold(f64::INFINITY, |a, x| a.min(x.1.abs())));
        }
        let xy: Vec<(u32, u32)> = active
            .iter()
            .map(|&(i, _)| ((i as usize % n) as u32, (i as usize / n) as u32))
            .collect();
        let vals = images.values(residuals, &active);
        let psf_refs: Vec<&[f64]> = psfs.iter().map(Vec::as_slice).collect();
        let job = MinorJob {
            n,
            xy: &xy,
            vals: &vals,
            psfs: &psf_refs,
            psf_ids: &psf_ids,
            hinv: &hinv,
            gain: r.gain,
            limit,
            floor: r.floor,
            mgain_stop: r.mgain_stop,
            deep: r.deep,
            peak,
            subtracted,
            max_iter: r.niter - *iterations,
        };
        let t = std::time::Instant::now();
        let out =
            crate::compute::or_cpu(compute, "CLEAN's minor cycle", |c, _| c.minor_cycle(&job));
        minor_s += t.elapsed().as_secs_f64();
        subtracted = out.subtracted;
        *iterations += out.comps.len();
        let mut comps: Vec<Vec<(usize, f64)>> = vec![Vec::with_capacity(out.comps.len()); nt];
        for (k, f) in &out.comps {
            let idx = active[*k as usize].0 as usize;
            for t in 0..nt {
                models[t][idx] += f[t];
                deltas[t][idx] += f[t];
                comps[t].push((idx, f[t]));
            }
        }
        if comps[0].is_empty() {
            break;
        }
        comps.iter_mut().for_each(merge);
        let t = std::time::Instant::now();
        images.subtract(residuals, &comps);
        sub_s += t.elapsed().as_secs_f64();
        rounds += 1;
        if rounds == 1 {
            images.hold(residuals, r.eligible);
        }
    }
    let held = if images.held.is_some() {
        "held on the device from the second round"
    } else if rounds < 2 {
        "not held (one round)"
    } else {
        "on the host"
    };
    images.finish(residuals);
    log::debug!(
        "clark: {rounds} rounds, lists of up to {longest} pixels, iterations {minor_s:.2} s, subtractions {sub_s:.2} s, residual images {held}"
    );
    last
}

/// H^-1 for T terms, H[i][j] = PSF_{i+j} at the centre (Gauss-Jordan with partial
/// pivoting; H is a small symmetric positive-definite Hankel matrix).
fn hessian_inverse(psfs: &[Vec<f64>], centre: usize, nt: usize) -> Vec<Vec<f64>> {
    let mut a: Vec<Vec<f64>> = (0..nt)
        .map(|i| {
            let mut row: Vec<f64> = (0..nt).map(|j| psfs[i + j][centre]).collect();
            row.extend((0..nt).map(|j| (i == j) as u8 as f64));
            row
        })
        .collect();
    for col in 0..nt {
        let piv = (col..nt)
            .max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))
            .unwrap_or(col);
        a.swap(col, piv);
        let p = a[col][col];
        a[col].iter_mut().for_each(|v| *v /= p);
        let pivot_row = a[col].clone();
        for (_, row) in a.iter_mut().enumerate().filter(|(r, _)| *r != col) {
            let f = row[col];
            row.iter_mut()
                .zip(&pivot_row)
                .for_each(|(v, q)| *v -= f * q);
        }
    }
    a.into_iter().map(|row| row[nt..].to_vec()).collect()
}

#[cfg(all(test, feature = "gpu"))]
#[path = "clark_device_tests.rs"]
mod device_tests;

#[cfg(test)]
mod tests {
    use super::*;

    /// Two spectral terms: the FFT route (one forward transform per term, one inverse per
    /// residual) equals the direct sums over every (term, residual) pair.
    #[test]
    fn multi_term_round_subtraction_fft_matches_direct() {
        let n = 32;
        let psfs: Vec<Vec<f64>> = (0..3)
            .map(|k| {
                (0..4 * n * n)
                    .map(|i| ((i * (k + 3)) as f64 * 0.013).sin() / (1.0 + k as f64))
                    .collect()
            })
            .collect();
        let cps: Vec<ClarkPsf> = psfs
            .iter()
            .map(|p| ClarkPsf::new(p, n, 4, &crate::compute::Cpu))
            .collect();
        let comps: Vec<Vec<(usize, f64)>> = (0..2)
            .map(|t| {
                (0..50)
                    .map(|k| ((k * 41 + 7 * t + 3) % (n * n), 0.1 * ((k + t) as f64).cos()))
                    .collect()
            })
            .collect();
        let start: Vec<Vec<f64>> = (0..2)
            .map(|t| {
                (0..n * n)
                    .map(|i| (i as f64 * 0.07 + t as f64).cos())
                    .collect()
            })
            .collect();
        let (mut a, mut b) = (start.clone(), start.clone());
        subtract_round_with(&mut a, &comps, &psfs, n, &cps, Some(&crate::compute::Cpu));
        subtract_round_with(&mut b, &comps, &psfs, n, &cps, None);
        for t in 0..2 {
            let err = a[t]
                .iter()
                .zip(&b[t])
                .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
            // The PSF's transform is held in f32 (ClarkPsf): 1.6e-8 here.
            assert!(err < 5e-8, "term {t}: {err}");
            assert!(
                a[t].iter()
                    .zip(&start[t])
                    .any(|(x, y)| (x - y).abs() > 1e-2),
                "term {t} unchanged"
            );
        }
    }
}
