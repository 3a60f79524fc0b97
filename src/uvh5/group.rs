//! The group loader: reads a subband group's UVH5 files into one in-memory group
//! ([`GroupVis`], defined in `core`) with channels
//! ascending across the group, baselines normalised to ant_1 <= ant_2 (data conjugated),
//! polarizations ordered (XX, YY), and NaN/Inf/zero samples flagged (weight 0).
//!
//! Layout: `vis[((bl * n_times + t) * n_chan + c) * npol + p]` — baseline-major, so each
//! baseline's time x frequency plane is contiguous for flagging and per-baseline work.

use crate::core::{GroupMeta, GroupVis};
use crate::primitives::astrometry::Site;
use crate::uvh5::fast::{DirectFile, Scratch};
use crate::uvh5::{
    locate_data, read_data, read_data_routed, read_header, DataRoutes, Uvh5Error, Uvh5Header,
    POL_XX,
};
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
pub enum LoadError {
    #[error(transparent)]
    Uvh5(#[from] Uvh5Error),
    #[error("{path}: {problem}")]
    Mismatch { path: PathBuf, problem: String },
    #[error("group has no readable subband files")]
    Empty,
}

fn mismatch(path: &Path, problem: impl Into<String>) -> LoadError {
    LoadError::Mismatch {
        path: path.into(),
        problem: problem.into(),
    }
}

/// Checks that `h` (from `path`) agrees with the group's first header.
fn check_consistent(first: &Uvh5Header, h: &Uvh5Header, path: &Path) -> Result<(), LoadError> {
    if h.ntimes != first.ntimes || h.nbls != first.nbls || h.npols != first.npols {
        return Err(mismatch(
            path,
            format!(
                "Ntimes/Nbls/Npols {}/{}/{} differ from the group's {}/{}/{}",
                h.ntimes, h.nbls, h.npols, first.ntimes, first.nbls, first.npols
            ),
        ));
    }
    if h.time_array
        .iter()
        .zip(&first.time_array)
        .any(|(a, b)| (a - b).abs() > 1e-8)
    {
        return Err(mismatch(
            path,
            "Header/time_array differs from the group's other subbands",
        ));
    }
    if h.ant_1_array != first.ant_1_array || h.ant_2_array != first.ant_2_array {
        return Err(mismatch(
            path,
            "baseline order (ant_1_array/ant_2_array) differs from the group's other subbands",
        ));
    }
    if h.polarization_array != first.polarization_array {
        return Err(mismatch(
            path,
            "polarization_array differs from the group's other subbands",
        ));
    }
    if (h.phase_center_dec - first.phase_center_dec).abs() > 1e-9 {
        return Err(mismatch(
            path,
            "pointing declination differs from the group's other subbands",
        ));
    }
    if h.antenna_positions
        .iter()
        .zip(&first.antenna_positions)
        .any(|(a, b)| (0..3).any(|k| (a[k] - b[k]).abs() > 1e-6))
    {
        return Err(mismatch(
            path,
            "antenna_positions differ from the group's other subbands",
        ));
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

/// Target size of one read on the direct path (visibilities, flags and nsamples of a run of
/// baselines of one file and integration): small enough to stay in a core's cache between
/// the read and the scatter; each thread holds one such buffer.
const BLOCK_BYTES: usize = 256 << 10;

/// Reads the group's files (any subset of subbands) into a `GroupVis`.
pub fn load_group(files: &[&Path]) -> Result<GroupVis, LoadError> {
    load_group_with(files, ReadPath::Auto).map(|(g, _)| g)
}

/// As `load_group`, choosing how the data arrays are read; also returns how each file's
/// `Data/visdata`, `Data/flags` and `Data/nsamples` were read.
pub fn load_group_with(
    files: &[&Path],
    how: ReadPath,
) -> Result<(GroupVis, Vec<DataRoutes>), LoadError> {
    load_group_blocks(files, how, BLOCK_BYTES)
}

/// As `load_group_with`, with the direct path's read size (bytes of visibilities, flags and
/// nsamples together; at least one baseline's channels are read at a time).
pub fn load_group_blocks(
    files: &[&Path],
    how: ReadPath,
    block_bytes: usize,
) -> Result<(GroupVis, Vec<DataRoutes>), LoadError> {
    let clock = std::time::Instant::now();
    let mut headers = Vec::with_capacity(files.len());
    for p in files {
        headers.push(read_header(p)?);
    }
    let first = headers.first().ok_or(LoadError::Empty)?.clone();
    for (h, p) in headers.iter().zip(files) {
        check_consistent(&first, h, p)?;
    }
    if first.npols != 2 {
        return Err(mismatch(
            files[0],
            format!("Npols = {}: contimg needs XX and YY", first.npols),
        ));
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
    // Baselines from the first integration; normalise to a <= b.
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
                files[0],
                format!("baseline order changes at integration {t}"),
            ));
        }
    }
    let mut sorted = baselines.clone();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(mismatch(
            files[0],
            "a baseline appears twice in one integration",
        ));
    }
    let pol_of = |code: i64| if code == POL_XX { 0 } else { 1 };
    let pol_map: Vec<usize> = first
        .polarization_array
        .iter()
        .map(|&c| pol_of(c))
        .collect();
    let nch = freqs.len();
    let npol = 2;
    let n = nbl * nt * nch * npol;
    let t_headers = clock.elapsed().as_secs_f64();
    let mut vis = zeroed_complex(n);
    let mut weight = vec![0f32; n];
    advise_huge_pages(&mut vis);
    advise_huge_pages(&mut weight);
    let routes: Vec<DataRoutes> = match how {
        ReadPath::Library => vec![DataRoutes::LIBRARY; files.len()],
        ReadPath::Auto => files
            .iter()
            .zip(&headers)
            .map(|(p, h)| locate_data(p, h))
            .collect::<Result<_, _>>()?,
    };
    let t_locate = clock.elapsed().as_secs_f64();
    let mut t_read = 0.0;
    let dims = Dims {
        nbl,
        nt,
        nch,
        pol_map: &pol_map,
        conj: &conj,
    };
    let mut unusable = vec![[0usize; 2]; files.len()];
    // Files with any dataset the library must read: one whole file at a time.
    for (fi, ((h, path), cmap)) in headers.iter().zip(files).zip(&chan_map).enumerate() {
        if routes[fi].fully_direct() {
            continue;
        }
        let d = match how {
            ReadPath::Library => read_data(path, h)?,
            ReadPath::Auto => read_data_routed(path, h, &routes[fi])?,
        };
        let part = Part {
            vis: &d.vis,
            flags: Some(bools_as_bytes(&d.flags)),
            nsamples: Some(&d.nsamples),
            cmap,
            nf: h.nfreqs,
        };
        let c = scatter(&mut vis, &mut weight, &[part], 0, nt, &dims)[0];
        unusable[fi][0] += c[0];
        unusable[fi][1] += c[1];
    }
    // The rest (the correlator's files): each task reads one file's samples of a run of
    // baselines in one integration (contiguous in the file, a few hundred kB) into a
    // per-thread buffer and scatters them straight into the group, in parallel over tasks.
    let direct: Vec<usize> = (0..files.len())
        .filter(|&fi| routes[fi].fully_direct())
        .collect();
    if !direct.is_empty() {
        let t = std::time::Instant::now();
        let opened = direct
            .iter()
            .map(|&fi| DirectFile::open(files[fi], routes[fi]))
            .collect::<Result<Vec<_>, _>>()?;
        let per_baseline = direct
            .iter()
            .map(|&fi| headers[fi].nfreqs * npol * 13)
            .max()
            .unwrap_or(1);
        let run = (block_bytes / per_baseline).clamp(1, nbl);
        let tasks: Vec<(usize, usize, usize)> = (0..nt)
            .flat_map(|t| {
                (0..direct.len()).flat_map(move |k| (0..nbl).step_by(run).map(move |b0| (t, k, b0)))
            })
            .collect();
        let out = GroupOut {
            vis: vis.as_mut_ptr(),
            weight: weight.as_mut_ptr(),
            len: n,
        };
        let bad = tasks
            .par_iter()
            .try_fold(
                || (Scratch::default(), vec![[0usize; 2]; direct.len()]),
                |(mut s, mut bad), &(t, k, b0)| {
                    let fi = direct[k];
                    let nf = headers[fi].nfreqs;
                    let b1 = (b0 + run).min(nbl);
                    opened[k].read(
                        files[fi],
                        (t * nbl + b0) * nf * npol,
                        (b1 - b0) * nf * npol,
                        &mut s,
                    )?;
                    let part = Part {
                        vis: &s.vis,
                        flags: (!s.flags.is_empty()).then_some(s.flags.as_slice()),
                        nsamples: (!s.nsamples.is_empty()).then_some(s.nsamples.as_slice()),
                        cmap: &chan_map[fi],
                        nf,
                    };
                    // SAFETY: tasks are distinct (t, file, baseline run) triples and a file's
                    // channels map to group channels no other file has, so no two tasks write
                    // the same element; `vis` and `weight` are not otherwise used meanwhile.
                    let c = unsafe { scatter_run(&out, &part, t, b0..b1, &dims) };
                    bad[k][0] += c[0];
                    bad[k][1] += c[1];
                    Ok::<_, Uvh5Error>((s, bad))
                },
            )
            .map(|r| r.map(|(_, bad)| bad))
            .try_reduce(
                || vec![[0usize; 2]; direct.len()],
                |a, b| {
                    Ok(a.iter()
                        .zip(&b)
                        .map(|(x, y)| [x[0] + y[0], x[1] + y[1]])
                        .collect())
                },
            )?;
        for (k, c) in bad.into_iter().enumerate() {
            unusable[direct[k]][0] += c[0];
            unusable[direct[k]][1] += c[1];
        }
        t_read += t.elapsed().as_secs_f64();
    }
    log::debug!(
        "group read: headers {t_headers:.3} s, allocate and locate {:.3} s, library files {:.3} s, direct read and scatter {t_read:.3} s",
        t_locate - t_headers,
        clock.elapsed().as_secs_f64() - t_locate - t_read
    );
    for ((h, path), bad) in headers.iter().zip(files).zip(&unusable) {
        if bad[0] == h.nblts() * h.nfreqs * h.npols {
            log::warn!(
                "{}: every visibility is NaN, Inf or zero: the whole subband is flagged",
                path.display()
            );
        }
        let bad_ns = bad[1];
        if bad_ns > 0 {
            log::warn!("{}: {bad_ns} of {} Data/nsamples are negative, not finite or above {MAX_NSAMPLES}: those samples are flagged", path.display(), h.nblts() * h.nfreqs * h.npols);
        }
    }
    let times_jd: Vec<f64> = (0..nt).map(|t| first.time_array[t * nbl]).collect();
    // A window starts wherever the source file changes along the ascending axis.
    let window_starts = (0..all.len())
        .filter(|&i| i == 0 || all[i].1 != all[i - 1].1)
        .collect();
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

