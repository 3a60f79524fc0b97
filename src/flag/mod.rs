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
//! Steps 2-6 run through `compute::flag_planes::FlagPlanes`: on the group itself
//! (`planes::HostPlanes`, batches of planes to the `Compute` backend), or on planes a
//! device holds for the whole flagger (`Compute::hold_planes`), whose flags are written to
//! the group once at the end; a device that fails part-way leaves the group to the CPU
//! from the flags it had before step 2.
//!
//! A flag is a zero weight in the group (`GroupVis::weight`).

/// The flagging kernels, in the compute layer (re-exported at their old path).
pub use crate::compute::flagging as algorithms;
pub mod array;
pub mod planes;
pub mod settings;
mod write;

pub use write::write_flags;

use crate::compute::flag_planes::{FlagPlanes, PlanesPass, PlanesShape};
use crate::compute::{Compute, GpuError, Schedule, Smoothing};
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
    // 2.-6. On the planes a device holds, or on the group itself.
    let setup = Setup::of(g, cfg, &cross);
    let dead = flag_planes(g, cfg, compute, &cross, &setup, &mut steps);
    summary.dead_antennas = dead.iter().map(|&a| g.antenna_names[a].clone()).collect();
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

    /// Where the steps stand: a later `rewind` forgets the steps after it.
    fn mark(&self) -> (usize, usize) {
        (self.by_step.len(), self.flagged)
    }

    fn rewind(&mut self, (len, flagged): (usize, usize)) {
        self.by_step.truncate(len);
        self.seconds.truncate(len);
        self.flagged = flagged;
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

/// What the steps after the ranges need of the group: its shape, backgrounds' widths and
/// cross-correlations' antennas.
struct Setup {
    nt: usize,
    nf: usize,
    np: usize,
    smoothing: Smoothing,
    /// Each cross-correlation's antennas, in order.
    pairs: Vec<(usize, usize)>,
    n_ant: usize,
}

impl Setup {
    fn of(g: &GroupVis, cfg: &FlagConfig, cross: &[usize]) -> Self {
        let (sigma_t, sigma_f) = background_widths(g, cfg);
        Setup {
            nt: g.n_times(),
            nf: g.n_chan(),
            np: g.npol,
            // Local-linear: at the plane's edges the fit follows the slopes (a transit's
            // rise or fall) instead of being pulled toward the inside, which two-sided
            // detection would flag as a run of negative residuals.
            smoothing: Smoothing {
                sigma_t,
                sigma_f,
                linear: cfg.sumthreshold.two_sided,
            },
            pairs: cross.iter().map(|&b| g.baselines[b]).collect(),
            n_ant: g.ant_pos.len(),
        }
    }
}

/// Steps 2-6 (per-baseline and array passes, the array's cells, SIR, dead antennas, the
/// amplitude clip) on the planes `compute` holds, its flags then written to the group once;
/// on the group itself where it holds none, or (on the CPU) after it failed. Returns the
/// dead antennas.
fn flag_planes(
    g: &mut GroupVis,
    cfg: &FlagConfig,
    compute: &dyn Compute,
    cross: &[usize],
    setup: &Setup,
    steps: &mut Steps,
) -> Vec<usize> {
    let host_fails = "the flagger does not fail on the group itself";
    let mark = steps.mark();
    let Some(mut held) = hold(g, cross, compute) else {
        let mut host = planes::HostPlanes::new(g, compute, cross);
        return steps_on(&mut host, cfg, setup, steps).expect(host_fails);
    };
    match steps_on(held.as_mut(), cfg, setup, steps).and_then(|d| Ok((d, held.flags()?))) {
        Ok((dead, flags)) => {
            drop(held);
            planes::set_flagged(g, cross, &flags);
            dead
        }
        Err(e) => {
            drop(held);
            log::warn!(
                "flagging on {} failed ({e}); flagging the group on the CPU",
                compute.name()
            );
            steps.rewind(mark);
            let cpu = crate::compute::Cpu;
            let mut host = planes::HostPlanes::new(g, &cpu, cross);
            steps_on(&mut host, cfg, setup, steps).expect(host_fails)
        }
    }
}

/// The group's cross-correlation planes held by `compute` (None where it keeps none).
fn hold<'c>(
    g: &GroupVis,
    cross: &[usize],
    compute: &'c dyn Compute,
) -> Option<Box<dyn FlagPlanes + 'c>> {
    let np = g.npol;
    let tf = g.n_times() * g.n_chan();
    let shape = PlanesShape {
        planes: cross.len() * np,
        np,
        nt: g.n_times(),
        nf: g.n_chan(),
    };
    let mut fill = |first: usize, amp: &mut [f32], fl: &mut [bool]| {
        let planes: Vec<(usize, usize)> = (first..first + amp.len() / tf.max(1))
            .map(|j| (cross[j / np], j % np))
            .collect();
        planes::fill_amplitudes(g, &planes, amp);
        planes::fill_flags(g, &planes, fl);
    };
    match compute.hold_planes(&shape, &mut fill) {
        Ok(held) => {
            if held.is_some() {
                log::debug!(
                    "{} flagging planes ({} samples) held on {}",
                    shape.planes,
                    shape.planes * tf,
                    compute.name()
                );
            }
            held
        }
        Err(e) => {
            log::warn!(
                "{} could not hold the flagging planes ({e}); flagging them in batches",
                compute.name()
            );
            None
        }
    }
}

