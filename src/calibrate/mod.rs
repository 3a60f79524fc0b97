//! Calibration: calibrator selection, model visibilities, bandpass and gain solutions from
//! sufficient statistics combined over MPI ranks, caltables, the registry, and apply.
//!
//! Distributed solve: every rank accumulates, for its calibrator groups, per baseline and
//! solution cell the sums A = sum w V conj(M), B = sum w |M|^2, C = sum w |V|^2, n; one
//! all-reduce combines them; every rank solves the same combined sums (results agree to
//! rounding whatever the rank count); rank 0's solution is broadcast and written.
//!
//! Degradation: a cell (channel x pol, or interval x pol) that cannot be solved is flagged
//! with its reason, an antenna failing the QA is flagged with its reason; the solve fails
//! only when no rank had data. Delays (per antenna and pol) are fitted to the per-channel
//! solutions and divided out of them, so the table's bandpass is what is left after the
//! delay (see `delay`, `qa`).

pub mod apply;
pub mod catalog;
pub mod delay;
pub mod memory;
pub mod model;
pub mod qa;
pub mod settings;
pub mod solve;
mod sums;
pub mod table;

use crate::comm::Comm;
use crate::compute::Compute;
use crate::core::GroupVis;
use crate::primitives::astrometry::{dot, sub, FrameOfDate};
use crate::primitives::iers::EarthOrientation;
use catalog::Calibrator;
use model::{ModelPredictor, PointSource};
use num_complex::Complex64;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
pub use settings::{CalConfig, DelayMode};
use solve::{solve_cell, CellSolution, CellStats, FlagReason, SolveParams};
use table::CalTable;

#[derive(Debug, thiserror::Error)]
pub enum CalError {
    #[error(transparent)]
    Catalog(#[from] catalog::CatalogError),
    #[error(transparent)]
    Table(#[from] table::TableError),
    #[error("no calibrator group could be loaded on any rank")]
    NoData,
}

/// What the plan says about calibration for the night.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CalPlan {
    pub calibrator: Calibrator,
    pub transit_jd: f64,
    /// Indices into the plan's groups.
    pub groups: Vec<usize>,
    /// Cross-correlation baselines (antenna indices, a < b) of the calibrator groups.
    pub baselines: Vec<(usize, usize)>,
    /// Station number per antenna index.
    pub antenna_names: Vec<u32>,
    /// Ascending channel frequencies of the calibrator groups.
    pub freq_hz: Vec<f64>,
    /// The other catalogue sources in the calibrator's field, modelled with it (see
    /// `field_sources`).
    #[serde(default)]
    pub field: Vec<Calibrator>,
}

/// Per-antenna quality of a solve, against the thresholds in use at DSA-110 (see `qa`).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct CalQa {
    pub calibrator: String,
    pub table: String,
    /// Per antenna (station): median SNR, flagged fraction, amplitude scatter (relative),
    /// phase scatter (deg) over channels about the smooth delay-removed bandpass.
    pub antennas: Vec<(u32, f64, f64, f64, f64)>,
    pub good_antennas: usize,
    pub flagged_fraction: f64,
    /// Gates: "pass", "warn" or "fail" with the reason; a "fail" makes the table invalid.
    pub gates: Vec<(String, String)>,
    /// Antennas of the array without any data in the calibrator groups (not listed below).
    #[serde(default)]
    pub antennas_without_data: usize,
    /// Antenna polarizations flagged (by the solver entirely, or by the QA) with the reason.
    #[serde(default)]
    pub flagged_antennas: Vec<qa::AntennaFlag>,
    /// The solver's account: cells flagged by reason, iterations, rejected baselines.
    #[serde(default)]
    pub solve: qa::SolveSummary,
    /// Solved delays per antenna (empty when `calibration.delay` is off).
    #[serde(default)]
    pub delays: Vec<qa::AntennaDelay>,
}

