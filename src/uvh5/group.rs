//! The group loader: reads a subband group's UVH5 files into one in-memory group
//! ([`GroupVis`], defined in `core`) with channels
//! ascending across the group, baselines normalised to ant_1 <= ant_2 (data conjugated),
//! polarizations ordered (XX, YY), and NaN/Inf/zero samples flagged (weight 0).
//!
//! Layout: `vis[((bl * n_times + t) * n_chan + c) * npol + p]` — baseline-major, so each
//! baseline's time x frequency plane is contiguous for flagging and per-baseline work.

use crate::core::{GroupMeta, GroupVis, Weights};
use crate::primitives::astrometry::Site;
use crate::uvh5::fast::{DirectFile, Scratch};
use crate::uvh5::{
    locate_data, read_data, read_data_routed, read_header, DataRoutes, Uvh5Error, Uvh5Header,
    POL_XX,
};
use half::f16;
use half::vec::HalfBitsVecExt;
use num_complex::Complex32;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

#[path = "group_axes.rs"]
mod axes;
use axes::{channel_axis, group_baselines};
#[path = "group_scatter.rs"]
mod scatter;
use scatter::{scatter, scatter_run, Dims, GroupOut, Part};

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
    #[error("{path} and the group's other {others} file(s): {what} need {need_gib:.2} GiB, but {avail_gib:.2} GiB of memory is available (MemAvailable / cgroup limit): the group is not read")]
    Memory {
        path: PathBuf,
        others: usize,
        what: String,
        need_gib: f64,
        avail_gib: f64,
    },
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
    load_group_limited(
        files,
        how,
        block_bytes,
        crate::core::available_memory(),
        None,
    )
}

/// As `load_group_with`, writing into `spare`'s visibility and weight buffers when they have
/// exactly the new group's size (every element is overwritten), so a run of same-shaped
/// groups reads without fresh memory (no page faults, no kernel zeroing); otherwise `spare`
/// is freed first and new buffers are allocated.
pub fn load_group_reusing(
    files: &[&Path],
    how: ReadPath,
    spare: GroupVis,
) -> Result<(GroupVis, Vec<DataRoutes>), LoadError> {
    load_group_limited(
        files,
        how,
        BLOCK_BYTES,
        crate::core::available_memory(),
        Some((spare.vis, spare.weight.into_stored())),
    )
}

/// As `load_group`, into the buffers of an earlier group as read (`spare`: its
/// visibilities and half-float weights, e.g. given back by
/// `GroupVis::into_stokes_i_reusing`) when they have exactly the new group's size.
pub fn load_group_into(
    files: &[&Path],
    spare: crate::core::RawBuffers,
) -> Result<GroupVis, LoadError> {
    load_group_limited(
        files,
        ReadPath::Auto,
        BLOCK_BYTES,
        crate::core::available_memory(),
        Some(spare),
    )
    .map(|(g, _)| g)
}

/// Bytes of one group sample in memory: a Complex32 visibility and a half-float weight.
pub const GROUP_BYTES_PER_SAMPLE: u64 = 10;

/// Checks, before anything is allocated, that the group's buffers (from the headers' shapes:
/// baselines x integrations x channels x 2 pols, 10 bytes a sample) and, when some file is
/// read whole through the HDF5 library, the largest such file's data arrays (13 bytes a
/// sample) fit in `available` bytes (None: unknown, not checked). `reused`: the group's
/// buffers exist already (only the library's arrays are new).
fn check_group_memory(
    files: &[&Path],
    headers: &[Uvh5Header],
    routes: &[DataRoutes],
    [nbl, nt, nch]: [usize; 3],
    reused: bool,
    available: Option<u64>,
) -> Result<(), LoadError> {
    let Some(avail) = available else {
        return Ok(());
    };
    let samples = (nbl as u64) * (nt as u64) * (nch as u64) * 2;
    let group = if reused {
        0
    } else {
        samples.saturating_mul(GROUP_BYTES_PER_SAMPLE)
    };
    // The library path holds one file's arrays (vis 8, flags 1, nsamples 4 bytes a sample)
    // beside the group; the direct path only small per-thread blocks.
    let per_file = headers
        .iter()
        .zip(routes)
        .filter(|(_, r)| !r.fully_direct())
        .map(|(h, _)| (h.nblts() * h.nfreqs * h.npols) as u64 * 13)
        .max()
        .unwrap_or(0);
    let need = group.saturating_add(per_file);
    if need > avail {
        return Err(LoadError::Memory {
            path: files[0].to_path_buf(),
            others: files.len() - 1,
            what: format!(
                "the group's visibilities and weights ({nbl} baselines x {nt} integrations x {nch} channels x 2 pols = {samples} samples{})",
                if per_file > 0 { ", and one file's arrays read through HDF5" } else { "" }
            ),
            need_gib: need as f64 / 1073741824.0,
            avail_gib: avail as f64 / 1073741824.0,
        });
    }
    Ok(())
}