/// The flagged samples of all the planes.
fn total(p: &mut dyn FlagPlanes) -> Result<usize, GpuError> {
    Ok(p.counts()?.iter().sum())
}

/// Steps 2-6 on `p`; returns the dead antennas.
fn steps_on(
    p: &mut dyn FlagPlanes,
    cfg: &FlagConfig,
    s: &Setup,
    steps: &mut Steps,
) -> Result<Vec<usize>, GpuError> {
    // 2. Per baseline and on the array's excess power, at decreasing sensitivity; 3. the
    // array's cells flagged on every cross-correlation.
    let cells = iterate(p, cfg, s, steps)?;
    if cells.iter().any(|&c| c) {
        p.flag_cells(&cells)?;
        steps.done("array", total(p)?);
    }
    // 4. SIR dilation per baseline-pol, of the flags other than the array pass's (its cells
    // are found one by one on a plane with sqrt(N) less noise: dilating them would only
    // widen bursts and lines past their edges on every baseline).
    if cfg.sir_eta > 0.0 {
        p.sir(&cells, cfg.sir_eta, cfg.sir_extend)?;
        steps.done("sir", total(p)?);
    }
    // 5. Dead antennas.
    let dead = dead_antennas(&p.counts()?, s, cfg.dead_antenna_fraction);
    if !dead.is_empty() {
        let which: Vec<bool> = s
            .pairs
            .iter()
            .flat_map(|&(a, b)| std::iter::repeat_n(dead.contains(&a) || dead.contains(&b), s.np))
            .collect();
        p.flag_planes(&which)?;
    }
    steps.done("dead_antennas", total(p)?);
    // 6. Amplitude clip per polarization.
    if cfg.clip_sigma > 0.0 {
        amplitude_clip(p, s, cfg.clip_sigma)?;
        steps.done("amplitude_clip", total(p)?);
    }
    Ok(dead)
}

