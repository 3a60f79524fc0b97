//! Corruptions of a synthetic night: per-antenna complex gains with a smooth bandpass, and
//! RFI events (persistent narrowband, intermittent, broadband bursts) with their true mask.

use super::settings::{SimGains, SimRfi};
use num_complex::Complex64;
use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// gains[ant][chan][pol] over all 117 antenna numbers, channels ascending.
pub struct GainTable {
    pub n_ant: usize,
    pub n_chan: usize,
    pub g: Vec<Complex64>,
}

impl GainTable {
    pub fn unit(n_ant: usize, n_chan: usize) -> Self {
        GainTable {
            n_ant,
            n_chan,
            g: vec![Complex64::new(1.0, 0.0); n_ant * n_chan * 2],
        }
    }

    #[inline]
    pub fn get(&self, ant: usize, chan: usize, pol: usize) -> Complex64 {
        self.g[(ant * self.n_chan + chan) * 2 + pol]
    }

    /// Random gains: amplitude and phase per antenna and polarization, times a smooth
    /// bandpass ripple over the channels (`freqs` ascending).
    pub fn random(cfg: &SimGains, n_ant: usize, freqs: &[f64], rng: &mut impl Rng) -> Self {
        if !cfg.enabled {
            return Self::unit(n_ant, freqs.len());
        }
        let n_chan = freqs.len();
        let mut g = Vec::with_capacity(n_ant * n_chan * 2);
        let normal = Normal::new(0.0, 1.0).expect("unit normal");
        let (f0, f1) = (freqs[0], freqs[n_chan - 1].max(freqs[0] + 1.0));
        let mut per_ant = Vec::with_capacity(n_ant);
        for _ in 0..n_ant {
            let mut pols = [(0.0, 0.0, 0.0, 0.0, 0.0, 0.0); 2];
            for p in pols.iter_mut() {
                let amp =
                    cfg.amplitude * (1.0 + cfg.amplitude_scatter * normal.sample(rng)).max(0.2);
                let phase = (cfg.phase_scatter_deg * normal.sample(rng)).to_radians();
                let ripples = rng.random_range(1.0..3.0);
                let ph0 = rng.random_range(0.0..std::f64::consts::TAU);
                let slope = cfg.bandpass_phase_deg.to_radians() * normal.sample(rng);
                let ph1 = rng.random_range(0.0..std::f64::consts::TAU);
                *p = (amp, phase, ripples, ph0, slope, ph1);
            }
            per_ant.push(pols);
        }
        for pols in &per_ant {
            for &f in freqs {
                let x = (f - f0) / (f1 - f0);
                for &(amp, phase, ripples, ph0, slope, ph1) in pols {
                    let a = amp
                        * (1.0
                            + cfg.bandpass_amplitude
                                * (std::f64::consts::TAU * ripples * x + ph0).sin());
                    let p = phase
                        + slope * (x - 0.5)
                        + 0.5
                            * cfg.bandpass_phase_deg.to_radians()
                            * (std::f64::consts::TAU * x + ph1).sin();
                    g.push(Complex64::from_polar(a, p));
                }
            }
        }
        GainTable { n_ant, n_chan, g }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RfiKind {
    Narrowband,
    Intermittent,
    Burst,
    /// A weak narrowband signal whose amplitude ramps up linearly over the group.
    Ramp,
}

/// One RFI event of a group: a rectangle in (time, ascending channel).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RfiEvent {
    pub kind: RfiKind,
    pub times: [usize; 2],
    pub channels: [usize; 2],
    /// Amplitude in units of the per-visibility thermal noise sigma.
    pub amplitude_sigma: f64,
}

impl RfiEvent {
    pub fn covers(&self, t: usize, c: usize) -> bool {
        (self.times[0]..self.times[1]).contains(&t)
            && (self.channels[0]..self.channels[1]).contains(&c)
    }

    /// Amplitude (noise sigmas) at (t, c): 0 outside the event.
    pub fn amplitude_at(&self, t: usize, c: usize) -> f64 {
        if !self.covers(t, c) {
            return 0.0;
        }
        match self.kind {
            RfiKind::Ramp => {
                self.amplitude_sigma * (t + 1 - self.times[0]) as f64
                    / (self.times[1] - self.times[0]) as f64
            }
            _ => self.amplitude_sigma,
        }
    }
}

/// Draws a group's RFI events.
pub fn random_rfi(
    cfg: &SimRfi,
    n_times: usize,
    n_chan: usize,
    rng: &mut impl Rng,
) -> Vec<RfiEvent> {
    if !cfg.enabled {
        return Vec::new();
    }
    let mut ev = Vec::new();
    let amp = |rng: &mut dyn rand::RngCore| {
        let (lo, hi) = (
            cfg.amplitude_sigma[0].max(1e-3),
            cfg.amplitude_sigma[1].max(cfg.amplitude_sigma[0] + 1e-3),
        );
        (lo.ln() + (hi.ln() - lo.ln()) * rng.random::<f64>()).exp()
    };
    for _ in 0..cfg.n_narrowband {
        let c = rng.random_range(0..n_chan);
        let w = rng.random_range(1..=2usize).min(n_chan - c);
        ev.push(RfiEvent {
            kind: RfiKind::Narrowband,
            times: [0, n_times],
            channels: [c, c + w],
            amplitude_sigma: amp(rng),
        });
    }
    for _ in 0..cfg.n_intermittent {
        let c = rng.random_range(0..n_chan);
        let len = rng.random_range(1..=(n_times / 4).max(1));
        let t = rng.random_range(0..=(n_times - len));
        ev.push(RfiEvent {
            kind: RfiKind::Intermittent,
            times: [t, t + len],
            channels: [c, c + 1],
            amplitude_sigma: amp(rng),
        });
    }
    for _ in 0..cfg.n_ramps {
        let c = rng.random_range(0..n_chan);
        ev.push(RfiEvent {
            kind: RfiKind::Ramp,
            times: [0, n_times],
            channels: [c, c + 1],
            amplitude_sigma: amp(rng),
        });
    }
    for _ in 0..cfg.n_bursts {
        let t = rng.random_range(0..n_times);
        ev.push(RfiEvent {
            kind: RfiKind::Burst,
            times: [t, t + 1],
            channels: [0, n_chan],
            amplitude_sigma: amp(rng),
        });
    }
    ev
}

/// Total RFI amplitude (sigma units) at (t, c): events add.
pub fn rfi_amplitude(events: &[RfiEvent], t: usize, c: usize) -> f64 {
    events.iter().map(|e| e.amplitude_at(t, c)).sum()
}
