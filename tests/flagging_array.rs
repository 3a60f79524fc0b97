//! The flagger at default settings on uncalibrated data from a model written here (not
//! src/simulate): thermal noise, per-antenna gains (amplitude, a bandpass with ripple, a
//! steep delay-like phase ramp across the band), a bright calibrator transiting the beam
//! plus a weaker source (amplitude beats per baseline), over a 768-channel band and 24
//! integrations. RFI families at 2-7 sigma per visibility, with a random phase per baseline
//! (one with the same phase on every baseline): broadband bursts in one integration,
//! intermittent and persistent narrowband channels, a ramp. Recall per family and overall,
//! and false flags on RFI-free data and outside the RFI.

use contimg::config::FlagConfig;
use contimg::core::GroupVis;
use contimg::primitives::astrometry::Site;
use num_complex::{Complex32, Complex64};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use std::f64::consts::{PI, TAU};

const NT: usize = 24;
const NF: usize = 768;
const SIGMA_JY: f64 = 2.3; // per real / imaginary part
const DT_S: f64 = 12.884901888;
const DF_HZ: f64 = 244_140.625;
const F0_HZ: f64 = 1_311.25e6;

/// One RFI event on every baseline: cells (t0..t1, c0..c1), amplitude (Jy) at each time,
/// a per-baseline amplitude factor range and whether the phase is shared by all baselines.
struct Event {
    family: &'static str,
    t: [usize; 2],
    c: [usize; 2],
    amp_jy: Box<dyn Fn(usize) -> f64>,
    per_baseline: [f64; 2],
    coherent: bool,
}

fn events() -> Vec<Event> {
    let ev = |family, t, c, a: f64, per_baseline, coherent| Event {
        family,
        t,
        c,
        amp_jy: Box::new(move |_| a),
        per_baseline,
        coherent,
    };
    vec![
        // Broadband bursts in one integration, 9-11 Jy x U(0.5, 1.5) per baseline (2-7 sigma).
        ev("burst", [5, 6], [120, 535], 10.0, [0.5, 1.5], false),
        ev("burst", [17, 18], [150, 721], 9.0, [0.5, 1.5], false),
        // Intermittent narrowband: 11 Jy (4.8 sigma) over 11-14 integrations.
        ev("intermittent", [2, 15], [60, 61], 11.0, [1.0, 1.0], false),
        ev(
            "intermittent",
            [10, 21],
            [333, 334],
            11.0,
            [1.0, 1.0],
            false,
        ),
        ev("intermittent", [9, 23], [650, 651], 11.0, [1.0, 1.0], false),
        // Persistent channels: 2.6 sigma over two channels, 6.5 sigma over one.
        ev("persistent", [0, NT], [200, 202], 6.0, [1.0, 1.0], false),
        ev("persistent", [0, NT], [480, 481], 15.0, [1.0, 1.0], false),
        // The same phase on every baseline (a correlated source of interference).
        ev("coherent", [8, 14], [600, 604], 7.0, [1.0, 1.0], true),
        // A ramp: 2 -> 7 sigma over the group.
        Event {
            family: "ramp",
            t: [0, NT],
            c: [410, 411],
            amp_jy: Box::new(|t| SIGMA_JY * (2.0 + 5.0 * t as f64 / (NT - 1) as f64)),
            per_baseline: [1.0, 1.0],
            coherent: false,
        },
    ]
}

/// The band of a model: channels, their width, and each antenna's bandpass ripple (peak
/// fraction drawn in `ripple`, period in channels drawn in `period_chan`).
struct Band {
    nf: usize,
    df_hz: f64,
    ripple: [f64; 2],
    period_chan: [f64; 2],
}

/// The telescope's band: 768 channels of 244 kHz, ripples of up to 8 % over 29-98 MHz.
const FULL_BAND: Band = Band {
    nf: NF,
    df_hz: DF_HZ,
    ripple: [0.0, 0.08],
    period_chan: [120.0, 400.0],
};

