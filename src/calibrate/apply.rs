//! Applying a calibration table to a group: V / (g_a conj(g_b)) with gains (the table's
//! bandpass times its delay phasor) interpolated linearly in time (amplitude and phase),
//! weights scaled by |g_a g_b|^2, and flagged solutions (or channels the table lacks)
//! flagging the data.

use super::table::CalTable;
use crate::core::{Corrected, GroupVis, RawBuffers, StokesBuffers};
use num_complex::{Complex32, Complex64};
use rayon::prelude::*;

/// Baselines per block of the gains' application (a block's weights are held as f32:
/// 256 x 24 x 768 x 2 samples = 38 MB on a full-size group).
const APPLY_BLOCK_BASELINES: usize = 256;

/// Gains per (time, antenna, channel, pol), None where the table has no valid solution.
#[derive(Debug, Clone)]
struct GainGrid {
    n_times: usize,
    n_ant: usize,
    n_chan: usize,
    n_pol: usize,
    gains: Vec<Option<Complex64>>,
}

impl GainGrid {
    #[inline]
    fn index(&self, t: usize, a: usize, c: usize, p: usize) -> usize {
        ((t * self.n_ant + a) * self.n_chan + c) * self.n_pol + p
    }

    /// Baseline `(a, b)`'s samples (`[t][chan][pol]`) divided by g_a conj(g_b), their
    /// weights scaled by |g_a g_b|^2; a missing or zero gain sets the weight to 0.
    fn apply_baseline(&self, v: &mut [Complex32], w: &mut [f32], (a, b): (usize, usize)) {
        for t in 0..self.n_times {
            for c in 0..self.n_chan {
                for p in 0..self.n_pol {
                    let i = (t * self.n_chan + c) * self.n_pol + p;
                    let ga = self.gains[self.index(t, a, c, p)];
                    let gb = self.gains[self.index(t, b, c, p)];
                    match (ga, gb) {
                        (Some(ga), Some(gb)) if (ga * gb.conj()).norm_sqr() > 0.0 => {
                            let d = ga * gb.conj();
                            let x = Complex64::new(v[i].re as f64, v[i].im as f64) / d;
                            v[i] = Complex32::new(x.re as f32, x.im as f32);
                            w[i] = (w[i] as f64 * d.norm_sqr()) as f32;
                        }
                        _ => w[i] = 0.0,
                    }
                }
            }
        }
    }
}

/// Gain of table antenna `a`, channel `c`, pol `p` at `jd` (None if flagged).
fn gain_at(t: &CalTable, a: usize, c: usize, p: usize, jd: f64) -> Option<Complex64> {
    let times = &t.time_jd;
    // The delay is folded into the per-channel gains here, so every backend applies one
    // complex gain per (time, antenna, channel, pol).
    let get = |k: usize| {
        if t.flags[t.index(k, a, c, p)] {
            None
        } else {
            Some(t.full_gain(k, a, c, p))
        }
    };
    if times.len() == 1 || jd <= times[0] {
        return get(0);
    }
    if jd >= *times.last().expect("non-empty") {
        return get(times.len() - 1);
    }
    let k = times.partition_point(|&x| x <= jd) - 1;
    let f = (jd - times[k]) / (times[k + 1] - times[k]);
    match (get(k), get(k + 1)) {
        (Some(g0), Some(g1)) => {
            let amp = g0.norm() * (1.0 - f) + g1.norm() * f;
            let dphi = (g1 * g0.conj()).arg();
            Some(Complex64::from_polar(amp, g0.arg() + f * dphi))
        }
        (Some(g), None) | (None, Some(g)) => Some(g),
        (None, None) => None,
    }
}

/// A table's gains for one group: one complex gain per (time, antenna, channel,
/// polarization), the table's delay folded in and interpolated to the group's times.
pub struct GroupGains {
    grid: GainGrid,
    baselines: Vec<(usize, usize)>,
}

