//! Putting one file's samples into the group's layout (`group.rs`): baselines normalised,
//! polarizations ordered, NaN/Inf/zero samples and flagged or invalid nsamples given weight 0.
//! `scatter_run` is the direct path's (a run of baselines of one integration, prepared in
//! small buffers and stored with streaming stores), `scatter` the library path's (sample by
//! sample, parallel over baselines); a unit test holds them bit-identical.

use super::{valid_nsamples, MAX_NSAMPLES};
use half::f16;
use num_complex::Complex32;
use rayon::prelude::*;

/// The group's shape and the per-baseline and per-polarization reordering.
pub(super) struct Dims<'a> {
    pub nbl: usize,
    pub nt: usize,
    pub nch: usize,
    pub pol_map: &'a [usize],
    pub conj: &'a [bool],
}

/// One file's samples for a block of integrations, in file order (blt, chan, pol).
pub(super) struct Part<'a> {
    pub vis: &'a [Complex32],
    /// Flag bytes (0 = unflagged); `None` when the file has none.
    pub flags: Option<&'a [u8]>,
    /// `None` when the file has none (1 each).
    pub nsamples: Option<&'a [f32]>,
    /// Group channel of each of the file's channels.
    pub cmap: &'a [usize],
    pub nf: usize,
}

/// The group's output arrays as raw pointers, for tasks that write disjoint elements.
pub(super) struct GroupOut {
    pub vis: *mut Complex32,
    pub weight: *mut f16,
    pub len: usize,
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

/// One sample as the group keeps it, without branches: the visibility with its imaginary part
/// times `sign` (-1 conjugates), zeroed when NaN/Inf/zero; the weight (`w`, 0 when flagged,
/// unusable or of invalid nsamples); and the counts [NaN/Inf/zero, invalid nsamples (zero
/// is a plain flag)]. The same rules as `Part::sample`.
#[inline(always)]
pub(super) fn cell(v: Complex32, sign: f32, flag: u8, w: f32) -> (Complex32, f32, usize, usize) {
    let v = Complex32::new(v.re, v.im * sign);
    let good =
        (v.re.abs() <= f32::MAX) & (v.im.abs() <= f32::MAX) & ((v.re != 0.0) | (v.im != 0.0));
    let w_ok = (w > 0.0) & (w <= MAX_NSAMPLES);
    let ok = good & (flag == 0) & w_ok;
    let zero = Complex32::new(0.0, 0.0);
    (
        if good { v } else { zero },
        if ok { w } else { 0.0 },
        usize::from(!good),
        usize::from(!w_ok & (w != 0.0)),
    )
}

/// Stores a value of 8 or 4 bytes that nobody reads back soon: a non-temporal store on
/// x86-64 (the group is far larger than any cache, so this skips the read-for-ownership of
/// every output line).
///
/// # Safety
/// `dst` must be valid for a write of `T` (movnti needs no alignment).
#[inline(always)]
pub(super) unsafe fn store_nt<T: Copy>(dst: *mut T, x: T) {
    const { assert!(matches!(std::mem::size_of::<T>(), 4 | 8)) };
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_stream_si32, _mm_stream_si64};
        if std::mem::size_of::<T>() == 8 {
            _mm_stream_si64(dst.cast::<i64>(), std::mem::transmute_copy(&x));
        } else {
            _mm_stream_si32(dst.cast::<i32>(), std::mem::transmute_copy(&x));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        *dst = x;
    }
}

/// Channels of a row prepared at a time (in stack buffers, then stored).
pub(super) const CHUNK: usize = 64;

/// Where a chunk of a file's channels lands in a group row: a run of consecutive group
/// channels starting at `lo` (reversed when the file's channels descend, as the correlator
/// writes them), or scattered.
#[derive(Clone, Copy)]
enum Landing {
    Run { lo: usize, reversed: bool },
    Scattered,
}

fn landing(cmap: &[usize]) -> Landing {
    let n = cmap.len();
    let step = |d: isize| cmap.windows(2).all(|p| p[1] as isize - p[0] as isize == d);
    match n {
        0 => Landing::Scattered,
        _ if step(1) => Landing::Run {
            lo: cmap[0],
            reversed: false,
        },
        _ if step(-1) => Landing::Run {
            lo: cmap[n - 1],
            reversed: true,
        },
        _ => Landing::Scattered,
    }
}

/// Copies `src` to `dst` with non-temporal stores: 4 bytes at a time up to a 16-byte
/// boundary, 16 at a time after, 4 at a time for the tail.
///
/// # Safety
/// `dst` must be valid for `size_of_val(src)` bytes and 4-byte aligned; `T` a multiple of 4
/// bytes.
#[inline(always)]
unsafe fn stream_copy<T: Copy>(dst: *mut T, src: &[T]) {
    const { assert!(std::mem::size_of::<T>().is_multiple_of(4)) };
    let (mut p, mut s) = (dst.cast::<u8>(), src.as_ptr().cast::<u8>());
    let mut left = std::mem::size_of_val(src);
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};
        while left >= 4 && !(p as usize).is_multiple_of(16) {
            store_nt(p.cast::<u32>(), s.cast::<u32>().read_unaligned());
            (p, s, left) = (p.add(4), s.add(4), left - 4);
        }
        while left >= 16 {
            _mm_stream_si128(p.cast::<__m128i>(), _mm_loadu_si128(s.cast::<__m128i>()));
            (p, s, left) = (p.add(16), s.add(16), left - 16);
        }
    }
    while left >= 4 {
        store_nt(p.cast::<u32>(), s.cast::<u32>().read_unaligned());
        (p, s, left) = (p.add(4), s.add(4), left - 4);
    }
}

