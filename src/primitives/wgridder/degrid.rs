//! Degridding: the image through the w-screens onto planes, read back with the ES kernel
//! (see the parent module for the method and contract).

use super::grid::{planes_at_once, Screens};
use super::workspace::pass_buffers;
use super::*;

/// Predicts the weighted sum of several images at once (`out` zero on entry): the plan,
/// the w-screens, the row geometry, the phasors and the kernel's taps are computed once per
/// sample and shared by every image; only the planes' transforms and the reads are per
/// image.
#[allow(clippy::needless_range_loop)] // const-size taps indexed with the cells
pub(super) fn degrid<T: Real>(
    plan: &Plan,
    d: &Data,
    images: &[&[f64]],
    weights: &[Weights],
    ws: Option<&Workspace>,
    out: &mut [Complex32],
) {
    let (n, ng, support) = (plan.n, plan.ng, plan.support);
    let nchan = d.freqs.len();
    let nimg = images.len();
    let taps = Taps::<T>::new(&plan.kernel);
    let cx = plan.axis_correction();
    let wc = plan.w_correction();
    // Each image divided by the kernel's transforms: its nonzero pixels by row.
    let by_row: Vec<Vec<Vec<(u32, f64)>>> = images
        .iter()
        .map(|image| {
            image
                .par_chunks(n)
                .enumerate()
                .map(|(y, row)| {
                    row.iter()
                        .enumerate()
                        .filter(|(_, v)| **v != 0.0)
                        .map(|(x, &v)| (x as u32, v * cx[x] * cx[y] * wc(nm1(n, plan.cell, x, y))))
                        .collect()
                })
                .collect()
        })
        .collect();
    // Which planes some sample reaches.
    let mut reached = vec![false; plan.nplanes];
    for run in plan.runs.iter().flatten() {
        let q = run.q as usize;
        reached[q..(q + support).min(plan.nplanes)].fill(true);
    }
    let bx = plan.footprint_box();
    let bw = bx.len();
    let plane_bytes = bw * bw * std::mem::size_of::<Complex<T>>();
    if !plan.flat && planes_at_once(plan, nimg, plane_bytes) >= support {
        ring::<T>(plan, d, &taps, &by_row, weights, &reached, bx, ws, out);
        return;
    }
    let zero = Complex::new(T::zero(), T::zero());
    let mut gridbufs = vec![vec![zero; ng * ng]; nimg];
    // The transforms' scratch, reused by every plane and image.
    let mut fft_t = Vec::new();
    let mut screens = Screens::new(plan, 1.0);
    for p in 0..plan.nplanes {
        if !reached[p] {
            screens.advance();
            continue;
        }
        for (gridbuf, by_row) in gridbufs.iter_mut().zip(&by_row) {
            screened_plane(plan, by_row, &screens, gridbuf, &mut fft_t);
        }
        let grids: Vec<&[Complex<T>]> = gridbufs.iter().map(|g| g.as_slice()).collect();
        let job = ReadJob {
            plan,
            d,
            taps: &taps,
            grids: &grids,
            weights,
            p,
        };
        out.par_chunks_mut(nchan)
            .enumerate()
            .with_min_len(16)
            .for_each(|(r, o)| read_row(&job, r, o));
        screens.advance();
    }
}

/// One image's nonzero pixels by row (`by_row`) times the current w-screen, placed at the
/// centre of the ng x ng grid `gridbuf` (zeroed first) and transformed to the uv plane.
fn screened_plane<T: Real>(
    plan: &Plan,
    by_row: &[Vec<(u32, f64)>],
    screens: &Screens,
    gridbuf: &mut [Complex<T>],
    fft_t: &mut Vec<Complex<T>>,
) {
    let (n, ng) = (plan.n, plan.ng);
    let off = (ng - n) / 2;
    let zero = Complex::new(T::zero(), T::zero());
    gridbuf.par_iter_mut().for_each(|c| *c = zero);
    // Rows of the grid's centre: each pixel written once.
    let rows: Vec<(usize, &mut [Complex<T>])> = gridbuf
        .chunks_mut(ng)
        .enumerate()
        .skip(off)
        .take(n)
        .collect();
    rows.into_par_iter()
        .zip(by_row.par_iter())
        .for_each(|((gy, row), pxs)| {
            let y = gy - off;
            for &(x, v) in pxs {
                let z = screens.at(n, x as usize, y) * v;
                row[x as usize + off] = Complex::new(T::of(z.re), T::of(z.im));
            }
        });
    centred_fft2_inverse_from_centre_with(gridbuf, ng, n, fft_t);
}

