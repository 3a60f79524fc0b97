//! The flagging stage, run on every group before calibration and imaging:
//! 1. zeros/NaN/nsamples = 0 (at conversion), autocorrelations, configured channel and
//!    time ranges;
//! 2. per baseline and polarization, AOFlagger-style iterations on the time x frequency
//!    plane of amplitudes: masked Gaussian background removed (local-linear when
//!    `two_sided`), robust noise, SumThreshold in both directions at decreasing sensitivity,
//!    on the positive and (`two_sided`) separately on the negative residuals: beside a bright
//!    source, interference with a random phase lowers |V| as often as it raises it;
//! 3. after each iteration (and once before the first), the array-wide pass (`array`,
//!    src/flag/array.rs) on the same residuals' excess power summed over baselines: RFI too
//!    weak for one baseline but on all of them; its cells are masked from the next
//!    iteration's backgrounds and flagged on every cross-correlation at the end;
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

use crate::compute::flag_pass::FlagPass;
use crate::compute::{Compute, Schedule, Smoothing};
use crate::core::{GroupVis, FLAGGED};
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
                .filter(|&&w| w == FLAGGED)
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
    let mut steps = Steps::new(count_flagged(g, &cross));
    if !cfg.enabled {
        return finish(g, summary, &cross);
    }
    // 1. Autocorrelations, channel and time ranges.
    flag_ranges(g, cfg);
    steps.done("ranges", count_flagged(g, &cross));
    // 2. Per baseline and on the array's excess power, at decreasing sensitivity; the
    // array's cells flagged on every cross-correlation.
    let array_cells = iterate(g, cfg, compute, &cross, &mut steps);
    if array_cells.iter().any(|&c| c) {
        flag_cells(g, &array_cells);
        steps.done("array", count_flagged(g, &cross));
    }
    // 3. SIR dilation per baseline-pol, of the flags other than the array pass's (its cells
    // are found one by one on a plane with sqrt(N) less noise: dilating them would only
    // widen bursts and lines past their edges on every baseline).
    if cfg.sir_eta > 0.0 {
        sir_step(g, cfg, compute, &array_cells);
        steps.done("sir", count_flagged(g, &cross));
    }
    // 4. Dead antennas.
    summary.dead_antennas = dead_antennas(g, &cross, cfg.dead_antenna_fraction);
    steps.done("dead_antennas", count_flagged(g, &cross));
    // 5. Amplitude clip per polarization.
    if cfg.clip_sigma > 0.0 {
        amplitude_clip(g, &cross, cfg.clip_sigma);
        steps.done("amplitude_clip", count_flagged(g, &cross));
    }
    let t = std::time::Instant::now();
    let Steps {
        by_step,
        mut seconds,
        ..
    } = steps;
    summary.by_step = by_step;
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

/// The samples each step flagged and its wall-clock seconds.
struct Steps {
    by_step: Vec<(String, usize)>,
    seconds: Vec<(String, f64)>,
    flagged: usize,
    clock: std::time::Instant,
}

impl Steps {
    fn new(flagged: usize) -> Self {
        Steps {
            by_step: Vec::new(),
            seconds: Vec::new(),
            flagged,
            clock: std::time::Instant::now(),
        }
    }

    /// Records a finished step with the count of flagged samples after it.
    fn done(&mut self, name: &str, flagged_now: usize) {
        self.by_step
            .push((name.to_string(), flagged_now.saturating_sub(self.flagged)));
        self.flagged = flagged_now;
        self.seconds
            .push((name.to_string(), self.clock.elapsed().as_secs_f64()));
        self.clock = std::time::Instant::now();
    }
}

/// Autocorrelations (when configured) and the configured channel and time ranges.
fn flag_ranges(g: &mut GroupVis, cfg: &FlagConfig) {
    let (nt, nf, np) = (g.n_times(), g.n_chan(), g.npol);
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
        .par_chunks_mut(nt * nf * np)
        .enumerate()
        .for_each(|(b, w)| {
            let auto = baselines[b].0 == baselines[b].1;
            for t in 0..nt {
                for c in 0..nf {
                    if (auto && cfg.flag_autocorrelations) || chan_bad[c] || time_bad[t] {
                        w[(t * nf + c) * np..(t * nf + c + 1) * np]
                            .iter_mut()
                            .for_each(|x| *x = FLAGGED);
                    }
                }
            }
        });
}

