//! Delay calibration (the old pipeline's `kcal`): one delay per antenna and polarization,
//! the slope of the gain phase over frequency, g_a(nu) = exp(2 pi i (nu - nu_ref) tau_a) b_a(nu).
//!
//! The estimator works on the per-channel solutions of the bandpass cells, which are the
//! model-divided visibilities of every baseline of an antenna combined (StefCal's update is
//! that weighted combination), referenced to the reference antenna: a zero-padded FFT over
//! the band (channels placed on their uniform grid, gaps and flagged channels zero) finds
//! the coarse delay, a golden-section search of the delay spectrum's peak and a weighted
//! least-squares fit of the remaining phase slope refine it. It is a deterministic function
//! of the all-reduced sums, so every rank count gets the same delays.

use num_complex::Complex64;
use rustfft::FftPlanner;

/// A fitted delay with its standard error (from the per-channel SNRs, scaled up by the
/// fit's reduced chi^2 when the phases scatter more than their noise).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DelayFit {
    pub tau_ns: f64,
    pub err_ns: f64,
    pub n_chan: usize,
}

/// How much a delay has to wind the phase across the band before `auto` keeps it (deg).
pub const AUTO_MIN_WIND_DEG: f64 = 10.0;
/// And how many standard errors it has to be.
pub const AUTO_MIN_SIGMA: f64 = 5.0;

/// The delay phasor exp(2 pi i (nu - nu_ref) tau).
#[inline]
pub fn phasor(freq_hz: f64, ref_hz: f64, tau_ns: f64) -> Complex64 {
    Complex64::from_polar(
        1.0,
        std::f64::consts::TAU * (freq_hz - ref_hz) * tau_ns * 1e-9,
    )
}

/// The reference frequency of a band's delays: its centre.
pub fn reference_hz(freq_hz: &[f64]) -> f64 {
    match (freq_hz.first(), freq_hz.last()) {
        (Some(a), Some(b)) => 0.5 * (a + b),
        _ => 0.0,
    }
}

/// Whether `auto` keeps a delay: significant (> AUTO_MIN_SIGMA errors) and winding the phase
/// by at least AUTO_MIN_WIND_DEG across the band `span_hz`.
pub fn significant(fit: &DelayFit, span_hz: f64) -> bool {
    let wind_deg = (fit.tau_ns * 1e-9 * span_hz * 360.0).abs();
    fit.tau_ns.abs() > AUTO_MIN_SIGMA * fit.err_ns && wind_deg >= AUTO_MIN_WIND_DEG
}

