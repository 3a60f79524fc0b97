//! Memory the calibration solve needs, known from the plan before anything is allocated.
//!
//! The solve holds, at its peak, the sufficient statistics of every solution cell (per
//! baseline: A complex, B, C, n: 40 bytes) twice over (the flat buffer the sums are made
//! and all-reduced in, with either a device's sums of one group as they come down or the
//! cells read from it after the reduce; calibrate::sums), then the table: per (interval, antenna, channel, pol) a complex gain,
//! a flag, an SNR and a reason (26 bytes). With gains per `gain_interval_s` over a long span
//! the table dominates: 10 000 intervals of a full-size array (96 antennas, 768 channels)
//! would need ~43 GiB. The pipeline checks this against the memory available on every rank
//! before the solve and skips the solve, naming the setting, where it does not fit.

use super::{CalConfig, CalPlan};

/// Bytes of one cell's sufficient statistics per baseline (see `solve::CellStats`).
const CELL_BYTES_PER_BASELINE: u64 = 40;
/// Bytes per (interval, antenna, channel, pol) of the solved table: gain, flag, SNR, reason.
const TABLE_BYTES_PER_SOLUTION: u64 = 16 + 1 + 8 + 1;

/// What the solve would allocate (bytes) and why.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolveMemory {
    /// The bandpass: one cell per (channel, pol), its all-reduce buffer and solutions.
    pub bandpass: u64,
    /// Gains per interval: the cells per (interval, pol), their all-reduce buffer and the
    /// table per (interval, antenna, channel, pol); 0 without `gain_interval_s`.
    pub gains: u64,
    /// Solution intervals over the calibrator's span (1 without `gain_interval_s`).
    pub intervals: usize,
}

impl SolveMemory {
    /// Everything the solve holds at once (the bandpass cells are freed before the gains'
    /// are made, but its solutions stay: counted in both for simplicity).
    pub fn total(&self) -> u64 {
        self.bandpass + self.gains
    }
}

/// Memory of a solve over `plan` whose calibrator data span `span_days` (first to last
/// integration) with `cfg`'s solution interval.
pub fn solve_memory(plan: &CalPlan, span_days: f64, cfg: &CalConfig) -> SolveMemory {
    let n_bl = plan.baselines.len() as u64;
    let nf = plan.freq_hz.len() as u64;
    let n_ant = plan.antenna_names.len() as u64;
    let cells = |n: u64| 2 * n * n_bl * CELL_BYTES_PER_BASELINE;
    let bandpass = cells(nf * 2) + n_ant * nf * 2 * TABLE_BYTES_PER_SOLUTION;
    if !(cfg.gain_interval_s > 0.0) {
        return SolveMemory {
            bandpass,
            gains: 0,
            intervals: 1,
        };
    }
    let dt = cfg.gain_interval_s / 86_400.0;
    let intervals = ((span_days.max(0.0) / dt).floor() as usize).saturating_add(1);
    let k = intervals as u64;
    // The table's gains, plus the bandpass with delay evaluated per (antenna, channel, pol).
    let gains = cells(k * 2) + k * n_ant * nf * 2 * TABLE_BYTES_PER_SOLUTION + n_ant * nf * 2 * 16;
    SolveMemory {
        bandpass,
        gains,
        intervals,
    }
}

/// The solve does not fit in the memory available.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the calibration solve needs {:.2} GiB ({:.2} GiB for the bandpass over {n_chan} channels, {:.2} GiB for gains over {} solution interval(s) of calibration.gain_interval_s = {interval_s} s), but {:.2} GiB of memory is available: the solve is skipped (raise calibration.gain_interval_s, or set it to 0 for one gain per span)",
    gib(need.total()), gib(need.bandpass), gib(need.gains), need.intervals, gib(*available)
)]
pub struct SolveMemoryError {
    pub need: SolveMemory,
    pub available: u64,
    pub n_chan: usize,
    pub interval_s: f64,
}

