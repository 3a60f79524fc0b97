//! The solve's degradation, delays and per-antenna QA on sums built directly from an
//! independent model, V_ab = g_a conj(g_b) M_ab + noise, with gains of our own (bandpass
//! ripple, phases, delays; amplitudes in correlation-coefficient units ~0.013), not through
//! src/simulate.

use super::settings::{CalConfig, DelayMode};
use super::solve::{CellStats, FlagReason};
use super::table::CalTable;
use super::*;
use num_complex::Complex64;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

const N_ANT: usize = 24;
const N_CHAN: usize = 64;
const N_T: usize = 24;

struct Truth {
    freq: Vec<f64>,
    /// (ant, chan, pol) full gains.
    g: Vec<Complex64>,
    baselines: Vec<(usize, usize)>,
}

fn truth(seed: u64, delays_ns: &[(usize, usize, f64)], amp_scale: &[(usize, f64)]) -> Truth {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    // 64 channels over DSA-110's 187.5 MHz band.
    let freq: Vec<f64> = (0..N_CHAN)
        .map(|c| 1.3115e9 + c as f64 * 187.5e6 / N_CHAN as f64)
        .collect();
    let f_ref = delay::reference_hz(&freq);
    let mut g = vec![Complex64::new(0.0, 0.0); N_ANT * N_CHAN * 2];
    for a in 0..N_ANT {
        for p in 0..2 {
            let amp = 0.013
                * rng.random_range(0.8..1.2)
                * amp_scale.iter().find(|x| x.0 == a).map_or(1.0, |x| x.1);
            let ph0: f64 = rng.random_range(-3.0..3.0);
            // Every antenna has a small delay (< 0.05 ns, < 3.4 deg across the band: below
            // what `auto` keeps) unless given one.
            let tau = delays_ns
                .iter()
                .find(|d| d.0 == a && d.1 == p)
                .map_or(rng.random_range(-0.05..0.05), |d| d.2);
            for c in 0..N_CHAN {
                // x from -0.5 to 0.5 over the band, symmetric about its centre: the smooth
                // bandpass phase is even in x, so it has no linear part (no delay) of its own.
                let x = (c as f64 - 0.5 * (N_CHAN - 1) as f64) / N_CHAN as f64;
                let ripple = 1.0 + 0.05 * (6.0 * x + a as f64).sin();
                let smooth_phase =
                    ph0 + 0.3 * (1.0 + 0.02 * a as f64) * (std::f64::consts::TAU * x).cos();
                g[(a * N_CHAN + c) * 2 + p] = Complex64::from_polar(amp * ripple, smooth_phase)
                    * delay::phasor(freq[c], f_ref, tau);
            }
        }
    }
    let mut baselines = Vec::new();
    for a in 0..N_ANT {
        for b in a + 1..N_ANT {
            baselines.push((a, b));
        }
    }
    Truth { freq, g, baselines }
}

/// `corrupt(c, p, k, t, v, rng)`: a sample of channel c, pol p, baseline k, time t, maybe
/// replaced.
type Corrupt<'a> =
    dyn Fn(usize, usize, usize, usize, Complex64, &mut rand_chacha::ChaCha8Rng) -> Complex64 + 'a;

/// The reduced bandpass cells: per (channel, pol), N_T samples per baseline of a point
/// source whose phase turns with baseline and time (model M known), plus complex noise of
/// `sigma` per component in the data's units; `corrupt(c, p, k, t, v)` may replace a
/// sample.
fn cells(tr: &Truth, sigma: f64, seed: u64, corrupt: &Corrupt) -> Vec<CellStats> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = Normal::new(0.0, sigma).unwrap();
    let mut out = vec![CellStats::new(tr.baselines.len()); N_CHAN * 2];
    for c in 0..N_CHAN {
        for p in 0..2 {
            for (k, &(a, b)) in tr.baselines.iter().enumerate() {
                for t in 0..N_T {
                    let m =
                        Complex64::from_polar(1.0, 0.37 * (k as f64) + 0.05 * (t * (a + 1)) as f64);
                    let v =
                        tr.g[(a * N_CHAN + c) * 2 + p] * tr.g[(b * N_CHAN + c) * 2 + p].conj() * m
                            + Complex64::new(n.sample(&mut rng), n.sample(&mut rng));
                    let v = corrupt(c, p, k, t, v, &mut rng);
                    out[c * 2 + p].add(k, 1.0, v, m);
                }
            }
        }
    }
    out
}

fn clean(
    _: usize,
    _: usize,
    _: usize,
    _: usize,
    v: Complex64,
    _: &mut rand_chacha::ChaCha8Rng,
) -> Complex64 {
    v
}

