//! The flagging stage, run on every group before calibration and imaging:
//! 1. zeros/NaN/nsamples = 0 (at conversion), autocorrelations, configured channel and
//!    time ranges;
//! 2. the array-wide pass (`array`, opt-in): each baseline's power over its
//!    interference-free channel level, normalised and summed over baselines, SumThreshold on
//!    that time x channel plane; its cells are flagged on every cross-correlation;
//! 3. per baseline and polarization, AOFlagger-style iterations on the time x frequency
//!    plane of amplitudes: masked Gaussian background removed (local-linear when
//!    `two_sided`), robust noise, SumThreshold in both directions at decreasing sensitivity,
//!    on the positive and (`two_sided`) separately on the negative residuals: beside a bright
//!    source, interference with a random phase lowers |V| as often as it raises it (the
//!    array pass's cells enter
//!    SumThreshold as background-level samples);
//!    optionally (`combined`) the same on the baseline-averaged residual plane, with
//!    per-timestep and per-channel RMS outlier flags;
//! 4. SIR dilation (of the flags other than the array pass's; `sir_extend: false` fills
//!    gaps between flags without widening runs past their ends); 5. dead antennas (> 95 %
//!    flagged); 6. the final amplitude clip (median + k 1.4826 MAD per polarization over
//!    cross-correlations).
//!
//! A flag is a zero weight in the group (`GroupVis::weight`).

/// The flagging kernels, in the compute layer (re-exported at their old path).
pub use crate::compute::flagging as algorithms;
pub mod array;
pub mod settings;
mod write;

pub use write::write_flags;

use crate::compute::{Compute, Schedule, Smoothing};
use crate::core::GroupVis;
use crate::primitives::stats::median_and_mad_sigma;
use algorithms::{sir_plane_with, sumthreshold_plane};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
pub use settings::{ArrayFlagConfig, FlagConfig, SumThresholdConfig};

/// What the stage did, for QA: fractions flagged per antenna, channel and time, and a
/// (time x channel) waterfall of flagged fractions over cross-correlations.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct FlagSummary {
    pub fraction_total: f64,
    pub fraction_before: f64,
    /// Per antenna number present in the data: (antenna name, fraction).
    pub per_antenna: Vec<(String, f64)>,
    pub per_channel: Vec<f64>,
    pub per_time: Vec<f64>,
    /// Row-major (time, channel) flagged fraction over cross-correlations and pols.
    pub waterfall: Vec<f32>,
    pub dead_antennas: Vec<String>,
    /// Samples flagged by each step (cross-correlations).
    pub by_step: Vec<(String, usize)>,
    /// Wall-clock seconds of each step (the same names as `by_step`).
    #[serde(default)]
    pub seconds_by_step: Vec<(String, f64)>,
}

fn count_flagged(g: &GroupVis, cross: &[usize]) -> usize {
    let plane = g.n_times() * g.n_chan() * g.npol;
    cross
        .par_iter()
        .map(|&b| {
            g.weight[b * plane..(b + 1) * plane]
                .iter()
                .filter(|&&w| w == 0.0)
                .count()
        })
        .sum()
}

/// Flags a group in place (on the CPU).
pub fn run(g: &mut GroupVis, cfg: &FlagConfig) -> FlagSummary {
    run_with(g, cfg, &crate::compute::Cpu)
}

