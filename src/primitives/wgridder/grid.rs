//! Gridding: visibilities spread with the ES kernel onto w-planes, each plane transformed
//! and its w-screen applied (see the parent module for the method and contract).

use super::*;

/// Screens exp(sign 2 pi i w_p (n - 1 - ns)) for planes p = 0, 1, ... on one quadrant of
/// the image ((|x - N/2|, |y - N/2|), n - 1 is symmetric), advanced plane by plane.
/// Without the w-term (`Plan::flat`) the screen is 1 and nothing is held.
pub(super) struct Screens {
    h: usize,
    cur: Vec<Complex64>,
    step: Vec<Complex64>,
}

impl Screens {
    pub(super) fn new(plan: &Plan, sign: f64) -> Self {
        let h = plan.n / 2 + 1;
        if plan.flat {
            return Screens {
                h,
                cur: Vec::new(),
                step: Vec::new(),
            };
        }
        let c = plan.n / 2;
        let x: Vec<f64> = (0..h * h)
            .map(|i| nm1(plan.n, plan.cell, c + i % h, c + i / h) - plan.ns)
            .collect();
        Screens {
            h,
            cur: x
                .par_iter()
                .map(|&x| Complex64::from_polar(1.0, sign * TAU * plan.w0 * x))
                .collect(),
            step: x
                .par_iter()
                .map(|&x| Complex64::from_polar(1.0, sign * TAU * plan.dw * x))
                .collect(),
        }
    }

    pub(super) fn advance(&mut self) {
        self.cur
            .par_iter_mut()
            .zip(self.step.par_iter())
            .for_each(|(c, s)| *c *= s);
    }

    /// The current screen at pixel (x, y) of the N-pixel image.
    #[inline(always)]
    pub(super) fn at(&self, n: usize, x: usize, y: usize) -> Complex64 {
        if self.cur.is_empty() {
            return Complex64::new(1.0, 0.0);
        }
        let c = n / 2;
        self.cur[y.abs_diff(c) * self.h + x.abs_diff(c)]
    }
}

/// One image a gridding pass makes: the visibilities (dirty) or their weights (PSF), each
/// sample's contribution multiplied by its channel's factor.
#[derive(Clone, Copy)]
struct Out<'a> {
    psf: bool,
    factor: Option<&'a [f64]>,
}

/// A pass's images: the dirty image, the PSF (each if wanted) and the `more_dirty` images.
pub(super) type Made = (Option<Vec<f64>>, Option<Vec<f64>>, Vec<Vec<f64>>);

