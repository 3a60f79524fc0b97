//! Per-antenna QA of a solved table, against the thresholds in use at DSA-110: an antenna
//! (polarization) whose median solution SNR is below `min_snr`, whose amplitude is outside
//! [0.1, 10] x the array median, or whose phase scatters by more than 90 deg about a smooth
//! bandpass (after its delay is removed) has its solutions flagged with the reason; the
//! table is unusable only when fewer than 10 good antennas or less than half the band remain.
//! Amplitudes are only ever compared with the array median: real data come in correlation
//! coefficients (gains ~0.01), simulated ones in Jy.

use super::delay;
use super::solve::FlagReason;
use super::table::CalTable;
use super::CalQa;
use num_complex::Complex64;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Fewer good antennas than this make a table unusable.
pub const MIN_GOOD_ANTENNAS: usize = 10;
/// Antenna amplitude range, relative to the array median.
pub const AMP_RANGE: [f64; 2] = [0.1, 10.0];
/// Largest phase scatter (deg) about the smooth, delay-removed bandpass.
pub const MAX_PHASE_SCATTER_DEG: f64 = 90.0;
/// SNR below which an antenna passes with a warning.
pub const WARN_SNR: f64 = 10.0;
/// Half-width (channels) of the running mean that stands for the smooth bandpass phase.
const SMOOTH_HALF_WIDTH: usize = 8;

/// One antenna polarization flagged by the QA.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AntennaFlag {
    pub station: u32,
    pub pol: usize,
    pub reason: String,
    /// The measured value the reason refers to (median SNR, amplitude over the array
    /// median, or phase scatter in deg; 0 for antennas the solver flagged).
    pub value: f64,
}

/// One antenna's delays (ns, relative to the reference antenna) per polarization.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AntennaDelay {
    pub station: u32,
    pub delay_ns: [f64; 2],
    pub err_ns: [f64; 2],
    /// Whether the delay was applied (kept in the table); a delay solved but not kept
    /// (auto: not significant) is zero in the table.
    pub kept: [bool; 2],
}

/// The solver's account of a table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct SolveSummary {
    pub delay_mode: String,
    /// Bandpass cells (channel x pol) solved, and gain cells (interval x pol).
    pub bandpass_cells: usize,
    pub gain_cells: usize,
    /// Cells flagged as a whole, by reason.
    pub cell_reasons: BTreeMap<String, usize>,
    /// Flagged solutions (time x antenna x channel x pol) by reason, after the QA.
    pub solution_reasons: BTreeMap<String, usize>,
    pub iterations_median: usize,
    pub iterations_max: usize,
    /// Baselines left out of cells (outlier residuals, non-finite sums), summed over cells.
    pub rejected_baselines: usize,
}

/// Circular scatter (deg) of the phase of `g` about its running mean over neighbouring good
/// channels, after removing a delay fitted to it. `g`, `snr` per channel (snr 0: unused).
pub fn phase_scatter_deg(freq_hz: &[f64], g: &[Complex64], snr: &[f64]) -> Option<f64> {
    let ref_hz = delay::reference_hz(freq_hz);
    let tau = delay::fit(freq_hz, g, snr, ref_hz)
        .map(|d| d.tau_ns)
        .unwrap_or(0.0);
    let u: Vec<Complex64> = (0..freq_hz.len())
        .filter(|&c| snr[c] > 0.0 && g[c].norm() > 0.0)
        .map(|c| g[c] / g[c].norm() * delay::phasor(freq_hz[c], ref_hz, -tau))
        .collect();
    if u.len() < 3 {
        return None;
    }
    let mut sum = Complex64::new(0.0, 0.0);
    for i in 0..u.len() {
        let lo = i.saturating_sub(SMOOTH_HALF_WIDTH);
        let hi = (i + SMOOTH_HALF_WIDTH + 1).min(u.len());
        let smooth: Complex64 = (lo..hi).filter(|&j| j != i).map(|j| u[j]).sum();
        if smooth.norm() > 0.0 {
            sum += u[i] * smooth.conj() / smooth.norm();
        }
    }
    let r = (sum.norm() / u.len() as f64).clamp(1e-12, 1.0);
    Some((-2.0 * r.ln()).sqrt().to_degrees())
}

fn median(v: &[f64]) -> Option<f64> {
    crate::primitives::stats::median_and_mad_sigma(v).map(|x| x.0)
}

