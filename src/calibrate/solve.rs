//! Antenna-based complex gain solutions from per-baseline sufficient statistics.
//!
//! For V_ab = g_a conj(g_b) M_ab the weighted least-squares problem needs only, per
//! baseline (a < b) and solution cell: A = sum w V conj(M), B = sum w |M|^2, C = sum w |V|^2
//! and the sample count. Every rank accumulates them for its own data; sums combine
//! exactly over ranks (MPI all-reduce); the solve runs on the combined sums. StefCal
//! (Salvini & Wijnholds 2014): g_a <- sum_b A_ab g_b / sum_b |g_b|^2 B_ab, averaging every
//! second iteration, f64 throughout.

use num_complex::Complex64;
use serde::{Deserialize, Serialize};

/// Sufficient statistics of one solution cell (e.g. a channel and polarization) over all
/// baselines, f64, laid out flat so ranks can reduce them as one buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct CellStats {
    pub a: Vec<Complex64>,
    pub b: Vec<f64>,
    pub c: Vec<f64>,
    pub n: Vec<f64>,
}

impl CellStats {
    pub fn new(n_bl: usize) -> Self {
        CellStats {
            a: vec![Complex64::new(0.0, 0.0); n_bl],
            b: vec![0.0; n_bl],
            c: vec![0.0; n_bl],
            n: vec![0.0; n_bl],
        }
    }

    #[inline]
    pub fn add(&mut self, bl: usize, w: f64, v: Complex64, m: Complex64) {
        self.a[bl] += v * m.conj() * w;
        self.b[bl] += w * m.norm_sqr();
        self.c[bl] += w * v.norm_sqr();
        self.n[bl] += 1.0;
    }

    pub fn len_f64(n_bl: usize) -> usize {
        5 * n_bl
    }

    pub fn write_to(&self, out: &mut [f64]) {
        let n = self.b.len();
        for i in 0..n {
            out[5 * i] = self.a[i].re;
            out[5 * i + 1] = self.a[i].im;
            out[5 * i + 2] = self.b[i];
            out[5 * i + 3] = self.c[i];
            out[5 * i + 4] = self.n[i];
        }
    }

    pub fn read_from(buf: &[f64]) -> Self {
        let n = buf.len() / 5;
        let mut s = CellStats::new(n);
        for i in 0..n {
            s.a[i] = Complex64::new(buf[5 * i], buf[5 * i + 1]);
            s.b[i] = buf[5 * i + 2];
            s.c[i] = buf[5 * i + 3];
            s.n[i] = buf[5 * i + 4];
        }
        s
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct SolveParams {
    pub max_iter: usize,
    /// Relative change of the gain vector at which the iteration stops whatever the noise
    /// (the floor for noiseless data).
    pub tolerance: f64,
    /// The iteration also stops when every antenna's update is below this fraction of its
    /// noise-limited gain error (sigma / sqrt(information)): iterating further moves the
    /// gains by much less than their own uncertainty.
    pub noise_tolerance: f64,
    /// Baselines whose residual exceeds the cell's typical residual by this many standard
    /// deviations are left out and the cell re-solved (0 = never).
    pub outlier_sigma: f64,
    pub min_baselines: usize,
    pub min_snr: f64,
}

/// Why a solution (an antenna in a cell, or a whole cell) is flagged; stored per solution in
/// the caltable (`flag_reason`, u8) with these codes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum FlagReason {
    Ok = 0,
    /// No unflagged samples on any of the antenna's baselines (or in the cell).
    NoData = 1,
    /// Fewer than `min_baselines` baselines with data (or, for a cell, fewer than 3 antennas).
    FewBaselines = 2,
    /// Solution SNR below `min_snr` (for a cell: the median over its antennas).
    LowSnr = 3,
    /// Still moving by more than its noise after `max_iterations`.
    NotConverged = 4,
    /// NaN or infinite sums or solution.
    NonFinite = 5,
    /// Per-antenna QA: the antenna's median SNR over the band is below `min_snr`.
    AntennaSnr = 6,
    /// Per-antenna QA: amplitude outside [0.1, 10] x the array median.
    AntennaAmplitude = 7,
    /// Per-antenna QA: phase scatter about a smooth delay-removed bandpass above 90 deg.
    AntennaPhase = 8,
    /// The cell's residual noise is far above that of its neighbouring channels (RFI the
    /// flagger left, fitted into the gains).
    HighResidual = 9,
    /// A flagged solution of a table written before reasons were recorded.
    Unknown = 255,
}

impl FlagReason {
    pub const ALL: [FlagReason; 11] = [
        FlagReason::Ok,
        FlagReason::NoData,
        FlagReason::FewBaselines,
        FlagReason::LowSnr,
        FlagReason::NotConverged,
        FlagReason::NonFinite,
        FlagReason::AntennaSnr,
        FlagReason::AntennaAmplitude,
        FlagReason::AntennaPhase,
        FlagReason::HighResidual,
        FlagReason::Unknown,
    ];
    pub fn from_code(c: u8) -> FlagReason {
        FlagReason::ALL
            .into_iter()
            .find(|r| *r as u8 == c)
            .unwrap_or(FlagReason::Unknown)
    }
    pub fn name(self) -> &'static str {
        match self {
            FlagReason::Ok => "ok",
            FlagReason::NoData => "no_data",
            FlagReason::FewBaselines => "few_baselines",
            FlagReason::LowSnr => "low_snr",
            FlagReason::NotConverged => "not_converged",
            FlagReason::NonFinite => "non_finite",
            FlagReason::AntennaSnr => "antenna_snr",
            FlagReason::AntennaAmplitude => "antenna_amplitude",
            FlagReason::AntennaPhase => "antenna_phase",
            FlagReason::HighResidual => "high_residual",
            FlagReason::Unknown => "unknown",
        }
    }
}