/// The group and, per (time, channel), the family of the RFI there (None: clean).
fn model_band(
    seed: u64,
    n_ant: usize,
    rfi: bool,
    band: &Band,
) -> (GroupVis, Vec<Option<&'static str>>) {
    let (nf, df_hz) = (band.nf, band.df_hz);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, SIGMA_JY).unwrap();
    let freqs: Vec<f64> = (0..nf).map(|c| F0_HZ + c as f64 * df_hz).collect();
    // Antennas along a T: east-west arm +-1.2 km, north-south arm to 1.6 km.
    let pos: Vec<[f64; 3]> = (0..n_ant)
        .map(|a| {
            if a % 3 == 2 {
                [
                    rng.random_range(-30.0..30.0),
                    rng.random_range(0.0..1600.0),
                    0.0,
                ]
            } else {
                [
                    rng.random_range(-1200.0..1200.0),
                    rng.random_range(-10.0..10.0),
                    0.0,
                ]
            }
        })
        .collect();
    let mut baselines = Vec::new();
    for a in 0..n_ant {
        for b in a + 1..n_ant {
            baselines.push((a, b));
        }
    }
    // Gains per antenna and polarization: amplitude x bandpass (slope, curvature, a ripple),
    // phase offset + delay ramp (|tau| <= 30 ns: up to ~5.6 turns across the band).
    let gains: Vec<Vec<Complex64>> = (0..n_ant * 2)
        .map(|_| {
            let amp = rng.random_range(0.6..1.5);
            let (slope, curve) = (rng.random_range(-0.2..0.2), rng.random_range(-0.3..0.0));
            let (ripple, period, psi) = (
                rng.random_range(band.ripple[0]..band.ripple[1]),
                rng.random_range(band.period_chan[0]..band.period_chan[1]),
                rng.random_range(0.0..TAU),
            );
            let (tau, phi0) = (rng.random_range(-30e-9..30e-9), rng.random_range(0.0..TAU));
            (0..nf)
                .map(|c| {
                    let x = (c as f64 - nf as f64 / 2.0) / (nf as f64 / 2.0);
                    let bp = amp
                        * (1.0
                            + slope * x
                            + curve * x * x
                            + ripple * (TAU * c as f64 / period + psi).sin());
                    Complex64::from_polar(bp, phi0 + TAU * tau * freqs[c])
                })
                .collect()
        })
        .collect();
    // Sources: (flux at 1.4 GHz, spectral index, offset east of the pointing at the group's
    // middle (deg), offset north (deg)); they drift west 15 arcsec/s.
    let sources: [(f64, f64, f64, f64); 2] = [(20.0, -0.7, 0.25, 0.3), (4.0, -0.8, 1.1, -0.6)];
    let mut vis = vec![Complex32::new(0.0, 0.0); baselines.len() * NT * nf * 2];
    let evs = if rfi { events() } else { Vec::new() };
    let mut truth = vec![None; NT * nf];
    for e in &evs {
        for t in e.t[0]..e.t[1] {
            for c in e.c[0]..e.c[1] {
                truth[t * nf + c] = Some(e.family);
            }
        }
    }
    let plane = NT * nf * 2;
    for (b, &(a1, a2)) in baselines.iter().enumerate() {
        let bl = [pos[a2][0] - pos[a1][0], pos[a2][1] - pos[a1][1]];
        // Per event: this baseline's amplitude factor and phase per polarization.
        let draws: Vec<(f64, [f64; 2])> = evs
            .iter()
            .map(|e| {
                (
                    rng.random_range(e.per_baseline[0]..=e.per_baseline[1]),
                    [rng.random_range(0.0..TAU), rng.random_range(0.0..TAU)],
                )
            })
            .collect();
        for t in 0..NT {
            let drift_deg = (t as f64 - (NT as f64 - 1.0) / 2.0) * DT_S * 15.0 / 3600.0;
            for c in 0..nf {
                let f = freqs[c];
                let fwhm = (3.3f64).to_radians() * 1.4e9 / f;
                let mut sky = Complex64::new(0.0, 0.0);
                for &(s0, alpha, east, north) in &sources {
                    let (l, m) = ((east - drift_deg).to_radians(), north.to_radians());
                    let beam = (-4.0 * 2f64.ln() * (l * l + m * m) / (fwhm * fwhm)).exp();
                    let flux = s0 * (f / 1.4e9).powf(alpha) * beam;
                    sky += Complex64::from_polar(
                        flux,
                        -TAU * f / 299_792_458.0 * (bl[0] * l + bl[1] * m),
                    );
                }
                for p in 0..2 {
                    let mut v =
                        sky + Complex64::new(normal.sample(&mut rng), normal.sample(&mut rng));
                    for (e, (k, ph)) in evs.iter().zip(&draws) {
                        if (e.t[0]..e.t[1]).contains(&t) && (e.c[0]..e.c[1]).contains(&c) {
                            let phase = if e.coherent {
                                0.3
                            } else {
                                ph[p] + 0.2 * PI * t as f64
                            };
                            v += Complex64::from_polar((e.amp_jy)(t) * k, phase);
                        }
                    }
                    let g = gains[a1 * 2 + p][c] * gains[a2 * 2 + p][c].conj();
                    let v = g * v;
                    vis[b * plane + (t * nf + c) * 2 + p] =
                        Complex32::new(v.re as f32, v.im as f32);
                }
            }
        }
    }
    let n = vis.len();
    let g = GroupVis {
        times_jd: (0..NT)
            .map(|t| 2_461_113.7 + t as f64 * DT_S / 86400.0)
            .collect(),
        freqs,
        channel_width_hz: df_hz,
        npol: 2,
        baselines,
        ant_pos: pos.iter().map(|p| [p[0], p[1], p[2]]).collect(),
        antenna_names: (1..=n_ant).map(|i| i.to_string()).collect(),
        site: Site::from_geodetic_deg(37.2334, -118.2834, 1188.0),
        pointing_dec_rad: 0.95,
        vis,
        weight: contimg::core::Weights::filled(n, 1.0),
        meta: Default::default(),
    };
    (g, truth)
}