impl GroupGains {
    /// `table`'s gains at `g`'s times, antennas (by station number) and channels (the
    /// table's nearest within half a channel); None where the table has none.
    pub fn new(g: &GroupVis, table: &CalTable) -> Self {
        let (nt, nf, np) = (g.n_times(), g.n_chan(), g.npol);
        let ant_map: Vec<Option<usize>> = g
            .antenna_names
            .iter()
            .map(|n| {
                n.parse::<u32>()
                    .ok()
                    .and_then(|s| table.antenna_names.iter().position(|&x| x == s))
            })
            .collect();
        let chan_map: Vec<Option<usize>> = g
            .freqs
            .iter()
            .map(|&f| {
                if table.freq_hz.is_empty() {
                    return None; // (CalTable::read refuses such a table)
                }
                let k = table.freq_hz.partition_point(|&x| x < f);
                [k.saturating_sub(1), k.min(table.freq_hz.len() - 1)]
                    .into_iter()
                    .min_by(|&a, &b| {
                        (table.freq_hz[a] - f)
                            .abs()
                            .total_cmp(&(table.freq_hz[b] - f).abs())
                    })
                    .filter(|&k| (table.freq_hz[k] - f).abs() <= 0.5 * g.channel_width_hz)
            })
            .collect();
        let n_ant = g.ant_pos.len();
        let mut gains = vec![None; nt * n_ant * nf * np];
        let mut used = vec![false; n_ant];
        for &(a, b) in &g.baselines {
            used[a] = true;
            used[b] = true;
        }
        for t in 0..nt {
            for a in (0..n_ant).filter(|&a| used[a]) {
                for c in 0..nf {
                    for p in 0..np {
                        gains[((t * n_ant + a) * nf + c) * np + p] = match (ant_map[a], chan_map[c])
                        {
                            (Some(ta), Some(tc)) => gain_at(table, ta, tc, p, g.times_jd[t]),
                            _ => None,
                        };
                    }
                }
            }
        }
        GroupGains {
            grid: GainGrid {
                n_times: nt,
                n_ant,
                n_chan: nf,
                n_pol: np,
                gains,
            },
            baselines: g.baselines.clone(),
        }
    }

    /// Calibrates baseline `b`'s samples (`[t][chan][pol]`, weights as f32): a
    /// `core::BaselineHook`.
    pub fn correct(&self, b: usize, vis: &mut [Complex32], weight: &mut [f32]) {
        self.grid.apply_baseline(vis, weight, self.baselines[b]);
    }
}

/// Where a group's Stokes I goes.
pub enum StokesInto {
    /// Separate buffers: these (a retired group's) when they have the size, new ones
    /// otherwise; the group's own come back.
    Buffers(Option<StokesBuffers>),
    /// The group's own visibility buffer (reading in line: the smaller memory).
    OwnBuffer,
}

/// The group as imaged: `table` applied while its polarizations are combined into Stokes
/// I, in one pass on the host (`core::stokes`: each baseline corrected in a scratch copy,
/// so the calibrated polarizations are never written back and their weights never rounded
/// to half floats), `into` the buffers it names. Also gives the group's own buffers when
/// they are free for the next read, and the fraction of the samples unflagged before that
/// the table flagged.
pub fn stokes_i_calibrated(
    g: GroupVis,
    table: &CalTable,
    into: StokesInto,
) -> (Corrected, Option<RawBuffers>, f64) {
    let gains = GroupGains::new(&g, table);
    let hook = |b: usize, v: &mut [Complex32], w: &mut [f32]| gains.correct(b, v, w);
    let before = g.weight.len() - g.weight.count_flagged();
    let total = g.weight.len();
    let (c, raw) = match into {
        StokesInto::Buffers(d) => {
            let (c, raw) = g.into_stokes_i_corrected_reusing(d, Some(&hook));
            (c, Some(raw))
        }
        StokesInto::OwnBuffer => (g.into_stokes_i_corrected(&hook), None),
    };
    let newly = before.saturating_sub(total - c.flagged);
    (c, raw, newly as f64 / before.max(1) as f64)
}

