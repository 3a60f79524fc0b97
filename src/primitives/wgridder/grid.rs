//! Gridding: visibilities spread with the ES kernel onto w-planes, each plane transformed
//! and its w-screen applied (see the parent module for the method and contract).

use super::workspace::pass_buffers;
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

/// The wanted images from one pass; its buffers from and back to `ws` where given (the
/// images go to the caller, who may give them back).
pub(super) fn grid<T: Real>(plan: &Plan, d: &Data, want: &Want, ws: Option<&Workspace>) -> Made {
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
    let nout = outs.len();
    let pc = planes_at_once(plan, nout, bw * bw * std::mem::size_of::<Complex<T>>());
    // Where the budget holds a sample's `support` planes (per image), the planes are a ring:
    // the runs whose first plane is q are spread into planes q..q + W (slots p mod W), after
    // which plane q is complete, transformed, and its slot reused for plane q + W; each
    // sample is prepared once. Otherwise planes are spread pc at a time, each sample
    // prepared once per group of planes it reaches.
    let ring = !plan.flat && pc >= support;
    let slots = if ring { support.min(plan.nplanes) } else { pc };
    let (mut planes, mut fftbuf, mut imgs) =
        pass_buffers(ws, [nout * slots, bw * bw], ng * ng, [nout, n * n], zero);
    let mut screens = Screens::new(plan, -1.0);
    // Planes some sample reaches (the others stay zero: not transformed).
    let mut touched = vec![false; plan.nplanes];
    for (q, runs) in by_q.iter().enumerate() {
        if !runs.is_empty() {
            touched[q..(q + support).min(plan.nplanes)].fill(true);
        }
    }
    // Two strips per thread balance them (equal numbers of samples); more cost more, as a
    // footprint straddling strips is prepared in each (benches/README.md, session 24).
    let nstrips = 2 * rayon::current_num_threads().max(1);
    let base = StripJob {
        plan,
        d,
        taps: &taps,
        groups: &[],
        outs: &outs,
        p0: 0,
        pn: 0,
        x0: bx.start,
        width: bw,
    };
    let add = AddPlane {
        plan,
        bx: bx.clone(),
        keep: ws.is_some(),
    };
    if nout == 0 {
        // Nothing to make.
    } else if ring {
        for p in 0..plan.nplanes {
            if !by_q[p].is_empty() {
                let pn = support.min(plan.nplanes - p);
                // Planes p..p + pn of each image, in that order.
                let mut slot: Vec<Option<&mut Vec<Complex<T>>>> =
                    planes.iter_mut().map(Some).collect();
                let rows: Vec<&mut Vec<Complex<T>>> = (0..nout)
                    .flat_map(|k| (0..pn).map(move |i| k * slots + (p + i) % slots))
                    .map(|ix| slot[ix].take().expect("distinct slots"))
                    .collect();
                let groups = [(p, by_q[p].as_slice())];
                let job = StripJob {
                    groups: &groups,
                    p0: p,
                    pn,
                    ..base
                };
                spread_strips(&job, rows, &bx, nstrips);
            }
            // Plane p is complete; its slot is reused unless no later group reaches it.
            let release = p + slots >= plan.nplanes;
            for (k, img) in imgs.iter_mut().enumerate() {
                let plane = &mut planes[k * slots + p % slots];
                add.plane(plane, touched[p], release, img, &mut fftbuf, &screens);
            }
            screens.advance();
        }
    } else {
        for p0 in (0..plan.nplanes).step_by(pc) {
            let pn = pc.min(plan.nplanes - p0);
            // Runs whose planes q..q + W reach p0..p0 + pn.
            let groups: Vec<(usize, &[(u32, Run)])> = (p0.saturating_sub(support - 1)..p0 + pn)
                .filter(|&q| !by_q[q].is_empty())
                .map(|q| (q, by_q[q].as_slice()))
                .collect();
            if !groups.is_empty() {
                let rows: Vec<&mut Vec<Complex<T>>> = planes.iter_mut().collect();
                let job = StripJob {
                    groups: &groups,
                    p0,
                    pn,
                    ..base
                };
                spread_strips(&job, rows, &bx, nstrips);
            }
            let last = p0 + pn == plan.nplanes;
            for i in 0..pn {
                for (k, img) in imgs.iter_mut().enumerate() {
                    let plane = &mut planes[k * pc + i];
                    add.plane(plane, touched[p0 + i], last, img, &mut fftbuf, &screens);
                }
                screens.advance();
            }
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
    if let Some(w) = ws {
        planes.into_iter().for_each(|p| w.give(p));
        w.give(fftbuf);
    }
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

/// Spreads a job's samples into `planes` (out-major, the job's pn planes per image, each
/// the box `bx` of rows and columns), in parallel over strips of rows (`strip_bounds`):
/// each strip owns its rows of every plane.
fn spread_strips<T: Real>(
    job: &StripJob<T>,
    planes: Vec<&mut Vec<Complex<T>>>,
    bx: &std::ops::Range<usize>,
    nstrips: usize,
) {
    let bw = bx.len();
    let bounds = strip_bounds(job, bx, nstrips);
    let mut per_strip: Vec<Vec<&mut [Complex<T>]>> = (1..bounds.len())
        .map(|_| Vec::with_capacity(planes.len()))
        .collect();
    for plane in planes {
        let mut rest: &mut [Complex<T>] = plane;
        for (si, w) in bounds.windows(2).enumerate() {
            let (strip, tail) = rest.split_at_mut((w[1] - w[0]) * bw);
            per_strip[si].push(strip);
            rest = tail;
        }
    }
    per_strip
        .into_par_iter()
        .enumerate()
        .with_max_len(1)
        .for_each(|(si, mut rows)| job.run(bounds[si], bounds[si + 1], &mut rows));
}

/// Strip boundaries (padded grid rows, from bx.start to bx.end) holding about equal
/// numbers of the job's samples (each run counted at its middle channel's v), at most
/// `nstrips` strips of at least the kernel's support in rows: DSA-110's samples crowd the
/// uv plane's centre, so equal heights would leave one thread the core's strip.
fn strip_bounds<T>(job: &StripJob<T>, bx: &std::ops::Range<usize>, nstrips: usize) -> Vec<usize> {
    let (plan, d) = (job.plan, job.d);
    let bw = bx.len();
    let cv = plan.centre + plan.margin as f64;
    let mut hist = vec![0u64; bw];
    for &(_, runs) in job.groups {
        for &(r, run) in runs {
            let g = RowGeom::new(d, plan, r as usize);
            let lam = d.lam[(run.k0 as usize + run.k1 as usize) / 2];
            let y = (cv + g.vm * lam * plan.scale).round() as i64 - bx.start as i64;
            hist[y.clamp(0, bw as i64 - 1) as usize] += (run.k1 - run.k0) as u64;
        }
    }
    let total: u64 = hist.iter().sum();
    let per = total.div_ceil(nstrips.max(1) as u64).max(1);
    let min_h = plan.support.max(8);
    let mut bounds = vec![bx.start];
    let mut acc = 0;
    for (i, &h) in hist.iter().enumerate() {
        acc += h;
        let y = bx.start + i + 1;
        if acc >= per && y - bounds[bounds.len() - 1] >= min_h && bx.end - y >= min_h {
            bounds.push(y);
            acc = 0;
        }
    }
    bounds.push(bx.end);
    bounds
}

/// Adds a spread plane's transform, times its w-screen, to an image.
struct AddPlane<'a> {
    plan: &'a Plan,
    bx: std::ops::Range<usize>,
    /// Planes are kept for a workspace, not released.
    keep: bool,
}

impl AddPlane<'_> {
    /// Folds `plane` onto the grid, transforms it and adds it times the current screen to
    /// `img`; the plane is left zero, or if `release` (not spread again) freed, or with
    /// `keep` left as it is (a workspace's, cleared when next taken). Untouched planes (all
    /// zero) add nothing and are skipped.
    fn plane<T: Real>(
        &self,
        plane: &mut Vec<Complex<T>>,
        touched: bool,
        release: bool,
        img: &mut [f64],
        fftbuf: &mut [Complex<T>],
        screens: &Screens,
    ) {
        let (n, ng) = (self.plan.n, self.plan.ng);
        let zero = Complex::new(T::zero(), T::zero());
        if !touched {
            if release && !self.keep {
                *plane = Vec::new();
            }
            return;
        }
        fold(plane, &self.bx, fftbuf, ng, self.plan.margin);
        if release {
            // Not spread again: its memory goes back before the transform.
            if !self.keep {
                *plane = Vec::new();
            }
        } else {
            plane.par_iter_mut().for_each(|c| *c = zero);
        }
        let out = ImgPtr(img.as_mut_ptr());
        centred_fft2_forward_crop_each(fftbuf, ng, n, |x0, k, block| {
            let out = &out;
            for y in 0..n {
                for j in 0..k {
                    let (g, x) = (block[j * n + y], x0 + j);
                    let z = screens.at(n, x, y);
                    // SAFETY: `img` has n x n pixels and the crop's blocks are disjoint
                    // column ranges, so no pixel is written by two calls.
                    unsafe { *out.0.add(y * n + x) += g.re.f64() * z.re - g.im.f64() * z.im };
                }
            }
        });
    }
}

/// How many w-planes per image `Options::plane_budget_bytes` holds beyond the first (at
/// least one, at most all): `support` or more make the ring (each sample prepared once);
/// fewer are spread a group at a time. `plane_bytes`: one plane's size.
pub(super) fn planes_at_once(plan: &Plan, nout: usize, plane_bytes: usize) -> usize {
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
#[derive(Clone, Copy)]
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
        let mut b = Batch::<T>::default();
        let mut kk = [[T::zero(); 2 * MAX_SUPPORT]; 4];
        let mut first = [(0i64, 0i64); 4];
        let voff = taps.v_offset();
        // Padded grid coordinates: cell index + margin.
        let (cu, cv) = (plan.centre + m, plan.centre + m);
        let (ya, yb) = (y0 as f64, y1 as f64);
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
                // The run's channels whose footprints reach the strip (v is linear in
                // frequency: a prefix or suffix fails each bound) and that are accepted.
                let gv_of = |k: usize| cv + g.vm * d.lam[k] * plan.scale;
                let (k0, k1) = (run.k0 as usize, run.k1 as usize);
                let below = |k: usize| gv_of(k) + half <= ya;
                let above = |k: usize| gv_of(k) - half >= yb;
                let (k0, k1) = if g.vm >= 0.0 {
                    let k0 = first_false(k0, k1, below);
                    (k0, first_false(k0, k1, |k| !above(k)))
                } else {
                    let k0 = first_false(k0, k1, above);
                    (k0, first_false(k0, k1, |k| !below(k)))
                };
                let (ka, kb) = d.accepted(g.um, g.vm, k0, k1);
                if ka >= kb {
                    continue;
                }
                // The samples, with their values; then their w taps, vectorised across
                // the samples.
                b.clear();
                let mut rot = Phasor::new(d, g.rate, -1.0, ka);
                let mut rot_psf = Phasor::new(d, g.wa * plan.ns, -1.0, ka);
                for k in ka..kb {
                    let z = rot.next(k);
                    let zp = if with_psf {
                        rot_psf.next(k)
                    } else {
                        Complex64::new(1.0, 0.0)
                    };
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
                    let lam = d.lam[k];
                    let mut vz = sv * z;
                    if g.flip {
                        vz = vz.conj();
                    }
                    b.g.push((cu - g.um * lam * plan.scale, gv_of(k)));
                    b.vis.push(Complex::new(T::of(vz.re), T::of(vz.im)));
                    if with_psf {
                        let zw = zp * sw;
                        b.psf.push(Complex::new(T::of(zw.re), T::of(zw.im)));
                    }
                    b.chan.push(c as u32);
                    if !plan.flat {
                        b.s.push(T::of(taps.s_of(plan.wcoord(g.wa * lam), run.q)));
                    }
                }
                let ns = b.g.len();
                if ns == 0 {
                    continue;
                }
                for i in ia..ib {
                    if plan.flat {
                        b.kw.resize(b.kw.len() + ns, T::one());
                    } else {
                        taps.column::<F>(&b.s, self.p0 + i - q, &mut b.kw);
                    }
                }
                // Four samples' u, v taps at a time, then their spreading.
                for s0 in (0..ns).step_by(4) {
                    let m4 = (ns - s0).min(4);
                    let mut g4 = [b.g[s0]; 4];
                    g4[..m4].copy_from_slice(&b.g[s0..s0 + m4]);
                    taps.at2_x4::<F>(&g4, &mut first, &mut kk);
                    for (j, (&(fx, fy), kk)) in first.iter().zip(&kk).enumerate().take(m4) {
                        let si = s0 + j;
                        // The planes' columns start at x0 (the box holds every footprint).
                        let fx = fx as usize - self.x0;
                        let ky0 = (y0 as i64 - fy).max(0);
                        let ky1 = (y1 as i64 - fy).min(W as i64);
                        if ky1 <= ky0 {
                            continue;
                        }
                        let (ky0, ky1) = (ky0 as usize, ky1 as usize);
                        let start = (fy + ky0 as i64 - y0 as i64) as usize * self.width + fx;
                        let kv = &kk[voff + ky0..voff + ky1];
                        for (k, o) in self.outs.iter().enumerate() {
                            let fac = o.factor.map_or(T::one(), |x| T::of(x[b.chan[si] as usize]));
                            let val = if o.psf { b.psf[si] } else { b.vis[si] };
                            let mut prof = [Complex::new(T::zero(), T::zero()); W];
                            for (p, &t) in prof.iter_mut().zip(&kk[..W]) {
                                *p = Complex::new(val.re * t, val.im * t);
                            }
                            for i in ia..ib {
                                let f = fac * b.kw[(i - ia) * ns + si];
                                spread::<T, W, F>(
                                    rows[k * pc + i],
                                    self.width,
                                    start,
                                    kv,
                                    &prof,
                                    f,
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One run's samples reaching a strip (structure of arrays): their grid coordinates
/// (u, v), values for the dirty image (the weighted sum of the polarizations, rephased and
/// flipped) and for the PSF (where made), channels, and w taps.
#[derive(Default)]
struct Batch<T> {
    g: Vec<(f64, f64)>,
    vis: Vec<Complex<T>>,
    psf: Vec<Complex<T>>,
    chan: Vec<u32>,
    /// The w kernel's argument per sample (`Taps::s_of`), and its taps, plane by plane.
    s: Vec<T>,
    kw: Vec<T>,
}

impl<T: Real> Batch<T> {
    fn clear(&mut self) {
        self.g.clear();
        self.vis.clear();
        self.psf.clear();
        self.chan.clear();
        self.s.clear();
        self.kw.clear();
    }
}

/// Adds prof[x] kv[y] f to the cells of a sample's footprint rows kv.len() x W, the first
/// at `start` of the strip (rows `width` long).
#[inline(always)]
fn spread<T: Real, const W: usize, const F: bool>(
    strip: &mut [Complex<T>],
    width: usize,
    start: usize,
    kv: &[T],
    prof: &[Complex<T>; W],
    f: T,
) {
    if kv.is_empty() {
        return;
    }
    // One bounds check for the footprint; its rows are then addressed directly.
    let cells = &mut strip[start..start + (kv.len() - 1) * width + W];
    let p = cells.as_mut_ptr();
    for (ky, &k) in kv.iter().enumerate() {
        let k = k * f;
        // SAFETY: row ky's W cells lie in `cells` (its length covers the last row's).
        let row = unsafe { &mut *(p.add(ky * width) as *mut [Complex<T>; W]) };
        for (c, pr) in row.iter_mut().zip(prof) {
            c.re = pr.re.madd::<F>(k, c.re);
            c.im = pr.im.madd::<F>(k, c.im);
        }
    }
}