/// One cell's solution. A cell never fails: what cannot be solved is flagged with its reason
/// (`cell` for the whole cell, `reasons` per antenna).
#[derive(Debug, Clone, PartialEq)]
pub struct CellSolution {
    pub gains: Vec<Complex64>,
    pub snr: Vec<f64>,
    pub flagged: Vec<bool>,
    /// Per antenna: why it is flagged (`Ok` when not).
    pub reasons: Vec<FlagReason>,
    /// The whole cell: `Ok`, or why every antenna in it is flagged.
    pub cell: FlagReason,
    pub iterations: usize,
    pub converged: bool,
    /// Noise per unit weight estimated from the residuals.
    pub sigma: f64,
    /// Baselines left out as outliers (robust step) or for non-finite sums.
    pub rejected_baselines: usize,
}

/// Active antennas: those with at least `min_baselines` baselines carrying data to other
/// active antennas (a fixed point: removing antennas can push others below the limit).
fn active_antennas(
    use_bl: &[bool],
    baselines: &[(usize, usize)],
    n_ant: usize,
    min_baselines: usize,
) -> (Vec<bool>, Vec<usize>) {
    let count = |active: &[bool]| {
        let mut n = vec![0usize; n_ant];
        for (k, &(a, b)) in baselines.iter().enumerate() {
            if use_bl[k] && active[a] && active[b] {
                n[a] += 1;
                n[b] += 1;
            }
        }
        n
    };
    let all = vec![true; n_ant];
    let n0 = count(&all);
    let mut active: Vec<bool> = n0.iter().map(|&n| n >= min_baselines.max(1)).collect();
    loop {
        let n2 = count(&active);
        let next: Vec<bool> = (0..n_ant)
            .map(|i| active[i] && n2[i] >= min_baselines.max(1))
            .collect();
        if next == active {
            break;
        }
        active = next;
    }
    (active, n0)
}

/// Residual sum of squares per baseline, sum w |V - g_a conj(g_b) M|^2, from the sums.
#[inline]
fn baseline_rss(stats: &CellStats, k: usize, ga: Complex64, gb: Complex64) -> f64 {
    let gg = ga * gb.conj();
    (stats.c[k] - 2.0 * (gg.conj() * stats.a[k]).re + gg.norm_sqr() * stats.b[k]).max(0.0)
}