struct Score {
    /// family -> (flagged, total) samples.
    by_family: std::collections::BTreeMap<&'static str, (usize, usize)>,
    false_flags: usize,
    clean: usize,
}

impl Score {
    fn recall(&self, family: &str) -> f64 {
        let (f, n) = self.by_family[family];
        f as f64 / n as f64
    }
    fn overall(&self) -> f64 {
        let (f, n) = self
            .by_family
            .values()
            .fold((0, 0), |(a, b), (f, n)| (a + f, b + n));
        f as f64 / n as f64
    }
    fn false_rate(&self) -> f64 {
        self.false_flags as f64 / self.clean as f64
    }
}

fn score(g: &GroupVis, truth: &[Option<&'static str>]) -> Score {
    let mut s = Score {
        by_family: Default::default(),
        false_flags: 0,
        clean: 0,
    };
    for b in 0..g.baselines.len() {
        for t in 0..NT {
            for c in 0..g.n_chan() {
                for p in 0..2 {
                    let flagged = g.weight[g.index(b, t, c, p)] == contimg::core::FLAGGED;
                    match truth[t * g.n_chan() + c] {
                        Some(fam) => {
                            let e = s.by_family.entry(fam).or_insert((0, 0));
                            e.0 += flagged as usize;
                            e.1 += 1;
                        }
                        None => {
                            s.false_flags += flagged as usize;
                            s.clean += 1;
                        }
                    }
                }
            }
        }
    }
    s
}

fn flag(seed: u64, n_ant: usize, rfi: bool, cfg: &FlagConfig) -> Score {
    flag_band(seed, n_ant, rfi, cfg, &FULL_BAND)
}

fn flag_band(seed: u64, n_ant: usize, rfi: bool, cfg: &FlagConfig, band: &Band) -> Score {
    let (mut g, truth) = model_band(seed, n_ant, rfi, band);
    let summary = contimg::flag::run(&mut g, cfg);
    let s = score(&g, &truth);
    let fams: Vec<String> = s
        .by_family
        .keys()
        .map(|k| format!("{k} {:.4}", s.recall(k)))
        .collect();
    println!(
        "seed {seed}, {n_ant} antennas, {} channels, rfi {rfi}: recall {} ({}), false-flag rate {:.5}; by step {:?}",
        g.n_chan(),
        if rfi { format!("{:.4}", s.overall()) } else { "-".into() },
        fams.join(", "),
        s.false_rate(),
        summary.by_step
    );
    s
}

/// Measured (2026-12-02): recall 1.000 in every family, 0.13 % false flags (from the
/// per-baseline passes' last iteration).
#[test]
fn array_pass_finds_weak_rfi_of_every_family_at_default_settings() {
    let s = flag(3, 24, true, &FlagConfig::default());
    for fam in ["burst", "intermittent", "persistent", "coherent", "ramp"] {
        assert!(s.recall(fam) >= 0.98, "{fam}: recall {}", s.recall(fam));
    }
    assert!(s.overall() >= 0.98, "overall recall {}", s.overall());
    assert!(
        s.false_rate() <= 0.002,
        "false flags outside the RFI {}",
        s.false_rate()
    );
}

/// Measured (2026-12-02): 0.090 % and 0.121 %, all from the per-baseline passes.
#[test]
fn array_pass_leaves_clean_uncalibrated_data_alone() {
    for seed in [4, 5] {
        let s = flag(seed, 24, false, &FlagConfig::default());
        assert!(
            s.false_rate() <= 0.002,
            "seed {seed}: false-flag rate {}",
            s.false_rate()
        );
    }
}

#[test]
fn without_the_array_pass_weak_rfi_is_missed() {
    // The per-baseline passes alone: what the array pass adds (measured 0.817).
    let mut cfg = FlagConfig::default();
    cfg.array.enabled = false;
    let s = flag(3, 24, true, &cfg);
    assert!(s.overall() < 0.9, "overall recall {}", s.overall());
}

/// A coarse band with a fast, strong ripple: 24 channels of 1.95 MHz (4 subbands x 6
/// channels, as contimg's small simulated nights have), each antenna's bandpass rippling by
/// 8-12 % with a period of 8-24 channels, delay ramps, the calibrator transiting; no RFI.
const COARSE_RIPPLE: Band = Band {
    nf: 24,
    df_hz: 1_953_125.0,
    ripple: [0.08, 0.12],
    period_chan: [8.0, 24.0],
};

#[test]
fn defaults_leave_a_fast_strong_ripple_on_coarse_channels_alone() {
    // Measured (2026-12-02), seeds 6 / 7: 0.071 % / 0.039 %, all from the per-baseline
    // passes. The array pass judges residuals about each baseline's own smooth background,
    // which follows the ripple; the level-based pass it replaced flagged 22 % of these data.
    for seed in [6, 7] {
        let s = flag_band(seed, 24, false, &FlagConfig::default(), &COARSE_RIPPLE);
        assert!(
            s.false_rate() <= 0.002,
            "seed {seed}: false-flag rate {}",
            s.false_rate()
        );
    }
}