fn table_of(tr: &Truth, bp: &Bandpass) -> CalTable {
    CalTable {
        gains: bp.gains.clone(),
        flags: bp.flags.clone(),
        snr: bp.snr.clone(),
        antenna_names: (1..=N_ANT as u32).collect(),
        time_jd: vec![2_461_000.5],
        freq_hz: tr.freq.clone(),
        refant: 1,
        calibrator: "test".into(),
        provenance: "{}".into(),
        reasons: bp.reasons.clone(),
        delay_ns: bp.delay_ns.clone(),
        delay_ref_hz: bp.delay_ref_hz,
        solve_info: String::new(),
    }
}

/// Solve + QA; returns the table, the QA and the median and worst relative error of the
/// unflagged full gains against the truth referenced to antenna 0.
fn solve(tr: &Truth, cells: &[CellStats], cfg: &CalConfig) -> (CalTable, CalQa, f64, f64) {
    let mut bp = solve_bandpass(cells, &tr.baselines, N_ANT, &tr.freq, &[0], cfg);
    for d in bp.delays.iter_mut() {
        d.station += 1;
    }
    let mut t = table_of(tr, &bp);
    let q = qa::assess(&mut t, cfg.min_snr, bp.summary.clone(), bp.delays.clone());
    let mut errs = Vec::new();
    for a in 0..N_ANT {
        for c in 0..N_CHAN {
            for p in 0..2 {
                if t.flags[t.index(0, a, c, p)] {
                    continue;
                }
                let gr = tr.g[c * 2 + p];
                let want = tr.g[(a * N_CHAN + c) * 2 + p] * gr.conj() / gr.norm();
                errs.push((t.full_gain(0, a, c, p) - want).norm() / want.norm());
            }
        }
    }
    errs.sort_by(f64::total_cmp);
    let med = errs.get(errs.len() / 2).copied().unwrap_or(f64::NAN);
    let worst = errs.last().copied().unwrap_or(f64::NAN);
    (t, q, med, worst)
}

fn valid(q: &CalQa) -> bool {
    q.gates.iter().all(|g| g.1 != "fail")
}

#[test]
fn a_garbage_cell_is_flagged_with_its_reason_and_the_rest_solved() {
    let tr = truth(1, &[], &[]);
    // Per-visibility SNR ~10 (sigma 1.7e-5 per component against |V| ~1.7e-4).
    let sigma = 1.7e-5;
    // Channel 20 pol 0: pure RFI-like garbage 30x the signal, no calibrator in it; channel
    // 41 pol 1: NaN on one baseline's samples (non-finite sums); channel 50 pol 0: no data.
    let cs = cells(&tr, sigma, 2, &|c, p, k, _t, v, rng| {
        if c == 20 && p == 0 {
            Complex64::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)) * 5e-3
        } else if c == 41 && p == 1 && k == 7 {
            Complex64::new(f64::NAN, 0.0)
        } else {
            v
        }
    });
    let mut cs = cs;
    cs[50 * 2] = CellStats::new(tr.baselines.len());
    let cfg = CalConfig::default();
    let (t, q, med, worst) = solve(&tr, &cs, &cfg);
    println!(
        "median relative error {med:.2e}, worst {worst:.2e}; cells {:?}; solutions {:?}",
        q.solve.cell_reasons, q.solve.solution_reasons
    );
    let reason = |c: usize, p: usize| FlagReason::from_code(t.reasons[t.index(0, 3, c, p)]);
    assert!(
        matches!(reason(20, 0), FlagReason::LowSnr | FlagReason::NotConverged),
        "{:?}",
        reason(20, 0)
    );
    assert!((0..N_ANT).all(|a| t.flags[t.index(0, a, 20, 0)]));
    assert_eq!(reason(50, 0), FlagReason::NoData);
    // The NaN baseline is left out; its cell is solved.
    assert!(!t.flags[t.index(0, 3, 41, 1)]);
    assert_eq!(
        q.solve.cell_reasons.values().sum::<usize>(),
        2,
        "{:?}",
        q.solve.cell_reasons
    );
    assert!(q.solve.rejected_baselines >= 1);
    // Everything else solved, to the noise: the expected relative error per solution is
    // ~ sigma sqrt(2) / (|V| sqrt(N_T (N_ANT - 1))) ~ 6.0e-3 (measured median 5.98e-3,
    // worst 2.5e-2).
    let flagged = t.flags.iter().filter(|&&f| f).count();
    assert_eq!(flagged, 2 * N_ANT, "only the two bad cells are flagged");
    assert!(med < 8e-3 && worst < 5e-2, "median {med}, worst {worst}");
    assert!(valid(&q), "{:?}", q.gates);
}