/// Fits the delay of gains `g` at ascending `freq_hz` with per-channel weights `snr`
/// (0 = unusable). None with fewer than 4 usable channels.
pub fn fit(freq_hz: &[f64], g: &[Complex64], snr: &[f64], ref_hz: f64) -> Option<DelayFit> {
    let use_c: Vec<usize> = (0..freq_hz.len())
        .filter(|&c| {
            snr[c] > 0.0
                && snr[c].is_finite()
                && g[c].norm() > 0.0
                && g[c].re.is_finite()
                && g[c].im.is_finite()
        })
        .collect();
    if use_c.len() < 4 {
        return None;
    }
    // Unit phasors weighted by SNR (capped so one channel cannot dominate the search).
    let cap = {
        let mut s: Vec<f64> = use_c.iter().map(|&c| snr[c]).collect();
        s.sort_by(f64::total_cmp);
        4.0 * s[s.len() / 2]
    };
    let x: Vec<(f64, Complex64)> = use_c
        .iter()
        .map(|&c| (freq_hz[c], g[c] / g[c].norm() * snr[c].min(cap)))
        .collect();
    // The channel grid: the smallest spacing between usable neighbours.
    let df = freq_hz
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|d| *d > 0.0)
        .fold(f64::INFINITY, f64::min);
    let f0 = x[0].0;
    let span = x.last().expect("non-empty").0 - f0;
    if !(df.is_finite() && span > 0.0) {
        return None;
    }
    let n_grid = (span / df).round() as usize + 1;
    let n = (8 * n_grid).next_power_of_two();
    let mut buf = vec![Complex64::new(0.0, 0.0); n];
    for &(f, v) in &x {
        buf[((f - f0) / df).round() as usize] += v;
    }
    FftPlanner::new().plan_fft_forward(n).process(&mut buf);
    let k = (0..n)
        .max_by(|&a, &b| buf[a].norm_sqr().total_cmp(&buf[b].norm_sqr()))
        .expect("n > 0");
    let k = if k > n / 2 {
        k as f64 - n as f64
    } else {
        k as f64
    };
    let step = 1.0 / (n as f64 * df); // s per FFT bin
                                      // Refinement 1: golden-section search of |sum x exp(-2 pi i nu tau)| within a bin.
    let power = |tau: f64| -> f64 {
        x.iter()
            .map(|&(f, v)| v * Complex64::from_polar(1.0, -std::f64::consts::TAU * (f - f0) * tau))
            .sum::<Complex64>()
            .norm()
    };
    let (mut lo, mut hi) = ((k - 1.0) * step, (k + 1.0) * step);
    let r = 0.5 * (5f64.sqrt() - 1.0);
    let (mut c1, mut c2) = (hi - r * (hi - lo), lo + r * (hi - lo));
    let (mut p1, mut p2) = (power(c1), power(c2));
    for _ in 0..60 {
        if p1 > p2 {
            hi = c2;
            c2 = c1;
            p2 = p1;
            c1 = hi - r * (hi - lo);
            p1 = power(c1);
        } else {
            lo = c1;
            c1 = c2;
            p1 = p2;
            c2 = lo + r * (hi - lo);
            p2 = power(c2);
        }
    }
    let tau1 = 0.5 * (lo + hi);
    // Refinement 2: weighted least squares of the remaining (small) phase against
    // frequency; weights SNR^2 (the phase error of a channel is ~1/SNR rad).
    let res: Vec<(f64, f64, f64)> = use_c
        .iter()
        .map(|&c| {
            (
                freq_hz[c] - ref_hz,
                (g[c] * phasor(freq_hz[c], ref_hz, -tau1 * 1e9)).arg(),
                snr[c].min(cap).powi(2),
            )
        })
        .collect();
    // Remove the mean phase first (circularly) so the residuals sit around zero.
    let mean_ph = res
        .iter()
        .map(|&(_, ph, w)| Complex64::from_polar(w, ph))
        .sum::<Complex64>()
        .arg();
    let res: Vec<(f64, f64, f64)> = res
        .into_iter()
        .map(|(f, ph, w)| (f, (Complex64::from_polar(1.0, ph - mean_ph)).arg(), w))
        .collect();
    let sw: f64 = res.iter().map(|r| r.2).sum();
    let fm = res.iter().map(|r| r.2 * r.0).sum::<f64>() / sw;
    let pm = res.iter().map(|r| r.2 * r.1).sum::<f64>() / sw;
    let sff: f64 = res.iter().map(|r| r.2 * (r.0 - fm).powi(2)).sum();
    let sfp: f64 = res.iter().map(|r| r.2 * (r.0 - fm) * (r.1 - pm)).sum();
    if !(sff > 0.0) {
        return None;
    }
    let slope = sfp / sff; // rad per Hz
    let chi2: f64 = res
        .iter()
        .map(|r| r.2 * (r.1 - pm - slope * (r.0 - fm)).powi(2))
        .sum();
    let red = chi2 / (res.len() as f64 - 2.0).max(1.0);
    let tau = tau1 + slope / std::f64::consts::TAU;
    let err = red.max(1.0).sqrt() / sff.sqrt() / std::f64::consts::TAU;
    Some(DelayFit {
        tau_ns: tau * 1e9,
        err_ns: err * 1e9,
        n_chan: use_c.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A delay that winds the phase by hundreds of degrees, on a band with a gap and noisy
    /// channels, found to a small fraction of its standard error expectation.
    #[test]
    fn finds_large_and_small_delays_through_gaps() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let freq: Vec<f64> = (0..384)
            .filter(|c| !(100..148).contains(c))
            .map(|c| 1.311e9 + c as f64 * 244_140.625)
            .collect();
        let ref_hz = reference_hz(&freq);
        for &tau in &[-37.3, -3.7, 0.0, 0.42, 12.9, 250.0] {
            let snr = 20.0;
            let g: Vec<Complex64> = freq
                .iter()
                .map(|&f| {
                    let noise =
                        Complex64::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0))
                            * (3f64.sqrt() / snr);
                    0.013 * (phasor(f, ref_hz, tau) * Complex64::from_polar(1.0, 0.7) + noise)
                })
                .collect();
            let d = fit(&freq, &g, &vec![snr; freq.len()], ref_hz).unwrap();
            // Expected standard error (phase noise 1/SNR rad per channel): 1/(2 pi SNR
            // sqrt(sum (nu - mean)^2)) with SNR 20 over 336 channels spanning 94 MHz:
            // 0.015 ns.
            assert!(
                (d.tau_ns - tau).abs() < 4.0 * d.err_ns,
                "tau {tau}: fitted {} +- {}",
                d.tau_ns,
                d.err_ns
            );
            assert!(d.err_ns < 0.02, "{}", d.err_ns);
        }
    }
}