/// The per-baseline iterations at decreasing sensitivity, each followed by the array pass
/// on the same residuals' excess power; with the array pass on, a first round finds the
/// array's cells only (so that no baseline is flagged beside interference its background
/// has not yet left out). Returns the array's cells (time x channel), not yet flagged.
fn iterate(
    g: &mut GroupVis,
    cfg: &FlagConfig,
    compute: &dyn Compute,
    cross: &[usize],
    steps: &mut Steps,
) -> Vec<bool> {
    let (nt, nf) = (g.n_times(), g.n_chan());
    let st = &cfg.sumthreshold;
    let mut cells = vec![false; nt * nf];
    if !st.enabled {
        return cells;
    }
    let array = cfg.array.enabled && cross.len() >= cfg.array.min_baselines.max(1);
    let n = st.iterations.max(1);
    for it in 0..n + array as usize {
        let k = it.saturating_sub(array as usize);
        let sens = 2f32.powi((n - 1 - k) as i32);
        let apply = !(array && it == 0);
        let power = per_baseline_pass(g, cfg, sens, compute, &cells, apply);
        if apply {
            steps.done(
                &format!("sumthreshold_baseline_{k}"),
                count_flagged(g, cross),
            );
        }
        if array {
            cells = array::detect(&power, nt, nf, &cfg.array, sens);
        }
    }
    cells
}

/// Flags `cells` (time x channel) on every cross-correlation and polarization.
fn flag_cells(g: &mut GroupVis, cells: &[bool]) {
    let np = g.npol;
    let plane = g.n_times() * g.n_chan() * np;
    let baselines = &g.baselines;
    g.weight
        .par_chunks_mut(plane)
        .enumerate()
        .filter(|(b, _)| baselines[*b].0 != baselines[*b].1)
        .for_each(|(_, w)| {
            for (i, _) in cells.iter().enumerate().filter(|(_, &f)| f) {
                w[i * np..(i + 1) * np]
                    .iter_mut()
                    .for_each(|x| *x = FLAGGED);
            }
        });
}

/// SIR dilation per cross-correlation and polarization of the flags outside `cells`, in
/// batches of planes on `compute`.
fn sir_step(g: &mut GroupVis, cfg: &FlagConfig, compute: &dyn Compute, cells: &[bool]) {
    let (nt, nf) = (g.n_times(), g.n_chan());
    let tf = nt * nf;
    for (batch, planes) in plane_batches(g, compute) {
        let mut fl = vec![false; planes.len() * tf];
        let fill = |fl: &mut [bool]| {
            fill_flags(g, &planes, fl);
            if cells.iter().any(|&c| c) {
                fl.par_chunks_mut(tf)
                    .for_each(|f| f.iter_mut().zip(cells).for_each(|(f, &c)| *f &= !c));
            }
        };
        fill(&mut fl);
        crate::compute::or_cpu(compute, "SIR", |c, retry| {
            if retry {
                fill(&mut fl);
            }
            c.sir_planes(&mut fl, nt, nf, cfg.sir_eta, cfg.sir_extend)
        });
        // The cells are flagged already (flag_cells runs first).
        apply_flags(g, &batch, &planes, &fl, &vec![true; planes.len()], cells);
    }
}

/// The cross-correlations in the batches whose planes go to `compute` together (the
/// scratch memory is bounded): each batch's baselines and its (baseline, pol) planes.
type PlaneBatch = (Vec<usize>, Vec<(usize, usize)>);

fn plane_batches(g: &GroupVis, compute: &dyn Compute) -> Vec<PlaneBatch> {
    let np = g.npol;
    let cross: Vec<usize> = (0..g.baselines.len())
        .filter(|&b| g.baselines[b].0 != g.baselines[b].1)
        .collect();
    let per_batch = (compute.planes_per_batch() / np.max(1)).max(1);
    cross
        .chunks(per_batch)
        .map(|batch| {
            let planes = batch
                .iter()
                .flat_map(|&b| (0..np).map(move |p| (b, p)))
                .collect();
            (batch.to_vec(), planes)
        })
        .collect()
}

/// Each plane's amplitudes ((baseline, pol) pairs).
fn fill_amplitudes(g: &GroupVis, planes: &[(usize, usize)], amp: &mut [f32]) {
    let np = g.npol;
    let tf = g.n_times() * g.n_chan();
    let vis = &g.vis;
    amp.par_chunks_mut(tf)
        .zip(planes.par_iter())
        .for_each(|(a, &(b, p))| {
            let v = &vis[b * tf * np..(b + 1) * tf * np];
            a.iter_mut()
                .enumerate()
                .for_each(|(i, a)| *a = amplitude(v[i * np + p]));
        });
}

/// Each plane's existing flags (zero weights).
fn fill_flags(g: &GroupVis, planes: &[(usize, usize)], fl: &mut [bool]) {
    let np = g.npol;
    let tf = g.n_times() * g.n_chan();
    let weight = &g.weight;
    fl.par_chunks_mut(tf)
        .zip(planes.par_iter())
        .for_each(|(f, &(b, p))| {
            let w = &weight[b * tf * np..(b + 1) * tf * np];
            f.iter_mut()
                .enumerate()
                .for_each(|(i, f)| *f = w[i * np + p] == FLAGGED);
        })
}