/// Degridding with a ring of W planes per image (where `Options::plane_budget_bytes` holds
/// them): each plane's box of cells that footprints reach (`Plan::footprint_box`, in padded
/// coordinates: padded cell (y, x) is grid cell ((y - m) mod ng, (x - m) mod ng)) is kept
/// in slot p mod W; once planes q..q + W are held, the runs whose first plane is q are read
/// from all of them together, so each sample's phasor, geometry and u, v taps are computed
/// once instead of once per plane.
#[allow(clippy::too_many_arguments)]
fn ring<T: Real>(
    plan: &Plan,
    d: &Data,
    taps: &Taps<T>,
    by_row: &[Vec<Vec<(u32, f64)>>],
    weights: &[Weights],
    reached: &[bool],
    bx: std::ops::Range<usize>,
    ws: Option<&Workspace>,
    out: &mut [Complex32],
) {
    let (ng, support, nplanes) = (plan.ng, plan.support, plan.nplanes);
    let nchan = d.freqs.len();
    let nimg = by_row.len();
    let bw = bx.len();
    let slots = support.min(nplanes);
    let zero = Complex::new(T::zero(), T::zero());
    // planes[i * slots + p % slots]: image i's plane p (its box); from `ws` where it holds
    // them (a gridding pass of the same plan leaves such planes and grid).
    let (mut planes, mut gridbuf, _) =
        pass_buffers(ws, [nimg * slots, bw * bw], ng * ng, [0, 0], zero);
    let mut fft_t = Vec::new();
    let m = plan.margin;
    let wrap = |x: usize| (x + ng - m) % ng;
    let mut screens = Screens::new(plan, 1.0);
    for p in 0..nplanes {
        if reached[p] {
            for (i, by_row) in by_row.iter().enumerate() {
                screened_plane(plan, by_row, &screens, &mut gridbuf, &mut fft_t);
                let g = &gridbuf;
                planes[i * slots + p % slots]
                    .par_chunks_mut(bw)
                    .enumerate()
                    .for_each(|(yy, row)| {
                        let src = &g[wrap(bx.start + yy) * ng..][..ng];
                        for (xx, o) in row.iter_mut().enumerate() {
                            *o = src[wrap(bx.start + xx)];
                        }
                    });
            }
        }
        screens.advance();
        // The runs whose planes end at p are read now.
        let grids: Vec<&[Complex<T>]> = planes.iter().map(|g| g.as_slice()).collect();
        let job = RingJob {
            base: ReadJob {
                plan,
                d,
                taps,
                grids: &grids,
                weights,
                p,
            },
            slots,
            x0: bx.start as i64 - m as i64,
            bw,
        };
        out.par_chunks_mut(nchan)
            .enumerate()
            .with_min_len(16)
            .for_each(|(r, o)| read_row(&job, r, o));
    }
    if let Some(w) = ws {
        planes.into_iter().for_each(|p| w.give(p));
        w.give(gridbuf);
    }
}

/// A degridding step's work on one row, built per kernel width W and for AVX2 (F: fused
/// multiply-adds); `read_row` picks the build.
trait RowReader: Sync {
    fn plan(&self) -> &Plan;
    fn row_w<const W: usize, const F: bool>(&self, r: usize, out: &mut [Complex32]);
}

/// Row r's step, the AVX2 + FMA build where the CPU has it.
fn read_row<J: RowReader>(job: &J, r: usize, out: &mut [Complex32]) {
    #[cfg(target_arch = "x86_64")]
    if !job.plan().portable && super::simd::avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA (checked at run time just above).
        unsafe { read_row_avx2(job, r, out) };
        return;
    }
    read_row_any::<J, false>(job, r, out);
}

/// `read_row` compiled for AVX2 with fused multiply-adds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn read_row_avx2<J: RowReader>(job: &J, r: usize, out: &mut [Complex32]) {
    read_row_any::<J, true>(job, r, out);
}

#[inline(always)]
fn read_row_any<J: RowReader, const F: bool>(job: &J, r: usize, out: &mut [Complex32]) {
    match job.plan().support {
        4 => job.row_w::<4, F>(r, out),
        5 => job.row_w::<5, F>(r, out),
        6 => job.row_w::<6, F>(r, out),
        7 => job.row_w::<7, F>(r, out),
        8 => job.row_w::<8, F>(r, out),
        9 => job.row_w::<9, F>(r, out),
        10 => job.row_w::<10, F>(r, out),
        11 => job.row_w::<11, F>(r, out),
        12 => job.row_w::<12, F>(r, out),
        13 => job.row_w::<13, F>(r, out),
        14 => job.row_w::<14, F>(r, out),
        15 => job.row_w::<15, F>(r, out),
        16 => job.row_w::<16, F>(r, out),
        _ => job.row_w::<3, F>(r, out),
    }
}