/// Flags a group in place, the per-baseline SumThreshold on `compute`.
pub fn run_with(g: &mut GroupVis, cfg: &FlagConfig, compute: &dyn Compute) -> FlagSummary {
    let (nt, nf, np) = (g.n_times(), g.n_chan(), g.npol);
    let plane = nt * nf * np;
    let cross: Vec<usize> = (0..g.baselines.len())
        .filter(|&b| g.baselines[b].0 != g.baselines[b].1)
        .collect();
    let mut summary = FlagSummary::default();
    let total_cross = (cross.len() * plane).max(1);
    summary.fraction_before = count_flagged(g, &cross) as f64 / total_cross as f64;
    let mut by_step: Vec<(String, usize)> = Vec::new();
    let mut clock = std::time::Instant::now();
    let mut seconds: Vec<(String, f64)> = Vec::new();
    let mut step =
        |name: &str, g: &GroupVis, before: &mut usize, by_step: &mut Vec<(String, usize)>| {
            let now = count_flagged(g, &cross);
            by_step.push((name.to_string(), now - *before));
            *before = now;
            seconds.push((name.to_string(), clock.elapsed().as_secs_f64()));
            clock = std::time::Instant::now();
        };
    let mut done = count_flagged(g, &cross);
    if !cfg.enabled {
        return finish(g, summary, &cross);
    }
    // 1. Autocorrelations, channel and time ranges.
    let chan_bad: Vec<bool> = g
        .freqs
        .iter()
        .map(|&f| {
            cfg.channel_ranges_mhz
                .iter()
                .any(|r| f / 1e6 >= r[0] && f / 1e6 <= r[1])
        })
        .collect();
    let ranges_jd: Vec<[f64; 2]> = cfg
        .time_ranges_utc
        .iter()
        .filter_map(|[a, b]| {
            Some([
                crate::primitives::time::iso_to_jd(a)?,
                crate::primitives::time::iso_to_jd(b)?,
            ])
        })
        .collect();
    let time_bad: Vec<bool> = g
        .times_jd
        .iter()
        .map(|&t| ranges_jd.iter().any(|r| t >= r[0] && t <= r[1]))
        .collect();
    let baselines = g.baselines.clone();
    g.weight
        .par_chunks_mut(plane)
        .enumerate()
        .for_each(|(b, w)| {
            let auto = baselines[b].0 == baselines[b].1;
            for t in 0..nt {
                for c in 0..nf {
                    if (auto && cfg.flag_autocorrelations) || chan_bad[c] || time_bad[t] {
                        w[(t * nf + c) * np..(t * nf + c + 1) * np]
                            .iter_mut()
                            .for_each(|x| *x = 0.0);
                    }
                }
            }
        });
    step("ranges", g, &mut done, &mut by_step);
    // 2. The array-wide pass: its cells flagged on every cross-correlation before the
    // per-baseline passes (whose backgrounds then leave them out).
    let mut array_cells = vec![false; nt * nf];
    if cfg.array.enabled {
        let found = array::detect(g, &cross, &cfg.array);
        array_cells = found.cells;
        let cells = &array_cells;
        g.weight
            .par_chunks_mut(plane)
            .enumerate()
            .filter(|(b, _)| baselines[*b].0 != baselines[*b].1)
            .for_each(|(_, w)| {
                for (i, _) in cells.iter().enumerate().filter(|(_, &f)| f) {
                    w[i * np..(i + 1) * np].iter_mut().for_each(|x| *x = 0.0);
                }
            });
        step("array", g, &mut done, &mut by_step);
    }
    // 3. Iterations at decreasing sensitivity.
    let st = &cfg.sumthreshold;
    if st.enabled {
        for it in 0..st.iterations.max(1) {
            let sens = 2f32.powi((st.iterations.max(1) - 1 - it) as i32);
            let residuals = per_baseline_pass(g, cfg, sens, compute, &array_cells);
            step(
                &format!("sumthreshold_baseline_{it}"),
                g,
                &mut done,
                &mut by_step,
            );
            if cfg.combined {
                combined_pass(g, &cross, residuals, cfg, sens);
                step(
                    &format!("sumthreshold_combined_{it}"),
                    g,
                    &mut done,
                    &mut by_step,
                );
            }
        }
    }
    // 4. SIR dilation per baseline-pol, of the flags other than the array pass's (its cells
    // are found one by one on a plane with sqrt(N) less noise: dilating them would only
    // widen bursts and lines past their edges on every baseline).
    if cfg.sir_eta > 0.0 {
        let (eta, extend) = (cfg.sir_eta, cfg.sir_extend);
        let cells = &array_cells;
        g.weight
            .par_chunks_mut(plane)
            .enumerate()
            .filter(|(b, _)| baselines[*b].0 != baselines[*b].1)
            .for_each(|(_, w)| {
                for p in 0..np {
                    let mut fl: Vec<bool> = (0..nt * nf)
                        .map(|i| w[i * np + p] == 0.0 && !cells[i])
                        .collect();
                    sir_plane_with(&mut fl, nt, nf, eta, extend);
                    for (i, &f) in fl.iter().enumerate() {
                        if f {
                            w[i * np + p] = 0.0;
                        }
                    }
                }
            });
        step("sir", g, &mut done, &mut by_step);
    }
    // 5. Dead antennas.
    summary.dead_antennas = dead_antennas(g, &cross, cfg.dead_antenna_fraction);
    step("dead_antennas", g, &mut done, &mut by_step);
    // 6. Amplitude clip per polarization.
    if cfg.clip_sigma > 0.0 {
        amplitude_clip(g, &cross, cfg.clip_sigma);
        step("amplitude_clip", g, &mut done, &mut by_step);
    }
    summary.by_step = by_step;
    let t = std::time::Instant::now();
    let mut summary = finish(g, summary, &cross);
    seconds.push(("summary".into(), t.elapsed().as_secs_f64()));
    log::debug!(
        "flagging steps (s): {}",
        seconds
            .iter()
            .map(|(n, s)| format!("{n} {s:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    summary.seconds_by_step = seconds;
    summary
}

/// One AOFlagger-style pass on every cross-correlation plane. Returns, per (time, channel),
/// the sum over baselines and polarizations of the residuals normalised by their robust
/// noise (unflagged samples only) and their count — no per-baseline copy is kept. The
/// backgrounds and SumThreshold of each batch of baselines run on `compute`.
///
/// `array_cells` (time x channel), the array pass's detections, are left out of the
/// backgrounds and noise like any flag, but SumThreshold sees them as unflagged samples at
/// the background (zero): a flagged sample counts at the threshold there, so a long flagged
/// run (a burst across hundreds of channels) would let each window that overlaps it flag
/// the few unflagged samples beside it at that window's low threshold, and the run would
/// creep outwards window after window.
fn per_baseline_pass(
    g: &mut GroupVis,
    cfg: &FlagConfig,
    sens: f32,
    compute: &dyn Compute,
    array_cells: &[bool],
) -> (Vec<f64>, Vec<u32>) {
    let (nt, nf, np) = (g.n_times(), g.n_chan(), g.npol);
    let (plane, tf) = (nt * nf * np, nt * nf);
    let st = &cfg.sumthreshold;
    let schedule = Schedule {
        chi1: st.chi1 * sens,
        rho: st.rho,
        max_m_time: st.max_window_time,
        max_m_freq: st.max_window_chan,
    };
    let (sig_t, sig_f) = background_widths(g, cfg);
    let cross: Vec<usize> = (0..g.baselines.len())
        .filter(|&b| g.baselines[b].0 != g.baselines[b].1)
        .collect();
    let (mut sum, mut cnt) = (vec![0f64; tf], vec![0u32; tf]);
    // Baselines whose planes go to the backend together (the scratch memory is bounded).
    let per_batch = (compute.planes_per_batch() / np.max(1)).max(1);
    // Seconds in: amplitudes, backgrounds, noise, SumThreshold, applying (debug log).
    let mut secs = [0f64; 5];
    let mut lap = std::time::Instant::now();
    let mut tick = |k: usize| {
        secs[k] += lap.elapsed().as_secs_f64();
        lap = std::time::Instant::now();
    };
    for batch in cross.chunks(per_batch) {
        // Each (baseline, pol) plane's amplitudes and existing flags, then their smooth
        // backgrounds (on the backend), then — in place — the residuals over their robust
        // noise. Planes without a usable noise estimate go through SumThreshold as zeros
        // and their result is not applied (they are left alone).
        let vis = &g.vis;
        let weight = &g.weight;
        let planes: Vec<(usize, usize)> = batch
            .iter()
            .flat_map(|&b| (0..np).map(move |p| (b, p)))
            .collect();
        let fill_flags = |fl: &mut [bool]| {
            fl.par_chunks_mut(tf)
                .zip(planes.par_iter())
                .for_each(|(f, &(b, p))| {
                    let w = &weight[b * plane..(b + 1) * plane];
                    f.iter_mut()
                        .enumerate()
                        .for_each(|(i, f)| *f = w[i * np + p] == 0.0);
                })
        };
        let mut amp = vec![0f32; planes.len() * tf];
        let mut fl = vec![false; planes.len() * tf];
        fill_flags(&mut fl);
        amp.par_chunks_mut(tf)
            .zip(planes.par_iter())
            .for_each(|(a, &(b, p))| {
                let v = &vis[b * plane..(b + 1) * plane];
                a.iter_mut()
                    .enumerate()
                    .for_each(|(i, a)| *a = v[i * np + p].norm());
            });
        tick(0);
        // Local-linear: at the plane's edges the fit follows the slopes (a transit's rise or
        // fall) instead of being pulled toward the inside, which two-sided detection would
        // flag as a run of negative residuals.
        let smoothing = Smoothing {
            sigma_t: sig_t,
            sigma_f: sig_f,
            linear: st.two_sided,
        };
        let bg = crate::compute::or_cpu(compute, "flagging background", |c, _| {
            c.background_planes(&amp, &fl, nt, nf, &smoothing)
        });
        tick(1);
        let used: Vec<bool> = amp
            .par_chunks_mut(tf)
            .zip(fl.par_chunks(tf))
            .zip(bg.par_chunks(tf))
            .map_init(Vec::new, |res: &mut Vec<f64>, ((a, f), bg)| {
                res.clear();
                res.extend(
                    (0..tf)
                        .filter(|&i| !f[i])
                        .map(|i| (a[i] - bg[i]) as f64)
                        .filter(|x| x.is_finite()),
                );
                // Positive excursions: interference adds power (and the mean of a window of
                // pure noise residuals is zero, as SumThreshold's thresholds assume).
                match crate::primitives::stats::median_and_mad_sigma_mut(res) {
                    Some((_, sigma)) if sigma > 0.0 => {
                        a.iter_mut()
                            .zip(bg)
                            .for_each(|(a, &b)| *a = ((*a - b) as f64 / sigma) as f32);
                        true
                    }
                    _ => {
                        a.iter_mut().for_each(|a| *a = 0.0);
                        false
                    }
                }
            })
            .collect();
        drop(bg);
        let mut values = amp;
        let mut flags = fl;
        let any_cells = array_cells.iter().any(|&c| c);
        let unflag_cells = |flags: &mut [bool]| {
            if any_cells {
                flags.par_chunks_mut(tf).for_each(|f| {
                    f.iter_mut()
                        .zip(array_cells)
                        .filter(|(_, &c)| c)
                        .for_each(|(f, _)| *f = false)
                });
            }
        };
        if any_cells {
            values.par_chunks_mut(tf).for_each(|v| {
                v.iter_mut()
                    .zip(array_cells)
                    .filter(|(_, &c)| c)
                    .for_each(|(v, _)| *v = 0.0)
            });
            unflag_cells(&mut flags);
        }
        tick(2);
        let run_st = |values: &[f32], flags: &mut Vec<bool>| {
            crate::compute::or_cpu(compute, "SumThreshold", |c, retry| {
                if retry {
                    fill_flags(flags); // the backend may have left them half-done
                    unflag_cells(flags);
                }
                c.sumthreshold_planes(values, flags, nt, nf, &schedule)
            });
        };
        // Both signs: next to a bright source, interference with another phase changes the
        // amplitude by about R cos(phase difference), lowering it on half of the baselines.
        // The negative excursions go through SumThreshold on their own (from the same
        // starting flags), so windows never average the two signs.
        let start = st.two_sided.then(|| flags.clone());
        run_st(&values, &mut flags);
        if let Some(mut neg_flags) = start {
            let neg: Vec<f32> = values.par_iter().map(|v| -v).collect();
            run_st(&neg, &mut neg_flags);
            flags
                .par_iter_mut()
                .zip(neg_flags.par_iter())
                .for_each(|(f, &n)| *f |= n);
        }
        let used: Vec<usize> = (0..used.len()).filter(|&k| used[k]).collect();
        tick(3);
        // Apply: per baseline in parallel, the normalised residuals summed where unflagged.
        let mut planes_of: Vec<Vec<(usize, usize)>> = vec![Vec::new(); batch.len()];
        used.iter()
            .for_each(|&k| planes_of[k / np].push((k, k % np)));
        let mut slot = vec![usize::MAX; g.baselines.len()];
        batch.iter().enumerate().for_each(|(q, &b)| slot[b] = q);
        let zero = || (vec![0f64; tf], vec![0u32; tf]);
        let (s, c) = g
            .weight
            .par_chunks_mut(plane)
            .enumerate()
            .filter(|(b, _)| slot[*b] != usize::MAX)
            .fold(zero, |(mut s, mut c), (b, w)| {
                for &(j, p) in &planes_of[slot[b]] {
                    for i in 0..tf {
                        if flags[j * tf + i] {
                            w[i * np + p] = 0.0;
                        } else if !array_cells[i] {
                            s[i] += values[j * tf + i] as f64;
                            c[i] += 1;
                        }
                    }
                }
                (s, c)
            })
            .reduce(zero, |(mut s1, mut c1), (s2, c2)| {
                s1.iter_mut().zip(&s2).for_each(|(a, b)| *a += b);
                c1.iter_mut().zip(&c2).for_each(|(a, b)| *a += b);
                (s1, c1)
            });
        sum.iter_mut().zip(&s).for_each(|(a, b)| *a += b);
        cnt.iter_mut().zip(&c).for_each(|(a, b)| *a += b);
        tick(4);
    }
    log::debug!("baseline pass (s): amplitudes {:.2}, backgrounds {:.2}, noise {:.2}, sumthreshold {:.2}, apply {:.2}", secs[0], secs[1], secs[2], secs[3], secs[4]);
    (sum, cnt)
}

/// SumThreshold on the baseline-averaged normalised residuals (noise / sqrt(N)), plus
/// per-timestep and per-channel RMS outliers; detections flag every baseline.
fn combined_pass(
    g: &mut GroupVis,
    cross: &[usize],
    (sum, cnt): (Vec<f64>, Vec<u32>),
    cfg: &FlagConfig,
    sens: f32,
) {
    let (nt, nf, np) = (g.n_times(), g.n_chan(), g.npol);
    let st = &cfg.sumthreshold;
    // Mean residual in units of its own noise (1 / sqrt(count) for unit-noise inputs).
    let z: Vec<f32> = (0..nt * nf)
        .map(|i| {
            if cnt[i] > 0 {
                (sum[i] / (cnt[i] as f64).sqrt()) as f32
            } else {
                0.0
            }
        })
        .collect();
    let fl: Vec<bool> = cnt.iter().map(|&c| c == 0).collect();
    // Averaging makes small systematic residuals (sky structure, background-fit bias)
    // significant: remove a smooth surface from the combined plane too, twice — the second
    // time without the first round's detections, so strong RFI cannot drag the surface —
    // and use the plane's own robust scale.
    let (sig_t, sig_f) = background_widths(g, cfg);
    let detect = |mask: &[bool]| -> Option<(Vec<f32>, Vec<bool>)> {
        let bg = algorithms::masked_smooth(&z, mask, nt, nf, sig_t, sig_f, true);
        let r: Vec<f32> = z.iter().zip(&bg).map(|(a, b)| a - b).collect();
        let rs: Vec<f64> = r
            .iter()
            .zip(mask)
            .filter(|(_, &f)| !f)
            .map(|(&x, _)| x as f64)
            .collect();
        let (med, sig) = median_and_mad_sigma(&rs)?;
        let sig = sig.max(1e-6);
        let zn: Vec<f32> = r.iter().map(|&x| ((x as f64 - med) / sig) as f32).collect();
        let m = cfg.combined_max_window.max(1);
        let bad = sumthreshold_plane(
            &zn,
            mask,
            nt,
            nf,
            st.chi1 * sens,
            st.rho,
            m.min(st.max_window_time),
            m.min(st.max_window_chan),
        );
        Some((zn, bad))
    };
    let Some((_, first)) = detect(&fl) else {
        return;
    };
    let Some((zn, mut bad)) = detect(&first) else {
        return;
    };
    // Per-timestep and per-channel RMS outliers.
    if cfg.rms_outlier_sigma > 0.0 {
        let rms = |idx: &mut dyn Iterator<Item = usize>| {
            let v: Vec<f64> = idx
                .filter(|&i| !bad[i])
                .map(|i| (zn[i] as f64).powi(2))
                .collect();
            if v.is_empty() {
                f64::NAN
            } else {
                (v.iter().sum::<f64>() / v.len() as f64).sqrt()
            }
        };
        let per_t: Vec<f64> = (0..nt)
            .map(|t| rms(&mut (0..nf).map(move |c| t * nf + c)))
            .collect();
        let per_c: Vec<f64> = (0..nf)
            .map(|c| rms(&mut (0..nt).map(move |t| t * nf + c)))
            .collect();
        let k = cfg.rms_outlier_sigma * sens as f64;
        for (t, &r) in per_t.iter().enumerate() {
            if let Some((m, s)) = median_and_mad_sigma(&per_t) {
                if r.is_finite() && r > m + k * s.max(1e-3) {
                    (0..nf).for_each(|c| bad[t * nf + c] = true);
                }
            }
        }
        if let Some((m, s)) = median_and_mad_sigma(&per_c) {
            for (c, &r) in per_c.iter().enumerate() {
                if r.is_finite() && r > m + k * s.max(1e-3) {
                    (0..nt).for_each(|t| bad[t * nf + c] = true);
                }
            }
        }
    }
    let plane = nt * nf * np;
    let cross_set: Vec<bool> = (0..g.baselines.len())
        .map(|b| cross.binary_search(&b).is_ok())
        .collect();
    g.weight
        .par_chunks_mut(plane)
        .enumerate()
        .filter(|(b, _)| cross_set[*b])
        .for_each(|(_, w)| {
            for (i, &f) in bad.iter().enumerate() {
                if f {
                    w[i * np..(i + 1) * np].iter_mut().for_each(|x| *x = 0.0);
                }
            }
        });
}

/// Background widths in samples (time, channel) from the configured physical widths.
fn background_widths(g: &GroupVis, cfg: &FlagConfig) -> (f64, f64) {
    let st = &cfg.sumthreshold;
    let dt = if g.times_jd.len() > 1 {
        (g.times_jd[1] - g.times_jd[0]) * 86_400.0
    } else {
        12.884_901_888
    };
    let df = g.channel_width_hz.max(1.0) / 1e6;
    (st.background_sigma_s / dt, st.background_sigma_mhz / df)
}

fn dead_antennas(g: &mut GroupVis, cross: &[usize], limit: f64) -> Vec<String> {
    let plane = g.n_times() * g.n_chan() * g.npol;
    let n_ant = g.ant_pos.len();
    let mut flagged = vec![0usize; n_ant];
    let mut total = vec![0usize; n_ant];
    let counts: Vec<usize> = cross
        .par_iter()
        .map(|&b| {
            g.weight[b * plane..(b + 1) * plane]
                .iter()
                .filter(|&&w| w == 0.0)
                .count()
        })
        .collect();
    for (&b, &f) in cross.iter().zip(&counts) {
        let (a1, a2) = g.baselines[b];
        for a in [a1, a2] {
            flagged[a] += f;
            total[a] += plane;
        }
    }
    let dead: Vec<usize> = (0..n_ant)
        .filter(|&a| total[a] > 0 && flagged[a] as f64 > limit * total[a] as f64)
        .collect();
    let baselines = &g.baselines;
    let kill = |b: usize| {
        cross.binary_search(&b).is_ok()
            && (dead.contains(&baselines[b].0) || dead.contains(&baselines[b].1))
    };
    g.weight
        .par_chunks_mut(plane)
        .enumerate()
        .filter(|(b, _)| kill(*b))
        .for_each(|(_, w)| w.iter_mut().for_each(|w| *w = 0.0));
    dead.iter().map(|&a| g.antenna_names[a].clone()).collect()
}

/// Flags samples above median + k x 1.4826 MAD of each polarization's unflagged
/// cross-correlation amplitudes (the statistics by parallel selection: a group holds
/// ~86 M samples per polarization).
fn amplitude_clip(g: &mut GroupVis, cross: &[usize], k: f64) {
    let np = g.npol;
    let plane = g.n_times() * g.n_chan() * np;
    let tf = plane / np;
    // One polarization's amplitudes at a time (NaN where flagged, left out of the
    // statistics), then the clip from the same array.
    let mut amps = vec![0f32; cross.len() * tf];
    for p in 0..np {
        let (vis, weight) = (&g.vis, &g.weight);
        amps.par_chunks_mut(tf)
            .zip(cross.par_iter())
            .for_each(|(a, &b)| {
                let (v, w) = (
                    &vis[b * plane..(b + 1) * plane],
                    &weight[b * plane..(b + 1) * plane],
                );
                for i in 0..tf {
                    a[i] = if w[i * np + p] > 0.0 {
                        v[i * np + p].norm()
                    } else {
                        f32::NAN
                    };
                }
            });
        let Some((med, sig)) = crate::primitives::stats::median_and_mad_sigma_par(&amps) else {
            continue;
        };
        let limit = (med + k * sig) as f32;
        let mut mine: Vec<&mut [f32]> = g
            .weight
            .chunks_mut(plane)
            .enumerate()
            .filter(|(b, _)| cross.binary_search(b).is_ok())
            .map(|(_, w)| w)
            .collect();
        mine.par_iter_mut()
            .zip(amps.par_chunks(tf))
            .for_each(|(w, a)| {
                for i in 0..tf {
                    if a[i] > limit {
                        w[i * np + p] = 0.0;
                    }
                }
            });
    }
}

fn finish(g: &GroupVis, mut s: FlagSummary, cross: &[usize]) -> FlagSummary {
    let (nt, nf, np) = (g.n_times(), g.n_chan(), g.npol);
    let plane = nt * nf * np;
    let n_ant = g.ant_pos.len();
    // Per baseline in parallel: flags per (time, channel) summed into one waterfall.
    let per_baseline: Vec<usize> = cross
        .par_iter()
        .map(|&b| {
            g.weight[b * plane..(b + 1) * plane]
                .iter()
                .filter(|&&x| x == 0.0)
                .count()
        })
        .collect();
    let wf: Vec<u32> = cross
        .par_iter()
        .fold(
            || vec![0u32; nt * nf],
            |mut wf, &b| {
                let w = &g.weight[b * plane..(b + 1) * plane];
                for (i, cell) in wf.iter_mut().enumerate() {
                    *cell += w[i * np..(i + 1) * np]
                        .iter()
                        .filter(|&&x| x == 0.0)
                        .count() as u32;
                }
                wf
            },
        )
        .reduce(
            || vec![0u32; nt * nf],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    let mut ant_f = vec![0usize; n_ant];
    let mut ant_t = vec![0usize; n_ant];
    for (&b, &nflag) in cross.iter().zip(&per_baseline) {
        let (a1, a2) = g.baselines[b];
        for a in [a1, a2] {
            ant_f[a] += nflag;
            ant_t[a] += plane;
        }
    }
    let per = (cross.len() * np).max(1) as f64;
    s.waterfall = wf.iter().map(|&x| (x as f64 / per) as f32).collect();
    s.per_time = (0..nt)
        .map(|t| (0..nf).map(|c| wf[t * nf + c] as f64).sum::<f64>() / (per * nf as f64))
        .collect();
    s.per_channel = (0..nf)
        .map(|c| (0..nt).map(|t| wf[t * nf + c] as f64).sum::<f64>() / (per * nt as f64))
        .collect();
    s.per_antenna = (0..n_ant)
        .filter(|&a| ant_t[a] > 0)
        .map(|a| {
            (
                g.antenna_names[a].clone(),
                ant_f[a] as f64 / ant_t[a] as f64,
            )
        })
        .collect();
    s.fraction_total = wf.iter().map(|&x| x as f64).sum::<f64>() / (per * (nt * nf) as f64);
    s
}
