//! The array-wide pass: interference that every baseline sees (broadband bursts, weak
//! narrowband channels, ramps) is far below one visibility's noise but adds power on all
//! of them.
//!
//! Its input is the per-baseline pass's own residuals: each (baseline, polarization)
//! plane's amplitudes less their masked smooth background (which follows the sky's
//! transit, the bandpass and the beats of bright sources), over that plane's robust noise.
//! Per (time, channel) the pass sums their squares (each clipped at `clip`^2) minus one over
//! baselines and polarizations: the mean excess power m, in units of the noise power.
//! Squares need no phase coherence: interference with a random phase per baseline, which a
//! complex sum cancels, raises every baseline's residual power (by a^2 / 2 for amplitude
//! a sigma, beside a bright source as on noise alone: there it changes |V| by
//! a cos(phase difference), whose mean square is a^2 / 2). Removing the background first
//! keeps the sky out: the power of |V| itself would be dominated by the calibrator.
//!
//! On that one time x channel plane: no background of its own (the residuals' excess has
//! zero mean on clean data wherever the per-baseline backgrounds follow the sky; a smooth
//! fit of the plane would instead follow the broad bump that strong interference makes
//! while it still drags those backgrounds, and hide it), the plane's median and robust
//! noise (twice: the second time without the first round's detections), the noise floored
//! at `min_excess / chi1` (the plane of 4656 baselines has a noise of ~1.5 % of the noise
//! power: without a floor it would flag cells for the per-baseline backgrounds' small
//! biases at the plane's edges, far below any interference), then SumThreshold.
//!
//! The stage runs it after each per-baseline iteration, plus once before the first (see
//! `flag::run_with`); its cells are provisional until the last: each iteration's backgrounds
//! leave out the previous one's cells and its own replace them. A cell found beside strong
//! interference that dragged the backgrounds (a channel next to a 40-sigma line) is released
//! once that interference is masked. The final cells are flagged on every cross-correlation
//! and polarization.

use super::algorithms::sumthreshold_plane;
use super::settings::ArrayFlagConfig;
use crate::primitives::stats::median_and_mad_sigma;

pub use crate::compute::flag_pass::ExcessPower;

/// The cells (time x channel) the plane holds at sensitivity `sens` (thresholds x sens).
/// Cells without samples are neither judged nor returned.
pub fn detect(
    power: &ExcessPower,
    nt: usize,
    nf: usize,
    cfg: &ArrayFlagConfig,
    sens: f32,
) -> Vec<bool> {
    let m: Vec<f32> = power
        .sum
        .iter()
        .zip(&power.count)
        .map(|(&s, &c)| {
            if c > 0 {
                (s / f64::from(c)) as f32
            } else {
                0.0
            }
        })
        .collect();
    let empty: Vec<bool> = power.count.iter().map(|&c| c == 0).collect();
    let floor = cfg.min_excess / f64::from(cfg.chi1);
    let round = |mask: &[bool]| -> Option<Vec<bool>> {
        let kept: Vec<f64> = m
            .iter()
            .zip(mask)
            .filter(|(_, &f)| !f)
            .map(|(&x, _)| f64::from(x))
            .collect();
        let (med, sig) = median_and_mad_sigma(&kept)?;
        let sig = sig.max(floor).max(1e-9);
        let z: Vec<f32> = m
            .iter()
            .map(|&x| ((f64::from(x) - med) / sig) as f32)
            .collect();
        Some(sumthreshold_plane(
            &z,
            mask,
            nt,
            nf,
            cfg.chi1 * sens,
            cfg.rho,
            cfg.max_window_time,
            cfg.max_window_chan,
        ))
    };
    let Some(first) = round(&empty) else {
        return vec![false; nt * nf];
    };
    let Some(mut cells) = round(&first) else {
        return vec![false; nt * nf];
    };
    cells.iter_mut().zip(&empty).for_each(|(c, &e)| *c &= !e);
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plane of noise (each cell the mean of n residuals' excess) with an offset of 0.3, a
    /// weak broadband row and a weak line: the row and the line are found, nothing else.
    #[test]
    fn finds_a_weak_row_and_line_and_nothing_else() {
        use rand::{Rng, SeedableRng};
        let (nt, nf, n) = (24, 96, 400u32);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut p = ExcessPower::new(nt * nf);
        for t in 0..nt {
            for c in 0..nf {
                let i = t * nf + c;
                // Mean-excess noise of n samples: sd sqrt(2 / n); excess 2 on the row
                // t = 7 (channels 10..70) and on channel 50.
                let noise: f64 = (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
                let mut m = noise * (2.0 / f64::from(n)).sqrt() + 0.3;
                if (t == 7 && (10..70).contains(&c)) || c == 50 {
                    m += 2.0;
                }
                p.sum[i] = m * f64::from(n);
                p.count[i] = n;
            }
        }
        let cells = detect(&p, nt, nf, &ArrayFlagConfig::default(), 1.0);
        for t in 0..nt {
            for c in 0..nf {
                let rfi = (t == 7 && (10..70).contains(&c)) || c == 50;
                assert_eq!(cells[t * nf + c], rfi, "cell ({t}, {c})");
            }
        }
    }

    /// The floor: with thousands of baselines the plane's noise is tiny; an excess of 0.1
    /// of the noise power (a background bias, not interference) is not flagged, 1.5 is.
    #[test]
    fn the_floor_keeps_tiny_excesses() {
        let (nt, nf) = (24, 64);
        let mut p = ExcessPower::new(nt * nf);
        let n = 9000u32;
        for i in 0..nt * nf {
            // A deterministic +-0.5 % ripple stands in for noise.
            let m = 0.005 * ((i * 7919 % 13) as f64 / 6.0 - 1.0);
            p.sum[i] = m * f64::from(n);
            p.count[i] = n;
        }
        p.sum[5 * nf + 20] += 0.1 * f64::from(n);
        p.sum[9 * nf + 40] += 1.5 * f64::from(n);
        let cells = detect(&p, nt, nf, &ArrayFlagConfig::default(), 1.0);
        assert!(!cells[5 * nf + 20]);
        assert!(cells[9 * nf + 40]);
        assert_eq!(cells.iter().filter(|&&c| c).count(), 1);
    }

    #[test]
    fn excess_power_clips_and_skips_flagged_samples() {
        let mut p = ExcessPower::new(3);
        p.add(&[2.0, 10.0, 1.0], &[false, false, true], 5.0);
        assert_eq!(p.sum, vec![3.0, 24.0, 0.0]);
        assert_eq!(p.count, vec![1, 1, 0]);
        let q = p.merge({
            let mut q = ExcessPower::new(3);
            q.add(&[0.0, f32::NAN, 3.0], &[false; 3], 5.0);
            q
        });
        assert_eq!(q.sum, vec![2.0, 24.0, 8.0]);
        assert_eq!(q.count, vec![2, 1, 1]);
    }
}
