//! CPU twins of `kernels/wstack.cu` (the w-stacked gridder and degridder around grid.cu and
//! degrid.cu), the geometry and row packing the device code shares with them, and the twins
//! composed into whole w-stacks (`wstack`, `unstack`) as the device runs them. The
//! compositions are checked against the CPU gridder and degridder (themselves checked
//! against a direct Fourier transform); where a GPU exists the device is checked against
//! them too.

#[cfg(test)]
use super::twins;
#[cfg(test)]
use crate::compute::degridder::WUnstack;
#[cfg(test)]
use crate::compute::gridder::WStack;
use crate::compute::gridder::{GridSpec, VisBlock};
#[cfg(test)]
use crate::primitives::fft::fft2;
use crate::primitives::C_M_S;
use num_complex::{Complex32, Complex64};
use rayon::prelude::*;

/// The gridding tile (grid.cu's TILE).
pub const TILE: usize = 32;
/// wstack.cu's CONTIMG_REJECT: a w no plane reaches.
pub const REJECT: f64 = 1e300;

/// The grid geometry the preparation kernels take.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    pub ng: usize,
    pub n: usize,
    pub cell: f64,
    /// Grid cells per wavelength.
    pub scale: f64,
    pub centre: f64,
    pub uvmin2: f64,
    pub uvmax2: f64,
    /// |u scale| and |v scale| must stay below this (the kernel footprint inside the grid).
    pub limit: f64,
    pub support: usize,
    pub beta: f64,
    pub tiles_x: usize,
}

impl Geometry {
    pub fn new(spec: &GridSpec) -> Self {
        let ng = spec.n_grid;
        Geometry {
            ng,
            n: spec.n_image,
            cell: spec.cell_rad,
            scale: ng as f64 * spec.cell_rad,
            centre: (ng / 2) as f64,
            uvmin2: spec.uv_min_lambda * spec.uv_min_lambda,
            uvmax2: if spec.uv_max_lambda > 0.0 {
                spec.uv_max_lambda * spec.uv_max_lambda
            } else {
                0.0
            },
            limit: spec.uv_edge_pixfrac() * ng as f64,
            support: spec.kernel.support,
            beta: spec.kernel.beta,
            tiles_x: ng.div_ceil(TILE),
        }
    }
}

/// Copies rows of a block into packed arrays (the kernels' inputs): vis as interleaved
/// f32 and weights [row][chan][pol], uvw [row][3], dw [row]. Each output holds exactly
/// `rows.len()` rows' worth (or is empty to skip it).
pub fn pack_rows(
    b: &VisBlock,
    rows: &[u32],
    vis: &mut [f32],
    weight: &mut [f32],
    uvw: &mut [f64],
    dw: &mut [f64],
) {
    let stride = b.freqs.len() * b.npol;
    for (k, &r) in rows.iter().enumerate() {
        let r = r as usize;
        if !vis.is_empty() {
            for (j, v) in b.vis[r * stride..(r + 1) * stride].iter().enumerate() {
                vis[2 * (k * stride + j)] = v.re;
                vis[2 * (k * stride + j) + 1] = v.im;
            }
        }
        if !weight.is_empty() {
            weight[k * stride..(k + 1) * stride]
                .copy_from_slice(&b.weight[r * stride..(r + 1) * stride]);
        }
        uvw[3 * k..3 * k + 3].copy_from_slice(&b.uvw_m[r]);
        dw[k] = b.dw_m[r];
    }
}

/// Item i's (row i / nchan, channel i % nchan) geometry, as the prep kernels start: the
/// flip to w >= 0, (u, v, w) in wavelengths after it, grid coordinates, and whether it
/// passes the uv cuts.
struct Coords {
    s: f64,
    u: f64,
    v: f64,
    w: f64,
    gu: f64,
    gv: f64,
    in_cuts: bool,
}