/// `n` zero visibilities, allocated zeroed (calloc: pages are zeroed when first touched, by
/// the threads that fill them) rather than written element by element.
fn zeroed_complex(n: usize) -> Vec<Complex32> {
    let mut v = std::mem::ManuallyDrop::new(vec![0f32; 2 * n]);
    let (ptr, len, cap) = (v.as_mut_ptr(), v.len(), v.capacity());
    if cap % 2 != 0 {
        // Not expected from `vec!`; fall back to writing zeros.
        drop(std::mem::ManuallyDrop::into_inner(v));
        return vec![Complex32::new(0.0, 0.0); n];
    }
    // SAFETY: Complex32 is repr(C) {f32, f32}: same alignment as f32 and twice its size, so
    // the allocation of `cap` f32 is exactly that of `cap / 2` Complex32; all-zero bits are
    // 0 + 0i.
    unsafe { Vec::from_raw_parts(ptr.cast::<Complex32>(), len / 2, cap / 2) }
}

/// Asks the kernel for transparent huge pages over a large, not yet touched buffer (where THP
/// is in `madvise` mode): a 2 GiB group is then faulted in as ~1000 2 MiB pages instead of
/// ~500 000 small ones. Only advice: nothing changes if refused.
fn advise_huge_pages<T>(v: &mut [T]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = v.as_mut_ptr() as usize;
        let end = start + std::mem::size_of_val(v);
        let a = start.div_ceil(HUGE) * HUGE;
        let b = end / HUGE * HUGE;
        if b > a {
            // SAFETY: the range lies inside `v`'s allocation; MADV_HUGEPAGE changes no contents.
            unsafe {
                libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_HUGEPAGE);
            }
        }
    }
}