/// The wanted images from one pass.
pub(super) fn grid<T: Real>(plan: &Plan, d: &Data, want: &Want) -> Made {
    let (n, ng, support) = (plan.n, plan.ng, plan.support);
    // The planes hold only the padded grid's box that the samples' footprints reach (rows
    // and columns `bx`): the rest of the grid stays zero.
    let bx = plan.footprint_box();
    let bw = bx.len();
    let taps = Taps::<T>::new(&plan.kernel);
    // Runs by first plane.
    let mut by_q: Vec<Vec<(u32, Run)>> = vec![Vec::new(); plan.nplanes];
    for (r, runs) in plan.runs.iter().enumerate() {
        for run in runs {
            by_q[run.q as usize].push((r as u32, *run));
        }
    }
    let mut outs: Vec<Out> = Vec::new();
    if want.dirty {
        outs.push(Out {
            psf: false,
            factor: want.dirty_chan_factor,
        });
    }
    if want.psf {
        outs.push(Out {
            psf: true,
            factor: want.psf_chan_factor,
        });
    }
    outs.extend(want.more_dirty.iter().map(|&f| Out {
        psf: false,
        factor: Some(f),
    }));
    let zero = Complex::new(T::zero(), T::zero());
    // Planes spread together (`planes_at_once`): outs.len() x pc planes, out-major.
    let pc = planes_at_once(
        plan,
        outs.len(),
        bw * bw * std::mem::size_of::<Complex<T>>(),
    );
    let mut planes: Vec<Vec<Complex<T>>> =
        (0..outs.len() * pc).map(|_| vec![zero; bw * bw]).collect();
    let mut fftbuf = vec![zero; ng * ng];
    let mut imgs: Vec<Vec<f64>> = outs.iter().map(|_| vec![0.0f64; n * n]).collect();
    let mut screens = Screens::new(plan, -1.0);
    let threads = rayon::current_num_threads().max(1);
    let sh = (bw / (8 * threads)).max(support).max(16);
    for p0 in (0..plan.nplanes).step_by(pc) {
        let pn = pc.min(plan.nplanes - p0);
        // Runs whose planes q..q + W reach p0..p0 + pn.
        let groups: Vec<(usize, &[(u32, Run)])> = (p0.saturating_sub(support - 1)..p0 + pn)
            .filter(|&q| !by_q[q].is_empty())
            .map(|q| (q, by_q[q].as_slice()))
            .collect();
        if outs.is_empty() || groups.is_empty() {
            (0..pn).for_each(|_| screens.advance());
            continue;
        }
        let strips = StripJob {
            plan,
            d,
            taps: &taps,
            groups: &groups,
            outs: &outs,
            p0,
            pn,
            x0: bx.start,
            width: bw,
        };
        // Strip-parallel spreading; each strip owns rows [y0, y0 + sh) of every plane.
        let nstrips = bw.div_ceil(sh);
        let mut per_strip: Vec<Vec<&mut [Complex<T>]>> = (0..nstrips)
            .map(|_| Vec::with_capacity(planes.len()))
            .collect();
        for plane in planes.iter_mut() {
            for (si, chunk) in plane.chunks_mut(sh * bw).enumerate() {
                per_strip[si].push(chunk);
            }
        }
        per_strip
            .into_par_iter()
            .enumerate()
            .with_max_len(1)
            .for_each(|(si, mut rows)| {
                let y0 = bx.start + si * sh;
                strips.run(y0, (y0 + sh).min(bx.end), &mut rows);
            });
        let last = p0 + pn == plan.nplanes;
        for i in 0..pn {
            for (k, img) in imgs.iter_mut().enumerate() {
                let plane = &mut planes[k * pc + i];
                fold(plane, &bx, &mut fftbuf, ng, plan.margin);
                if last {
                    // Not spread again: its memory goes back before the transform.
                    *plane = Vec::new();
                } else {
                    plane.par_iter_mut().for_each(|c| *c = zero);
                }
                let scr = &screens;
                let out = ImgPtr(img.as_mut_ptr());
                centred_fft2_forward_crop_each(&mut fftbuf, ng, n, |x0, k, block| {
                    let out = &out;
                    for y in 0..n {
                        for j in 0..k {
                            let (g, x) = (block[j * n + y], x0 + j);
                            let z = scr.at(n, x, y);
                            // SAFETY: `img` has n x n pixels and the crop's blocks are
                            // disjoint column ranges, so no pixel is written by two calls.
                            unsafe {
                                *out.0.add(y * n + x) += g.re.f64() * z.re - g.im.f64() * z.im
                            };
                        }
                    }
                });
            }
            screens.advance();
        }
    }
    // Divide out the kernel's transforms in u, v and w.
    let cx = plan.axis_correction();
    let wc = plan.w_correction();
    let finish = |img: Vec<f64>| -> Vec<f64> {
        let mut img = img;
        img.par_chunks_mut(n).enumerate().for_each(|(y, row)| {
            for (x, px) in row.iter_mut().enumerate() {
                *px *= cx[x] * cx[y] * wc(nm1(n, plan.cell, x, y));
            }
        });
        img
    };
    let mut imgs = imgs.into_iter().map(finish);
    let dirty = if want.dirty { imgs.next() } else { None };
    let psf = if want.psf { imgs.next() } else { None };
    (dirty, psf, imgs.collect())
}

/// An image's pixels for the crop's parallel column blocks (each writes its own columns).
struct ImgPtr(*mut f64);
// SAFETY: shared only by `centred_fft2_forward_crop_each`'s calls, which write disjoint
// pixels.
unsafe impl Sync for ImgPtr {}