/// Noise per unit weight and per-antenna information sum_b |g_b|^2 B_ab at the gains `g`.
fn noise_and_information(
    stats: &CellStats,
    baselines: &[(usize, usize)],
    use_bl: &[bool],
    active: &[bool],
    g: &[Complex64],
) -> (f64, Vec<f64>) {
    let n_ant = g.len();
    let (mut rss, mut nsamp) = (0.0, 0.0);
    let mut info = vec![0.0f64; n_ant];
    for (k, &(a, b)) in baselines.iter().enumerate() {
        if !use_bl[k] || !active[a] || !active[b] {
            continue;
        }
        rss += baseline_rss(stats, k, g[a], g[b]);
        nsamp += stats.n[k];
        info[a] += g[b].norm_sqr() * stats.b[k];
        info[b] += g[a].norm_sqr() * stats.b[k];
    }
    // rss sums w |r|^2 over complex samples: 2 degrees of freedom each, 2 per antenna fitted.
    let dof = (2.0 * nsamp - 2.0 * active.iter().filter(|&&x| x).count() as f64).max(1.0);
    ((rss / dof).sqrt(), info)
}

/// StefCal from `g` on the baselines in `use_bl`; returns (iterations, converged, the last
/// update per antenna).
fn stefcal(
    stats: &CellStats,
    baselines: &[(usize, usize)],
    use_bl: &[bool],
    active: &[bool],
    g: &mut [Complex64],
    p: &SolveParams,
) -> (usize, bool, Vec<f64>) {
    let n_ant = g.len();
    let mut iterations = 0;
    let mut step = vec![f64::INFINITY; n_ant];
    if !active.iter().any(|&x| x) {
        return (0, true, vec![0.0; n_ant]);
    }
    while iterations < p.max_iter {
        iterations += 1;
        let mut num = vec![Complex64::new(0.0, 0.0); n_ant];
        let mut den = vec![0.0f64; n_ant];
        for (k, &(a, b)) in baselines.iter().enumerate() {
            if !use_bl[k] || !active[a] || !active[b] {
                continue;
            }
            // V_ab ~ g_a conj(g_b) M: g_a <- A_ab g_b; g_b <- conj(A_ab) g_a.
            num[a] += stats.a[k] * g[b];
            den[a] += g[b].norm_sqr() * stats.b[k];
            num[b] += stats.a[k].conj() * g[a];
            den[b] += g[a].norm_sqr() * stats.b[k];
        }
        let mut new: Vec<Complex64> = (0..n_ant)
            .map(|i| {
                if active[i] && den[i] > 0.0 {
                    num[i] / den[i]
                } else {
                    Complex64::new(0.0, 0.0)
                }
            })
            .collect();
        // Averaging every second iterate (Salvini & Wijnholds) damps the oscillation of the
        // alternating update.
        if iterations % 2 == 0 {
            for i in 0..n_ant {
                new[i] = 0.5 * (new[i] + g[i]);
            }
        }
        for i in 0..n_ant {
            step[i] = (new[i] - g[i]).norm();
        }
        let dn: f64 = step.iter().map(|x| x * x).sum::<f64>().sqrt();
        let nn: f64 = new
            .iter()
            .map(|x| x.norm_sqr())
            .sum::<f64>()
            .sqrt()
            .max(1e-300);
        g.copy_from_slice(&new);
        if !(dn.is_finite() && nn.is_finite()) {
            return (iterations, false, step);
        }
        if dn / nn < p.tolerance {
            return (iterations, true, step);
        }
        // The noise-tied rule (on odd iterations, i.e. after an undamped step, whose size
        // is the honest distance still to go).
        if iterations % 2 == 1 && iterations > 2 {
            let (sigma, info) = noise_and_information(stats, baselines, use_bl, active, g);
            if sigma > 0.0
                && (0..n_ant)
                    .filter(|&i| active[i] && info[i] > 0.0)
                    .all(|i| step[i] * info[i].sqrt() < p.noise_tolerance * sigma)
            {
                return (iterations, true, step);
            }
        }
    }
    (iterations, false, step)
}