fn coords(uvw: &[f64], freqs: &[f64], i: usize, g: &Geometry) -> Coords {
    let (r, c) = (i / freqs.len(), i % freqs.len());
    let [um, vm, wm] = [uvw[3 * r], uvw[3 * r + 1], uvw[3 * r + 2]];
    let s = if wm < 0.0 { -1.0 } else { 1.0 };
    let lam = freqs[c] / C_M_S;
    let (u, v, w) = (s * um * lam, s * vm * lam, s * wm * lam);
    let q = u * u + v * v;
    Coords {
        s,
        u,
        v,
        w,
        gu: g.centre - u * g.scale,
        gv: g.centre + v * g.scale,
        in_cuts: !(q < g.uvmin2 || (g.uvmax2 > 0.0 && q > g.uvmax2)),
    }
}

/// Prepared gridding items (one per row and channel), as grid_prep writes them.
#[derive(Debug, Clone, Default)]
pub struct Items {
    pub u_px: Vec<f64>,
    pub v_px: Vec<f64>,
    pub w_lam: Vec<f64>,
    pub val: Vec<Complex64>,
    pub pval: Vec<Complex64>,
    pub key: Vec<i32>,
}

/// Twin of `grid_prep` (kernels/wstack.cu).
#[allow(clippy::too_many_arguments)]
pub fn grid_prep(
    vis: &[f32],
    weight: &[f32],
    uvw: &[f64],
    dw: &[f64],
    freqs: &[f64],
    fdirty: &[f64],
    fpsf: &[f64],
    npol: usize,
    g: &Geometry,
) -> Items {
    let nchan = freqs.len();
    let n = dw.len() * nchan;
    let mut it = Items {
        u_px: vec![0.0; n],
        v_px: vec![0.0; n],
        w_lam: vec![0.0; n],
        val: vec![Complex64::new(0.0, 0.0); n],
        pval: vec![Complex64::new(0.0, 0.0); n],
        key: vec![-1; n],
    };
    for i in 0..n {
        let (r, c) = (i / nchan, i % nchan);
        let Coords {
            s,
            u,
            v,
            w,
            gu,
            gv,
            in_cuts,
        } = coords(uvw, freqs, i, g);
        let mut ok = in_cuts && (u * g.scale).abs() < g.limit && (v * g.scale).abs() < g.limit;
        let (mut vsum, mut ws) = (Complex64::new(0.0, 0.0), 0.0);
        for p in 0..npol {
            let wt = weight[i * npol + p];
            if wt > 0.0 {
                let j = 2 * (i * npol + p);
                vsum += Complex64::new(vis[j] as f64, vis[j + 1] as f64) * wt as f64;
                ws += wt as f64;
            }
        }
        ok = ok && ws > 0.0;
        let mut a =
            vsum * Complex64::from_polar(1.0, -std::f64::consts::TAU * dw[r] * freqs[c] / C_M_S);
        if s < 0.0 {
            a = a.conj();
        }
        it.u_px[i] = gu;
        it.v_px[i] = gv;
        it.w_lam[i] = if ok { w } else { REJECT };
        it.val[i] = a * fdirty[c];
        it.pval[i] = Complex64::new(ws * fpsf[c], 0.0);
        if ok {
            it.key[i] = tile_key(gu, gv, g.support, g.tiles_x) as i32;
        }
    }
    it
}

/// The gridding tile of a visibility at grid coordinates (gu, gv): the tile of its first
/// kernel tap (as grid_prep computes it).
pub fn tile_key(gu: f64, gv: f64, support: usize, tiles_x: usize) -> usize {
    let half = support as f64 * 0.5;
    let t = |x: f64| (((x - half).ceil().max(0.0) as usize) / TILE).min(tiles_x - 1);
    t(gv) * tiles_x + t(gu)
}

/// Twin of the counting sort (grid_prep's counts, the host's scan, tile_scatter): each
/// tile's start (ntiles + 1 entries) and the items in tile order (stable here; any order
/// inside a tile on the device).
pub fn tile_order(key: &[i32], ntiles: usize) -> (Vec<i32>, Vec<usize>) {
    let mut start = vec![0i32; ntiles + 1];
    key.iter()
        .filter(|&&k| k >= 0)
        .for_each(|&k| start[k as usize + 1] += 1);
    for k in 0..ntiles {
        start[k + 1] += start[k];
    }
    let mut fill = start.clone();
    let mut order = vec![0usize; start[ntiles] as usize];
    for (i, &k) in key.iter().enumerate() {
        if k >= 0 {
            order[fill[k as usize] as usize] = i;
            fill[k as usize] += 1;
        }
    }
    (start, order)
}

