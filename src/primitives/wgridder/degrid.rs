//! Degridding: the image through the w-screens onto planes, read back with the ES kernel
//! (see the parent module for the method and contract).

use super::grid::Screens;
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
    let zero = Complex::new(T::zero(), T::zero());
    let mut gridbufs = vec![vec![zero; ng * ng]; nimg];
    // The transforms' scratch, reused by every plane and image.
    let mut fft_t = Vec::new();
    let off = (ng - n) / 2;
    let mut screens = Screens::new(plan, 1.0);
    for p in 0..plan.nplanes {
        if !reached[p] {
            screens.advance();
            continue;
        }
        for (gridbuf, by_row) in gridbufs.iter_mut().zip(&by_row) {
            gridbuf.par_iter_mut().for_each(|c| *c = zero);
            let scr = &screens;
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
                        let z = scr.at(n, x as usize, y) * v;
                        row[x as usize + off] = Complex::new(T::of(z.re), T::of(z.im));
                    }
                });
            centred_fft2_inverse_from_centre_with(gridbuf, ng, n, &mut fft_t);
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
            .for_each(|(r, o)| job.row(r, o));
        screens.advance();
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

impl<T: Real> ReadJob<'_, T> {
    fn row(&self, r: usize, out: &mut [Complex32]) {
        #[cfg(target_arch = "x86_64")]
        if !self.plan.portable && super::simd::avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA (checked at run time just above).
            unsafe { self.row_avx2(r, out) };
            return;
        }
        self.row_any::<false>(r, out);
    }

    /// `row` compiled for AVX2 with fused multiply-adds.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn row_avx2(&self, r: usize, out: &mut [Complex32]) {
        self.row_any::<true>(r, out);
    }

    #[inline(always)]
    fn row_any<const F: bool>(&self, r: usize, out: &mut [Complex32]) {
        match self.plan.support {
            4 => self.row_w::<4, F>(r, out),
            5 => self.row_w::<5, F>(r, out),
            6 => self.row_w::<6, F>(r, out),
            7 => self.row_w::<7, F>(r, out),
            8 => self.row_w::<8, F>(r, out),
            9 => self.row_w::<9, F>(r, out),
            10 => self.row_w::<10, F>(r, out),
            11 => self.row_w::<11, F>(r, out),
            12 => self.row_w::<12, F>(r, out),
            13 => self.row_w::<13, F>(r, out),
            14 => self.row_w::<14, F>(r, out),
            15 => self.row_w::<15, F>(r, out),
            16 => self.row_w::<16, F>(r, out),
            _ => self.row_w::<3, F>(r, out),
        }
    }

    #[inline(always)]
    fn row_w<const W: usize, const F: bool>(&self, r: usize, out: &mut [Complex32]) {
        let (plan, d, taps) = (self.plan, self.d, self.taps);
        let ng = plan.ng;
        let p = self.p;
        let mut runs = plan.runs[r]
            .iter()
            .filter(|run| run.q as usize <= p && run.q as usize + W > p)
            .peekable();
        if runs.peek().is_none() {
            return;
        }
        let g = RowGeom::new(d, plan, r);
        // Each image's weight on this row.
        let wrow: Vec<f64> = self
            .weights
            .iter()
            .map(|w| w.row.map_or(1.0, |x| x[r] as f64))
            .collect();
        let mut ku = [T::zero(); MAX_SUPPORT];
        let mut kv = [T::zero(); MAX_SUPPORT];
        for run in runs {
            let j = p - run.q as usize;
            let mut rot = Phasor::new(d, g.rate, 1.0, run.k0 as usize);
            for k in run.k0 as usize..run.k1 as usize {
                let z = rot.next(k);
                let lam = d.lam[k];
                let (u, v) = (g.um * lam, g.vm * lam);
                if !d.accept(u, v) {
                    continue;
                }
                let kw = plan.w_tap(taps, g.wa * lam, run.q, j);
                let (fx, fy) = taps.at2::<F>(
                    plan.centre - u * plan.scale,
                    plan.centre + v * plan.scale,
                    &mut ku,
                    &mut kv,
                );
                let inside = fx >= 0 && fy >= 0 && fx as usize + W <= ng && fy as usize + W <= ng;
                let at = d.order[k];
                let mut s = Complex64::new(0.0, 0.0);
                for ((grid, w), wr) in self.grids.iter().zip(self.weights).zip(&wrow) {
                    let si = if inside {
                        interp::<T, W, F>(grid, ng, fx as usize, fy as usize, &ku, &kv)
                    } else {
                        interp_wrapped::<T, W>(grid, ng, fx, fy, &ku, &kv)
                    };
                    s += si * (wr * w.chan.map_or(1.0, |c| c[at] as f64));
                }
                let mut val = s * kw;
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
