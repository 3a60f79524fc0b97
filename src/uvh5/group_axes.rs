//! The axes of a subband group: its ascending channel axis over the files and its
//! baselines (a part of `uvh5::group`).

use super::{mismatch, LoadError};
use crate::uvh5::Uvh5Header;
use std::path::Path;

/// The group's ascending channel axis over its files: (freq, file, channel) sorted by
/// frequency, the frequencies, and per file the group channel of each of its channels.
/// Overlapping subbands are an error.
#[allow(clippy::type_complexity)]
pub(super) fn channel_axis(
    headers: &[Uvh5Header],
    files: &[&Path],
) -> Result<(Vec<(f64, usize, usize)>, Vec<f64>, Vec<Vec<usize>>), LoadError> {
    let mut all: Vec<(f64, usize, usize)> = Vec::new(); // (freq, file, chan)
    for (fi, h) in headers.iter().enumerate() {
        for (c, &f) in h.freq_array.iter().enumerate() {
            all.push((f, fi, c));
        }
    }
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    if let Some(w) = all.windows(2).find(|w| (w[1].0 - w[0].0).abs() < 1.0) {
        return Err(mismatch(
            files[w[1].1],
            format!("channel at {} Hz overlaps another subband's", w[1].0),
        ));
    }
    let freqs: Vec<f64> = all.iter().map(|x| x.0).collect();
    // Per file: global channel index of each local channel.
    let mut chan_map: Vec<Vec<usize>> = headers.iter().map(|h| vec![0; h.nfreqs]).collect();
    for (gc, &(_, fi, c)) in all.iter().enumerate() {
        chan_map[fi][c] = gc;
    }
    Ok((all, freqs, chan_map))
}

/// Baselines as antenna indices (a <= b) and, per baseline, whether it is conjugated.
type Baselines = (Vec<(usize, usize)>, Vec<bool>);

/// The baselines of the first integration as antenna indices with a <= b, and whether each
/// is conjugated to get there; every integration must have the same order, no baseline
/// twice.
pub(super) fn group_baselines(first: &Uvh5Header, file: &Path) -> Result<Baselines, LoadError> {
    let nbl = first.nbls;
    let nt = first.ntimes;
    let mut baselines = Vec::with_capacity(nbl);
    let mut conj = Vec::with_capacity(nbl);
    for r in 0..nbl {
        let (a1, a2) = (first.ant_1_array[r], first.ant_2_array[r]);
        let idx = |a: i64| {
            first
                .antenna_numbers
                .iter()
                .position(|&n| n == a)
                .expect("validated by the reader")
        };
        let (i1, i2) = (idx(a1), idx(a2));
        baselines.push((i1.min(i2), i1.max(i2)));
        conj.push(i1 > i2);
    }
    for t in 1..nt {
        if (0..nbl).any(|r| {
            first.ant_1_array[t * nbl + r] != first.ant_1_array[r]
                || first.ant_2_array[t * nbl + r] != first.ant_2_array[r]
        }) {
            return Err(mismatch(
                file,
                format!("baseline order changes at integration {t}"),
            ));
        }
    }
    let mut sorted = baselines.clone();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(mismatch(
            file,
            "a baseline appears twice in one integration",
        ));
    }
    Ok((baselines, conj))
}