/// The gridding launch's segments: each tile's items (start[k]..start[k+1], as sorted)
/// cut into runs of at most `max_items`, one block each. Returns (tile of each segment,
/// segment starts with the end appended). Segments follow the item order, so together
/// they cover every item once.
pub fn segments(start: &[i32], max_items: usize) -> (Vec<i32>, Vec<i32>) {
    let max = max_items.max(1) as i32;
    let (mut tiles, mut starts) = (Vec::new(), Vec::new());
    for k in 0..start.len().saturating_sub(1) {
        let mut a = start[k];
        while a < start[k + 1] {
            tiles.push(k as i32);
            starts.push(a);
            a = (a + max).min(start[k + 1]);
        }
    }
    starts.push(*start.last().unwrap_or(&0));
    (tiles, starts)
}

/// Items per gridding block: a crowded tile is shared by several blocks, so that the
/// largest block holds no more than ~1/1024 of the plane's items (at least 2048).
pub fn segment_size(total: usize) -> usize {
    (total / 1024).max(2048)
}

/// Twin of `w_weights`.
pub fn w_weights(w_lam: &[f64], wp: f64, halfwidth: f64, beta: f64) -> Vec<f64> {
    w_lam
        .iter()
        .map(|&w| es_phi((w - wp) / halfwidth, beta))
        .collect()
}

fn es_phi(x: f64, beta: f64) -> f64 {
    let t = 1.0 - x * x;
    if t > 0.0 {
        (beta * (t.sqrt() - 1.0)).exp()
    } else {
        0.0
    }
}

/// Twin of `checkerboard`.
pub fn checkerboard(g: &mut [Complex64], ng: usize) {
    g.par_chunks_mut(ng).enumerate().for_each(|(y, row)| {
        row.iter_mut()
            .enumerate()
            .filter(|(x, _)| (x + y) % 2 == 1)
            .for_each(|(_, v)| *v = -*v)
    });
}

/// n - 1 at pixel (x, y), as wstack.cu's nm1 (and GridSpec::nm1).
fn nm1(x: usize, y: usize, n: usize, cell: f64) -> f64 {
    let c = (n / 2) as f64;
    let (l, m) = ((c - x as f64) * cell, (y as f64 - c) * cell);
    let r2 = l * l + m * m;
    if r2 >= 1.0 {
        -1.0
    } else {
        -r2 / (1.0 + (1.0 - r2).sqrt())
    }
}

/// Twin of `wscreen_add`.
pub fn wscreen_add(plane: &[Complex64], ng: usize, n: usize, cell: f64, wp: f64, img: &mut [f64]) {
    let lo = ng / 2 - n / 2;
    img.par_chunks_mut(n).enumerate().for_each(|(y, row)| {
        for (x, px) in row.iter_mut().enumerate() {
            let (jx, jy) = (lo + x, lo + y);
            let g = plane[jy * ng + jx];
            let sg = if (jx + jy) % 2 == 1 { -1.0 } else { 1.0 };
            let (s, c) = (std::f64::consts::TAU * wp * nm1(x, y, n, cell)).sin_cos();
            *px += sg * (g.re * c + g.im * s);
        }
    });
}

/// Twin of `wscreen_fill` (the plane zeroed first, as the device's memset).
pub fn wscreen_fill(pre: &[f64], n: usize, cell: f64, wp: f64, ng: usize, plane: &mut [Complex64]) {
    let off = (ng - n) / 2;
    plane.par_chunks_mut(ng).enumerate().for_each(|(gy, row)| {
        row.iter_mut().for_each(|c| *c = Complex64::new(0.0, 0.0));
        if gy < off || gy >= off + n {
            return;
        }
        let y = gy - off;
        for x in 0..n {
            let v = pre[y * n + x];
            if v != 0.0 {
                let gx = off + x;
                let (s, c) = (std::f64::consts::TAU * wp * nm1(x, y, n, cell)).sin_cos();
                let sg = if (gx + gy) % 2 == 1 { -v } else { v };
                row[gx] = Complex64::new(sg * c, sg * s);
            }
        }
    });
}