#[test]
fn one_rfi_baseline_does_not_ruin_its_cell() {
    let tr = truth(3, &[], &[]);
    let sigma = 1.7e-5;
    // Baseline 5 (antennas 0-6) in channel 10 pol 0 carries RFI 20x the signal.
    let cs = cells(&tr, sigma, 4, &|c, p, k, t, v, _| {
        if c == 10 && p == 0 && k == 5 {
            v + Complex64::from_polar(3.4e-3, 0.3 * t as f64)
        } else {
            v
        }
    });
    let (t, q, _, _) = solve(&tr, &cs, &CalConfig::default());
    let err = |cfg_t: &CalTable| -> f64 {
        (0..N_ANT)
            .map(|a| {
                let gr = tr.g[10 * 2];
                let want = tr.g[(a * N_CHAN + 10) * 2] * gr.conj() / gr.norm();
                (cfg_t.full_gain(0, a, 10, 0) - want).norm() / want.norm()
            })
            .fold(0.0, f64::max)
    };
    let robust = err(&t);
    let cfg_off = CalConfig {
        outlier_sigma: 0.0,
        ..CalConfig::default()
    };
    let (t_off, _, _, _) = solve(&tr, &cs, &cfg_off);
    let plain = err(&t_off);
    println!("channel 10 worst gain error: robust {robust:.2e}, without the robust step {plain:.2e}; rejected {}", q.solve.rejected_baselines);
    assert!(q.solve.rejected_baselines >= 1);
    // Measured: robust 1.46e-2 (the noise: the worst of 24 antennas at ~5e-3 each),
    // without the robust step 4.25e-2.
    assert!(robust < 0.025, "{robust}");
    assert!(
        plain > 2.0 * robust,
        "the robust step made no difference: {plain} vs {robust}"
    );
}

#[test]
fn a_250_degree_phase_ramp_is_solved_as_a_delay() {
    // Antenna 5 pol 0: 250 deg across the band -> 3.79 ns; antenna 9 pol 1: -40 ns.
    let wind = 250.0 / 360.0 / (187.5e6 * 63.0 / 64.0) * 1e9;
    // The reference antenna's own (small) delays, given so that the truth is known.
    let truth_delays = [0.031, -0.022];
    let tr = truth(
        5,
        &[
            (5, 0, wind),
            (9, 1, -40.0),
            (0, 0, truth_delays[0]),
            (0, 1, truth_delays[1]),
        ],
        &[],
    );
    let sigma = 1.7e-5;
    let cs = cells(&tr, sigma, 6, &clean);
    let (t, q, med, _) = solve(&tr, &cs, &CalConfig::default());
    // Delays relative to the reference antenna 0.
    let d = |a: usize| q.delays.iter().find(|d| d.station == a as u32 + 1).unwrap();
    let truth_tau = |_a: usize, p: usize| -> f64 { [wind, -40.0][p] - truth_delays[p] };
    for (a, p) in [(5usize, 0usize), (9, 1)] {
        let got = d(a);
        println!(
            "antenna {a} pol {p}: delay {:.4} +- {:.4} ns (kept {}), truth {:.4} ns",
            got.delay_ns[p],
            got.err_ns[p],
            got.kept[p],
            truth_tau(a, p)
        );
        assert!(got.kept[p]);
        // Measured: 3.7274 +- 0.0079 vs 3.7315 ns, -39.9767 +- 0.0144 vs -39.9780 ns.
        assert!(
            (got.delay_ns[p] - truth_tau(a, p)).abs() < 0.03,
            "antenna {a}: {} vs {}",
            got.delay_ns[p],
            truth_tau(a, p)
        );
        assert_eq!(t.delay(a, p), got.delay_ns[p]);
    }
    // Small delays (< 0.1 ns) are not kept under auto.
    assert!(
        q.delays
            .iter()
            .filter(|d| d.station != 6 && d.station != 10)
            .all(|d| !d.kept[0] && !d.kept[1]),
        "{:?}",
        q.delays
    );
    // No QA failure, no antenna flagged, the residual bandpass phase smooth.
    assert!(
        valid(&q) && q.flagged_antennas.is_empty(),
        "{:?} {:?}",
        q.gates,
        q.flagged_antennas
    );
    let ph: Vec<f64> = (0..N_CHAN)
        .map(|c| t.gains[t.index(0, 5, c, 0)].arg())
        .collect();
    let jumps = ph
        .windows(2)
        .map(|w| {
            (Complex64::from_polar(1.0, w[1] - w[0]))
                .arg()
                .abs()
                .to_degrees()
        })
        .fold(0.0, f64::max);
    println!("antenna 5 residual bandpass: largest channel-to-channel phase step {jumps:.2} deg; QA phase scatter {:.2} deg; median gain error {med:.2e}", q.antennas[5].4);
    assert!(jumps < 5.0, "{jumps}");
    assert!(q.antennas[5].4 < 5.0);
    assert!(med < 7e-3);
    // With delays off the gains are the same and the QA still removes the slope itself.
    let (t_off, q_off, med_off, _) = solve(
        &tr,
        &cs,
        &CalConfig {
            delay: DelayMode::Off,
            ..CalConfig::default()
        },
    );
    assert!(t_off.delay_ns.iter().all(|&x| x == 0.0) && q_off.delays.is_empty());
    assert!(
        valid(&q_off) && q_off.flagged_antennas.is_empty(),
        "{:?}",
        q_off.gates
    );
    assert!(
        (med_off - med).abs() < 1e-3 * med.max(1e-9) + 1e-9,
        "{med_off} vs {med}"
    );
}