fn gib(b: u64) -> f64 {
    b as f64 / 1_073_741_824.0
}

/// Checks `need` against `available` bytes (None: unknown, accepted).
pub fn check(
    need: SolveMemory,
    available: Option<u64>,
    plan: &CalPlan,
    cfg: &CalConfig,
) -> Result<(), SolveMemoryError> {
    match available {
        Some(avail) if need.total() > avail => Err(SolveMemoryError {
            need,
            available: avail,
            n_chan: plan.freq_hz.len(),
            interval_s: cfg.gain_interval_s,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::catalog::Calibrator;

    /// A full-size DSA-110 calibrator plan: 96 antennas, 4560 cross baselines, 768 channels.
    fn full_plan() -> CalPlan {
        let n_ant = 96;
        let baselines: Vec<(usize, usize)> = (0..n_ant)
            .flat_map(|b| (0..b).map(move |a| (a, b)))
            .collect();
        CalPlan {
            calibrator: Calibrator {
                name: "3C147".into(),
                ra_rad: 1.49,
                dec_rad: 0.87,
                flux_jy: 22.0,
                spectral_index: Some(-0.7),
            },
            transit_jd: 2_461_000.5,
            groups: vec![0],
            baselines,
            antenna_names: (1..=n_ant as u32).collect(),
            freq_hz: (0..768).map(|c| 1.311e9 + c as f64 * 244_140.625).collect(),
            field: vec![],
        }
    }

    #[test]
    fn full_size_bandpass_and_gains_sized_from_the_plan() {
        let plan = full_plan();
        let mut cfg = CalConfig {
            gain_interval_s: 0.0,
            ..CalConfig::default()
        };
        let m = solve_memory(&plan, 600.0 / 86_400.0, &cfg);
        // 1536 cells x 4560 baselines x 40 B x 2 + 96 x 768 x 2 x 26 B.
        let bp = 2 * 1536 * 4560 * 40 + 96 * 768 * 2 * 26;
        assert_eq!(m.bandpass, bp);
        assert_eq!((m.gains, m.intervals), (0, 1));
        // 10.5 minutes at 60 s: 11 intervals; the table 11 x 96 x 768 x 2 x 26 B.
        cfg.gain_interval_s = 60.0;
        let m = solve_memory(&plan, 630.0 / 86_400.0, &cfg);
        assert_eq!(m.intervals, 11);
        let g = 2 * 22 * 4560 * 40 + 11 * 96 * 768 * 2 * 26 + 96 * 768 * 2 * 16;
        assert_eq!(m.gains, g);
    }

    #[test]
    fn the_most_intervals_validation_admits_are_refused_on_a_small_node() {
        // Validation admits up to 10 000 intervals (span_minutes 1440 at gain_interval_s
        // 8.64): on a full-size array that is ~43 GiB (before this check: an abort in the
        // allocation, issue 19); refused on a 24 GiB node, naming the setting.
        let plan = full_plan();
        let cfg = CalConfig {
            gain_interval_s: 8.64,
            ..CalConfig::default()
        };
        let need = solve_memory(&plan, 1.0, &cfg);
        assert_eq!(need.intervals, 10_001);
        assert!(
            (gib(need.total()) - 43.0).abs() < 0.5,
            "{}",
            gib(need.total())
        );
        let e = check(need, Some(24 << 30), &plan, &cfg).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("calibration.gain_interval_s = 8.64 s"),
            "{msg}"
        );
        assert!(msg.contains("10001 solution interval"), "{msg}");
        assert!(check(need, Some(64 << 30), &plan, &cfg).is_ok());
        // The default (one bandpass, no intervals) fits in far less than a GiB.
        let cfg = CalConfig::default();
        let need = solve_memory(&plan, 1.0, &cfg);
        assert!(gib(need.total()) < 1.0);
        assert!(check(need, Some(1 << 30), &plan, &cfg).is_ok());
        assert!(check(need, None, &plan, &cfg).is_ok());
    }
}