fn params(cfg: &CalConfig) -> SolveParams {
    SolveParams {
        max_iter: cfg.max_iterations,
        tolerance: cfg.tolerance,
        noise_tolerance: cfg.noise_tolerance,
        outlier_sigma: cfg.outlier_sigma,
        min_baselines: cfg.min_baselines,
        min_snr: cfg.min_snr,
    }
}

fn refant_indices(cfg: &CalConfig, names: &[u32]) -> Vec<usize> {
    cfg.refants
        .iter()
        .filter_map(|r| names.iter().position(|n| n == r))
        .collect()
}

/// Projected baseline length (m) perpendicular to the pointing, per (cross baseline, time).
fn projected_lengths(g: &GroupVis, eop: &EarthOrientation) -> Vec<f64> {
    let nt = g.n_times();
    let mut out = vec![0.0; g.baselines.len() * nt];
    for (t, &jd) in g.times_jd.iter().enumerate() {
        let f = FrameOfDate::new(eop.epoch(jd), &g.site);
        let d = f.hadec_to_apparent(0.0, g.pointing_dec_rad);
        for (k, &(a, b)) in g.baselines.iter().enumerate() {
            let bl = f.ecef_to_tod(sub(g.ant_pos[b], g.ant_pos[a]));
            let w = dot(bl, d);
            out[k * nt + t] = (dot(bl, bl) - w * w).max(0.0).sqrt();
        }
    }
    out
}

/// The calibrator model for a group: the calibrator and the field sources beside it, each
/// through the drifting Airy beam.
pub fn calibrator_model(
    g: &GroupVis,
    cal: &Calibrator,
    field: &[Calibrator],
    eop: &EarthOrientation,
) -> ModelPredictor {
    let src = model_sources(cal, field);
    ModelPredictor::new(g, &src, eop, crate::core::telescope::DISH_DIAMETER_M)
}

/// The calibrator and the field sources beside it as the model's point sources.
fn model_sources(cal: &Calibrator, field: &[Calibrator]) -> Vec<PointSource> {
    std::iter::once(cal)
        .chain(field)
        .map(|c| PointSource {
            ra_rad: c.ra_rad,
            dec_rad: c.dec_rad,
            flux_jy: c.flux_jy,
            spectral_index: c.spectral_index.unwrap_or(0.0),
        })
        .collect()
}

/// The sources of `catalog` other than the calibrator `cal` that belong in its model: those
/// passing within `radius_deg` of the pointing (HA = 0, `dec_app`) during `times_jd` whose
/// flux x Airy response (1.4 GHz, closest approach) is at least `min_fraction` of the
/// calibrator's `cal_weight_jy`. Sources the model leaves out add their visibilities to the
/// calibrator's with the phases of their own positions; the gains absorb them as errors that
/// differ per antenna and channel (0.5 % of amplitude, median, from 2 Jy of field sources
/// beside a 21 Jy calibrator on 20 antennas: tests/calibration_independent.rs).
#[allow(clippy::too_many_arguments)]
pub fn field_sources(
    catalog: &[Calibrator],
    cal: &Calibrator,
    cal_weight_jy: f64,
    times_jd: &[f64],
    dec_app: f64,
    site: &crate::primitives::astrometry::Site,
    eop: &EarthOrientation,
    radius_deg: f64,
    min_fraction: f64,
) -> Vec<Calibrator> {
    if radius_deg <= 0.0 {
        return Vec::new();
    }
    // The same source listed twice (e.g. the calibrator in a field catalogue): within 1".
    let same = |c: &Calibrator| {
        crate::primitives::astrometry::separation(
            crate::primitives::astrometry::radec_to_vec(c.ra_rad, c.dec_rad),
            crate::primitives::astrometry::radec_to_vec(cal.ra_rad, cal.dec_rad),
        ) < (1.0f64 / 3600.0).to_radians()
    };
    catalog::transits(catalog, times_jd, dec_app, site, eop, radius_deg, 0.0)
        .into_iter()
        .filter(|t| !same(&t.calibrator) && t.weight_jy >= min_fraction * cal_weight_jy)
        .map(|t| t.calibrator)
        .collect()
}