/// Twin of `degrid_prep`: (u_px, v_px, w_lam) per item.
pub fn degrid_prep(uvw: &[f64], freqs: &[f64], g: &Geometry) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let nchan = freqs.len();
    let n = uvw.len() / 3 * nchan;
    let (mut u_px, mut v_px, mut w_lam) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for i in 0..n {
        let Coords {
            w, gu, gv, in_cuts, ..
        } = coords(uvw, freqs, i, g);
        let half = g.support as f64 * 0.5;
        let (fx, fy) = ((gu - half).ceil() as i64, (gv - half).ceil() as i64);
        let inside = fx >= 0
            && fy >= 0
            && fx as usize + g.support <= g.ng
            && fy as usize + g.support <= g.ng;
        u_px[i] = gu;
        v_px[i] = gv;
        w_lam[i] = if in_cuts && inside { w } else { REJECT };
    }
    (u_px, v_px, w_lam)
}

/// Twin of `degrid_finish`.
pub fn degrid_finish(acc: &[Complex64], uvw: &[f64], dw: &[f64], freqs: &[f64]) -> Vec<Complex32> {
    let nchan = freqs.len();
    acc.iter()
        .enumerate()
        .map(|(i, &a)| {
            let (r, c) = (i / nchan, i % nchan);
            let v = if uvw[3 * r + 2] < 0.0 { a.conj() } else { a };
            let v =
                v * Complex64::from_polar(1.0, std::f64::consts::TAU * dw[r] * freqs[c] / C_M_S);
            Complex32::new(v.re as f32, v.im as f32)
        })
        .collect()
}

/// The per-channel factors the prep kernel takes (ones where an image is not gridded).
pub fn factors(f: Option<&[f64]>, nchan: usize) -> Vec<f64> {
    f.map(|x| x.to_vec()).unwrap_or_else(|| vec![1.0; nchan])
}

/// The device's gridding, composed from the twins: prep, tile sort, and per plane the
/// w weights, grid_tiles, checkerboard, forward FFT and wscreen_add. (Tests only: the
/// twins' composition checked against the CPU gridder.)
#[cfg(test)]
pub fn wstack(job: &WStack) -> (Vec<f64>, Vec<f64>) {
    let (spec, b) = (job.spec, job.b);
    let g = Geometry::new(spec);
    let (nchan, npol, nr) = (b.freqs.len(), b.npol, job.planes.rows.len());
    let (mut vis, mut wt, mut uvw, mut dw) = (
        vec![0f32; 2 * nr * nchan * npol],
        vec![0f32; nr * nchan * npol],
        vec![0f64; 3 * nr],
        vec![0f64; nr],
    );
    pack_rows(b, &job.planes.rows, &mut vis, &mut wt, &mut uvw, &mut dw);
    let (fd, fp) = (
        factors(job.dirty_factor, nchan),
        factors(job.psf_factor, nchan),
    );
    let it = grid_prep(&vis, &wt, &uvw, &dw, b.freqs, &fd, &fp, npol, &g);
    let (_, order) = tile_order(&it.key, g.tiles_x * g.tiles_x);
    let pick = |x: &[f64]| -> Vec<f64> { order.iter().map(|&i| x[i]).collect() };
    let pickc = |x: &[Complex64]| -> Vec<Complex64> { order.iter().map(|&i| x[i]).collect() };
    let (su, sv, sw, sval, spval) = (
        pick(&it.u_px),
        pick(&it.v_px),
        pick(&it.w_lam),
        pickc(&it.val),
        pickc(&it.pval),
    );
    let half = g.support as f64 / 2.0;
    let (n, ng) = (g.n, g.ng);
    let mut out = [vec![0.0; n * n], vec![0.0; n * n]];
    let mut plane = vec![Complex64::new(0.0, 0.0); ng * ng];
    for p in job.planes.touched(&job.planes.rows, g.support) {
        let wp = job.planes.w0 + p as f64 * job.planes.dw;
        let ww = w_weights(&sw, wp, job.planes.dw * half, g.beta);
        for (k, (on, vals)) in [
            (job.dirty_factor.is_some(), &sval),
            (job.psf_factor.is_some(), &spval),
        ]
        .into_iter()
        .enumerate()
        {
            if !on {
                continue;
            }
            plane.iter_mut().for_each(|c| *c = Complex64::new(0.0, 0.0));
            twins::grid_tiles(&mut plane, ng, &su, &sv, vals, &ww, g.support, g.beta);
            checkerboard(&mut plane, ng);
            fft2(&mut plane, ng, false);
            wscreen_add(&plane, ng, n, g.cell, wp, &mut out[k]);
        }
    }
    let [d, p] = out;
    (d, p)
}