/// How many w-planes are spread together: up to all of them, within
/// `Options::plane_budget_bytes` beyond the first (at least one). A sample reaches `support`
/// planes; its geometry, value and u, v taps are computed once per group of planes, so with
/// every plane in one group each sample is prepared exactly once.
/// `plane_bytes`: one plane's size.
fn planes_at_once(plan: &Plan, nout: usize, plane_bytes: usize) -> usize {
    let per = nout.max(1) * plane_bytes;
    (1 + plan.plane_budget / per.max(1)).clamp(1, plan.nplanes)
}

/// Sums a plane (the padded grid's rows and columns `bx`, row-major) onto the periodic
/// grid's cells, footprints past an edge wrapping: padded cell (y, x) is grid cell
/// ((y - m) mod ng, (x - m) mod ng). Only the grid rows the box maps to are written (zeroed
/// first); the others are left as they are (zero: the caller's transform skips zero rows
/// and leaves them so).
fn fold<T: Real>(
    plane: &[Complex<T>],
    bx: &std::ops::Range<usize>,
    out: &mut [Complex<T>],
    ng: usize,
    m: usize,
) {
    let bw = bx.len();
    let zero = Complex::new(T::zero(), T::zero());
    let add = |a: Complex<T>, b: Complex<T>| Complex::new(a.re + b.re, a.im + b.im);
    // Padded index -> grid index.
    let wrap = |p: usize| (p + ng - m) % ng;
    // The box's columns inside the unpadded grid (copied as one slice) and the rest.
    let (ca, cb) = (bx.start.max(m), bx.end.min(m + ng).max(bx.start.max(m)));
    out.par_chunks_mut(ng).enumerate().for_each(|(gy, row)| {
        // Padded rows landing on grid row gy.
        let srcs = [gy + m, gy + m + ng, (gy + m).wrapping_sub(ng)];
        let mut first = true;
        for &y in srcs.iter().filter(|&&y| bx.contains(&y)) {
            if first {
                row.fill(zero);
                first = false;
            }
            let src = &plane[(y - bx.start) * bw..(y - bx.start + 1) * bw];
            let mid = &src[ca - bx.start..cb - bx.start];
            for (o, v) in row[ca - m..cb - m].iter_mut().zip(mid) {
                *o = add(*o, *v);
            }
            for x in (bx.start..ca).chain(cb..bx.end) {
                let g = wrap(x);
                row[g] = add(row[g], src[x - bx.start]);
            }
        }
    });
}

/// One plane's spreading, shared by the strips.
struct StripJob<'a, T> {
    plan: &'a Plan,
    d: &'a Data<'a>,
    taps: &'a Taps<T>,
    /// (first plane q, the runs whose first plane is q).
    groups: &'a [(usize, &'a [(u32, Run)])],
    outs: &'a [Out<'a>],
    /// The planes spread: p0..p0 + pn (`rows[k * pc + i]` holds plane p0 + i of output k,
    /// pc = rows.len() / outs.len()).
    p0: usize,
    pn: usize,
    /// The planes' first padded column and their width (`footprint_box`).
    x0: usize,
    width: usize,
}