/// A bandpass solved from the combined sums: per (antenna, channel, pol) the gain left
/// after the delay, its flag, SNR and flag reason; per (antenna, pol) the delay.
#[derive(Debug, Clone)]
pub struct Bandpass {
    pub gains: Vec<Complex64>,
    pub flags: Vec<bool>,
    pub snr: Vec<f64>,
    pub reasons: Vec<u8>,
    /// Applied delays (ns; 0 where none is kept), per (antenna, pol).
    pub delay_ns: Vec<f64>,
    pub delay_ref_hz: f64,
    /// Every solved delay with its error and whether it was kept.
    pub delays: Vec<qa::AntennaDelay>,
    pub summary: qa::SolveSummary,
}

impl Bandpass {
    /// The full gain (bandpass x delay phasor) of antenna `a`, channel `c`, pol `p`.
    pub fn full_gain(&self, freq_hz: &[f64], a: usize, c: usize, p: usize) -> Complex64 {
        let nf = freq_hz.len();
        self.gains[(a * nf + c) * 2 + p]
            * delay::phasor(freq_hz[c], self.delay_ref_hz, self.delay_ns[a * 2 + p])
    }
}

fn tally(summary: &mut qa::SolveSummary, sols: &[CellSolution], iters: &mut Vec<usize>) {
    for s in sols {
        if s.cell != FlagReason::Ok {
            *summary
                .cell_reasons
                .entry(s.cell.name().to_string())
                .or_default() += 1;
        }
        summary.rejected_baselines += s.rejected_baselines;
        iters.push(s.iterations);
    }
}

/// Half-width (channels) of the running median a cell's residual noise is compared with.
const RESIDUAL_HALF_WIDTH: usize = 8;
/// A cell whose residual noise exceeds the running median of its neighbours by more than
/// this many robust standard deviations of that ratio over the band (and by 10 % at least)
/// is flagged high_residual.
const RESIDUAL_SIGMA: f64 = 6.0;

/// Flags bandpass cells (`sols[c * 2 + p]`) whose residual noise per unit weight stands out
/// from their neighbouring channels': the noise of correlation coefficients is flat across
/// the band, so a cell far above it holds RFI (or another model failure) that the gains
/// absorbed; its solution would carry it into the data.
fn flag_high_residuals(sols: &mut [CellSolution], nf: usize) {
    for pol in 0..2 {
        let ok: Vec<usize> = (0..nf)
            .filter(|&c| sols[c * 2 + pol].cell == FlagReason::Ok && sols[c * 2 + pol].sigma > 0.0)
            .collect();
        if ok.len() < 8 {
            continue;
        }
        let ratio: Vec<f64> = (0..ok.len())
            .map(|i| {
                let lo = i.saturating_sub(RESIDUAL_HALF_WIDTH);
                let hi = (i + RESIDUAL_HALF_WIDTH + 1).min(ok.len());
                let near: Vec<f64> = (lo..hi).map(|j| sols[ok[j] * 2 + pol].sigma).collect();
                let med =
                    crate::primitives::stats::median_and_mad_sigma(&near).map_or(0.0, |x| x.0);
                sols[ok[i] * 2 + pol].sigma / med.max(1e-300)
            })
            .collect();
        let Some((_, spread)) = crate::primitives::stats::median_and_mad_sigma(&ratio) else {
            continue;
        };
        let limit = 1.0 + (RESIDUAL_SIGMA * spread).max(0.1);
        for (i, &c) in ok.iter().enumerate() {
            if ratio[i] > limit {
                let s = &mut sols[c * 2 + pol];
                let n = s.gains.len();
                *s = CellSolution {
                    gains: vec![Complex64::new(0.0, 0.0); n],
                    snr: vec![0.0; n],
                    flagged: vec![true; n],
                    reasons: s
                        .reasons
                        .iter()
                        .map(|&r| {
                            if r == FlagReason::Ok {
                                FlagReason::HighResidual
                            } else {
                                r
                            }
                        })
                        .collect(),
                    cell: FlagReason::HighResidual,
                    ..s.clone()
                };
            }
        }
    }
}