/// Which baselines a cell can use (finite sums, cross-correlations with data), how many
/// usable baselines each antenna has, and how many baselines had non-finite sums.
fn usable_baselines(
    stats: &CellStats,
    baselines: &[(usize, usize)],
    n_ant: usize,
) -> (Vec<bool>, Vec<usize>, usize) {
    let finite = |k: usize| {
        stats.a[k].re.is_finite()
            && stats.a[k].im.is_finite()
            && stats.b[k].is_finite()
            && stats.c[k].is_finite()
            && stats.n[k].is_finite()
    };
    let mut non_finite = 0usize;
    let use_bl: Vec<bool> = (0..baselines.len())
        .map(|k| {
            let (a, b) = baselines[k];
            if !finite(k) {
                non_finite += 1;
                return false;
            }
            a != b && stats.b[k] > 0.0 && stats.n[k] > 0.0
        })
        .collect();
    let mut data_bl = vec![0usize; n_ant];
    for (k, &(a, b)) in baselines.iter().enumerate() {
        if use_bl[k] {
            data_bl[a] += 1;
            data_bl[b] += 1;
        }
    }
    (use_bl, data_bl, non_finite)
}

/// The starting gains: a good amplitude, sqrt(sum |A| / sum B) over the usable baselines,
/// for the active antennas; zero for the others.
fn starting_gains(stats: &CellStats, use_bl: &[bool], active: &[bool]) -> Vec<Complex64> {
    let (sa, sb): (f64, f64) = (0..use_bl.len())
        .filter(|&k| use_bl[k])
        .fold((0.0, 0.0), |(x, y), k| {
            (x + stats.a[k].norm(), y + stats.b[k])
        });
    let g0 = if sb > 0.0 && sa > 0.0 {
        (sa / sb).sqrt()
    } else {
        1.0
    };
    active
        .iter()
        .map(|&on| Complex64::new(if on { g0 } else { 0.0 }, 0.0))
        .collect()
}

/// Each antenna's gain SNR, |g| sqrt(information) / sigma (infinite for noiseless data,
/// 0 without information).
fn antenna_snr(g: &[Complex64], info: &[f64], sigma: f64) -> Vec<f64> {
    (0..g.len())
        .map(|i| {
            if info[i] > 0.0 && sigma > 0.0 {
                g[i].norm() * info[i].sqrt() / sigma
            } else if info[i] > 0.0 {
                f64::INFINITY
            } else {
                0.0
            }
        })
        .collect()
}

