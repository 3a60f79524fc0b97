//! Calibration: calibrator selection, model visibilities, bandpass and gain solutions from
//! sufficient statistics combined over MPI ranks, caltables, the registry, and apply.
//!
//! Distributed solve: every rank accumulates, for its calibrator groups, per baseline and
//! solution cell the sums A = sum w V conj(M), B = sum w |M|^2, C = sum w |V|^2, n; one
//! all-reduce combines them; every rank solves the same combined sums (results agree to
//! rounding whatever the rank count); rank 0's solution is broadcast and written.

pub mod apply;
pub mod catalog;
pub mod model;
pub mod solve;
pub mod table;

use crate::comm::Comm;
use crate::config::CalConfig;
use crate::convert::GroupVis;
use crate::primitives::astrometry::{dot, sub, FrameOfDate};
use crate::primitives::iers::EarthOrientation;
use catalog::Calibrator;
use model::{ModelPredictor, PointSource};
use num_complex::Complex64;
use serde::{Deserialize, Serialize};
use solve::{solve_cell, CellStats, SolveParams};
use rayon::prelude::*;
use std::collections::HashMap;
use table::CalTable;

#[derive(Debug, thiserror::Error)]
pub enum CalError {
    #[error(transparent)]
    Catalog(#[from] catalog::CatalogError),
    #[error(transparent)]
    Table(#[from] table::TableError),
    #[error("calibration solve ({cell}): {source}")]
    Solve { cell: String, source: solve::SolveError },
    #[error("no calibrator group could be loaded on any rank")]
    NoData,
    #[error("calibration failed on rank 0: {0}")]
    Root(String),
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
}

/// Per-antenna quality of a solve, against the thresholds in use at DSA-110.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct CalQa {
    pub calibrator: String,
    pub table: String,
    /// Per antenna (station): median SNR, flagged fraction, amplitude scatter (relative),
    /// phase scatter (deg) over channels.
    pub antennas: Vec<(u32, f64, f64, f64, f64)>,
    pub good_antennas: usize,
    pub flagged_fraction: f64,
    /// Gates: "pass", "warn" or "fail" with the reason.
    pub gates: Vec<(String, String)>,
}

fn params(cfg: &CalConfig) -> SolveParams {
    SolveParams { max_iter: cfg.max_iterations, tolerance: cfg.tolerance, min_baselines: cfg.min_baselines, min_snr: cfg.min_snr }
}

fn refant_indices(cfg: &CalConfig, names: &[u32]) -> Vec<usize> {
    cfg.refants.iter().filter_map(|r| names.iter().position(|n| n == r)).collect()
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

/// The calibrator model for a group.
pub fn calibrator_model(g: &GroupVis, cal: &Calibrator, eop: &EarthOrientation) -> ModelPredictor {
    let src = PointSource { ra_rad: cal.ra_rad, dec_rad: cal.dec_rad, flux_jy: cal.flux_jy, spectral_index: cal.spectral_index.unwrap_or(0.0) };
    ModelPredictor::new(g, &[src], eop, crate::simulate::DISH_DIAMETER_M)
}

/// Accumulates sufficient statistics of `g` into `cells` (one per solution cell); `cell_of`
/// maps (time, channel, pol) to a cell index or None; `premul` multiplies the model per
/// (antenna a, antenna b, channel, pol) (e.g. the bandpass already solved). Baselines are
/// summed in parallel (each writes only its own entry of every cell), in batches so the
/// per-baseline partial sums stay small.
#[allow(clippy::too_many_arguments)]
fn accumulate(
    cells: &mut [CellStats],
    g: &GroupVis,
    plan: &CalPlan,
    model: &ModelPredictor,
    proj: &[f64],
    uv_min_lambda: f64,
    cell_of: &(dyn Fn(usize, usize, usize) -> Option<usize> + Sync),
    premul: &(dyn Fn(usize, usize, usize, usize) -> Complex64 + Sync),
) {
    let index: HashMap<(usize, usize), usize> = plan.baselines.iter().enumerate().map(|(k, &b)| (b, k)).collect();
    let (nt, nf, np) = (g.n_times(), g.n_chan(), g.npol);
    let chan_map: Vec<Option<usize>> = g.freqs.iter().map(|f| plan.freq_hz.iter().position(|x| (x - f).abs() < 1.0)).collect();
    let todo: Vec<(usize, usize)> = g.baselines.iter().enumerate().filter(|(_, (a, b))| a != b).filter_map(|(k, ab)| index.get(ab).map(|&bi| (k, bi))).collect();
    let ncell = cells.len();
    for batch in todo.chunks(4 * rayon::current_num_threads().max(1)) {
        let partial: Vec<(usize, CellStats)> = batch
            .par_iter()
            .map(|&(k, bi)| {
                // This baseline's sums, one entry per cell.
                let mut own = CellStats::new(ncell);
                let (a, b) = g.baselines[k];
                for t in 0..nt {
                    for c in 0..nf {
                        let Some(pc) = chan_map[c] else { continue };
                        if proj[k * nt + t] * g.freqs[c] / crate::primitives::C_M_S < uv_min_lambda {
                            continue;
                        }
                        let m0 = model.vis(a, b, t, c);
                        for p in 0..np {
                            let i = g.index(k, t, c, p);
                            let w = g.weight[i] as f64;
                            if w <= 0.0 {
                                continue;
                            }
                            let Some(cell) = cell_of(t, pc, p) else { continue };
                            let v = Complex64::new(g.vis[i].re as f64, g.vis[i].im as f64);
                            own.add(cell, w, v, m0 * premul(a, b, pc, p));
                        }
                    }
                }
                (bi, own)
            })
            .collect();
        for (bi, own) in partial {
            for (cell, st) in cells.iter_mut().enumerate() {
                st.a[bi] += own.a[cell];
                st.b[bi] += own.b[cell];
                st.c[bi] += own.c[cell];
                st.n[bi] += own.n[cell];
            }
        }
    }
}

/// All-reduces the cells over ranks (every rank must call this with the same shapes).
fn reduce_cells(comm: &dyn Comm, cells: &mut [CellStats], n_bl: usize) {
    let per = CellStats::len_f64(n_bl);
    let mut buf = vec![0.0; per * cells.len()];
    for (i, c) in cells.iter().enumerate() {
        c.write_to(&mut buf[i * per..(i + 1) * per]);
    }
    comm.all_reduce_sum_f64(&mut buf);
    for (i, c) in cells.iter_mut().enumerate() {
        *c = CellStats::read_from(&buf[i * per..(i + 1) * per]);
    }
}

/// Solves bandpass (per channel over the whole span) and, if `gain_interval_s > 0`, gains
/// per interval on the bandpass-corrected model. `groups` are this rank's calibrator groups
/// (already flagged); every rank must call this. Returns the table (identical on all ranks:
/// rank 0's is broadcast).
pub fn solve_night(comm: &dyn Comm, plan: &CalPlan, groups: &[GroupVis], cfg: &CalConfig, eop: &EarthOrientation) -> Result<CalTable, CalError> {
    let n_bl = plan.baselines.len();
    let nf = plan.freq_hz.len();
    let n_ant = plan.antenna_names.len();
    let p = params(cfg);
    let refs = refant_indices(cfg, &plan.antenna_names);
    let models: Vec<ModelPredictor> = groups.iter().map(|g| calibrator_model(g, &plan.calibrator, eop)).collect();
    let projs: Vec<Vec<f64>> = groups.iter().map(|g| projected_lengths(g, eop)).collect();
    // Bandpass: one cell per (channel, pol).
    let mut cells = vec![CellStats::new(n_bl); nf * 2];
    for ((g, m), pr) in groups.iter().zip(&models).zip(&projs) {
        accumulate(&mut cells, g, plan, m, pr, cfg.uv_min_lambda, &|_, c, p| Some(c * 2 + p), &|_, _, _, _| Complex64::new(1.0, 0.0));
    }
    reduce_cells(comm, &mut cells, n_bl);
    let has_data = cells.iter().any(|c| c.n.iter().any(|&n| n > 0.0));
    if !has_data {
        return Err(CalError::NoData);
    }
    let mut bp = vec![Complex64::new(0.0, 0.0); n_ant * nf * 2];
    let mut bp_flag = vec![true; n_ant * nf * 2];
    let mut bp_snr = vec![0.0; n_ant * nf * 2];
    for c in 0..nf {
        for pol in 0..2 {
            let sol = solve_cell(&cells[c * 2 + pol], &plan.baselines, n_ant, &refs, &p)
                .map_err(|source| CalError::Solve { cell: format!("bandpass channel {c} pol {pol}"), source })?;
            for a in 0..n_ant {
                let i = (a * nf + c) * 2 + pol;
                bp[i] = sol.gains[a];
                bp_flag[i] = sol.flagged[a];
                bp_snr[i] = sol.snr[a];
            }
        }
    }
    let all_times: Vec<f64> = groups.iter().flat_map(|g| g.times_jd.iter().copied()).collect();
    let (t0, t1) = all_min_max(comm, &all_times);
    let (times, gains, gflags, gsnr) = if cfg.gain_interval_s > 0.0 {
        // Normalise the bandpass: unit mean amplitude per antenna and pol.
        for a in 0..n_ant {
            for pol in 0..2 {
                let amps: Vec<f64> = (0..nf).filter(|&c| !bp_flag[(a * nf + c) * 2 + pol]).map(|c| bp[(a * nf + c) * 2 + pol].norm()).collect();
                if amps.is_empty() {
                    continue;
                }
                let mean = amps.iter().sum::<f64>() / amps.len() as f64;
                (0..nf).for_each(|c| bp[(a * nf + c) * 2 + pol] /= mean);
            }
        }
        let dt = cfg.gain_interval_s / 86_400.0;
        let nbin = (((t1 - t0) / dt).floor() as usize + 1).max(1);
        let mut cells = vec![CellStats::new(n_bl); nbin * 2];
        let bpc = &bp;
        for ((g, m), pr) in groups.iter().zip(&models).zip(&projs) {
            let bin_of: Vec<usize> = g.times_jd.iter().map(|&t| (((t - t0) / dt).floor() as usize).min(nbin - 1)).collect();
            accumulate(&mut cells, g, plan, m, pr, cfg.uv_min_lambda, &|t, _, p| Some(bin_of[t] * 2 + p), &|a, b, c, p| {
                bpc[(a * nf + c) * 2 + p] * bpc[(b * nf + c) * 2 + p].conj()
            });
        }
        reduce_cells(comm, &mut cells, n_bl);
        let mut times = Vec::new();
        let mut gains = Vec::new();
        let mut fl = Vec::new();
        let mut snr = Vec::new();
        for bin in 0..nbin {
            let mut sols = Vec::new();
            for pol in 0..2 {
                sols.push(
                    solve_cell(&cells[bin * 2 + pol], &plan.baselines, n_ant, &refs, &p)
                        .map_err(|source| CalError::Solve { cell: format!("gain interval {bin} pol {pol}"), source })?,
                );
            }
            times.push(t0 + (bin as f64 + 0.5) * dt);
            for a in 0..n_ant {
                for c in 0..nf {
                    for pol in 0..2 {
                        let i = (a * nf + c) * 2 + pol;
                        gains.push(bp[i] * sols[pol].gains[a]);
                        fl.push(bp_flag[i] || sols[pol].flagged[a]);
                        snr.push(bp_snr[i].min(sols[pol].snr[a]));
                    }
                }
            }
        }
        (times, gains, fl, snr)
    } else {
        (vec![0.5 * (t0 + t1)], bp, bp_flag, bp_snr)
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
    let mut table = CalTable { gains, flags: gflags, snr: gsnr, antenna_names: plan.antenna_names.clone(), time_jd: times, freq_hz: plan.freq_hz.clone(), refant, calibrator: plan.calibrator.name.clone(), provenance };
    // Rank 0's solution is the night's.
    let mut bytes = if comm.is_root() { table_bytes(&table) } else { Vec::new() };
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
    (0..n).filter(|&r| buf[3 * r] > 0.0).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| (lo.min(buf[3 * r + 1]), hi.max(buf[3 * r + 2])))
}

fn table_bytes(t: &CalTable) -> Vec<u8> {
    let mut out = Vec::with_capacity(t.gains.len() * 25);
    for ((g, f), s) in t.gains.iter().zip(&t.flags).zip(&t.snr) {
        out.extend_from_slice(&g.re.to_le_bytes());
        out.extend_from_slice(&g.im.to_le_bytes());
        out.extend_from_slice(&s.to_le_bytes());
        out.push(u8::from(*f));
    }
    out
}

fn from_table_bytes(t: &mut CalTable, b: &[u8]) {
    let f = |i: usize| f64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    for k in 0..t.gains.len() {
        let o = k * 25;
        t.gains[k] = Complex64::new(f(o), f(o + 8));
        t.snr[k] = f(o + 16);
        t.flags[k] = b[o + 24] != 0;
    }
}

/// QA of a table against the thresholds used at DSA-110: SNR >= 3 (warn < 10), flagged
/// fraction <= 0.5 (warn > 0.3), >= 10 good antennas, amplitudes within [0.1, 10] x the
/// median, phase scatter over channels <= 90 deg.
pub fn qa(t: &CalTable, table_name: &str) -> CalQa {
    let nf = t.freq_hz.len();
    let mut q = CalQa { calibrator: t.calibrator.clone(), table: table_name.into(), ..Default::default() };
    let all_amp: Vec<f64> = (0..t.gains.len()).filter(|&i| !t.flags[i]).map(|i| t.gains[i].norm()).collect();
    let med_amp = crate::primitives::stats::median_and_mad_sigma(&all_amp).map(|x| x.0).unwrap_or(1.0);
    let mut amp_bad = 0;
    for a in 0..t.n_ant() {
        let idx: Vec<usize> = (0..t.time_jd.len()).flat_map(|k| (0..nf).flat_map(move |c| (0..2).map(move |p| (k, c, p)))).map(|(k, c, p)| t.index(k, a, c, p)).collect();
        let good: Vec<usize> = idx.iter().copied().filter(|&i| !t.flags[i]).collect();
        if good.is_empty() {
            continue;
        }
        let snr: Vec<f64> = good.iter().map(|&i| t.snr[i]).collect();
        let med_snr = crate::primitives::stats::median_and_mad_sigma(&snr).map(|x| x.0).unwrap_or(0.0);
        let amps: Vec<f64> = good.iter().map(|&i| t.gains[i].norm()).collect();
        let mean_amp = amps.iter().sum::<f64>() / amps.len() as f64;
        let amp_scatter = (amps.iter().map(|x| (x - mean_amp).powi(2)).sum::<f64>() / amps.len() as f64).sqrt() / mean_amp.max(1e-300);
        // Circular scatter of the phase over channels and times, per polarization.
        let mut phase_scatter: f64 = 0.0;
        for p in 0..2 {
            let ph: Vec<f64> = good.iter().copied().filter(|&i| i % 2 == p).map(|i| t.gains[i].arg()).collect();
            if ph.is_empty() {
                continue;
            }
            let (s, c) = ph.iter().fold((0.0, 0.0), |(s, c), x| (s + x.sin(), c + x.cos()));
            let r = (s * s + c * c).sqrt() / ph.len() as f64;
            phase_scatter = phase_scatter.max((-2.0 * r.max(1e-12).ln()).sqrt().to_degrees());
        }
        if amps.iter().any(|&x| x < 0.1 * med_amp || x > 10.0 * med_amp) {
            amp_bad += 1;
        }
        q.antennas.push((t.antenna_names[a], med_snr, 1.0 - good.len() as f64 / idx.len() as f64, amp_scatter, phase_scatter));
    }
    q.good_antennas = q.antennas.iter().filter(|a| a.2 < 0.5).count();
    let used = q.antennas.len().max(1);
    q.flagged_fraction = q.antennas.iter().map(|a| a.2).sum::<f64>() / used as f64;
    let min_snr = q.antennas.iter().map(|a| a.1).fold(f64::INFINITY, f64::min);
    let max_phase = q.antennas.iter().map(|a| a.4).fold(0.0, f64::max);
    let gate = |ok: bool, warn: bool, what: String| (what, if !ok { "fail" } else if warn { "warn" } else { "pass" }.to_string());
    q.gates.push(gate(min_snr >= 3.0, min_snr < 10.0, format!("solution SNR >= 3 (warn < 10): min median {min_snr:.1}")));
    q.gates.push(gate(q.flagged_fraction <= 0.5, q.flagged_fraction > 0.3, format!("flagged solutions <= 0.5 (warn > 0.3): {:.3}", q.flagged_fraction)));
    q.gates.push(gate(q.good_antennas >= 10, false, format!("at least 10 good antennas: {}", q.good_antennas)));
    q.gates.push(gate(amp_bad == 0, false, format!("gain amplitudes within [0.1, 10] x median: {amp_bad} antennas outside")));
    q.gates.push(gate(max_phase <= 90.0, false, format!("bandpass phase scatter <= 90 deg: max {max_phase:.1}")));
    q
}