/// Solves the bandpass from the all-reduced per-(channel, pol) cells (`cells[c * 2 + p]`):
/// one StefCal solve per cell (a cell that cannot be solved is flagged with its reason), then
/// per antenna and pol the delay fitted to the per-channel solutions, divided out of them
/// where `cfg.delay` keeps it. A deterministic function of the sums.
pub fn solve_bandpass(
    cells: &[CellStats],
    baselines: &[(usize, usize)],
    n_ant: usize,
    freq_hz: &[f64],
    refs: &[usize],
    cfg: &CalConfig,
) -> Bandpass {
    let nf = freq_hz.len();
    let p = params(cfg);
    let mut sols: Vec<CellSolution> = cells
        .par_iter()
        .map(|cell| solve_cell(cell, baselines, n_ant, refs, &p))
        .collect();
    flag_high_residuals(&mut sols, nf);
    let mut out = Bandpass {
        gains: vec![Complex64::new(0.0, 0.0); n_ant * nf * 2],
        flags: vec![true; n_ant * nf * 2],
        snr: vec![0.0; n_ant * nf * 2],
        reasons: vec![FlagReason::NoData as u8; n_ant * nf * 2],
        delay_ns: vec![0.0; n_ant * 2],
        delay_ref_hz: delay::reference_hz(freq_hz),
        delays: Vec::new(),
        summary: qa::SolveSummary {
            bandpass_cells: cells.len(),
            ..Default::default()
        },
    };
    for c in 0..nf {
        for pol in 0..2 {
            let sol = &sols[c * 2 + pol];
            for a in 0..n_ant {
                let i = (a * nf + c) * 2 + pol;
                out.gains[i] = sol.gains[a];
                out.flags[i] = sol.flagged[a];
                out.snr[i] = sol.snr[a];
                out.reasons[i] = sol.reasons[a] as u8;
            }
        }
    }
    let mut iters = Vec::new();
    tally(&mut out.summary, &sols, &mut iters);
    iters.sort_unstable();
    out.summary.iterations_median = iters.get(iters.len() / 2).copied().unwrap_or(0);
    out.summary.iterations_max = iters.last().copied().unwrap_or(0);
    out.summary.delay_mode = format!("{:?}", cfg.delay).to_lowercase();
    if cfg.delay != DelayMode::Off && nf >= 4 {
        let span = freq_hz[nf - 1] - freq_hz[0];
        let fits: Vec<[Option<delay::DelayFit>; 2]> = (0..n_ant)
            .into_par_iter()
            .map(|a| {
                [0, 1].map(|pol| {
                    let g: Vec<Complex64> =
                        (0..nf).map(|c| out.gains[(a * nf + c) * 2 + pol]).collect();
                    let w: Vec<f64> = (0..nf)
                        .map(|c| {
                            if out.flags[(a * nf + c) * 2 + pol] {
                                0.0
                            } else {
                                out.snr[(a * nf + c) * 2 + pol].min(1e6)
                            }
                        })
                        .collect();
                    delay::fit(freq_hz, &g, &w, out.delay_ref_hz)
                })
            })
            .collect();
        for (a, f) in fits.iter().enumerate() {
            if f.iter().all(Option::is_none) {
                continue;
            }
            let mut d = qa::AntennaDelay {
                station: 0,
                delay_ns: [0.0; 2],
                err_ns: [0.0; 2],
                kept: [false; 2],
            };
            for pol in 0..2 {
                let Some(fit) = f[pol] else { continue };
                d.delay_ns[pol] = fit.tau_ns;
                d.err_ns[pol] = fit.err_ns;
                d.kept[pol] = match cfg.delay {
                    DelayMode::On => true,
                    _ => delay::significant(&fit, span),
                };
                if d.kept[pol] {
                    out.delay_ns[a * 2 + pol] = fit.tau_ns;
                    for c in 0..nf {
                        let i = (a * nf + c) * 2 + pol;
                        out.gains[i] *= delay::phasor(freq_hz[c], out.delay_ref_hz, -fit.tau_ns);
                    }
                }
            }
            d.station = a as u32; // the antenna index until the caller names it
            out.delays.push(d);
        }
    }
    out
}