#[test]
fn noisy_cells_converge_or_are_flagged_individually_at_the_defaults() {
    // Per-visibility SNR ~0.5: every cell is noise-dominated (antenna SNR ~ 0.5 sqrt(23 x 24)
    // ~ 12), and channel 30 is 20x noisier (antenna SNR < 1).
    let tr = truth(7, &[], &[]);
    let sigma = 3.4e-4;
    let cs = cells(&tr, sigma, 8, &|c, _p, _k, _t, v, rng| {
        if c == 30 {
            v + Complex64::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)) * 1.2e-2
        } else {
            v
        }
    });
    let cfg = CalConfig::default();
    let (t, q, med, _) = solve(&tr, &cs, &cfg);
    println!(
        "noisy: iterations median {} max {}; cells {:?}; median error {med:.3}",
        q.solve.iterations_median, q.solve.iterations_max, q.solve.cell_reasons
    );
    assert!(
        !q.solve.cell_reasons.contains_key("not_converged"),
        "{:?}",
        q.solve.cell_reasons
    );
    // The noise-tied stop: far fewer iterations than the 1e-10 floor would need.
    assert!(
        q.solve.iterations_median < 60,
        "{}",
        q.solve.iterations_median
    );
    // Channel 30 flagged (low SNR), the others solved to their noise: expected relative
    // error ~ sigma sqrt(2)/(|V| sqrt(N_T (N_ANT-1))) ~ 0.12 (measured median 0.09).
    assert!((0..N_ANT).all(|a| t.flags[t.index(0, a, 30, 0)] && t.flags[t.index(0, a, 30, 1)]));
    assert!(med < 0.15, "{med}");
    assert!(valid(&q), "{:?}", q.gates);
}

#[test]
fn dead_and_weak_antennas_are_flagged_not_the_table() {
    // Antenna 3 carries no signal (noise only); antenna 7 is 30x weaker than the rest.
    let tr = truth(9, &[], &[(7, 1.0 / 30.0)]);
    let sigma = 1.0e-5;
    let cs = cells(&tr, sigma, 10, &|_c, _p, k, _t, v, rng| {
        let (a, b) = tr.baselines[k];
        if a == 3 || b == 3 {
            Complex64::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)) * 1.7e-5
        } else {
            v
        }
    });
    let (t, q, med, _) = solve(&tr, &cs, &CalConfig::default());
    println!(
        "flagged antennas: {:?}; median error of the rest {med:.2e}",
        q.flagged_antennas
    );
    for p in 0..2 {
        let f3 = q
            .flagged_antennas
            .iter()
            .find(|f| f.station == 4 && f.pol == p)
            .expect("antenna 3 flagged");
        assert!(
            f3.reason == "antenna_snr" || f3.reason == "low_snr",
            "{f3:?}"
        );
        let f7 = q
            .flagged_antennas
            .iter()
            .find(|f| f.station == 8 && f.pol == p)
            .expect("antenna 7 flagged");
        assert_eq!(f7.reason, "antenna_amplitude");
        assert!(f7.value < 0.1);
        assert!((0..N_CHAN).all(|c| t.flags[t.index(0, 7, c, p)]
            && t.reasons[t.index(0, 7, c, p)] == FlagReason::AntennaAmplitude as u8));
    }
    assert_eq!(q.flagged_antennas.len(), 4, "{:?}", q.flagged_antennas);
    assert_eq!(q.good_antennas, N_ANT - 2);
    assert!(valid(&q), "{:?}", q.gates);
    assert!(med < 5e-3, "{med}");
    // Too few good antennas left: the table fails.
    let tr2 = truth(9, &[], &[]);
    let cs2 = cells(&tr2, 1e-5, 12, &|_c, _p, k, _t, v, rng| {
        if tr2.baselines[k].0 >= 5 && tr2.baselines[k].0 < 20
            || tr2.baselines[k].1 >= 5 && tr2.baselines[k].1 < 20
        {
            Complex64::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)) * 1.7e-5
        } else {
            v
        }
    });
    let (_, q2, _, _) = solve(&tr2, &cs2, &CalConfig::default());
    assert!(!valid(&q2), "{:?}", q2.gates);
}