/// The group's output arrays as raw pointers, for tasks that write disjoint elements.
struct GroupOut {
    vis: *mut Complex32,
    weight: *mut f32,
    len: usize,
}
// SAFETY: only used by `scatter_run`, whose callers guarantee disjoint writes.
impl Part<'_> {
    /// One sample as the group keeps it: (visibility in the group's baseline orientation,
    /// zeroed when NaN/Inf/zero; weight, 0 when flagged, unusable or of invalid nsamples;
    /// [1 if NaN/Inf/zero, 1 if nsamples is invalid (zero is a plain flag)]).
    #[inline]
    fn sample(&self, src: usize, conj: bool) -> (Complex32, f32, [usize; 2]) {
        let v = if conj {
            self.vis[src].conj()
        } else {
            self.vis[src]
        };
        let good = v.re.is_finite() && v.im.is_finite() && (v.re != 0.0 || v.im != 0.0);
        let w = self.nsamples.map_or(1.0, |s| s[src]);
        let flagged = self.flags.is_some_and(|f| f[src] != 0);
        let ok = good && !flagged && valid_nsamples(w);
        let counts = [
            usize::from(!good),
            usize::from(!valid_nsamples(w) && w != 0.0),
        ];
        (
            if good { v } else { Complex32::new(0.0, 0.0) },
            if ok { w } else { 0.0 },
            counts,
        )
    }
}