/// Row r's runs that `pick` takes: each accepted sample's u, v taps are computed and
/// handed to `value` with the run, the sample's |w| (wavelengths), its first cells and
/// each image's weight for it; the weighted sum of the images it returns is phased and
/// added to the sample's output.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn walk_row<T: Real, const F: bool>(
    plan: &Plan,
    d: &Data,
    taps: &Taps<T>,
    weights: &[Weights],
    r: usize,
    out: &mut [Complex32],
    pick: impl Fn(&Run) -> bool,
    mut value: impl FnMut(
        &Run,
        f64,
        (i64, i64),
        &[T; MAX_SUPPORT],
        &[T; MAX_SUPPORT],
        &[f64],
    ) -> Complex64,
) {
    let mut runs = plan.runs[r].iter().filter(|run| pick(run)).peekable();
    if runs.peek().is_none() {
        return;
    }
    let g = RowGeom::new(d, plan, r);
    // Each image's weight on this row, and on the sample.
    let wrow: Vec<f64> = weights
        .iter()
        .map(|w| w.row.map_or(1.0, |x| x[r] as f64))
        .collect();
    let mut fac = vec![0.0; weights.len()];
    let mut ku = [T::zero(); MAX_SUPPORT];
    let mut kv = [T::zero(); MAX_SUPPORT];
    for run in runs {
        let mut rot = Phasor::new(d, g.rate, 1.0, run.k0 as usize);
        for k in run.k0 as usize..run.k1 as usize {
            let z = rot.next(k);
            let lam = d.lam[k];
            let (u, v) = (g.um * lam, g.vm * lam);
            if !d.accept(u, v) {
                continue;
            }
            let first = taps.at2::<F>(
                plan.centre - u * plan.scale,
                plan.centre + v * plan.scale,
                &mut ku,
                &mut kv,
            );
            let at = d.order[k];
            for ((f, w), wr) in fac.iter_mut().zip(weights).zip(&wrow) {
                *f = wr * w.chan.map_or(1.0, |c| c[at] as f64);
            }
            let mut val = value(run, g.wa * lam, first, &ku, &kv, &fac);
            if g.flip {
                val = val.conj();
            }
            let val = val * z;
            let o = &mut out[at];
            o.re += val.re as f32;
            o.im += val.im as f32;
        }
    }
}

struct ReadJob<'a, T> {
    plan: &'a Plan,
    d: &'a Data<'a>,
    taps: &'a Taps<T>,
    grids: &'a [&'a [Complex<T>]],
    weights: &'a [Weights<'a>],
    p: usize,
}

impl<T: Real> RowReader for ReadJob<'_, T> {
    fn plan(&self) -> &Plan {
        self.plan
    }

    #[inline(always)]
    fn row_w<const W: usize, const F: bool>(&self, r: usize, out: &mut [Complex32]) {
        let (plan, p, ng) = (self.plan, self.p, self.plan.ng);
        let pick = |run: &Run| run.q as usize <= p && run.q as usize + W > p;
        walk_row::<T, F>(
            plan,
            self.d,
            self.taps,
            self.weights,
            r,
            out,
            pick,
            |run, w, (fx, fy), ku, kv, fac| {
                let kw = plan.w_tap(self.taps, w, run.q, p - run.q as usize);
                let inside = fx >= 0 && fy >= 0 && fx as usize + W <= ng && fy as usize + W <= ng;
                let mut s = Complex64::new(0.0, 0.0);
                for (grid, f) in self.grids.iter().zip(fac) {
                    let si = if inside {
                        interp::<T, W, F>(grid, ng, fx as usize, fy as usize, ku, kv)
                    } else {
                        interp_wrapped::<T, W>(grid, ng, fx, fy, ku, kv)
                    };
                    s += si * *f;
                }
                s * kw
            },
        );
    }
}

/// One step of `ring`: the rows' runs whose planes end at plane `p`.
struct RingJob<'a, T> {
    /// `base.grids[i * slots + p % slots]`: image i's plane p (the footprints' box).
    base: ReadJob<'a, T>,
    slots: usize,
    /// The box's first row and column in grid coordinates (may be negative), its side.
    x0: i64,
    bw: usize,
}

