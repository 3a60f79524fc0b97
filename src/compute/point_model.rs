//! Point sources' model visibilities on a group from per-integration tables (the tables of
//! calibrate::model::ModelPredictor, flattened): what a backend needs to predict them
//! itself (the calibration statistics, the outliers' refit), and the row prediction the
//! CPU shares with the predictor.
//!
//! Source s on baseline (a, b) at integration t, channel c is
//! `amp[(t * ns + s) * nc + c] * sinc(pi (smear_b - smear_a)) * exp(2 pi i freqs[c] (delay_b - delay_a))`
//! with `delay` and `smear` indexed `(t * n_ant + antenna) * ns + s` (seconds, cycles).

use num_complex::Complex64;

/// Channels between exact fringes in [`source_row`].
pub const ROW_BLOCK: usize = 64;

/// The tables (see the module's head).
#[derive(Clone, Copy)]
pub struct PointModel<'a> {
    pub ns: usize,
    pub n_ant: usize,
    pub amp: &'a [f64],
    pub delay: &'a [f64],
    pub smear: &'a [f64],
    pub freqs: &'a [f64],
}

impl PointModel<'_> {
    /// Source s's bandwidth smearing and delay (s) on baseline (a, b) at integration t.
    #[inline]
    pub fn smearing_and_delay(&self, s: usize, a: usize, b: usize, t: usize) -> (f64, f64) {
        let ia = (t * self.n_ant + a) * self.ns + s;
        let ib = (t * self.n_ant + b) * self.ns + s;
        (
            smearing(self.smear[ib] - self.smear[ia]),
            self.delay[ib] - self.delay[ia],
        )
    }

    /// The sum over sources of the model of baseline (a, b) at integration t, every
    /// channel, into `out` (`step`: `equal_step` of the channels).
    pub fn row_sum(&self, a: usize, b: usize, t: usize, step: Option<f64>, out: &mut [Complex64]) {
        let nc = self.freqs.len();
        out.iter_mut().for_each(|o| *o = Complex64::new(0.0, 0.0));
        for s in 0..self.ns {
            let (sm, tau) = self.smearing_and_delay(s, a, b, t);
            let amp = &self.amp[(t * self.ns + s) * nc..(t * self.ns + s + 1) * nc];
            source_row(amp, self.freqs, step, tau, sm, |c, v| out[c] += v);
        }
    }
}

/// sin(pi x) / (pi x): the bandwidth smearing of a source whose delay across the baseline
/// is `x` cycles of the channel width.
#[inline]
pub fn smearing(x_cycles: f64) -> f64 {
    let x = std::f64::consts::PI * x_cycles;
    if x.abs() < 1e-4 {
        1.0 - x * x / 6.0
    } else {
        x.sin() / x
    }
}

/// The channels' common spacing (Hz) where they are equally spaced.
pub fn equal_step(freqs: &[f64]) -> Option<f64> {
    if freqs.len() < 2 {
        return None;
    }
    let step = freqs[1] - freqs[0];
    freqs
        .windows(2)
        .all(|w| ((w[1] - w[0]) - step).abs() <= 1e-9 * w[1].abs())
        .then_some(step)
}

/// One source's row, `amp[c] * scale * exp(2 pi i freqs[c] tau)` for every channel, handed
/// to `put(c, value)`. Where the channels are equally spaced (`step`), the fringe is an
/// exact phasor every ROW_BLOCK channels times a power of the one-channel step (the powers
/// made once a row by repeated multiplication: ~1e-14 of the amplitude); elsewhere a sine
/// and cosine a channel.
pub fn source_row(
    amp: &[f64],
    freqs: &[f64],
    step: Option<f64>,
    tau: f64,
    scale: f64,
    mut put: impl FnMut(usize, Complex64),
) {
    let fringe = |nu: f64| Complex64::from_polar(1.0, std::f64::consts::TAU * nu * tau);
    let Some(step) = step else {
        for (c, (&x, &nu)) in amp.iter().zip(freqs).enumerate() {
            put(c, (x * scale) * fringe(nu));
        }
        return;
    };
    let mut pow = [Complex64::new(1.0, 0.0); ROW_BLOCK];
    let z = fringe(step);
    for j in 1..ROW_BLOCK {
        pow[j] = pow[j - 1] * z;
    }
    for (c0, ab) in amp.chunks(ROW_BLOCK).enumerate() {
        let anchor = fringe(freqs[c0 * ROW_BLOCK]) * scale;
        for (j, (&x, p)) in ab.iter().zip(&pow).enumerate() {
            put(c0 * ROW_BLOCK + j, x * (anchor * p));
        }
    }
}