impl<T: Real> StripJob<'_, T> {
    /// Spreads every sample reaching padded rows y0..y1 into them (`rows[k]` holds those
    /// rows of output k's plane).
    fn run(&self, y0: usize, y1: usize, rows: &mut [&mut [Complex<T>]]) {
        #[cfg(target_arch = "x86_64")]
        if !self.plan.portable && super::simd::avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA (checked at run time just above).
            unsafe { self.run_avx2(y0, y1, rows) };
            return;
        }
        self.run_any::<false>(y0, y1, rows);
    }

    /// `run` compiled for AVX2 with fused multiply-adds.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn run_avx2(&self, y0: usize, y1: usize, rows: &mut [&mut [Complex<T>]]) {
        self.run_any::<true>(y0, y1, rows);
    }

    #[inline(always)]
    fn run_any<const F: bool>(&self, y0: usize, y1: usize, rows: &mut [&mut [Complex<T>]]) {
        match self.plan.support {
            4 => self.run_w::<4, F>(y0, y1, rows),
            5 => self.run_w::<5, F>(y0, y1, rows),
            6 => self.run_w::<6, F>(y0, y1, rows),
            7 => self.run_w::<7, F>(y0, y1, rows),
            8 => self.run_w::<8, F>(y0, y1, rows),
            9 => self.run_w::<9, F>(y0, y1, rows),
            10 => self.run_w::<10, F>(y0, y1, rows),
            11 => self.run_w::<11, F>(y0, y1, rows),
            12 => self.run_w::<12, F>(y0, y1, rows),
            13 => self.run_w::<13, F>(y0, y1, rows),
            14 => self.run_w::<14, F>(y0, y1, rows),
            15 => self.run_w::<15, F>(y0, y1, rows),
            16 => self.run_w::<16, F>(y0, y1, rows),
            _ => self.run_w::<3, F>(y0, y1, rows),
        }
    }

    #[inline(always)]
    fn run_w<const W: usize, const F: bool>(
        &self,
        y0: usize,
        y1: usize,
        rows: &mut [&mut [Complex<T>]],
    ) {
        let (plan, d, taps) = (self.plan, self.d, self.taps);
        let m = plan.margin as f64;
        let half = W as f64 * 0.5;
        let npol = d.npol;
        let nchan = d.freqs.len();
        let (vis, wt) = (d.vis.unwrap_or(&[]), d.weight.unwrap_or(&[]));
        let with_psf = self.outs.iter().any(|o| o.psf);
        let mut ku = [T::zero(); MAX_SUPPORT];
        let mut kv = [T::zero(); MAX_SUPPORT];
        let mut batch = Batch::<T>::default();
        // Padded grid coordinates: cell index + margin.
        let (cu, cv) = (plan.centre + m, plan.centre + m);
        let (lo, hi) = (y0 as f64 - half, y1 as f64 + half);
        let pc = rows.len() / self.outs.len().max(1);
        for &(q, runs) in self.groups {
            // The chunk's planes this group reaches: i in ia..ib, w tap j = p0 + i - q.
            let ia = q.saturating_sub(self.p0);
            let ib = (q + W).saturating_sub(self.p0).min(self.pn);
            if ia >= ib {
                continue;
            }
            for &(r, run) in runs {
                let r = r as usize;
                let g = RowGeom::new(d, plan, r);
                // The run's v extent (linear in frequency) against the strip.
                let (fa, fb) = (d.fs[run.k0 as usize], d.fs[run.k1 as usize - 1]);
                let (va, vb) = (
                    cv + g.vm * fa / C_M_S * plan.scale,
                    cv + g.vm * fb / C_M_S * plan.scale,
                );
                if va.max(vb) < lo || va.min(vb) >= hi {
                    continue;
                }
                // The run's samples reaching the strip, with their values; then their w
                // taps, vectorised across the samples.
                batch.clear();
                let mut rot = Phasor::new(d, g.rate, -1.0, run.k0 as usize);
                let mut rot_psf = Phasor::new(d, g.wa * plan.ns, -1.0, run.k0 as usize);
                for k in run.k0 as usize..run.k1 as usize {
                    let z = rot.next(k);
                    let zp = if with_psf {
                        rot_psf.next(k)
                    } else {
                        Complex64::new(1.0, 0.0)
                    };
                    let lam = d.fs[k] / C_M_S;
                    let (u, v) = (g.um * lam, g.vm * lam);
                    let gv = cv + v * plan.scale;
                    if gv + half <= y0 as f64 || gv - half >= y1 as f64 {
                        continue;
                    }
                    if !d.accept(u, v) {
                        continue;
                    }
                    let c = d.order[k];
                    let base = (r * nchan + c) * npol;
                    let (mut sv, mut sw) = (Complex64::new(0.0, 0.0), 0.0);
                    for p in 0..npol {
                        let w = wt[base + p];
                        if w > 0.0 {
                            let x = vis[base + p];
                            sv += Complex64::new(x.re as f64, x.im as f64) * w as f64;
                            sw += w as f64;
                        }
                    }
                    if sw == 0.0 {
                        continue;
                    }
                    let mut vz = sv * z;
                    if g.flip {
                        vz = vz.conj();
                    }
                    let zw = zp * sw;
                    batch.push(Sample {
                        gu: cu - u * plan.scale,
                        gv,
                        vis: Complex::new(T::of(vz.re), T::of(vz.im)),
                        psf: Complex::new(T::of(zw.re), T::of(zw.im)),
                        chan: c as u32,
                    });
                    if !plan.flat {
                        batch
                            .s
                            .push(T::of(taps.s_of(plan.wcoord(g.wa * lam), run.q)));
                    }
                }
                if batch.samples.is_empty() {
                    continue;
                }
                let ns = batch.samples.len();
                batch.kw.clear();
                for i in ia..ib {
                    if plan.flat {
                        batch.kw.resize(batch.kw.len() + ns, T::one());
                    } else {
                        taps.column::<F>(&batch.s, self.p0 + i - q, &mut batch.kw);
                    }
                }
                for (si, smp) in batch.samples.iter().enumerate() {
                    let (fx, fy) = taps.at2::<F>(smp.gu, smp.gv, &mut ku, &mut kv);
                    // The planes' columns start at x0 (the box holds every footprint).
                    let fx = fx as usize - self.x0;
                    let ky0 = (y0 as i64 - fy).max(0);
                    let ky1 = (y1 as i64 - fy).min(W as i64);
                    if ky1 <= ky0 {
                        continue;
                    }
                    let (ky0, ky1) = (ky0 as usize, ky1 as usize);
                    let row0 = (fy - y0 as i64) as isize;
                    for (k, o) in self.outs.iter().enumerate() {
                        let fac = o.factor.map_or(T::one(), |x| T::of(x[smp.chan as usize]));
                        let val = if o.psf { smp.psf } else { smp.vis };
                        for i in ia..ib {
                            let f = fac * batch.kw[(i - ia) * ns + si];
                            spread::<T, W, F>(
                                rows[k * pc + i],
                                self.width,
                                row0,
                                ky0,
                                ky1,
                                fx,
                                &ku,
                                &kv,
                                Complex::new(val.re * f, val.im * f),
                            );
                        }
                    }
                }
            }
        }
    }
}