impl<T: Real> RowReader for RingJob<'_, T> {
    fn plan(&self) -> &Plan {
        self.base.plan
    }

    #[inline(always)]
    fn row_w<const W: usize, const F: bool>(&self, r: usize, out: &mut [Complex32]) {
        let ReadJob {
            plan,
            d,
            taps,
            grids,
            weights,
            p,
        } = self.base;
        let (np, slots) = (plan.nplanes, self.slots);
        let pick = |run: &Run| (run.q as usize + W).min(np) - 1 == p;
        let mut kw = [0.0f64; MAX_SUPPORT];
        walk_row::<T, F>(
            plan,
            d,
            taps,
            weights,
            r,
            out,
            pick,
            |run, w, (fx, fy), ku, kv, fac| {
                let q = run.q as usize;
                let pn = W.min(np - q);
                taps.all64(plan.wcoord(w), run.q, &mut kw);
                // The box holds every accepted sample's footprint (`Plan::footprint_box`).
                let (bx, by) = (fx - self.x0, fy - self.x0);
                assert!(
                    bx >= 0 && by >= 0 && bx as usize + W <= self.bw && by as usize + W <= self.bw,
                    "degridding: a footprint outside the planes' box"
                );
                let (bx, by) = (bx as usize, by as usize);
                let mut s = Complex64::new(0.0, 0.0);
                for (i, f) in fac.iter().enumerate() {
                    let planes = (0..pn).map(|j| grids[i * slots + (q + j) % slots]);
                    s += interp_planes::<T, W, F>(planes, &kw, self.bw, bx, by, ku, kv) * *f;
                }
                s
            },
        );
    }
}

/// The sum over planes j of `kw[j]` x `interp` on plane j (at most W planes): each row of
/// cells scaled by its v tap and the plane's w tap and summed as one vector (real and
/// imaginary parts side by side), then the u taps applied once.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // const-size taps indexed with the cells
fn interp_planes<'g, T: Real + 'g, const W: usize, const F: bool>(
    planes: impl Iterator<Item = &'g [Complex<T>]>,
    kw: &[f64; MAX_SUPPORT],
    ng: usize,
    fx: usize,
    fy: usize,
    ku: &[T; MAX_SUPPORT],
    kv: &[T; MAX_SUPPORT],
) -> Complex64 {
    let mut acc = [T::zero(); 2 * MAX_SUPPORT];
    for (g, &w) in planes.zip(kw) {
        let w = T::of(w);
        for ky in 0..W {
            let c = kv[ky] * w;
            let start = (fy + ky) * ng + fx;
            let cells: &[Complex<T>; W] = (&g[start..start + W]).try_into().unwrap();
            for kx in 0..W {
                acc[2 * kx] = cells[kx].re.madd::<F>(c, acc[2 * kx]);
                acc[2 * kx + 1] = cells[kx].im.madd::<F>(c, acc[2 * kx + 1]);
            }
        }
    }
    let (mut re, mut im) = (T::zero(), T::zero());
    for kx in 0..W {
        re = acc[2 * kx].madd::<F>(ku[kx], re);
        im = acc[2 * kx + 1].madd::<F>(ku[kx], im);
    }
    Complex64::new(re.f64(), im.f64())
}

#[inline(always)]
#[allow(clippy::needless_range_loop)] // const-size taps indexed with the cells
fn interp<T: Real, const W: usize, const F: bool>(
    g: &[Complex<T>],
    ng: usize,
    fx: usize,
    fy: usize,
    ku: &[T; MAX_SUPPORT],
    kv: &[T; MAX_SUPPORT],
) -> Complex64 {
    let (mut re, mut im) = (T::zero(), T::zero());
    for ky in 0..W {
        let start = (fy + ky) * ng + fx;
        let cells: &[Complex<T>; W] = (&g[start..start + W]).try_into().unwrap();
        let (mut rr, mut ri) = (T::zero(), T::zero());
        for kx in 0..W {
            rr = cells[kx].re.madd::<F>(ku[kx], rr);
            ri = cells[kx].im.madd::<F>(ku[kx], ri);
        }
        re = rr.madd::<F>(kv[ky], re);
        im = ri.madd::<F>(kv[ky], im);
    }
    Complex64::new(re.f64(), im.f64())
}

/// `interp` for a footprint past the grid's edge (the grid is periodic).
#[allow(clippy::needless_range_loop)] // const-size taps indexed with the cells
fn interp_wrapped<T: Real, const W: usize>(
    g: &[Complex<T>],
    ng: usize,
    fx: i64,
    fy: i64,
    ku: &[T; MAX_SUPPORT],
    kv: &[T; MAX_SUPPORT],
) -> Complex64 {
    let (mut re, mut im) = (0.0, 0.0);
    for ky in 0..W {
        let y = (fy + ky as i64).rem_euclid(ng as i64) as usize;
        for kx in 0..W {
            let x = (fx + kx as i64).rem_euclid(ng as i64) as usize;
            let c = g[y * ng + x];
            let k = (ku[kx] * kv[ky]).f64();
            re += c.re.f64() * k;
            im += c.im.f64() * k;
        }
    }
    Complex64::new(re, im)
}