/// One AOFlagger-style pass on every cross-correlation plane, its flags applied when
/// `apply`. Returns the array's excess power of the residuals (samples flagged before this
/// pass left out; see src/flag/array.rs) — no per-baseline copy is kept. Each batch of
/// baselines is one `Compute::flag_pass` (backgrounds, noise, residuals, SumThreshold);
/// the amplitudes, the array's excess power and the flags' write-back stay here.
///
/// `cells` (time x channel), the array pass's provisional cells, are left out of the
/// backgrounds and noise like any flag, but SumThreshold sees them as unflagged samples at
/// the background (zero): a flagged sample counts at the threshold there, so a long
/// flagged run (a burst across hundreds of channels) would let each window that overlaps it
/// flag the few unflagged samples beside it at that window's low threshold, and the run
/// would creep outwards window after window. Their residuals do enter the excess power, so
/// each iteration judges them afresh; no flag is set on them here.
fn per_baseline_pass(
    g: &mut GroupVis,
    cfg: &FlagConfig,
    sens: f32,
    compute: &dyn Compute,
    cells: &[bool],
    apply: bool,
) -> array::ExcessPower {
    let (nt, nf) = (g.n_times(), g.n_chan());
    let tf = nt * nf;
    let st = &cfg.sumthreshold;
    let schedule = Schedule {
        chi1: st.chi1 * sens,
        rho: st.rho,
        max_m_time: st.max_window_time,
        max_m_freq: st.max_window_chan,
    };
    let (sigma_t, sigma_f) = background_widths(g, cfg);
    // Local-linear: at the plane's edges the fit follows the slopes (a transit's rise or
    // fall) instead of being pulled toward the inside, which two-sided detection would
    // flag as a run of negative residuals.
    let smoothing = Smoothing {
        sigma_t,
        sigma_f,
        linear: st.two_sided,
    };
    let any_cells = cells.iter().any(|&c| c);
    let mut power = array::ExcessPower::new(tf);
    // Seconds gathering the inputs, in the backend's pass, summing the excess power and
    // writing the flags back (debug log: what stays on the host beside a device's pass).
    let mut secs = [0f64; 4];
    let mut clock = std::time::Instant::now();
    let mut lap = |k: usize| {
        secs[k] += clock.elapsed().as_secs_f64();
        clock = std::time::Instant::now();
    };
    for (batch, planes) in plane_batches(g, compute) {
        let mut values = vec![0f32; planes.len() * tf];
        let mut flags = vec![false; planes.len() * tf];
        fill_amplitudes(g, &planes, &mut values);
        fill_flags(g, &planes, &mut flags);
        let masked: Vec<bool> = if any_cells {
            flags
                .par_chunks(tf)
                .flat_map_iter(|f| f.iter().zip(cells).map(|(&f, &c)| f || c))
                .collect()
        } else {
            Vec::new()
        };
        let job = FlagPass {
            nt,
            nf,
            smoothing,
            mask: if any_cells { &masked } else { &flags },
            cells: if any_cells { cells } else { &[] },
            sumthreshold: apply.then_some((schedule, st.two_sided)),
        };
        lap(0);
        let out = crate::compute::or_cpu(compute, "flagging pass", |c, retry| {
            if retry {
                fill_amplitudes(g, &planes, &mut values); // the backend may have overwritten them
            }
            c.flag_pass(&job, &mut values, &flags)
        });
        lap(1);
        let clip = cfg.array.clip;
        let part = values
            .par_chunks(tf)
            .zip(flags.par_chunks(tf))
            .zip(out.used.par_iter())
            .filter(|(_, &u)| u)
            .fold(
                || array::ExcessPower::new(tf),
                |mut acc, ((v, f), _)| {
                    acc.add(v, f, clip);
                    acc
                },
            )
            .reduce(|| array::ExcessPower::new(tf), array::ExcessPower::merge);
        power = power.merge(part);
        lap(2);
        if let Some(found) = out.found {
            apply_flags(g, &batch, &planes, &found, &out.used, cells);
        }
        lap(3);
    }
    log::debug!(
        "baseline pass (s): inputs {:.2}, {} {:.2}, excess power {:.2}, write-back {:.2}",
        secs[0],
        compute.name(),
        secs[1],
        secs[2],
        secs[3]
    );
    power
}