/// Reads the files every dataset of which is read directly (the correlator's files), in
/// parallel: each task reads one file's samples of a run of baselines in one integration
/// (contiguous in the file, a few hundred kB) into a per-thread buffer and scatters them
/// straight into the group. Adds each file's unusable counts; returns the seconds taken.
#[allow(clippy::too_many_arguments)]
fn read_direct(
    files: &[&Path],
    headers: &[Uvh5Header],
    routes: &[DataRoutes],
    chan_map: &[Vec<usize>],
    dims: &Dims,
    block_bytes: usize,
    (vis, weight): (&mut [Complex32], &mut [f16]),
    unusable: &mut [[usize; 2]],
) -> Result<f64, LoadError> {
    let (nbl, nt, npol, n) = (dims.nbl, dims.nt, 2, vis.len());
    let direct: Vec<usize> = (0..files.len())
        .filter(|&fi| routes[fi].fully_direct())
        .collect();
    if direct.is_empty() {
        return Ok(0.0);
    }
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
                let c = unsafe { scatter_run(&out, &part, t, b0..b1, dims) };
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
    Ok(t.elapsed().as_secs_f64())
}

/// Warns of files whose every visibility, or some nsamples, were unusable.
fn warn_unusable(headers: &[Uvh5Header], files: &[&Path], unusable: &[[usize; 2]]) {
    for ((h, path), bad) in headers.iter().zip(files).zip(unusable) {
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
}

/// As `load_group_blocks`, checking the group's memory against `available` bytes and
/// reusing `spare` buffers of the right size.
fn load_group_limited(
    files: &[&Path],
    how: ReadPath,
    block_bytes: usize,
    available: Option<u64>,
    spare: Option<(Vec<Complex32>, Vec<f16>)>,
) -> Result<(GroupVis, Vec<DataRoutes>), LoadError> {
    let clock = std::time::Instant::now();
    // In parallel: the HDF5 calls take the library's lock in turn, the checks on the
    // arrays read (antenna numbers, time order, finite values) run side by side.
    let headers: Vec<Uvh5Header> = files
        .par_iter()
        .map(|p| read_header(p))
        .collect::<Result<_, _>>()?;
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
    let (all, freqs, chan_map) = channel_axis(&headers, files)?;
    let (nbl, nt) = (first.nbls, first.ntimes);
    let (baselines, conj) = group_baselines(&first, files[0])?;
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
    let routes: Vec<DataRoutes> = match how {
        ReadPath::Library => vec![DataRoutes::LIBRARY; files.len()],
        ReadPath::Auto => files
            .iter()
            .zip(&headers)
            .map(|(p, h)| locate_data(p, h))
            .collect::<Result<_, _>>()?,
    };
    // Spare buffers of another size are freed here, before the check.
    let reuse = spare.filter(|(v, w)| v.len() == n && w.len() == n);
    let into = ["new memory", "reused buffers"][usize::from(reuse.is_some())];
    check_group_memory(
        files,
        &headers,
        &routes,
        [nbl, nt, nch],
        reuse.is_some(),
        available,
    )?;
    // Every element of the group is written below (each file's channels at every
    // baseline, integration and polarization), so reused buffers need no clearing.
    let (mut vis, mut weight) = match reuse {
        Some(b) => b,
        None => {
            // Small pages, faulted in by the scatter's threads: no huge-page advice (see
            // benches/README.md, 2026-12-03 session 22: on a VM whose host reclaims free
            // memory, a 2 MiB fault costs the host's backing of 512 pages at once and a read
            // took 5-8 s of system time instead of 1.3-1.6 s).
            let vis = zeroed_complex(n);
            // Zeroed by the allocator (calloc), like the visibilities.
            let weight: Vec<f16> = vec![0u16; n].reinterpret_into();
            (vis, weight)
        }
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
    t_read += read_direct(
        files,
        &headers,
        &routes,
        &chan_map,
        &dims,
        block_bytes,
        (&mut vis, &mut weight),
        &mut unusable,
    )?;
    log::debug!(
        "group read into {into}: headers {t_headers:.3} s, allocate and locate {:.3} s, library files {:.3} s, direct read and scatter {t_read:.3} s",
        t_locate - t_headers,
        clock.elapsed().as_secs_f64() - t_locate - t_read
    );
    warn_unusable(&headers, files, &unusable);
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
        // nsamples as they are: at most MAX_NSAMPLES, within the stored range at scale 1.
        weight: Weights::from_stored(weight, 1.0),
        meta,
    };
    Ok((g, routes))
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

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
