//! Conversion: reads a subband group's UVH5 files into one in-memory group with channels
//! ascending across the group, baselines normalised to ant_1 <= ant_2 (data conjugated),
//! polarizations ordered (XX, YY), and NaN/Inf/zero samples flagged (weight 0).
//!
//! Layout: `vis[((bl * n_times + t) * n_chan + c) * npol + p]` — baseline-major, so each
//! baseline's time x frequency plane is contiguous for flagging and per-baseline work.

use crate::primitives::astrometry::{Site, V3};
use crate::uvh5::{read_data, read_header, Uvh5Error, Uvh5Header, POL_XX};
use num_complex::Complex32;
use rayon::prelude::*;
use std::path::{Path, PathBuf};


/// Largest `Data/nsamples` taken as a weight: a sample is an average of at most this many
/// (an absurd weight would dominate the image); larger, negative or non-finite flag it.
pub const MAX_NSAMPLES: f32 = 1e4;

fn valid_nsamples(w: f32) -> bool {
    w.is_finite() && w > 0.0 && w <= MAX_NSAMPLES
}

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(transparent)]
    Uvh5(#[from] Uvh5Error),
    #[error("{path}: {problem}")]
    Mismatch { path: PathBuf, problem: String },
    #[error("group has no readable subband files")]
    Empty,
}

/// One subband group in memory.
#[derive(Debug, Clone)]
pub struct GroupVis {
    pub times_jd: Vec<f64>,
    /// Channel frequencies (Hz), ascending.
    pub freqs: Vec<f64>,
    pub channel_width_hz: f64,
    pub npol: usize,
    /// (antenna number, antenna number) with a <= b; index into `ant_pos`.
    pub baselines: Vec<(usize, usize)>,
    /// ECEF offsets from the telescope location (m), per antenna number.
    pub ant_pos: Vec<V3>,
    pub antenna_names: Vec<String>,
    pub site: Site,
    /// Pointing declination of date (rad).
    pub pointing_dec_rad: f64,
    pub vis: Vec<Complex32>,
    /// nsamples, 0 where flagged.
    pub weight: Vec<f32>,
    /// What the files said beyond the data (for exports such as Measurement Sets).
    pub meta: GroupMeta,
}

/// Header facts carried along with a group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupMeta {
    pub telescope_name: String,
    /// Integration time (s).
    pub integration_s: f64,
    /// First channel (in the ascending axis) of each subband file's window, ascending.
    pub window_starts: Vec<usize>,
    /// Dish diameters (m) per antenna.
    pub dish_diameter_m: Vec<f64>,
}

impl Default for GroupMeta {
    fn default() -> Self {
        GroupMeta { telescope_name: "DSA-110".into(), integration_s: 12.884901888, window_starts: vec![0], dish_diameter_m: vec![] }
    }
}

impl GroupVis {
    pub fn n_times(&self) -> usize {
        self.times_jd.len()
    }
    pub fn n_chan(&self) -> usize {
        self.freqs.len()
    }
    #[inline]
    pub fn index(&self, bl: usize, t: usize, c: usize, p: usize) -> usize {
        ((bl * self.n_times() + t) * self.n_chan() + c) * self.npol + p
    }
}

fn mismatch(path: &Path, problem: impl Into<String>) -> ConvertError {
    ConvertError::Mismatch { path: path.into(), problem: problem.into() }
}

/// Checks that `h` (from `path`) agrees with the group's first header.
fn check_consistent(first: &Uvh5Header, h: &Uvh5Header, path: &Path) -> Result<(), ConvertError> {
    if h.ntimes != first.ntimes || h.nbls != first.nbls || h.npols != first.npols {
        return Err(mismatch(path, format!("Ntimes/Nbls/Npols {}/{}/{} differ from the group's {}/{}/{}", h.ntimes, h.nbls, h.npols, first.ntimes, first.nbls, first.npols)));
    }
    if h.time_array.iter().zip(&first.time_array).any(|(a, b)| (a - b).abs() > 1e-8) {
        return Err(mismatch(path, "Header/time_array differs from the group's other subbands"));
    }
    if h.ant_1_array != first.ant_1_array || h.ant_2_array != first.ant_2_array {
        return Err(mismatch(path, "baseline order (ant_1_array/ant_2_array) differs from the group's other subbands"));
    }
    if h.polarization_array != first.polarization_array {
        return Err(mismatch(path, "polarization_array differs from the group's other subbands"));
    }
    if (h.phase_center_dec - first.phase_center_dec).abs() > 1e-9 {
        return Err(mismatch(path, "pointing declination differs from the group's other subbands"));
    }
    if h.antenna_positions.iter().zip(&first.antenna_positions).any(|(a, b)| (0..3).any(|k| (a[k] - b[k]).abs() > 1e-6)) {
        return Err(mismatch(path, "antenna_positions differ from the group's other subbands"));
    }
    Ok(())
}