/// Solves one cell. `baselines` are (a, b) antenna indices (a < b) matching the stats;
/// `n_ant` the number of antennas; `refants` in order of preference: the first with a valid
/// solution gets zero phase. Never fails: antennas (or the whole cell) that cannot be solved
/// are flagged with the reason.
pub fn solve_cell(
    stats: &CellStats,
    baselines: &[(usize, usize)],
    n_ant: usize,
    refants: &[usize],
    p: &SolveParams,
) -> CellSolution {
    let (mut use_bl, data_bl, non_finite) = usable_baselines(stats, baselines, n_ant);
    let mut rejected = non_finite;
    let (mut active, _) = active_antennas(&use_bl, baselines, n_ant, p.min_baselines);
    let mut g = starting_gains(stats, &use_bl, &active);
    let (mut iterations, mut converged, mut step) =
        stefcal(stats, baselines, &use_bl, &active, &mut g, p);
    // Robust step: a baseline whose residual (per sample, against the cell's median) is
    // many standard deviations off is left out and the cell re-solved from where it is.
    for _round in 0..3 {
        if p.outlier_sigma <= 0.0 || !g.iter().all(|x| x.re.is_finite() && x.im.is_finite()) {
            break;
        }
        let ks: Vec<usize> = (0..baselines.len())
            .filter(|&k| use_bl[k] && active[baselines[k].0] && active[baselines[k].1])
            .collect();
        let rho: Vec<f64> = ks
            .iter()
            .map(|&k| baseline_rss(stats, k, g[baselines[k].0], g[baselines[k].1]) / stats.n[k])
            .collect();
        let Some((med, mad)) = crate::primitives::stats::median_and_mad_sigma(&rho) else {
            break;
        };
        if !(med > 0.0) {
            break;
        }
        // A baseline's mean of n squared residuals scatters by ~1/sqrt(n) of the mean
        // (chi^2 with 2n degrees of freedom); model errors widen that: the larger counts.
        let bad: Vec<usize> = ks
            .iter()
            .zip(&rho)
            .filter(|(&k, &r)| {
                r > med * (1.0 + p.outlier_sigma * (1.0 / stats.n[k].sqrt()).max(mad / med))
            })
            .map(|(&k, _)| k)
            .collect();
        if bad.is_empty() {
            break;
        }
        for &k in &bad {
            use_bl[k] = false;
        }
        rejected += bad.len();
        let (act2, _) = active_antennas(&use_bl, baselines, n_ant, p.min_baselines);
        for i in 0..n_ant {
            if !act2[i] {
                g[i] = Complex64::new(0.0, 0.0);
            }
        }
        active = act2;
        let (it, conv, st) = stefcal(stats, baselines, &use_bl, &active, &mut g, p);
        iterations += it;
        converged = conv;
        step = st;
    }
    let n_active = active.iter().filter(|&&x| x).count();
    let mut reasons: Vec<FlagReason> = (0..n_ant)
        .map(|i| match (active[i], data_bl[i]) {
            (true, _) => FlagReason::Ok,
            (false, 0) => FlagReason::NoData,
            (false, _) => FlagReason::FewBaselines,
        })
        .collect();
    let all_finite = g.iter().all(|x| x.re.is_finite() && x.im.is_finite());
    let mut cell = if !use_bl.iter().any(|&x| x) && rejected == non_finite {
        if non_finite > 0 {
            FlagReason::NonFinite
        } else {
            FlagReason::NoData
        }
    } else if !all_finite {
        FlagReason::NonFinite
    } else if n_active < 3 {
        FlagReason::FewBaselines
    } else {
        FlagReason::Ok
    };
    if cell != FlagReason::Ok {
        return flagged_cell(n_ant, cell, reasons, iterations, rejected);
    }
    // Reference phase.
    if let Some(&r) = refants
        .iter()
        .find(|&&r| r < n_ant && active[r] && g[r].norm() > 0.0)
    {
        let rot = g[r].conj() / g[r].norm();
        g.iter_mut().for_each(|x| *x *= rot);
    }
    let (sigma, info) = noise_and_information(stats, baselines, &use_bl, &active, &g);
    let snr = antenna_snr(&g, &info, sigma);
    if !converged {
        // Antennas whose last update still exceeds their noise are not solved; the cell
        // fails only when most of them are.
        let moving: Vec<bool> = (0..n_ant)
            .map(|i| active[i] && !(info[i] > 0.0 && step[i] * info[i].sqrt() <= sigma))
            .collect();
        let n_moving = moving.iter().filter(|&&x| x).count();
        if 2 * n_moving > n_active {
            cell = FlagReason::NotConverged;
        } else {
            (0..n_ant)
                .filter(|&i| moving[i])
                .for_each(|i| reasons[i] = FlagReason::NotConverged);
        }
    }
    for i in 0..n_ant {
        if reasons[i] == FlagReason::Ok && snr[i] < p.min_snr {
            reasons[i] = FlagReason::LowSnr;
        }
    }
    if cell == FlagReason::Ok {
        let s: Vec<f64> = (0..n_ant).filter(|&i| active[i]).map(|i| snr[i]).collect();
        if crate::primitives::stats::median_and_mad_sigma(&s).is_some_and(|(m, _)| m < p.min_snr) {
            cell = FlagReason::LowSnr;
        }
    }
    if cell != FlagReason::Ok {
        let mut out = flagged_cell(n_ant, cell, reasons, iterations, rejected);
        out.sigma = sigma;
        return out;
    }
    let flagged: Vec<bool> = reasons.iter().map(|&r| r != FlagReason::Ok).collect();
    CellSolution {
        gains: g,
        snr,
        flagged,
        reasons,
        cell,
        iterations,
        converged,
        sigma,
        rejected_baselines: rejected,
    }
}