#[test]
fn table_round_trip_with_delays_and_old_tables_read() {
    let tr = truth(13, &[(4, 0, 7.5)], &[]);
    let cs = cells(&tr, 1.7e-5, 14, &clean);
    let mut bp = solve_bandpass(
        &cs,
        &tr.baselines,
        N_ANT,
        &tr.freq,
        &[0],
        &CalConfig::default(),
    );
    bp.delays.iter_mut().for_each(|d| d.station += 1);
    let mut t = table_of(&tr, &bp);
    let q = qa::assess(&mut t, 3.0, bp.summary.clone(), bp.delays.clone());
    t.solve_info = serde_json::to_string(&q).unwrap();
    assert!(t.delay(4, 0).abs() > 1.0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.h5");
    t.write(&path).unwrap();
    let back = CalTable::read(&path).unwrap();
    assert_eq!(back, t);
    let q_back = super::qa(&back, "t");
    for (x, y) in q_back.delays.iter().zip(&q.delays) {
        assert!(
            x.station == y.station
                && x.kept == y.kept
                && (0..2).all(|p| (x.delay_ns[p] - y.delay_ns[p]).abs() < 1e-12)
        );
    }
    assert_eq!(q_back.gates, q.gates);
    // An old table: the new datasets removed.
    {
        let f = hdf5::File::open_rw(&path).unwrap();
        for n in ["flag_reason", "delay_ns", "delay_ref_hz", "solve_info"] {
            f.unlink(n).unwrap();
        }
    }
    let old = CalTable::read(&path).unwrap();
    assert!(old.delay_ns.iter().all(|&x| x == 0.0) && old.delay_ns.len() == 2 * N_ANT);
    assert!(old.solve_info.is_empty());
    assert!(old
        .flags
        .iter()
        .zip(&old.reasons)
        .all(|(&f, &r)| (r == 255) == f));
    // Its QA is assessed afresh (the old gains are the delay-removed bandpass here).
    let q_old = super::qa(&old, "old");
    assert!(valid(&q_old), "{:?}", q_old.gates);
    // Full gains: the delay folded in.
    let c = 40;
    let want =
        t.gains[t.index(0, 4, c, 0)] * delay::phasor(t.freq_hz[c], t.delay_ref_hz, t.delay(4, 0));
    assert!((t.full_gain(0, 4, c, 0) - want).norm() < 1e-15);
}

#[test]
fn a_cell_with_rfi_on_every_baseline_is_flagged_high_residual() {
    let tr = truth(15, &[], &[]);
    let sigma = 1.7e-5;
    // Channel 33, both pols: RFI through the antennas, g_a conj(g_b) x 4 sigma x a random
    // phase per baseline and sample, on every baseline: the cell still solves with a fine
    // SNR, but its residual stands out from its neighbours'.
    let cs = cells(&tr, sigma, 16, &|c, p, k, _t, v, rng| {
        if c == 33 {
            let (a, b) = tr.baselines[k];
            v + tr.g[(a * N_CHAN + c) * 2 + p] * tr.g[(b * N_CHAN + c) * 2 + p].conj()
                / (0.013 * 0.013)
                * Complex64::from_polar(
                    4.0 * sigma,
                    rng.random_range(-std::f64::consts::PI..std::f64::consts::PI),
                )
        } else {
            v
        }
    });
    let (t, q, med, worst) = solve(&tr, &cs, &CalConfig::default());
    println!(
        "cells {:?}; median error {med:.2e}, worst {worst:.2e}",
        q.solve.cell_reasons
    );
    assert_eq!(
        q.solve.cell_reasons.get("high_residual"),
        Some(&2),
        "{:?}",
        q.solve.cell_reasons
    );
    assert!((0..N_ANT).all(|a| t.reasons[t.index(0, a, 33, 0)] == FlagReason::HighResidual as u8));
    assert_eq!(
        t.flags.iter().filter(|&&f| f).count(),
        2 * N_ANT,
        "no other cell flagged"
    );
    assert!(valid(&q));
}