unsafe impl Sync for GroupOut {}

/// Scatters one file's samples of baselines `bls` at integration `t` (`part` holds exactly
/// those, in file order) into the group; returns the counts of NaN/Inf/zero samples and of
/// invalid nsamples (negative, not finite or above MAX_NSAMPLES; zero is a plain flag).
///
/// # Safety
/// No other thread may access the elements written here (baselines `bls`, integration `t`,
/// the part's channels) at the same time.
unsafe fn scatter_run(
    out: &GroupOut,
    part: &Part,
    t: usize,
    bls: std::ops::Range<usize>,
    d: &Dims,
) -> [usize; 2] {
    let npol = d.pol_map.len();
    let mut bad = [0usize; 2];
    for (i, b) in bls.enumerate() {
        let row = (b * d.nt + t) * d.nch;
        for c in 0..part.nf {
            let dbase = (row + part.cmap[c]) * npol;
            for p in 0..npol {
                let src = (i * part.nf + c) * npol + p;
                let dst = dbase + d.pol_map[p];
                assert!(dst < out.len);
                let (v, w, c) = part.sample(src, d.conj[b]);
                bad[0] += c[0];
                bad[1] += c[1];
                *out.vis.add(dst) = v;
                *out.weight.add(dst) = w;
            }
        }
    }
    bad
}

/// Scatters integrations `t0..t0 + nb` of each part into the group's (bl, t, chan, pol)
/// layout (baselines normalised, NaN/Inf/zero samples zeroed with weight 0), in parallel
/// over baselines (disjoint output rows). Returns each part's counts of NaN/Inf/zero samples
/// and of invalid nsamples.
fn scatter(
    vis: &mut [Complex32],
    weight: &mut [f32],
    parts: &[Part],
    t0: usize,
    nb: usize,
    d: &Dims,
) -> Vec<[usize; 2]> {
    let npol = d.pol_map.len();
    let row = d.nt * d.nch * npol;
    vis.par_chunks_mut(row)
        .zip(weight.par_chunks_mut(row))
        .enumerate()
        .fold(
            || vec![[0usize; 2]; parts.len()],
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
                                let (v, w, c) = part.sample(src, d.conj[b]);
                                bad[k][0] += c[0];
                                bad[k][1] += c[1];
                                vrow[dst] = v;
                                wrow[dst] = w;
                            }
                        }
                    }
                }
                bad
            },
        )
        .reduce(
            || vec![[0usize; 2]; parts.len()],
            |a, b| {
                a.iter()
                    .zip(&b)
                    .map(|(x, y)| [x[0] + y[0], x[1] + y[1]])
                    .collect()
            },
        )
}
