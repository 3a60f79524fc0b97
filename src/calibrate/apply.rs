//! Applying a calibration table to a group: V / (g_a conj(g_b)) with gains (the table's
//! bandpass times its delay phasor) interpolated linearly in time (amplitude and phase),
//! weights scaled by |g_a g_b|^2, and flagged solutions (or channels the table lacks)
//! flagging the data.

use super::table::CalTable;
use crate::compute::{Compute, GainGrid, GpuError};
use crate::core::GroupVis;
use num_complex::Complex64;

/// Baselines per block of the gains' application (a block's weights are held as f32:
/// 256 x 24 x 768 x 2 samples = 38 MB on a full-size group).
const APPLY_BLOCK_BASELINES: usize = 256;

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

/// Applies `table` in place on the rank's compute backend. Returns the fraction of
/// previously unflagged visibilities that the table flagged.
pub fn apply(g: &mut GroupVis, table: &CalTable, compute: &dyn Compute) -> Result<f64, GpuError> {
    let (nt, nf, np) = (g.n_times(), g.n_chan(), g.npol);
    // Table antenna index per group antenna (by station number), table channel per channel.
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
    // Gains per (time, antenna used, channel, pol), computed once.
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
                    gains[((t * n_ant + a) * nf + c) * np + p] = match (ant_map[a], chan_map[c]) {
                        (Some(ta), Some(tc)) => gain_at(table, ta, tc, p, g.times_jd[t]),
                        _ => None,
                    };
                }
            }
        }
    }
    let before = g.weight.len() - g.weight.count_flagged();
    // The weights grow by at most the largest |g_a g_b|^2: their new scale (core::Weights).
    let g2max = gains
        .iter()
        .flatten()
        .map(|x| x.norm_sqr())
        .fold(0.0f64, f64::max);
    let bound = (g.weight.max() as f64 * g2max * g2max) as f32;
    let grid = GainGrid {
        n_times: nt,
        n_ant,
        n_chan: nf,
        n_pol: np,
        gains,
    };
    // Blocks of baselines, their weights as f32 (one block's beside the group's).
    let plane = nt * nf * np;
    let per = APPLY_BLOCK_BASELINES * plane;
    let GroupVis {
        vis,
        weight,
        baselines,
        ..
    } = g;
    weight.update_blocks(per, bound, |k, w| {
        let bl = &baselines[k * APPLY_BLOCK_BASELINES..][..w.len() / plane];
        compute.apply_gains(&mut vis[k * per..][..w.len()], w, &grid, bl)
    })?;
    let after = g.weight.len() - g.weight.count_flagged();
    let newly = before - after;
    Ok(newly as f64 / before.max(1) as f64)
}