/// Applies `table` in place, the group kept per polarization (for a Measurement Set), its
/// weights stored again as half floats. Returns the fraction of previously unflagged
/// visibilities that the table flagged.
pub fn apply(g: &mut GroupVis, table: &CalTable) -> f64 {
    let (nt, nf, np) = (g.n_times(), g.n_chan(), g.npol);
    let GroupGains { grid, .. } = GroupGains::new(g, table);
    let before = g.weight.len() - g.weight.count_flagged();
    // The weights grow by at most the largest |g_a g_b|^2: their new scale (core::Weights).
    let g2max = grid
        .gains
        .iter()
        .flatten()
        .map(|x| x.norm_sqr())
        .fold(0.0f64, f64::max);
    let bound = (g.weight.max() as f64 * g2max * g2max) as f32;
    // Blocks of baselines, their weights as f32 (one block's beside the group's).
    let plane = nt * nf * np;
    let per = APPLY_BLOCK_BASELINES * plane;
    let GroupVis {
        vis,
        weight,
        baselines,
        ..
    } = g;
    let applied = weight.update_blocks(per, bound, |k, w| {
        let bl = &baselines[k * APPLY_BLOCK_BASELINES..][..w.len() / plane];
        vis[k * per..][..w.len()]
            .par_chunks_mut(plane)
            .zip(w.par_chunks_mut(plane))
            .zip(bl.par_iter())
            .for_each(|((v, w), &b)| grid.apply_baseline(v, w, b));
        Ok::<(), std::convert::Infallible>(())
    });
    let Ok(()) = applied;
    let after = g.weight.len() - g.weight.count_flagged();
    let newly = before - after;
    newly as f64 / before.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{GroupMeta, Weights};
    use num_complex::Complex64;

    /// A group of 5 antennas (station numbers 1-5, every baseline and autocorrelation), 3
    /// times, 6 channels, XX and YY; some samples flagged, weights of several sizes.
    fn group() -> GroupVis {
        let mut baselines = Vec::new();
        for a in 0..5 {
            for b in a..5 {
                baselines.push((a, b));
            }
        }
        let n = baselines.len() * 3 * 6 * 2;
        let vis = (0..n)
            .map(|k| Complex32::new((k as f32 * 0.31).sin(), (k as f32 * 0.17).cos()))
            .collect();
        let w: Vec<f32> = (0..n)
            .map(|k| {
                if k % 13 == 4 {
                    0.0
                } else {
                    1.0 + (k % 3) as f32
                }
            })
            .collect();
        GroupVis {
            times_jd: vec![2_461_000.5, 2_461_000.500_1, 2_461_000.500_2],
            freqs: (0..6).map(|c| 1.40e9 + c as f64 * 2e6).collect(),
            channel_width_hz: 2e6,
            npol: 2,
            baselines,
            ant_pos: vec![[0.0; 3]; 5],
            antenna_names: (1..=5).map(|s: u32| s.to_string()).collect(),
            site: crate::primitives::astrometry::Site::from_geodetic_deg(37.2, -118.3, 1222.0),
            pointing_dec_rad: 0.5,
            vis,
            weight: Weights::from_f32(&w),
            meta: GroupMeta::default(),
        }
    }

    /// One solution time for stations 1-4 (station 5 is not in the table), channel 2's
    /// solutions of station 3 XX flagged, gains of amplitudes 0.05-0.2 (raw DSA-110 scale),
    /// a delay on station 2.
    fn table() -> CalTable {
        let (n_ant, nf) = (4, 6);
        let mut gains = Vec::new();
        let mut flags = Vec::new();
        for a in 0..n_ant {
            for c in 0..nf {
                for p in 0..2 {
                    let amp = 0.05 + 0.04 * a as f64 + 0.003 * c as f64 + 0.01 * p as f64;
                    gains.push(Complex64::from_polar(amp, 0.7 * a as f64 - 0.2 * c as f64));
                    flags.push(a == 2 && c == 2 && p == 0);
                }
            }
        }
        let mut delay_ns = vec![0.0; n_ant * 2];
        delay_ns[2] = 3.5;
        CalTable {
            snr: vec![100.0; gains.len()],
            reasons: vec![0; gains.len()],
            gains,
            flags,
            antenna_names: (1..=4).collect(),
            time_jd: vec![2_461_000.5],
            freq_hz: (0..nf).map(|c| 1.40e9 + c as f64 * 2e6).collect(),
            refant: 1,
            calibrator: "test".into(),
            provenance: "{}".into(),
            delay_ns,
            delay_ref_hz: 1.4e9,
            solve_info: String::new(),
        }
    }

    /// Applied while Stokes I is formed, the table gives sum(w |d|^2 V / d) / sum(w |d|^2)
    /// over the polarizations with d = g_a conj(g_b) (computed here from the table's full
    /// gains), its weight sum(w |d|^2), samples of station 5 or of a flagged solution
    /// flagged; the same in place and into buffers, and as the per-polarization apply
    /// followed by Stokes I to the half-float rounding of its weights.
    #[test]
    fn applied_while_forming_stokes_i_as_the_formula() {
        let (g, t) = (group(), table());
        let (nt, nf) = (3, 6);
        let mut want = Vec::new();
        let mut flagged = 0;
        for (b, &(a1, a2)) in g.baselines.iter().enumerate() {
            for k in 0..nt * nf {
                let c = k % nf;
                let (mut sv, mut sw) = (Complex64::new(0.0, 0.0), 0.0);
                for p in 0..2 {
                    let i = (b * nt * nf + k) * 2 + p;
                    let w = g.weight.get(i) as f64;
                    let ok = a1 < 4
                        && a2 < 4
                        && !t.flags[t.index(0, a1, c, p)]
                        && !t.flags[t.index(0, a2, c, p)];
                    if w > 0.0 && ok {
                        let d = t.full_gain(0, a1, c, p) * t.full_gain(0, a2, c, p).conj();
                        let v = Complex64::new(g.vis[i].re as f64, g.vis[i].im as f64);
                        sv += v / d * w * d.norm_sqr();
                        sw += w * d.norm_sqr();
                    } else {
                        flagged += 1;
                    }
                }
                want.push((if sw > 0.0 { sv / sw } else { sv }, sw));
            }
        }
        let unflagged = g.weight.len() - g.weight.count_flagged();
        let newly_want = (flagged - g.weight.count_flagged()) as f64 / unflagged as f64;
        let (a, raw, newly_a) = stokes_i_calibrated(g.clone(), &t, StokesInto::Buffers(None));
        assert_eq!(
            raw.expect("buffers").0,
            g.vis,
            "the samples as read come back"
        );
        let (b, raw, newly_b) = stokes_i_calibrated(g.clone(), &t, StokesInto::OwnBuffer);
        assert!(raw.is_none());
        let mut per_pol = g.clone();
        let newly_c = apply(&mut per_pol, &t);
        let c = per_pol.into_stokes_i();
        assert!(
            newly_want > 0.2,
            "station 5 and a flagged solution: {newly_want}"
        );
        for newly in [newly_a, newly_b, newly_c] {
            assert!(
                (newly - newly_want).abs() < 1e-12,
                "{newly} vs {newly_want}"
            );
        }
        assert_eq!((a.flagged, b.flagged), (flagged, flagged));
        assert_eq!(a.stokes.vis, b.stokes.vis);
        assert_eq!(a.stokes.weight, b.stokes.weight);
        let peak = want.iter().map(|x| x.0.norm()).fold(0.0, f64::max);
        for (i, (v, w)) in want.iter().enumerate() {
            let got = a.stokes.vis[i];
            let err = (Complex64::new(got.re as f64, got.im as f64) - v).norm();
            assert!(err <= 2e-7 * peak, "sample {i}: {got} vs {v}"); // 6.5e-8 seen
            assert!(
                (a.stokes.weight[i] as f64 - w).abs() <= 2.5e-7 * w,
                "weight {i}"
            ); // 8.1e-8
               // The per-polarization apply stores its weights as half floats (11 bits).
            assert!(
                (c.weight[i] as f64 - w).abs() <= 1e-3 * w,
                "weight {i} per pol"
            ); // 4.4e-4
            let cv = c.vis[i];
            let err = (Complex64::new(cv.re as f64, cv.im as f64) - v).norm();
            assert!(err <= 1e-4 * peak, "sample {i} per pol: {cv} vs {v}"); // 3.6e-5
        }
    }
}