/// Normalises the bandpass: unit mean amplitude of the unflagged channels per antenna and
/// pol (the gains per interval then carry the amplitude).
fn normalise_bandpass(bpsol: &mut Bandpass, n_ant: usize, nf: usize) {
    let bp = &mut bpsol.gains;
    let bp_flag = &bpsol.flags;
    // Normalise the bandpass: unit mean amplitude per antenna and pol.
    for a in 0..n_ant {
        for pol in 0..2 {
            let amps: Vec<f64> = (0..nf)
                .filter(|&c| !bp_flag[(a * nf + c) * 2 + pol])
                .map(|c| bp[(a * nf + c) * 2 + pol].norm())
                .collect();
            if amps.is_empty() {
                continue;
            }
            let mean = amps.iter().sum::<f64>() / amps.len() as f64;
            (0..nf).for_each(|c| bp[(a * nf + c) * 2 + pol] /= mean);
        }
    }
}

/// What the gain step gives a table: the interval centres and, per (interval, antenna,
/// channel, pol), the gain (bandpass x interval gain), flag, SNR and flag reason.
type GainCells = (Vec<f64>, Vec<Complex64>, Vec<bool>, Vec<f64>, Vec<u8>);

/// Gains per `gain_interval_s` over [t0, t1] on the model premultiplied by the full
/// bandpass (delay included), combined over the ranks (every rank must call it).
#[allow(clippy::too_many_arguments)]
fn solve_gains(
    comm: &dyn Comm,
    compute: &dyn Compute,
    plan: &CalPlan,
    groups: &[sums::GroupSums],
    bpsol: &mut Bandpass,
    refs: &[usize],
    cfg: &CalConfig,
    (t0, t1): (f64, f64),
) -> GainCells {
    let (n_bl, nf, n_ant) = (
        plan.baselines.len(),
        plan.freq_hz.len(),
        plan.antenna_names.len(),
    );
    let p = params(cfg);
    normalise_bandpass(bpsol, n_ant, nf);
    let dt = cfg.gain_interval_s / 86_400.0;
    let nbin = (((t1 - t0) / dt).floor() as usize + 1).max(1);
    let mut sums = sums::Sums::new(nbin * 2, n_bl);
    // The model is premultiplied by the full bandpass (delay included).
    let full: Vec<Complex64> = (0..n_ant * nf * 2)
        .map(|i| bpsol.full_gain(&plan.freq_hz, i / (nf * 2), (i / 2) % nf, i % 2))
        .collect();
    for gs in groups {
        let bin_of: Vec<usize> = gs
            .times_jd()
            .iter()
            .map(|&t| (((t - t0) / dt).floor() as usize).min(nbin - 1))
            .collect();
        let cells = sums::Cells::PerBin(&bin_of);
        sums.add_group(compute, gs, cfg.uv_min_lambda, &cells, Some(&full));
    }
    let cells = sums.reduce(comm);
    let sols: Vec<CellSolution> = cells
        .par_iter()
        .map(|cell| solve_cell(cell, &plan.baselines, n_ant, refs, &p))
        .collect();
    let mut iters = Vec::new();
    bpsol.summary.gain_cells = sols.len();
    tally(&mut bpsol.summary, &sols, &mut iters);
    bpsol.summary.iterations_max = bpsol
        .summary
        .iterations_max
        .max(iters.iter().copied().max().unwrap_or(0));
    let mut times = Vec::new();
    let mut gains = Vec::new();
    let mut fl = Vec::new();
    let mut snr = Vec::new();
    let mut reasons = Vec::new();
    for bin in 0..nbin {
        times.push(t0 + (bin as f64 + 0.5) * dt);
        for a in 0..n_ant {
            for c in 0..nf {
                for pol in 0..2 {
                    let s = &sols[bin * 2 + pol];
                    let i = (a * nf + c) * 2 + pol;
                    gains.push(bpsol.gains[i] * s.gains[a]);
                    fl.push(bpsol.flags[i] || s.flagged[a]);
                    snr.push(bpsol.snr[i].min(s.snr[a]));
                    reasons.push(if bpsol.flags[i] {
                        bpsol.reasons[i]
                    } else {
                        s.reasons[a] as u8
                    });
                }
            }
        }
    }
    (times, gains, fl, snr, reasons)
}