/// The device's prediction, composed from the twins: prep, and per plane wscreen_fill,
/// inverse FFT, checkerboard, w weights, degrid_points and the sum; then degrid_finish.
/// (Tests only: checked against the CPU degridder.)
#[cfg(test)]
pub fn unstack(job: &WUnstack, out: &mut [Complex32]) {
    let (spec, b) = (job.spec, job.b);
    let g = Geometry::new(spec);
    let (nchan, nr) = (b.freqs.len(), job.planes.rows.len());
    let (mut uvw, mut dw) = (vec![0f64; 3 * nr], vec![0f64; nr]);
    pack_rows(b, &job.planes.rows, &mut [], &mut [], &mut uvw, &mut dw);
    let (u_px, v_px, w_lam) = degrid_prep(&uvw, b.freqs, &g);
    let half = g.support as f64 / 2.0;
    let mut acc = vec![Complex64::new(0.0, 0.0); nr * nchan];
    let mut plane = vec![Complex64::new(0.0, 0.0); g.ng * g.ng];
    for p in job.planes.touched(&job.planes.rows, g.support) {
        let wp = job.planes.w0 + p as f64 * job.planes.dw;
        wscreen_fill(job.pre, g.n, g.cell, wp, g.ng, &mut plane);
        fft2(&mut plane, g.ng, true);
        checkerboard(&mut plane, g.ng);
        let ww = w_weights(&w_lam, wp, job.planes.dw * half, g.beta);
        let got = twins::degrid_points(&plane, g.ng, &u_px, &v_px, &ww, g.support, g.beta);
        acc.iter_mut().zip(&got).for_each(|(a, x)| *a += x);
    }
    let fin = degrid_finish(&acc, &uvw, &dw, b.freqs);
    for (k, &r) in job.planes.rows.iter().enumerate() {
        out[r as usize * nchan..(r as usize + 1) * nchan]
            .copy_from_slice(&fin[k * nchan..(k + 1) * nchan]);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::compute::gridder::GridPair;
    use rand::{Rng, SeedableRng};

    /// A small random block: 24 antennas' baselines over a 0.9 km array (|u|, |v| x cell
    /// below 0.44 at the top channel: inside every backend's uv acceptance, which differ
    /// within a few cells of the grid's Nyquist edge), 3 times, 6
    /// channels across 1.31-1.50 GHz, 2 pols, some flags and a few excluded rows; rows
    /// with both signs of w and a rephasing offset.
    pub(crate) struct Block {
        pub freqs: Vec<f64>,
        pub uvw: Vec<[f64; 3]>,
        pub dw: Vec<f64>,
        pub vis: Vec<Complex32>,
        pub weight: Vec<f32>,
        pub use_row: Vec<bool>,
    }

    pub(crate) fn block() -> Block {
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(31);
        let nrow = 24 * 23 / 2 * 3;
        let freqs: Vec<f64> = (0..6).map(|c| 1.311e9 + c as f64 * 3.8e7).collect();
        let uvw: Vec<[f64; 3]> = (0..nrow)
            .map(|_| {
                [
                    r.random_range(-450.0..450.0),
                    r.random_range(-450.0..450.0),
                    r.random_range(-60.0..60.0),
                ]
            })
            .collect();
        let dw: Vec<f64> = (0..nrow).map(|_| r.random_range(-20.0..20.0)).collect();
        let n = nrow * 6 * 2;
        let vis: Vec<Complex32> = (0..n)
            .map(|_| Complex32::new(r.random_range(-1.0..1.0), r.random_range(-1.0..1.0)))
            .collect();
        let weight: Vec<f32> = (0..n)
            .map(|i| {
                if i % 17 == 3 {
                    0.0
                } else {
                    r.random_range(0.5..1.5)
                }
            })
            .collect();
        let use_row: Vec<bool> = (0..nrow).map(|i| i % 29 != 0).collect();
        Block {
            freqs,
            uvw,
            dw,
            vis,
            weight,
            use_row,
        }
    }

    impl Block {
        pub(crate) fn vis_block(&self) -> VisBlock<'_> {
            VisBlock {
                freqs: &self.freqs,
                npol: 2,
                uvw_m: &self.uvw,
                dw_m: &self.dw,
                vis: &self.vis,
                weight: &self.weight,
                use_row: &self.use_row,
                workspace: None,
                resident: None,
            }
        }

        /// The block's rows as a direct prediction takes them, `nt` integrations a
        /// baseline, channels `dnu` wide.
        pub(crate) fn dft_block(&self, nt: usize, dnu: f64) -> crate::compute::dft::DftBlock<'_> {
            crate::compute::dft::DftBlock {
                uvw_m: &self.uvw,
                dw_m: &self.dw,
                use_row: &self.use_row,
                n_times: nt,
                freqs: &self.freqs,
                dnu,
            }
        }
    }

    pub(crate) fn spec() -> GridSpec {
        // 96 px of 40" (a 1.07 deg field: several w-planes), epsilon 1e-7 (f64 planes).
        let mut s = GridSpec::new(96, (40.0 / 3600.0f64).to_radians(), 1e-7);
        s.uv_min_lambda = 20.0;
        s
    }

    /// Records what a backend is given, running the twins' composition.
    pub(crate) struct Twins;
    impl super::super::Compute for Twins {
        fn name(&self) -> String {
            "twins".into()
        }
        fn grid_wstack(
            &self,
            job: &WStack,
        ) -> Result<(Vec<f64>, Vec<f64>), super::super::GpuError> {
            Ok(wstack(job))
        }
        fn sumthreshold_planes(
            &self,
            _: &[f32],
            _: &mut [bool],
            _: usize,
            _: usize,
            _: &super::super::Schedule,
        ) -> Result<(), super::super::GpuError> {
            unreachable!()
        }
        fn background_planes(
            &self,
            _: &[f32],
            _: &[bool],
            _: usize,
            _: usize,
            _: &super::super::Smoothing,
        ) -> Result<Vec<f32>, super::super::GpuError> {
            unreachable!()
        }
        fn degrid_wstack(
            &self,
            job: &WUnstack,
            out: &mut [Complex32],
        ) -> Result<(), super::super::GpuError> {
            unstack(job, out);
            Ok(())
        }
    }

    fn max_abs(x: &[f64]) -> f64 {
        x.iter().fold(0.0, |a, &b| a.max(b.abs()))
    }

    #[test]
    fn the_twins_w_stack_grids_as_the_cpu_gridder() {
        let blk = block();
        let b = blk.vis_block();
        for (dp, pp) in [(Some(0u8), Some(0u8)), (Some(1), None), (None, Some(2))] {
            let (mut cpu, mut twin) = (
                GridPair::spectral(spec(), 1.4e9, dp, pp),
                GridPair::spectral(spec(), 1.4e9, dp, pp),
            );
            cpu.add(&b);
            twin.add_with(&b, &Twins);
            assert_eq!(cpu.sum_w, twin.sum_w);
            for (a, t, on) in [
                (&cpu.dirty, &twin.dirty, dp.is_some()),
                (&cpu.psf, &twin.psf, pp.is_some()),
            ] {
                let scale = max_abs(a);
                assert_eq!(scale > 0.0, on);
                let err = a
                    .iter()
                    .zip(t)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0, f64::max);
                // The CPU gridder (primitives::wgridder) and the twins' w-stack are two
                // algorithms at epsilon 1e-7: measured 8.5e-8 of the peak.
                assert!(
                    err <= 3e-7 * scale.max(1e-300),
                    "({dp:?}, {pp:?}): max difference {err:e} of {scale:e}"
                );
            }
        }
    }

    #[test]
    fn the_twins_w_unstack_predicts_as_the_cpu_degridder() {
        let blk = block();
        let b = blk.vis_block();
        let spec = spec();
        let n = spec.n_image;
        let mut model = vec![0.0; n * n];
        for (i, (x, y, f)) in [
            (10usize, 20usize, 1.5f64),
            (48, 48, 2.0),
            (80, 71, -0.7),
            (3, 90, 0.4),
        ]
        .into_iter()
        .enumerate()
        {
            model[y * n + x] = f + i as f64 * 0.01;
        }
        let cpu = crate::compute::degridder::degrid(&spec, &model, &b);
        let twin = crate::compute::degridder::degrid_with(&spec, &model, &b, &Twins);
        let scale = cpu.iter().map(|v| v.norm()).fold(0f32, f32::max);
        assert!(scale > 1.0);
        let err = cpu
            .iter()
            .zip(&twin)
            .map(|(a, b)| (a - b).norm())
            .fold(0f32, f32::max);
        // f32 outputs: a few ulps of the largest.
        assert!(err <= 4e-6 * scale, "max difference {err} of {scale}");
        for (r, &u) in blk.use_row.iter().enumerate() {
            if !u {
                assert!(
                    twin[r * 6..(r + 1) * 6].iter().all(|v| v.norm() == 0.0),
                    "excluded row {r} predicted"
                );
            }
        }
    }

    /// The spectral terms' dirty images gridded in one shared pass are those of one pass
    /// each (the same sums in another order: to rounding).
    #[test]
    fn dirty_images_in_one_pass_equal_one_pass_each() {
        let blk = block();
        let b = blk.vis_block();
        let terms = |p: u8| GridPair::spectral(spec(), 1.4e9, Some(p), None);
        let mut one: Vec<GridPair> = (0..3).map(terms).collect();
        let mut each: Vec<GridPair> = (0..3).map(terms).collect();
        GridPair::add_all_with(&mut one, &b, &crate::compute::Cpu);
        each.iter_mut().for_each(|g| g.add(&b));
        for (a, e) in one.iter().zip(&each) {
            assert_eq!(a.sum_w, e.sum_w);
            let scale = max_abs(&e.dirty);
            assert!(scale > 0.0);
            let err = a
                .dirty
                .iter()
                .zip(&e.dirty)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            assert!(err <= 1e-12 * scale, "{err:e} of {scale:e}");
        }
    }

    #[test]
    fn segments_cover_every_item_once_and_split_crowded_tiles() {
        let start = vec![0, 5, 5, 12, 13];
        let (tiles, starts) = segments(&start, 3);
        assert_eq!(tiles, vec![0, 0, 2, 2, 2, 3]);
        assert_eq!(starts, vec![0, 3, 5, 8, 11, 12, 13]);
        for (s, &t) in tiles.iter().enumerate() {
            let (a, b) = (starts[s], starts[s + 1]);
            assert!(b - a <= 3 && a >= start[t as usize] && b <= start[t as usize + 1]);
        }
        assert_eq!(segments(&[0, 0], 4), (vec![], vec![0]));
    }

    #[test]
    fn tile_order_is_a_counting_sort() {
        let key = vec![3, -1, 0, 3, 2, -1, 0];
        let (start, order) = tile_order(&key, 4);
        assert_eq!(start, vec![0, 2, 2, 3, 5]);
        assert_eq!(order, vec![2, 6, 4, 0, 3]);
    }
}