/// The table indices of antenna `a`, pol `p` in a table of `nt` intervals, `na` antennas
/// and `nf` channels: every (interval, channel).
fn sol_indices(
    (nt, na, nf): (usize, usize, usize),
    a: usize,
    p: usize,
) -> impl Iterator<Item = usize> {
    (0..nt)
        .flat_map(move |k| (0..nf).map(move |c| (k, c)))
        .map(move |(k, c)| ((k * na + a) * nf + c) * 2 + p)
}

/// The largest bandpass phase scatter (deg) over the intervals of antenna `a`, pol `p`
/// (flagged channels at zero weight; 0 when none can be measured).
fn max_phase_scatter(t: &CalTable, a: usize, p: usize) -> f64 {
    let nf = t.freq_hz.len();
    let mut worst: f64 = 0.0;
    for k in 0..t.time_jd.len() {
        let g: Vec<Complex64> = (0..nf).map(|c| t.gains[t.index(k, a, c, p)]).collect();
        let s: Vec<f64> = (0..nf)
            .map(|c| {
                if t.flags[t.index(k, a, c, p)] {
                    0.0
                } else {
                    t.snr[t.index(k, a, c, p)].min(1e6)
                }
            })
            .collect();
        worst = worst.max(phase_scatter_deg(&t.freq_hz, &g, &s).unwrap_or(0.0));
    }
    worst
}

/// The per-antenna QA: flags every solution of an antenna pol whose median SNR, amplitude
/// (relative to the array's median) or bandpass phase scatter fails, listing it in
/// `q.flagged_antennas` (with the commonest reason where the solver flagged it all).
/// Returns which antenna pols had no data at all.
fn flag_antennas(t: &mut CalTable, min_snr: f64, q: &mut CalQa) -> Vec<bool> {
    let (nt, na, nf) = (t.time_jd.len(), t.n_ant(), t.freq_hz.len());
    // Median amplitude per antenna polarization, and the array's median of them.
    let sols = |a: usize, p: usize| sol_indices((nt, na, nf), a, p);
    let mut med_amp = vec![None; na * 2];
    for a in 0..na {
        for p in 0..2 {
            let amps: Vec<f64> = sols(a, p)
                .filter(|&i| !t.flags[i])
                .map(|i| t.gains[i].norm())
                .collect();
            med_amp[a * 2 + p] = median(&amps);
        }
    }
    let all: Vec<f64> = med_amp.iter().flatten().copied().collect();
    let array_amp = median(&all).unwrap_or(0.0);
    let flag_ap = |t: &mut CalTable, a: usize, p: usize, reason: FlagReason| {
        for k in 0..nt {
            for c in 0..nf {
                let i = t.index(k, a, c, p);
                if !t.flags[i] {
                    t.flags[i] = true;
                    t.reasons[i] = reason as u8;
                }
            }
        }
    };
    let mut absent = vec![false; na * 2];
    for a in 0..na {
        for p in 0..2 {
            let idx: Vec<usize> = sols(a, p).collect();
            let good: Vec<usize> = idx.iter().copied().filter(|&i| !t.flags[i]).collect();
            if idx
                .iter()
                .all(|&i| t.reasons[i] == FlagReason::NoData as u8)
            {
                absent[a * 2 + p] = true;
                // Not in the data at all (absent from the calibrator groups, or wholly
                // flagged before the solve): counted, not listed.
                if p == 0 {
                    q.antennas_without_data += 1;
                }
                continue;
            }
            if good.is_empty() {
                // Flagged by the solver: report the commonest reason.
                let mut counts: BTreeMap<u8, usize> = BTreeMap::new();
                idx.iter()
                    .for_each(|&i| *counts.entry(t.reasons[i]).or_default() += 1);
                let r = counts
                    .into_iter()
                    .max_by_key(|x| x.1)
                    .map(|x| x.0)
                    .unwrap_or(255);
                q.flagged_antennas.push(AntennaFlag {
                    station: t.antenna_names[a],
                    pol: p,
                    reason: FlagReason::from_code(r).name().into(),
                    value: 0.0,
                });
                continue;
            }
            // SNR over the solutions the solver solved (flagged for low SNR included).
            let snr: Vec<f64> = idx
                .iter()
                .filter(|&&i| !t.flags[i] || t.reasons[i] == FlagReason::LowSnr as u8)
                .map(|&i| t.snr[i])
                .collect();
            let med_snr = median(&snr).unwrap_or(0.0);
            let rel_amp = med_amp[a * 2 + p].unwrap_or(0.0) / array_amp.max(1e-300);
            let scatter = max_phase_scatter(t, a, p);
            let verdict = if med_snr < min_snr {
                Some((FlagReason::AntennaSnr, med_snr))
            } else if !(AMP_RANGE[0]..=AMP_RANGE[1]).contains(&rel_amp) {
                Some((FlagReason::AntennaAmplitude, rel_amp))
            } else if scatter > MAX_PHASE_SCATTER_DEG {
                Some((FlagReason::AntennaPhase, scatter))
            } else {
                None
            };
            if let Some((reason, value)) = verdict {
                flag_ap(t, a, p, reason);
                q.flagged_antennas.push(AntennaFlag {
                    station: t.antenna_names[a],
                    pol: p,
                    reason: reason.name().into(),
                    value,
                });
            }
        }
    }
    absent
}

