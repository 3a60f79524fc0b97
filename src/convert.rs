//! Conversion: reads a subband group's UVH5 files into one in-memory group with channels
//! ascending across the group, baselines normalised to ant_1 <= ant_2 (data conjugated),
//! polarizations ordered (XX, YY), and NaN/Inf/zero samples flagged (weight 0).
//!
//! Layout: `vis[((bl * n_times + t) * n_chan + c) * npol + p]` — baseline-major, so each
//! baseline's time x frequency plane is contiguous for flagging and per-baseline work.

use crate::primitives::astrometry::{Site, V3};
use crate::uvh5::fast::BlockBuf;
use crate::uvh5::{locate_data, read_data, read_data_routed, read_header, DataRoutes, Uvh5Error, Uvh5Header, POL_XX};
use num_complex::Complex32;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

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

/// How `load_group_with` reads the files' data arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPath {
    /// Contiguous, uncompressed datasets of the expected types by direct positional reads
    /// (in parallel over files and blocks), everything else through the HDF5 library.
    Auto,
    /// Every dataset through the HDF5 library, one file at a time.
    Library,
}

/// Per-file target of one block read (all three arrays) on the direct path: the group's
/// extra memory is about this times the number of files.
const BLOCK_BYTES_PER_FILE: usize = 16 << 20;

/// Reads the group's files (any subset of subbands) into a `GroupVis`.
pub fn load_group(files: &[&Path]) -> Result<GroupVis, ConvertError> {
    load_group_with(files, ReadPath::Auto).map(|(g, _)| g)
}

/// As `load_group`, choosing how the data arrays are read; also returns how each file's
/// `Data/visdata`, `Data/flags` and `Data/nsamples` were read.
pub fn load_group_with(files: &[&Path], how: ReadPath) -> Result<(GroupVis, Vec<DataRoutes>), ConvertError> {
    load_group_blocks(files, how, BLOCK_BYTES_PER_FILE)
}

/// As `load_group_with`, with the direct path's per-file block size (bytes of visibilities,
/// flags and nsamples together; at least one integration is read at a time).
pub fn load_group_blocks(files: &[&Path], how: ReadPath, block_bytes_per_file: usize) -> Result<(GroupVis, Vec<DataRoutes>), ConvertError> {
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
    let routes: Vec<DataRoutes> = match how {
        ReadPath::Library => vec![DataRoutes::LIBRARY; files.len()],
        ReadPath::Auto => files.iter().zip(&headers).map(|(p, h)| locate_data(p, h)).collect::<Result<_, _>>()?,
    };
    let dims = Dims { nbl, nt, nch, pol_map: &pol_map, conj: &conj };
    let mut unusable = vec![0usize; files.len()];
    // Files with any dataset the library must read: one whole file at a time.
    for (fi, ((h, path), cmap)) in headers.iter().zip(files).zip(&chan_map).enumerate() {
        if routes[fi].fully_direct() {
            continue;
        }
        let d = match how {
            ReadPath::Library => read_data(path, h)?,
            ReadPath::Auto => read_data_routed(path, h, &routes[fi])?,
        };
        let part = Part { vis: &d.vis, flags: Some(bools_as_bytes(&d.flags)), nsamples: Some(&d.nsamples), cmap, nf: h.nfreqs };
        unusable[fi] += scatter(&mut vis, &mut weight, &[part], 0, nt, &dims)[0];
    }
    // The rest (the correlator's files): blocks of integrations, read in parallel over files
    // straight from the page cache or disk, then scattered in parallel over baselines.
    let direct: Vec<usize> = (0..files.len()).filter(|&fi| routes[fi].fully_direct()).collect();
    if !direct.is_empty() {
        let mut bufs = direct.iter().map(|&fi| BlockBuf::open(files[fi], routes[fi])).collect::<Result<Vec<_>, _>>()?;
        let per_integration = direct.iter().map(|&fi| nbl * headers[fi].nfreqs * npol * 13).max().unwrap_or(1);
        let nbt = (block_bytes_per_file / per_integration).clamp(1, nt);
        for t0 in (0..nt).step_by(nbt) {
            let nb = nbt.min(nt - t0);
            bufs.par_iter_mut().zip(&direct).try_for_each(|(buf, &fi)| {
                let per = nbl * headers[fi].nfreqs * npol;
                buf.read(files[fi], t0 * per, nb * per)
            })?;
            let parts: Vec<Part> = bufs
                .iter()
                .zip(&direct)
                .map(|(b, &fi)| Part {
                    vis: &b.vis,
                    flags: (!b.flags.is_empty()).then_some(b.flags.as_slice()),
                    nsamples: (!b.nsamples.is_empty()).then_some(b.nsamples.as_slice()),
                    cmap: &chan_map[fi],
                    nf: headers[fi].nfreqs,
                })
                .collect();
            for (k, c) in scatter(&mut vis, &mut weight, &parts, t0, nb, &dims).into_iter().enumerate() {
                unusable[direct[k]] += c;
            }
        }
    }
    for ((h, path), bad) in headers.iter().zip(files).zip(&unusable) {
        if *bad == h.nblts() * h.nfreqs * h.npols {
            log::warn!("{}: every visibility is NaN, Inf or zero: the whole subband is flagged", path.display());
        }
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
    let g = GroupVis {
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
    };
    Ok((g, routes))
}

/// The group's shape and the per-baseline and per-polarization reordering.
struct Dims<'a> {
    nbl: usize,
    nt: usize,
    nch: usize,
    pol_map: &'a [usize],
    conj: &'a [bool],
}