/// Scatters one file's samples of baselines `bls` at integration `t` (`part` holds exactly
/// those, in file order) into the group; returns the counts of NaN/Inf/zero samples and of
/// invalid nsamples (negative, not finite or above MAX_NSAMPLES; zero is a plain flag).
/// Each row is prepared CHUNK channels at a time in small buffers (loops without branches or
/// bounds checks, so they vectorize, and the weights' half floats converted as a slice), put
/// in the group's channel order, then stored as one streaming run per array where the
/// chunk's channels are consecutive in the group (the correlator's files), channel by
/// channel otherwise. With AVX2 where the CPU has it.
///
/// # Safety
/// No other thread may access the elements written here (baselines `bls`, integration `t`,
/// the part's channels) at the same time; `out` must be two polarizations (`d.pol_map` a
/// permutation of 0, 1; checked by the caller).
pub(super) unsafe fn scatter_run(
    out: &GroupOut,
    part: &Part,
    t: usize,
    bls: std::ops::Range<usize>,
    d: &Dims,
) -> [usize; 2] {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        return scatter_run_avx2(out, part, t, bls, d);
    }
    scatter_run_body(out, part, t, bls, d)
}

/// `scatter_run_body` compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scatter_run_avx2(
    out: &GroupOut,
    part: &Part,
    t: usize,
    bls: std::ops::Range<usize>,
    d: &Dims,
) -> [usize; 2] {
    scatter_run_body(out, part, t, bls, d)
}

#[inline(always)]
unsafe fn scatter_run_body(
    out: &GroupOut,
    part: &Part,
    t: usize,
    bls: std::ops::Range<usize>,
    d: &Dims,
) -> [usize; 2] {
    use half::slice::HalfFloatSliceExt;
    debug_assert_eq!(d.pol_map.len(), 2);
    let swap = d.pol_map[0] == 1;
    let nf = part.nf;
    let mut bad = [0usize; 2];
    let zero = Complex32::new(0.0, 0.0);
    let (mut v, mut w) = ([zero; 2 * CHUNK], [0f32; 2 * CHUNK]);
    let mut h = [f16::ZERO; 2 * CHUNK];
    let landings: Vec<Landing> = part.cmap.chunks(CHUNK).map(landing).collect();
    for (i, b) in bls.enumerate() {
        let row = (b * d.nt + t) * d.nch;
        // Every channel of the row lies inside the group (cmap < nch): one check per row.
        assert!((row + d.nch) * 2 <= out.len);
        let sign = if d.conj[b] { -1.0 } else { 1.0 };
        for (c0, &land) in (0..nf).step_by(CHUNK).zip(&landings) {
            let n = CHUNK.min(nf - c0);
            let (s0, m) = ((i * nf + c0) * 2, 2 * n);
            let src = &part.vis[s0..s0 + m];
            let (mut n_bad, mut n_ns) = (0usize, 0usize);
            let mut one = |(v, w): (&mut Complex32, &mut f32), x: Complex32, f: u8, n: f32| {
                let (cv, cw, a, z) = cell(x, sign, f, n);
                (*v, *w) = (cv, cw);
                n_bad += a;
                n_ns += z;
            };
            let vw = v[..m].iter_mut().zip(&mut w[..m]);
            match (part.flags, part.nsamples) {
                (Some(f), Some(x)) => vw
                    .zip(src.iter().zip(&f[s0..s0 + m]).zip(&x[s0..s0 + m]))
                    .for_each(|(o, ((&x, &f), &n))| one(o, x, f, n)),
                (Some(f), None) => vw
                    .zip(src.iter().zip(&f[s0..s0 + m]))
                    .for_each(|(o, (&x, &f))| one(o, x, f, 1.0)),
                (None, Some(x)) => vw
                    .zip(src.iter().zip(&x[s0..s0 + m]))
                    .for_each(|(o, (&x, &n))| one(o, x, 0, n)),
                (None, None) => vw.zip(src).for_each(|(o, &x)| one(o, x, 0, 1.0)),
            }
            bad[0] += n_bad;
            bad[1] += n_ns;
            if swap {
                v[..m].chunks_exact_mut(2).for_each(|p| p.swap(0, 1));
                w[..m].chunks_exact_mut(2).for_each(|p| p.swap(0, 1));
            }
            h[..m].convert_from_f32_slice(&w[..m]);
            match land {
                Landing::Run { lo, reversed } => {
                    if reversed {
                        v[..m].as_chunks_mut::<2>().0.reverse();
                        h[..m].as_chunks_mut::<2>().0.reverse();
                    }
                    let dst = (row + lo) * 2;
                    stream_copy(out.vis.add(dst), &v[..m]);
                    stream_copy(
                        out.weight.add(dst).cast::<[f16; 2]>(),
                        h[..m].as_chunks::<2>().0,
                    );
                }
                Landing::Scattered => {
                    for (c, &g) in part.cmap[c0..c0 + n].iter().enumerate() {
                        let dst = (row + g) * 2;
                        store_nt(out.vis.add(dst), v[2 * c]);
                        store_nt(out.vis.add(dst + 1), v[2 * c + 1]);
                        store_nt(
                            out.weight.add(dst).cast::<[f16; 2]>(),
                            [h[2 * c], h[2 * c + 1]],
                        );
                    }
                }
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    std::arch::x86_64::_mm_sfence();
    bad
}

/// Scatters integrations `t0..t0 + nb` of each part into the group's (bl, t, chan, pol)
/// layout (baselines normalised, NaN/Inf/zero samples zeroed with weight 0), in parallel
/// over baselines (disjoint output rows). Returns each part's counts of NaN/Inf/zero samples
/// and of invalid nsamples.
pub(super) fn scatter(
    vis: &mut [Complex32],
    weight: &mut [f16],
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
                                wrow[dst] = f16::from_f32(w);
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