/// Solves the delay and bandpass (per channel over the whole span) and, if
/// `gain_interval_s > 0`, gains per interval on the bandpass-corrected model, then runs the
/// per-antenna QA (flagging antennas that fail it). `groups` are this rank's calibrator
/// groups (already flagged); every rank must call this. Returns the table (identical on
/// all ranks: rank 0's is broadcast); fails only when no rank had calibrator data.
pub fn solve_night(
    comm: &dyn Comm,
    compute: &dyn Compute,
    plan: &CalPlan,
    groups: &[GroupVis],
    cfg: &CalConfig,
    eop: &EarthOrientation,
) -> Result<CalTable, CalError> {
    let n_bl = plan.baselines.len();
    let nf = plan.freq_hz.len();
    let n_ant = plan.antenna_names.len();
    let refs = refant_indices(cfg, &plan.antenna_names);
    // What both passes of sums need of each group, made once; the model's tables only
    // (no phasor table: compute::point_model predicts from them).
    let sources = model_sources(&plan.calibrator, &plan.field);
    let prepared: Vec<sums::GroupSums> = groups
        .iter()
        .map(|g| {
            let dish = crate::core::telescope::DISH_DIAMETER_M;
            let model = ModelPredictor::without_table(g, &sources, eop, dish);
            sums::GroupSums::new(g, plan, &model, projected_lengths(g, eop))
        })
        .collect();
    // Bandpass: one cell per (channel, pol).
    let mut sums = sums::Sums::new(nf * 2, n_bl);
    for gs in &prepared {
        let cells = sums::Cells::PerChannel;
        sums.add_group(compute, gs, cfg.uv_min_lambda, &cells, None);
    }
    let cells = sums.reduce(comm);
    let has_data = cells.iter().any(|c| c.n.iter().any(|&n| n > 0.0));
    if !has_data {
        return Err(CalError::NoData);
    }
    let mut bpsol = solve_bandpass(&cells, &plan.baselines, n_ant, &plan.freq_hz, &refs, cfg);
    drop(cells);
    for d in bpsol.delays.iter_mut() {
        d.station = plan.antenna_names[d.station as usize];
    }
    let all_times: Vec<f64> = groups
        .iter()
        .flat_map(|g| g.times_jd.iter().copied())
        .collect();
    let (t0, t1) = all_min_max(comm, &all_times);
    let (times, gains, gflags, gsnr, greasons) = if cfg.gain_interval_s > 0.0 {
        solve_gains(
            comm,
            compute,
            plan,
            &prepared,
            &mut bpsol,
            &refs,
            cfg,
            (t0, t1),
        )
    } else {
        (
            vec![0.5 * (t0 + t1)],
            bpsol.gains.clone(),
            bpsol.flags.clone(),
            bpsol.snr.clone(),
            bpsol.reasons.clone(),
        )
    };
    let refant = refs.first().map(|&r| plan.antenna_names[r]).unwrap_or(0);
    let provenance = serde_json::json!({
        "contimg": env!("CARGO_PKG_VERSION"),
        "calibrator": plan.calibrator,
        "span_jd": [t0, t1],
        "n_ranks": comm.size(),
        "params": cfg,
    })
    .to_string();
    let mut table = CalTable {
        gains,
        flags: gflags,
        snr: gsnr,
        antenna_names: plan.antenna_names.clone(),
        time_jd: times,
        freq_hz: plan.freq_hz.clone(),
        refant,
        calibrator: plan.calibrator.name.clone(),
        provenance,
        reasons: greasons,
        delay_ns: bpsol.delay_ns.clone(),
        delay_ref_hz: bpsol.delay_ref_hz,
        solve_info: String::new(),
    };
    let q = qa::assess(
        &mut table,
        cfg.min_snr,
        bpsol.summary.clone(),
        bpsol.delays.clone(),
    );
    table.solve_info = serde_json::to_string(&q).expect("the QA serialises");
    // Rank 0's solution is the night's.
    let mut bytes = if comm.is_root() {
        table_bytes(&table)
    } else {
        Vec::new()
    };
    comm.broadcast_bytes(0, &mut bytes);
    if !comm.is_root() {
        from_table_bytes(&mut table, &bytes);
    }
    Ok(table)
}