/// The per-baseline iterations at decreasing sensitivity, each followed by the array pass
/// on the same residuals' excess power; with the array pass on, a first round finds the
/// array's cells only (so that no baseline is flagged beside interference its background
/// has not yet left out). Returns the array's cells (time x channel), not yet flagged.
///
/// The array pass's provisional cells are left out of the backgrounds and noise like any
/// flag, but SumThreshold sees them as unflagged samples at the background (zero): a
/// flagged sample counts at the threshold there, so a long flagged run (a burst across
/// hundreds of channels) would let each window that overlaps it flag the few unflagged
/// samples beside it at that window's low threshold, and the run would creep outwards
/// window after window. Their residuals do enter the excess power, so each iteration
/// judges them afresh; no flag is set on them by a pass.
fn iterate(
    p: &mut dyn FlagPlanes,
    cfg: &FlagConfig,
    s: &Setup,
    steps: &mut Steps,
) -> Result<Vec<bool>, GpuError> {
    let (nt, nf) = (s.nt, s.nf);
    let st = &cfg.sumthreshold;
    let mut cells = vec![false; nt * nf];
    if !st.enabled {
        return Ok(cells);
    }
    let array = cfg.array.enabled && s.pairs.len() >= cfg.array.min_baselines.max(1);
    let n = st.iterations.max(1);
    for it in 0..n + array as usize {
        let k = it.saturating_sub(array as usize);
        let sens = 2f32.powi((n - 1 - k) as i32);
        let apply = !(array && it == 0);
        let schedule = Schedule {
            chi1: st.chi1 * sens,
            rho: st.rho,
            max_m_time: st.max_window_time,
            max_m_freq: st.max_window_chan,
        };
        let any_cells = cells.iter().any(|&c| c);
        let power = p.pass(&PlanesPass {
            smoothing: s.smoothing,
            cells: if any_cells { &cells } else { &[] },
            sumthreshold: apply.then_some((schedule, st.two_sided)),
            clip: cfg.array.clip,
        })?;
        if apply {
            steps.done(&format!("sumthreshold_baseline_{k}"), total(p)?);
        }
        if array {
            cells = array::detect(&power, nt, nf, &cfg.array, sens);
        }
    }
    Ok(cells)
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

/// The antennas with more than `limit` of their cross-correlations' samples flagged, from
/// each plane's flagged samples.
fn dead_antennas(counts: &[usize], s: &Setup, limit: f64) -> Vec<usize> {
    let plane = s.nt * s.nf * s.np;
    let mut flagged = vec![0usize; s.n_ant];
    let mut total = vec![0usize; s.n_ant];
    for (c, &(a1, a2)) in s.pairs.iter().enumerate() {
        let f: usize = counts[c * s.np..(c + 1) * s.np].iter().sum();
        for a in [a1, a2] {
            flagged[a] += f;
            total[a] += plane;
        }
    }
    (0..s.n_ant)
        .filter(|&a| total[a] > 0 && flagged[a] as f64 > limit * total[a] as f64)
        .collect()
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

/// The median and 1.4826 MAD of a clip subset's amplitudes (flagged samples, negative or
/// not finite, left out).
fn subset_stats(mut subset: Vec<f32>) -> Option<(f64, f64)> {
    subset.retain(|a| a.is_finite() && *a >= 0.0);
    crate::primitives::stats::median_and_mad_sigma_par(&subset)
}

/// The median and 1.4826 MAD of the finite values among `amp(i)`, i < n, taken on every
/// `clip_stats_stride(n, tf)`-th.
#[cfg(test)]
fn clip_stats(n: usize, tf: usize, amp: impl Fn(usize) -> f32 + Sync) -> Option<(f64, f64)> {
    let stride = clip_stats_stride(n, tf);
    subset_stats(
        (0..n.div_ceil(stride))
            .into_par_iter()
            .map(|j| amp(j * stride))
            .collect(),
    )
}

/// Flags samples above median + k x 1.4826 MAD of each polarization's unflagged
/// cross-correlation amplitudes. The median and MAD are those of an evenly spread subset of
/// at most CLIP_STATS_SAMPLES (4 M) amplitudes (`clip_stats_stride`; all of them in smaller
/// groups): a full-size group holds ~84 M per polarization, and the subset's median is
/// within ~1e-3 sigma of the whole's, far inside any clip level.
fn amplitude_clip(p: &mut dyn FlagPlanes, s: &Setup, k: f64) -> Result<(), GpuError> {
    let tf = s.nt * s.nf;
    let n = s.pairs.len() * tf;
    if n == 0 {
        return Ok(());
    }
    let stride = clip_stats_stride(n, tf);
    for pol in 0..s.np {
        let subset = p.clip_sample(pol, stride, n.div_ceil(stride))?;
        let Some((med, sig)) = subset_stats(subset) else {
            continue;
        };
        p.clip(pol, (med + k * sig) as f32)?;
    }
    Ok(())
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

#[cfg(all(test, feature = "gpu"))]
#[path = "planes_tests.rs"]
mod planes_tests;