/// The per-antenna numbers after the flagging (both polarizations) into `q.antennas`;
/// returns the smallest median SNR and the largest phase scatter of the antennas with
/// solutions.
fn antenna_numbers(t: &CalTable, q: &mut CalQa) -> (f64, f64) {
    let (nt, na, nf) = (t.time_jd.len(), t.n_ant(), t.freq_hz.len());
    let sols = |a: usize, p: usize| sol_indices((nt, na, nf), a, p);
    let mut min_med_snr = f64::INFINITY;
    let mut max_phase: f64 = 0.0;
    for a in 0..na {
        let idx: Vec<usize> = (0..2).flat_map(|p| sols(a, p)).collect();
        let good: Vec<usize> = idx.iter().copied().filter(|&i| !t.flags[i]).collect();
        if good.is_empty() {
            q.antennas.push((t.antenna_names[a], 0.0, 1.0, 0.0, 0.0));
            continue;
        }
        let snr: Vec<f64> = good.iter().map(|&i| t.snr[i]).collect();
        let med_snr = median(&snr).unwrap_or(0.0);
        let amps: Vec<f64> = good.iter().map(|&i| t.gains[i].norm()).collect();
        let mean_amp = amps.iter().sum::<f64>() / amps.len() as f64;
        let amp_scatter =
            (amps.iter().map(|x| (x - mean_amp).powi(2)).sum::<f64>() / amps.len() as f64).sqrt()
                / mean_amp.max(1e-300);
        let mut ph: f64 = 0.0;
        for p in 0..2 {
            ph = ph.max(max_phase_scatter(t, a, p));
        }
        min_med_snr = min_med_snr.min(med_snr);
        max_phase = max_phase.max(ph);
        q.antennas.push((
            t.antenna_names[a],
            med_snr,
            1.0 - good.len() as f64 / idx.len() as f64,
            amp_scatter,
            ph,
        ));
    }
    (min_med_snr, max_phase)
}