/// The smallest and largest of all ranks' values (every rank must call it).
fn all_min_max(comm: &dyn Comm, v: &[f64]) -> (f64, f64) {
    let n = comm.size();
    let mut buf = vec![0.0; 3 * n];
    if !v.is_empty() {
        let r = comm.rank();
        buf[3 * r] = 1.0;
        buf[3 * r + 1] = v.iter().copied().fold(f64::INFINITY, f64::min);
        buf[3 * r + 2] = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    }
    comm.all_reduce_sum_f64(&mut buf);
    (0..n)
        .filter(|&r| buf[3 * r] > 0.0)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
            (lo.min(buf[3 * r + 1]), hi.max(buf[3 * r + 2]))
        })
}

fn table_bytes(t: &CalTable) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(t.gains.len() * 26 + t.delay_ns.len() * 8 + t.solve_info.len() + 8);
    for (((g, f), s), r) in t.gains.iter().zip(&t.flags).zip(&t.snr).zip(&t.reasons) {
        out.extend_from_slice(&g.re.to_le_bytes());
        out.extend_from_slice(&g.im.to_le_bytes());
        out.extend_from_slice(&s.to_le_bytes());
        out.push(u8::from(*f));
        out.push(*r);
    }
    for d in &t.delay_ns {
        out.extend_from_slice(&d.to_le_bytes());
    }
    out.extend_from_slice(&t.delay_ref_hz.to_le_bytes());
    out.extend_from_slice(t.solve_info.as_bytes());
    out
}

fn from_table_bytes(t: &mut CalTable, b: &[u8]) {
    let f = |i: usize| f64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    for k in 0..t.gains.len() {
        let o = k * 26;
        t.gains[k] = Complex64::new(f(o), f(o + 8));
        t.snr[k] = f(o + 16);
        t.flags[k] = b[o + 24] != 0;
        t.reasons[k] = b[o + 25];
    }
    let mut o = t.gains.len() * 26;
    for d in t.delay_ns.iter_mut() {
        *d = f(o);
        o += 8;
    }
    t.delay_ref_hz = f(o);
    t.solve_info = String::from_utf8_lossy(&b[o + 8..]).into_owned();
}

/// The QA of a table: the account the solve stored in it (with the antenna flags it
/// applied), or, for a table without one, an assessment of a copy against the DSA-110
/// thresholds (min SNR 3).
pub fn qa(t: &CalTable, table_name: &str) -> CalQa {
    let mut q = serde_json::from_str::<CalQa>(&t.solve_info)
        .unwrap_or_else(|_| qa::assess(&mut t.clone(), 3.0, Default::default(), Vec::new()));
    q.table = table_name.into();
    q
}

#[cfg(test)]
mod tests;