/// Writes a batch's flags, per baseline in parallel: only usable planes, never on the
/// array's provisional cells (they are flagged on every baseline at the end if they hold).
fn apply_flags(
    g: &mut GroupVis,
    batch: &[usize],
    planes: &[(usize, usize)],
    flags: &[bool],
    used: &[bool],
    cells: &[bool],
) {
    let np = g.npol;
    let tf = g.n_times() * g.n_chan();
    let mut slot = vec![usize::MAX; g.baselines.len()];
    batch.iter().enumerate().for_each(|(q, &b)| slot[b] = q);
    g.weight
        .par_chunks_mut(tf * np)
        .enumerate()
        .filter(|(b, _)| slot[*b] != usize::MAX)
        .for_each(|(b, w)| {
            for (j, &(_, p)) in planes
                .iter()
                .enumerate()
                .skip(slot[b] * np)
                .take(np)
                .filter(|(j, _)| used[*j])
            {
                for i in 0..tf {
                    if flags[j * tf + i] && !cells[i] {
                        w[i * np + p] = FLAGGED;
                    }
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
    let min = st.background_min_samples;
    (
        (st.background_sigma_s / dt).max(min),
        (st.background_sigma_mhz / df).max(min),
    )
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
                .filter(|&&w| w == FLAGGED)
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
        .for_each(|(_, w)| w.iter_mut().for_each(|w| *w = FLAGGED));
    dead.iter().map(|&a| g.antenna_names[a].clone()).collect()
}

/// |v| as sqrt(re^2 + im^2): within an ulp or two of `norm` (libm's hypot, several times
/// slower: the flagger takes ~10^9 amplitudes a group) for every |v| below ~1e19, and
/// infinite (so flagged) above, where a visibility is garbage anyway (and 0 below ~1e-19).
#[inline(always)]
fn amplitude(v: num_complex::Complex32) -> f32 {
    (v.re * v.re + v.im * v.im).sqrt()
}

/// Samples per polarization the amplitude clip's statistics are taken from at most.
const CLIP_STATS_SAMPLES: usize = 1 << 22;

/// Every `stride`-th sample of n in the clip's statistics: 1 up to CLIP_STATS_SAMPLES, else
/// the first stride at or above n / CLIP_STATS_SAMPLES that shares no factor with `tf` (a
/// baseline's samples per polarization), so the subset steps through every integration and
/// channel evenly instead of returning to the same few.
fn clip_stats_stride(n: usize, tf: usize) -> usize {
    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let mut k = n.div_ceil(CLIP_STATS_SAMPLES).max(1);
    while k > 1 && gcd(k, tf) != 1 {
        k += 1;
    }
    k
}

/// The median and 1.4826 MAD of the finite values among `amp(i)`, i < n, taken on every
/// `clip_stats_stride(n, tf)`-th.
fn clip_stats(n: usize, tf: usize, amp: impl Fn(usize) -> f32 + Sync) -> Option<(f64, f64)> {
    let stride = clip_stats_stride(n, tf);
    let subset: Vec<f32> = (0..n.div_ceil(stride))
        .into_par_iter()
        .map(|j| amp(j * stride))
        .filter(|a| a.is_finite())
        .collect();
    crate::primitives::stats::median_and_mad_sigma_par(&subset)
}

/// Flags samples above median + k x 1.4826 MAD of each polarization's unflagged
/// cross-correlation amplitudes. The median and MAD are those of an evenly spread subset of
/// at most CLIP_STATS_SAMPLES (4 M) amplitudes (`clip_stats_stride`; all of them in smaller
/// groups): a full-size group holds ~84 M per polarization, and the subset's median is
/// within ~1e-3 sigma of the whole's, far inside any clip level.
fn amplitude_clip(g: &mut GroupVis, cross: &[usize], k: f64) {
    let np = g.npol;
    let plane = g.n_times() * g.n_chan() * np;
    let tf = plane / np;
    for p in 0..np {
        let (vis, weight) = (&g.vis, &g.weight);
        // Sample i of the polarization's cross-correlations: NaN where flagged (left out).
        let amp = |i: usize| {
            let s = cross[i / tf] * plane + (i % tf) * np + p;
            if weight[s] > FLAGGED {
                amplitude(vis[s])
            } else {
                f32::NAN
            }
        };
        let Some((med, sig)) = clip_stats(cross.len() * tf, tf, amp) else {
            continue;
        };
        let limit = (med + k * sig) as f32;
        let vis = &g.vis;
        g.weight
            .par_chunks_mut(plane)
            .enumerate()
            .filter(|(b, _)| cross.binary_search(b).is_ok())
            .for_each(|(b, w)| {
                let v = &vis[b * plane..(b + 1) * plane];
                for i in 0..tf {
                    let s = i * np + p;
                    if w[s] > FLAGGED && amplitude(v[s]) > limit {
                        w[s] = FLAGGED;
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
                .filter(|&&x| x == FLAGGED)
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
                        .filter(|&&x| x == FLAGGED)
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

#[cfg(test)]
#[path = "clip_tests.rs"]
mod clip_tests;
