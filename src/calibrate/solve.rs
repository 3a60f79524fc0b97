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
        CellStats { a: vec![Complex64::new(0.0, 0.0); n_bl], b: vec![0.0; n_bl], c: vec![0.0; n_bl], n: vec![0.0; n_bl] }
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
    /// Relative change of the gain vector at which the iteration stops.
    pub tolerance: f64,
    pub min_baselines: usize,
    pub min_snr: f64,
}

/// One cell's solution.
#[derive(Debug, Clone, PartialEq)]
pub struct CellSolution {
    pub gains: Vec<Complex64>,
    pub snr: Vec<f64>,
    pub flagged: Vec<bool>,
    pub iterations: usize,
    pub converged: bool,
    /// Noise per unit weight estimated from the residuals.
    pub sigma: f64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SolveError {
    #[error("StefCal did not converge in {iterations} iterations (last relative change {change:.3e})")]
    NoConvergence { iterations: usize, change: f64 },
}

/// Solves one cell. `baselines` are (a, b) antenna indices (a < b) matching the stats;
/// `n_ant` the number of antennas; `refants` in order of preference: the first with a valid
/// solution gets zero phase.
pub fn solve_cell(stats: &CellStats, baselines: &[(usize, usize)], n_ant: usize, refants: &[usize], p: &SolveParams) -> Result<CellSolution, SolveError> {
    // Antennas with too few baselines carrying data are excluded from the start.
    let mut nbl = vec![0usize; n_ant];
    for (k, &(a, b)) in baselines.iter().enumerate() {
        if stats.b[k] > 0.0 && a != b {
            nbl[a] += 1;
            nbl[b] += 1;
        }
    }
    let mut active: Vec<bool> = nbl.iter().map(|&n| n >= p.min_baselines).collect();
    // Removing antennas can push others below the limit: iterate to a fixed point.
    loop {
        let mut n2 = vec![0usize; n_ant];
        for (k, &(a, b)) in baselines.iter().enumerate() {
            if stats.b[k] > 0.0 && a != b && active[a] && active[b] {
                n2[a] += 1;
                n2[b] += 1;
            }
        }
        let next: Vec<bool> = (0..n_ant).map(|i| active[i] && n2[i] >= p.min_baselines).collect();
        if next == active {
            break;
        }
        active = next;
    }
    let mut g: Vec<Complex64> = (0..n_ant).map(|i| if active[i] { Complex64::new(1.0, 0.0) } else { Complex64::new(0.0, 0.0) }).collect();
    // A good starting amplitude: sqrt(sum |A| / sum B) over all baselines.
    let (sa, sb): (f64, f64) = (0..baselines.len()).fold((0.0, 0.0), |(x, y), k| (x + stats.a[k].norm(), y + stats.b[k]));
    if sb > 0.0 && sa > 0.0 {
        let g0 = (sa / sb).sqrt();
        g.iter_mut().filter(|x| x.re != 0.0).for_each(|x| *x = Complex64::new(g0, 0.0));
    }
    let mut change = f64::INFINITY;
    let mut iterations = 0;
    let mut converged = !active.iter().any(|&x| x);
    while !converged && iterations < p.max_iter {
        iterations += 1;
        let mut num = vec![Complex64::new(0.0, 0.0); n_ant];
        let mut den = vec![0.0f64; n_ant];
        for (k, &(a, b)) in baselines.iter().enumerate() {
            if a == b || !active[a] || !active[b] || stats.b[k] <= 0.0 {
                continue;
            }
            // V_ab ~ g_a conj(g_b) M: g_a <- A_ab g_b; g_b <- conj(A_ab) g_a.
            num[a] += stats.a[k] * g[b];
            den[a] += g[b].norm_sqr() * stats.b[k];
            num[b] += stats.a[k].conj() * g[a];
            den[b] += g[a].norm_sqr() * stats.b[k];
        }
        let mut new: Vec<Complex64> = (0..n_ant).map(|i| if active[i] && den[i] > 0.0 { num[i] / den[i] } else { Complex64::new(0.0, 0.0) }).collect();
        if iterations % 2 == 0 {
            for i in 0..n_ant {
                new[i] = 0.5 * (new[i] + g[i]);
            }
        }
        let dn: f64 = new.iter().zip(&g).map(|(x, y)| (x - y).norm_sqr()).sum::<f64>().sqrt();
        let nn: f64 = new.iter().map(|x| x.norm_sqr()).sum::<f64>().sqrt().max(1e-300);
        change = dn / nn;
        g = new;
        converged = change < p.tolerance;
    }
    if !converged {
        return Err(SolveError::NoConvergence { iterations, change });
    }
    // Reference phase.
    if let Some(&r) = refants.iter().find(|&&r| r < n_ant && active[r] && g[r].norm() > 0.0) {
        let rot = g[r].conj() / g[r].norm();
        g.iter_mut().for_each(|x| *x *= rot);
    }
    // Noise per unit weight from the residual sum of squares, and per-antenna SNR.
    let (mut rss, mut nsamp) = (0.0, 0.0);
    for (k, &(a, b)) in baselines.iter().enumerate() {
        if a == b || !active[a] || !active[b] || stats.b[k] <= 0.0 {
            continue;
        }
        let gg = g[a] * g[b].conj();
        rss += (stats.c[k] - 2.0 * (gg.conj() * stats.a[k]).re + gg.norm_sqr() * stats.b[k]).max(0.0);
        nsamp += stats.n[k];
    }
    let dof = (2.0 * nsamp - 2.0 * active.iter().filter(|&&x| x).count() as f64).max(1.0);
    // rss sums w |r|^2 with |r|^2 having variance 2 sigma^2 per complex sample; mean weight ~ B/n.
    let sigma = (rss / dof).sqrt();
    let mut info = vec![0.0f64; n_ant];
    for (k, &(a, b)) in baselines.iter().enumerate() {
        if a == b || !active[a] || !active[b] {
            continue;
        }
        info[a] += g[b].norm_sqr() * stats.b[k];
        info[b] += g[a].norm_sqr() * stats.b[k];
    }
    let snr: Vec<f64> = (0..n_ant).map(|i| if info[i] > 0.0 && sigma > 0.0 { g[i].norm() * info[i].sqrt() / sigma } else if info[i] > 0.0 { f64::INFINITY } else { 0.0 }).collect();
    let flagged: Vec<bool> = (0..n_ant).map(|i| !active[i] || snr[i] < p.min_snr).collect();
    Ok(CellSolution { gains: g, snr, flagged, iterations, converged, sigma })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_gains_from_noiseless_sums() {
        let n_ant = 6;
        let truth: Vec<Complex64> = (0..n_ant).map(|i| Complex64::from_polar(0.5 + 0.1 * i as f64, 0.3 * i as f64 - 0.7)).collect();
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
        let p = SolveParams { max_iter: 200, tolerance: 1e-12, min_baselines: 3, min_snr: 0.0 };
        let sol = solve_cell(&s, &bl, n_ant, &[2], &p).unwrap();
        let rot = truth[2].conj() / truth[2].norm();
        for i in 0..n_ant {
            assert!((sol.gains[i] - truth[i] * rot).norm() < 1e-9, "{i}: {} vs {}", sol.gains[i], truth[i] * rot);
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
        let p = SolveParams { max_iter: 100, tolerance: 1e-10, min_baselines: 2, min_snr: 0.0 };
        let sol = solve_cell(&s, &bl, 4, &[0], &p).unwrap();
        assert!(sol.flagged[3] && !sol.flagged[0]);
    }

    #[test]
    fn non_convergence_is_an_error() {
        let bl = vec![(0, 1), (0, 2), (1, 2)];
        let mut s = CellStats::new(3);
        for k in 0..3 {
            s.add(k, 1.0, Complex64::new(1.0, k as f64), Complex64::new(1.0, 0.0));
        }
        let p = SolveParams { max_iter: 1, tolerance: 1e-15, min_baselines: 2, min_snr: 0.0 };
        assert!(matches!(solve_cell(&s, &bl, 3, &[0], &p), Err(SolveError::NoConvergence { .. })));
    }
}