/// A sample reaching a strip: its grid coordinates, its value for the dirty image (the
/// weighted sum of its polarizations, rephased and flipped) and for the PSF, its channel
/// and channel.
#[derive(Clone, Copy)]
struct Sample<T> {
    gu: f64,
    gv: f64,
    vis: Complex<T>,
    psf: Complex<T>,
    chan: u32,
}

/// One run's samples reaching a strip, and their w taps.
#[derive(Default)]
struct Batch<T> {
    samples: Vec<Sample<T>>,
    /// The w kernel's argument per sample (`Taps::s_of`), and its tap.
    s: Vec<T>,
    kw: Vec<T>,
}

impl<T: Real> Batch<T> {
    fn clear(&mut self) {
        self.samples.clear();
        self.s.clear();
        self.kw.clear();
    }

    fn push(&mut self, s: Sample<T>) {
        self.samples.push(s);
    }
}

/// Adds val ku[x] kv[y] to rows ky0..ky1 of a sample's W x W footprint starting at strip
/// row `row0` (may be negative: rows above the strip are not in ky0..ky1) and column fx of
/// the strip's rows, each `width` long.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
#[allow(clippy::needless_range_loop)] // const-size taps indexed with the cells
fn spread<T: Real, const W: usize, const F: bool>(
    strip: &mut [Complex<T>],
    width: usize,
    row0: isize,
    ky0: usize,
    ky1: usize,
    fx: usize,
    ku: &[T; MAX_SUPPORT],
    kv: &[T; MAX_SUPPORT],
    val: Complex<T>,
) {
    // The x profile times the value, then one scaled row per ky.
    let mut prof = [Complex::new(T::zero(), T::zero()); W];
    for kx in 0..W {
        prof[kx] = Complex::new(val.re * ku[kx], val.im * ku[kx]);
    }
    for ky in ky0..ky1 {
        let k = kv[ky];
        let start = (row0 + ky as isize) as usize * width + fx;
        let cells: &mut [Complex<T>; W] = (&mut strip[start..start + W]).try_into().unwrap();
        for kx in 0..W {
            cells[kx].re = prof[kx].re.madd::<F>(k, cells[kx].re);
            cells[kx].im = prof[kx].im.madd::<F>(k, cells[kx].im);
        }
    }
}