/// A cell flagged as a whole: antennas already flagged keep their own reason.
fn flagged_cell(
    n_ant: usize,
    cell: FlagReason,
    reasons: Vec<FlagReason>,
    iterations: usize,
    rejected: usize,
) -> CellSolution {
    let reasons = reasons
        .into_iter()
        .map(|r| if r == FlagReason::Ok { cell } else { r })
        .collect();
    CellSolution {
        gains: vec![Complex64::new(0.0, 0.0); n_ant],
        snr: vec![0.0; n_ant],
        flagged: vec![true; n_ant],
        reasons,
        cell,
        iterations,
        converged: false,
        sigma: 0.0,
        rejected_baselines: rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_gains_from_noiseless_sums() {
        let n_ant = 6;
        let truth: Vec<Complex64> = (0..n_ant)
            .map(|i| Complex64::from_polar(0.5 + 0.1 * i as f64, 0.3 * i as f64 - 0.7))
            .collect();
        let mut bl = Vec::new();
        for a in 0..n_ant {
            for b in a + 1..n_ant {
                bl.push((a, b));
            }
        }
        let mut s = CellStats::new(bl.len());
        for (k, &(a, b)) in bl.iter().enumerate() {
            for t in 0..3 {
                let m = Complex64::from_polar(2.0, 0.1 * (k + t) as f64);
                s.add(k, 1.0, truth[a] * truth[b].conj() * m, m);
            }
        }
        let p = SolveParams {
            max_iter: 200,
            tolerance: 1e-12,
            noise_tolerance: 0.02,
            outlier_sigma: 6.0,
            min_baselines: 3,
            min_snr: 0.0,
        };
        let sol = solve_cell(&s, &bl, n_ant, &[2], &p);
        assert!(sol.converged && sol.cell == FlagReason::Ok && sol.rejected_baselines == 0);
        let rot = truth[2].conj() / truth[2].norm();
        for i in 0..n_ant {
            assert!(
                (sol.gains[i] - truth[i] * rot).norm() < 1e-9,
                "{i}: {} vs {}",
                sol.gains[i],
                truth[i] * rot
            );
        }
        assert!(sol.gains[2].im.abs() < 1e-12 && sol.gains[2].re > 0.0);
    }

    #[test]
    fn too_few_baselines_are_flagged() {
        let bl = vec![(0, 1), (0, 2), (1, 2), (0, 3)];
        let mut s = CellStats::new(bl.len());
        for k in 0..bl.len() {
            s.add(k, 1.0, Complex64::new(1.0, 0.0), Complex64::new(1.0, 0.0));
        }
        let p = SolveParams {
            max_iter: 100,
            tolerance: 1e-10,
            noise_tolerance: 0.02,
            outlier_sigma: 0.0,
            min_baselines: 2,
            min_snr: 0.0,
        };
        let sol = solve_cell(&s, &bl, 4, &[0], &p);
        assert!(sol.flagged[3] && !sol.flagged[0]);
        assert_eq!(sol.reasons[3], FlagReason::FewBaselines);
    }

    #[test]
    fn non_convergence_flags_the_cell_instead_of_failing() {
        // Noiseless sums of widely spread gains: one iteration from the flat start is far
        // from the solution (and far beyond the zero noise).
        let n_ant = 5;
        let truth: Vec<Complex64> = (0..n_ant)
            .map(|i| Complex64::from_polar(1.0 + 2.0 * i as f64, 1.1 * i as f64))
            .collect();
        let mut bl = Vec::new();
        for a in 0..n_ant {
            for b in a + 1..n_ant {
                bl.push((a, b));
            }
        }
        let mut s = CellStats::new(bl.len());
        for (k, &(a, b)) in bl.iter().enumerate() {
            s.add(k, 1.0, truth[a] * truth[b].conj(), Complex64::new(1.0, 0.0));
        }
        let p = SolveParams {
            max_iter: 1,
            tolerance: 1e-15,
            noise_tolerance: 1e-6,
            outlier_sigma: 0.0,
            min_baselines: 2,
            min_snr: 0.0,
        };
        let sol = solve_cell(&s, &bl, n_ant, &[0], &p);
        assert_eq!(sol.cell, FlagReason::NotConverged);
        assert!(
            sol.flagged.iter().all(|&f| f)
                && sol.reasons.iter().all(|&r| r == FlagReason::NotConverged)
        );
    }
}