/// The QA gates of the solve into `q.gates` (pass, warn or fail with the numbers).
fn push_gates(
    q: &mut CalQa,
    summary: &SolveSummary,
    delays: &[AntennaDelay],
    min_snr: f64,
    band: f64,
    na: usize,
    (min_med_snr, max_phase): (f64, f64),
) {
    let count = |r: FlagReason| {
        q.flagged_antennas
            .iter()
            .filter(|f| f.reason == r.name())
            .count()
    };
    let (n_snr, n_amp, n_phase) = (
        count(FlagReason::AntennaSnr),
        count(FlagReason::AntennaAmplitude),
        count(FlagReason::AntennaPhase),
    );
    let gate = |ok: bool, warn: bool, what: String| {
        (
            what,
            if !ok {
                "fail"
            } else if warn {
                "warn"
            } else {
                "pass"
            }
            .to_string(),
        )
    };
    q.gates.push(gate(
        q.good_antennas >= MIN_GOOD_ANTENNAS,
        false,
        format!(
            "at least {MIN_GOOD_ANTENNAS} good antennas: {}",
            q.good_antennas
        ),
    ));
    q.gates.push(gate(
        band >= 0.5,
        band < 0.9,
        format!(
            "usable band (channels where most good antennas have solutions) >= 50 %: {:.1} %",
            100.0 * band
        ),
    ));
    q.gates.push(gate(
        true,
        q.flagged_fraction > 0.3,
        format!(
            "flagged solutions of the {} antennas with data (warn > 0.3): {:.3}",
            na - q.antennas_without_data,
            q.flagged_fraction
        ),
    ));
    let min_med_snr = if min_med_snr.is_finite() {
        min_med_snr
    } else {
        0.0
    };
    q.gates.push(gate(true, n_snr > 0 || min_med_snr < WARN_SNR, format!("solution SNR >= {min_snr} per antenna (warn < {WARN_SNR}): {n_snr} antenna pols flagged, min median of the rest {min_med_snr:.1}")));
    q.gates.push(gate(
        true,
        n_amp > 0,
        format!(
            "gain amplitudes within [{}, {}] x array median: {n_amp} antenna pols flagged",
            AMP_RANGE[0], AMP_RANGE[1]
        ),
    ));
    q.gates.push(gate(true, n_phase > 0, format!("bandpass phase scatter (delay removed) <= {MAX_PHASE_SCATTER_DEG} deg: {n_phase} antenna pols flagged, max of the rest {max_phase:.1}")));
    let n_cells: usize = summary.cell_reasons.values().sum();
    q.gates.push(gate(
        true,
        n_cells > 0,
        format!(
            "solution cells flagged: {n_cells} of {} ({:?}); iterations median {} max {}",
            summary.bandpass_cells + summary.gain_cells,
            summary.cell_reasons,
            summary.iterations_median,
            summary.iterations_max
        ),
    ));
    if !delays.is_empty() {
        let kept = delays
            .iter()
            .map(|d| d.kept.iter().filter(|&&k| k).count())
            .sum::<usize>();
        let worst = delays
            .iter()
            .flat_map(|d| {
                (0..2)
                    .filter(|&p| d.kept[p])
                    .map(|p| d.delay_ns[p].abs())
                    .collect::<Vec<_>>()
            })
            .fold(0.0, f64::max);
        q.gates.push(gate(
            true,
            false,
            format!(
                "delays ({}): {kept} antenna pols kept, largest |delay| {worst:.2} ns",
                summary.delay_mode
            ),
        ));
    }
}

/// Assesses `t`, flags the antennas that fail (in `t.flags` / `t.reasons`), and returns
/// the QA with the gates. `summary` is the solver's account (its solution reason counts are
/// filled here), `delays` the solved delays.
pub fn assess(
    t: &mut CalTable,
    min_snr: f64,
    mut summary: SolveSummary,
    delays: Vec<AntennaDelay>,
) -> CalQa {
    let (nt, na, nf) = (t.time_jd.len(), t.n_ant(), t.freq_hz.len());
    if t.reasons.len() != t.gains.len() {
        t.reasons = t
            .flags
            .iter()
            .map(|&f| if f { FlagReason::Unknown as u8 } else { 0 })
            .collect();
    }
    let mut q = CalQa {
        calibrator: t.calibrator.clone(),
        ..Default::default()
    };
    let absent = flag_antennas(t, min_snr, &mut q);
    let extremes = antenna_numbers(t, &mut q);
    let sols = |a: usize, p: usize| sol_indices((nt, na, nf), a, p);
    let good_ant: Vec<usize> = (0..na).filter(|&a| q.antennas[a].2 <= 0.5).collect();
    q.good_antennas = good_ant.len();
    // The flagged fraction of the antennas that had data.
    let present: Vec<usize> = (0..na * 2)
        .filter(|&ap| !absent[ap])
        .flat_map(|ap| sols(ap / 2, ap % 2))
        .collect();
    q.flagged_fraction =
        present.iter().filter(|&&i| t.flags[i]).count() as f64 / present.len().max(1) as f64;
    // The band: a channel is usable when most of the good antennas' solutions in it are.
    let usable = (0..nf)
        .filter(|&c| {
            let (mut ok, mut all) = (0usize, 0usize);
            for &a in &good_ant {
                for k in 0..nt {
                    for p in 0..2 {
                        all += 1;
                        ok += usize::from(!t.flags[t.index(k, a, c, p)]);
                    }
                }
            }
            all > 0 && 2 * ok > all
        })
        .count();
    let band = usable as f64 / nf.max(1) as f64;
    for r in &t.reasons {
        if *r != 0 {
            *summary
                .solution_reasons
                .entry(FlagReason::from_code(*r).name().to_string())
                .or_default() += 1;
        }
    }
    push_gates(&mut q, &summary, &delays, min_snr, band, na, extremes);
    q.solve = summary;
    q.delays = delays;
    q
}