/// Reads the group's files (any subset of subbands) into a `GroupVis`.
pub fn load_group(files: &[&Path]) -> Result<GroupVis, ConvertError> {
    let mut headers = Vec::with_capacity(files.len());
    for p in files {
        headers.push(read_header(p)?);
    }
    let first = headers.first().ok_or(ConvertError::Empty)?.clone();
    for (h, p) in headers.iter().zip(files) {
        check_consistent(&first, h, p)?;
    }
    if first.npols != 2 {
        return Err(mismatch(files[0], format!("Npols = {}: contimg needs XX and YY", first.npols)));
    }
    // Global ascending channel axis.
    let mut all: Vec<(f64, usize, usize)> = Vec::new(); // (freq, file, chan)
    for (fi, h) in headers.iter().enumerate() {
        for (c, &f) in h.freq_array.iter().enumerate() {
            all.push((f, fi, c));
        }
    }
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    if let Some(w) = all.windows(2).find(|w| (w[1].0 - w[0].0).abs() < 1.0) {
        return Err(mismatch(files[w[1].1], format!("channel at {} Hz overlaps another subband's", w[1].0)));
    }
    let freqs: Vec<f64> = all.iter().map(|x| x.0).collect();
    // Per file: global channel index of each local channel.
    let mut chan_map: Vec<Vec<usize>> = headers.iter().map(|h| vec![0; h.nfreqs]).collect();
    for (gc, &(_, fi, c)) in all.iter().enumerate() {
        chan_map[fi][c] = gc;
    }
    // Baselines from the first integration; normalise to a <= b.
    let nbl = first.nbls;
    let nt = first.ntimes;
    let mut baselines = Vec::with_capacity(nbl);
    let mut conj = Vec::with_capacity(nbl);
    for r in 0..nbl {
        let (a1, a2) = (first.ant_1_array[r], first.ant_2_array[r]);
        let idx = |a: i64| first.antenna_numbers.iter().position(|&n| n == a).expect("validated by the reader");
        let (i1, i2) = (idx(a1), idx(a2));
        baselines.push((i1.min(i2), i1.max(i2)));
        conj.push(i1 > i2);
    }
    for t in 1..nt {
        if (0..nbl).any(|r| first.ant_1_array[t * nbl + r] != first.ant_1_array[r] || first.ant_2_array[t * nbl + r] != first.ant_2_array[r]) {
            return Err(mismatch(files[0], format!("baseline order changes at integration {t}")));
        }
    }
    let mut sorted = baselines.clone();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(mismatch(files[0], "a baseline appears twice in one integration"));
    }
    let pol_of = |code: i64| if code == POL_XX { 0 } else { 1 };
    let pol_map: Vec<usize> = first.polarization_array.iter().map(|&c| pol_of(c)).collect();
    let nch = freqs.len();
    let npol = 2;
    let n = nbl * nt * nch * npol;
    let mut vis = vec![Complex32::new(0.0, 0.0); n];
    let mut weight = vec![0f32; n];
    for ((h, path), cmap) in headers.iter().zip(files).zip(&chan_map) {
        let d = read_data(path, h)?;
        let unusable = d.vis.par_iter().filter(|v| !(v.re.is_finite() && v.im.is_finite()) || (v.re == 0.0 && v.im == 0.0)).count();
        if unusable == d.vis.len() {
            log::warn!("{}: every visibility is NaN, Inf or zero: the whole subband is flagged", path.display());
        }
        let bad_ns = d.nsamples.par_iter().filter(|&&w| !valid_nsamples(w) && w != 0.0).count();
        if bad_ns > 0 {
            log::warn!("{}: {bad_ns} of {} Data/nsamples are negative, not finite or above {MAX_NSAMPLES}: those samples are flagged", path.display(), d.nsamples.len());
        }
        let nf = h.nfreqs;
        // Scatter this file's (blt, chan, pol) into the group's (bl, t, chan, pol), in
        // parallel over baselines (disjoint output slices).
        vis.par_chunks_mut(nt * nch * npol)
            .zip(weight.par_chunks_mut(nt * nch * npol))
            .enumerate()
            .for_each(|(b, (vrow, wrow))| {
                for t in 0..nt {
                    let blt = t * nbl + b;
                    for c in 0..nf {
                        for p in 0..npol {
                            let src = (blt * nf + c) * npol + p;
                            let dst = (t * nch + cmap[c]) * npol + pol_map[p];
                            let mut v = d.vis[src];
                            if conj[b] {
                                v = v.conj();
                            }
                            let good = v.re.is_finite() && v.im.is_finite() && (v.re != 0.0 || v.im != 0.0);
                            let w = d.nsamples[src];
                            let ok = good && !d.flags[src] && valid_nsamples(w);
                            vrow[dst] = if good { v } else { Complex32::new(0.0, 0.0) };
                            wrow[dst] = if ok { w } else { 0.0 };
                        }
                    }
                }
            });
    }
    let times_jd: Vec<f64> = (0..nt).map(|t| first.time_array[t * nbl]).collect();
    // A window starts wherever the source file changes along the ascending axis.
    let window_starts = (0..all.len()).filter(|&i| i == 0 || all[i].1 != all[i - 1].1).collect();
    let meta = GroupMeta {
        telescope_name: first.telescope_name.clone(),
        integration_s: first.integration_time.first().copied().unwrap_or(0.0),
        window_starts,
        dish_diameter_m: first.antenna_diameters.clone(),
    };
    Ok(GroupVis {
        times_jd,
        freqs,
        channel_width_hz: first.channel_width.abs(),
        npol,
        baselines,
        ant_pos: first.antenna_positions.clone(),
        antenna_names: first.antenna_names.clone(),
        site: Site::from_geodetic_deg(first.latitude_deg, first.longitude_deg, first.altitude_m),
        pointing_dec_rad: first.phase_center_dec,
        vis,
        weight,
        meta,
    })
}