/// One file's samples for a block of integrations, in file order (blt, chan, pol).
struct Part<'a> {
    vis: &'a [Complex32],
    /// Flag bytes (0 = unflagged); `None` when the file has none.
    flags: Option<&'a [u8]>,
    /// `None` when the file has none (1 each).
    nsamples: Option<&'a [f32]>,
    /// Group channel of each of the file's channels.
    cmap: &'a [usize],
    nf: usize,
}

fn bools_as_bytes(b: &[bool]) -> &[u8] {
    // SAFETY: bool is one byte holding 0 or 1, always a valid u8.
    unsafe { std::slice::from_raw_parts(b.as_ptr().cast::<u8>(), b.len()) }
}

/// Scatters integrations `t0..t0 + nb` of each part into the group's (bl, t, chan, pol)
/// layout (baselines normalised, NaN/Inf/zero samples zeroed with weight 0), in parallel
/// over baselines (disjoint output rows). Returns each part's count of NaN/Inf/zero samples.
fn scatter(vis: &mut [Complex32], weight: &mut [f32], parts: &[Part], t0: usize, nb: usize, d: &Dims) -> Vec<usize> {
    let npol = d.pol_map.len();
    let row = d.nt * d.nch * npol;
    vis.par_chunks_mut(row)
        .zip(weight.par_chunks_mut(row))
        .enumerate()
        .fold(
            || vec![0usize; parts.len()],
            |mut bad, (b, (vrow, wrow))| {
                for dt in 0..nb {
                    let t = t0 + dt;
                    for (k, part) in parts.iter().enumerate() {
                        let base = (dt * d.nbl + b) * part.nf * npol;
                        for c in 0..part.nf {
                            let dbase = (t * d.nch + part.cmap[c]) * npol;
                            for p in 0..npol {
                                let src = base + c * npol + p;
                                let dst = dbase + d.pol_map[p];
                                let mut v = part.vis[src];
                                if d.conj[b] {
                                    v = v.conj();
                                }
                                let good = v.re.is_finite() && v.im.is_finite() && (v.re != 0.0 || v.im != 0.0);
                                let w = part.nsamples.map_or(1.0, |s| s[src]);
                                let flagged = part.flags.is_some_and(|f| f[src] != 0);
                                let ok = good && !flagged && w.is_finite() && w > 0.0;
                                bad[k] += usize::from(!good);
                                vrow[dst] = if good { v } else { Complex32::new(0.0, 0.0) };
                                wrow[dst] = if ok { w } else { 0.0 };
                            }
                        }
                    }
                }
                bad
            },
        )
        .reduce(|| vec![0usize; parts.len()], |a, b| a.iter().zip(&b).map(|(x, y)| x + y).collect())
}
