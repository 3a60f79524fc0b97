//! A group held in memory for CLEAN's major cycles: its geometry toward the image centre,
//! the model's prediction (degridded, or a direct sum over the model's pixels through the
//! drifting beam), the subtraction, the outliers' refit and the residuals' gridding.

use super::aterm::{chunks, DriftBeam};
use super::deconvolve::{direct_is_cheaper, PredictMode};
use super::degridder::{degrid_sum_with, Weights};
use super::gridder::{GridPair, GridSpec, VisBlock};
use super::outliers::OutlierModel;
use crate::compute::dft::{DftBlock, Point};
use crate::compute::Compute;
use crate::core::{rephase_geometry, Centre};
use crate::core::{GroupVis, StokesGroup};
use crate::primitives::iers::EarthOrientation;
use crate::primitives::wgridder::Workspace;
use num_complex::Complex32;
use rayon::prelude::*;

/// Components per batch of the direct prediction (bounds its amplitude table:
/// batch x channels x integrations f32).
const DIRECT_BATCH: usize = 256;

/// A group kept in memory for the major cycles, with its geometry for the image centre.
pub struct HeldGroup {
    pub vis: StokesGroup,
    uvw: Vec<[f64; 3]>,
    dw: Vec<f64>,
    use_row: Vec<bool>,
    /// Sources outside the image inside the beam, fitted and subtracted (outliers.rs).
    pub outliers: Option<OutlierModel>,
}

impl HeldGroup {
    /// Holds `vis` with its polarizations combined (`GroupVis::into_stokes_i`: Stokes I,
    /// all that imaging uses, in half the memory).
    pub fn new(vis: GroupVis, centre: Centre, eop: &EarthOrientation) -> Self {
        Self::from_stokes(vis.into_stokes_i(), centre, eop)
    }

    /// Holds a group already combined into Stokes I (`GroupVis::into_stokes_i_reusing`).
    pub fn from_stokes(vis: StokesGroup, centre: Centre, eop: &EarthOrientation) -> Self {
        let (uvw, dw) = rephase_geometry(&vis, centre, eop);
        let nt = vis.n_times();
        let use_row = (0..uvw.len())
            .map(|r| vis.baselines[r / nt].0 != vis.baselines[r / nt].1)
            .collect();
        HeldGroup {
            vis,
            uvw,
            dw,
            use_row,
            outliers: None,
        }
    }

    /// The visibility and weight buffers, for a later group (`Inputs::retire` in the
    /// pipeline).
    pub fn into_buffers(self) -> crate::core::StokesBuffers {
        self.vis.into_buffers()
    }

    /// The unflagged cross-correlation samples (row x channel, any polarization) whose u or
    /// v lies beyond the grid's edge (the cell too coarse for the longest baselines: the
    /// gridder leaves them out of every image), the samples counted, and the longest |u|,
    /// |v| over the band (wavelengths).
    pub fn beyond_grid(&self, spec: &GridSpec) -> (usize, usize, f64) {
        let edge = spec.uv_edge_pixfrac() / spec.cell_rad;
        let (nc, np) = (self.vis.freqs.len(), self.vis.npol);
        let (mut beyond, mut total, mut longest) = (0, 0, 0.0f64);
        for (r, uvw) in self.uvw.iter().enumerate() {
            if !self.use_row[r] {
                continue;
            }
            let span = uvw[0].abs().max(uvw[1].abs()) / crate::primitives::C_M_S;
            for (c, &f) in self.vis.freqs.iter().enumerate() {
                let base = (r * nc + c) * np;
                if !self.vis.weight[base..base + np].iter().any(|&w| w > 0.0) {
                    continue;
                }
                total += 1;
                let q = span * f;
                longest = longest.max(q);
                if q >= edge {
                    beyond += 1;
                }
            }
        }
        (beyond, total, longest)
    }

    /// Sets the outliers of this group. The image job fits them to the visibilities and
    /// subtracts them before the dirty image is gridded (`refit_outliers`; that first fit
    /// is biased by the bright sources inside the tile through the PSF's sidelobes), and
    /// every major cycle refits them to the residual visibilities (after the CLEAN model's
    /// increment is subtracted), the coefficients accumulating.
    pub fn set_outliers(&mut self, model: OutlierModel) {
        if !model.outliers.is_empty() {
            self.outliers = Some(model);
        }
    }

    /// Fits the outliers to the current visibilities and subtracts the fit (nothing
    /// without outliers).
    pub fn refit_outliers(&mut self) {
        if let Some(m) = self.outliers.as_mut() {
            m.fit_and_subtract(&mut self.vis, &self.use_row);
        }
    }

    pub(super) fn block(&self) -> VisBlock<'_> {
        VisBlock {
            freqs: &self.vis.freqs,
            npol: self.vis.npol,
            uvw_m: &self.uvw,
            dw_m: &self.dw,
            vis: &self.vis.vis,
            weight: &self.vis.weight,
            use_row: &self.use_row,
            workspace: None,
        }
    }

    /// Adds this group's weights to a uv density grid (for uniform/Briggs weighting).
    pub fn add_density(&self, spec: &GridSpec, density: &mut [f64]) {
        super::weighting::accumulate_density(
            spec,
            density,
            &self.vis.freqs,
            self.vis.npol,
            &self.uvw,
            &self.vis.weight,
            &self.use_row,
        );
    }

    /// Rescales the weights from the (rank-combined) density.
    pub fn reweight(&mut self, spec: &GridSpec, rw: &super::weighting::Reweight) {
        super::weighting::apply(
            spec,
            rw,
            &self.vis.freqs,
            self.vis.npol,
            &self.uvw,
            &mut self.vis.weight,
            &self.use_row,
        );
        if let Some(m) = self.outliers.as_mut() {
            m.weights_changed();
        }
    }

    /// Grids this group into `grids` on `compute`.
    pub fn grid(&self, grids: &mut GridPair, compute: &dyn Compute) {
        grids.add_with(&self.block(), compute);
    }

    /// Subtracts the model's visibilities (Stokes I, both polarizations): sum over the
    /// spectral terms of x^t times term t's prediction, x = (nu - ref_hz) / ref_hz; with a
    /// drifting beam, each chunk of integrations is predicted from the model it saw (or, with
    /// the polynomial schemes, the beam a polynomial in time), the beam linear in frequency.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn subtract(
        &mut self,
        spec: &GridSpec,
        models: &[Vec<f64>],
        ref_hz: f64,
        beam: Option<&DriftBeam>,
        mode: PredictMode,
        compute: &dyn Compute,
        ws: &Workspace,
    ) {
        let nc = self.vis.n_chan();
        if models.is_empty() {
            return;
        }
        let refs: Vec<&[f64]> = models.iter().map(|m| m.as_slice()).collect();
        let t0 = std::time::Instant::now();
        let pix: Vec<usize> = (0..spec.n_image * spec.n_image)
            .filter(|&i| refs.iter().any(|m| m[i] != 0.0))
            .collect();
        let n_points = pix.len();
        let direct = match mode {
            PredictMode::Grid => false,
            PredictMode::Direct => true,
            PredictMode::Auto => {
                let nodes = if self.vis.channel_width_hz != 0.0 {
                    2
                } else {
                    1
                };
                direct_is_cheaper(n_points, self.grid_images(refs.len(), beam), nodes)
            }
        };
        let np = self.vis.npol;
        if direct && np == 1 {
            // One (combined) polarization: the direct sum subtracts in place.
            let mut vis = std::mem::take(&mut self.vis.vis);
            self.predict_direct(spec, &refs, &pix, ref_hz, beam, -1.0, &mut vis, compute);
            self.vis.vis = vis;
            log::debug!(
                "predicted {n_points} model pixels directly and subtracted in {:.2} s",
                t0.elapsed().as_secs_f64()
            );
            return;
        }
        let m = if direct {
            let mut m = vec![Complex32::new(0.0, 0.0); self.uvw.len() * nc];
            self.predict_direct(spec, &refs, &pix, ref_hz, beam, 1.0, &mut m, compute);
            m
        } else {
            self.predict(spec, &refs, ref_hz, beam, compute, Some(ws))
        };
        log::debug!(
            "predicted {n_points} model pixels {} in {:.2} s",
            if direct { "directly" } else { "by degridding" },
            t0.elapsed().as_secs_f64()
        );
        self.vis
            .vis
            .par_chunks_mut(nc * np)
            .enumerate()
            .for_each(|(r, row)| {
                for c in 0..nc {
                    let mv: Complex32 = m[r * nc + c];
                    for p in 0..np {
                        row[c * np + p] -= mv;
                    }
                }
            });
    }

    /// Model images one degridding prediction of `terms` spectral terms transforms.
    pub(super) fn grid_images(&self, terms: usize, beam: Option<&DriftBeam>) -> usize {
        match beam.filter(|b| b.used_by_grid()) {
            None => terms,
            Some(b) => (terms + 1) * b.passes(self.vis.n_times()),
        }
    }

    /// `predict` as a direct Fourier sum over the pixels where some term has flux, each a
    /// point of spectrum sum_t M_t x^t seen through the exact drifting beam
    /// (`DriftBeam::exact_ratio`: every integration and channel) and averaged over each
    /// channel's width (`compute::dft`), times `sign`, added to `out` (rows x channels).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn predict_direct(
        &self,
        spec: &GridSpec,
        models: &[&[f64]],
        pix: &[usize],
        ref_hz: f64,
        beam: Option<&DriftBeam>,
        sign: f64,
        out: &mut [Complex32],
        compute: &dyn Compute,
    ) {
        let n = spec.n_image;
        let (nt, nc) = (self.vis.n_times(), self.vis.n_chan());
        // `pix`: the pixels where some term has flux.
        let xs: Vec<f64> = self
            .vis
            .freqs
            .iter()
            .map(|f| (f - ref_hz) / ref_hz)
            .collect();
        let own = beam.map(|b| b.pointings(&self.vis.times_jd));
        let block = DftBlock {
            uvw_m: &self.uvw,
            dw_m: &self.dw,
            use_row: &self.use_row,
            n_times: nt,
            freqs: &self.vis.freqs,
            dnu: self.vis.channel_width_hz.abs(),
        };
        let c = (n / 2) as f64;
        for batch in pix.chunks(DIRECT_BATCH) {
            let points: Vec<Point> = batch
                .iter()
                .map(|&i| Point {
                    l: (c - (i % n) as f64) * spec.cell_rad,
                    m: ((i / n) as f64 - c) * spec.cell_rad,
                })
                .collect();
            let mut amp = vec![0f32; batch.len() * nc * nt];
            amp.par_chunks_mut(nc * nt).zip(batch).for_each_init(
                || vec![1.0f64; nc * nt],
                |ratio, (a, &i)| {
                    if let (Some(b), Some(own)) = (beam, own.as_ref()) {
                        b.exact_ratio(i % n, i / n, own, &self.vis.freqs, ratio);
                    }
                    for (ci, &x) in xs.iter().enumerate() {
                        let (mut f, mut xp) = (0.0, sign);
                        for m in models {
                            f += m[i] * xp;
                            xp *= x;
                        }
                        for t in 0..nt {
                            a[ci * nt + t] = (f * ratio[ci * nt + t]) as f32;
                        }
                    }
                },
            );
            crate::compute::or_cpu(compute, "direct prediction", |c, _| {
                c.predict_points(&block, &points, &amp, out)
            });
        }
    }

    /// The visibilities per (row, channel) of the spectral terms' models (term t weighted by
    /// x^t, x = (nu - ref_hz) / ref_hz), in one weighted degridding pass per channel node.
    /// With a drifting beam the beam ratio A + C x of each chunk or interpolation node adds
    /// one power of x (`DriftBeam::weighted_models`): per chunk one pass (restricted to its
    /// integrations), with the polynomial schemes one pass for every node's images, each
    /// weighted per integration by the node's interpolation coefficient.
    pub(super) fn predict(
        &self,
        spec: &GridSpec,
        models: &[&[f64]],
        ref_hz: f64,
        beam: Option<&DriftBeam>,
        compute: &dyn Compute,
        ws: Option<&Workspace>,
    ) -> Vec<Complex32> {
        let dnu = self.vis.channel_width_hz.abs();
        let block = VisBlock {
            workspace: ws,
            ..self.block()
        };
        let (nt, nc) = (self.vis.n_times(), self.vis.n_chan());
        // x^p per channel for every power a prediction can need (the beam adds one).
        let xs: Vec<Vec<f32>> = (0..=models.len())
            .map(|p| {
                self.vis
                    .freqs
                    .iter()
                    .map(|f| ((f - ref_hz) / ref_hz).powi(p as i32) as f32)
                    .collect()
            })
            .collect();
        let chan = |p: usize| (p > 0).then(|| xs[p].as_slice());
        match beam.filter(|b| b.used_by_grid()) {
            None => {
                let plain: Vec<Weights> = (0..models.len())
                    .map(|p| Weights {
                        row: None,
                        chan: chan(p),
                    })
                    .collect();
                degrid_channel_average_sum(spec, models, &plain, &block, dnu, compute)
            }
            Some(db) if db.mode.is_poly() => {
                let (per_piece, coefs) = db.poly_models(models, &self.vis.times_jd);
                let per_row: Vec<Vec<f32>> = coefs
                    .iter()
                    .map(|ck| (0..self.uvw.len()).map(|r| ck[r % nt] as f32).collect())
                    .collect();
                let mut refs: Vec<&[f64]> = Vec::new();
                let mut weights: Vec<Weights> = Vec::new();
                for (imgs, row) in per_piece.iter().zip(&per_row) {
                    for (p, img) in imgs.iter().enumerate() {
                        refs.push(img);
                        weights.push(Weights {
                            row: Some(row),
                            chan: chan(p),
                        });
                    }
                }
                degrid_channel_average_sum(spec, &refs, &weights, &block, dnu, compute)
            }
            Some(db) => {
                let mut out = vec![Complex32::new(0.0, 0.0); self.uvw.len() * nc];
                for r in chunks(nt, db.chunk) {
                    let imgs = db.weighted_models(models, &self.vis.times_jd[r.clone()]);
                    let (refs, weights): (Vec<&[f64]>, Vec<Weights>) = imgs
                        .iter()
                        .enumerate()
                        .map(|(p, m)| {
                            (
                                m.as_slice(),
                                Weights {
                                    row: None,
                                    chan: chan(p),
                                },
                            )
                        })
                        .unzip();
                    let use_row: Vec<bool> = self
                        .use_row
                        .iter()
                        .enumerate()
                        .map(|(row, &u)| u && r.contains(&(row % nt)))
                        .collect();
                    let b = VisBlock {
                        use_row: &use_row,
                        ..block
                    };
                    let part = degrid_channel_average_sum(spec, &refs, &weights, &b, dnu, compute);
                    for (row, &u) in use_row.iter().enumerate() {
                        if u {
                            out[row * nc..(row + 1) * nc]
                                .copy_from_slice(&part[row * nc..(row + 1) * nc]);
                        }
                    }
                }
                out
            }
        }
    }
}

/// A model's visibilities averaged over each channel's width `dnu` (Hz), as a correlator's
/// channels are: the fringe of a source at delay tau from the data's phase centre is
/// multiplied by sinc(dnu tau) (bandwidth smearing; the simulator and the calibration model
/// have it too). Two-point Gauss-Legendre over the channel (nu +- dnu / (2 sqrt 3)): exact to
/// the cubic term, so the error is 2.3e-4 theta^4 for theta = 2 pi dnu tau the fringe's
/// phase span over the channel (the demo's longest baselines, 2.6 km, at 2 deg from the
/// pointing: theta 1.9, 0.3 % of the source where the uncorrected prediction is 14 % off).
/// Without a channel width, the prediction at the channel centres.
pub fn degrid_channel_average(
    spec: &GridSpec,
    model: &[f64],
    b: &VisBlock,
    dnu: f64,
    compute: &dyn Compute,
) -> Vec<Complex32> {
    degrid_channel_average_sum(spec, &[model], &[Weights::default()], b, dnu, compute)
}

/// `degrid_channel_average` of a weighted sum of models of the same block (see
/// degridder::degrid_sum_with): one degridding pass per node.
pub fn degrid_channel_average_sum(
    spec: &GridSpec,
    models: &[&[f64]],
    weights: &[Weights],
    b: &VisBlock,
    dnu: f64,
    compute: &dyn Compute,
) -> Vec<Complex32> {
    if dnu <= 0.0 {
        return degrid_sum_with(spec, models, weights, b, compute);
    }
    let h = dnu / (2.0 * 3f64.sqrt());
    let mut out: Option<Vec<Complex32>> = None;
    for d in [-h, h] {
        let freqs: Vec<f64> = b.freqs.iter().map(|f| f + d).collect();
        let node = VisBlock {
            freqs: &freqs,
            ..*b
        };
        let p = degrid_sum_with(spec, models, weights, &node, compute);
        match out.as_mut() {
            None => out = Some(p),
            Some(o) => o
                .par_iter_mut()
                .zip(&p)
                .for_each(|(a, v)| *a = (*a + v) * 0.5),
        }
    }
    out.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::model::{ModelPredictor, PointSource};
    use crate::primitives::astrometry::{
        median_meridian_icrs, radec_to_vec, separation, vec_to_radec, UvwBasis,
    };
    use num_complex::Complex64;

    /// The independently written (pyuvdata) group tests/data/independent/seed2 and its
    /// median meridian centre.
    fn seed2_group() -> (GroupVis, Centre) {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/independent/seed2");
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "hdf5"))
            .collect();
        files.sort();
        let refs: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
        let g = crate::uvh5::group::load_group(&refs).unwrap();
        let eop = EarthOrientation::none();
        let (ra, dec) = median_meridian_icrs(&g.times_jd, g.pointing_dec_rad, &g.site, &eop);
        (
            g,
            Centre {
                ra_rad: ra,
                dec_rad: dec,
            },
        )
    }

    /// A held group keeps one combined polarization (`GroupVis::into_stokes_i`):
    /// its dirty image, PSF and weight sum are those of the group's two polarizations
    /// gridded as read (the gridder combines them the same way), with Briggs weighting, on
    /// the pyuvdata-written group; half the visibility and weight memory.
    #[test]
    fn combined_polarizations_image_as_the_read_ones() {
        let (g, centre) = seed2_group();
        let eop = EarthOrientation::none();
        assert_eq!(g.npol, 2);
        let spec = GridSpec::new(256, (20.0f64 / 3600.0).to_radians(), 1e-4);
        let image = |mut h: HeldGroup| {
            use super::super::weighting::{briggs_f2, Reweight, Weighting};
            let mut density = vec![0.0; spec.n_grid * spec.n_grid];
            h.add_density(&spec, &mut density);
            let rw = Reweight {
                scheme: Weighting::Briggs,
                f2: briggs_f2(&density, 0.0),
                density: &density,
                taper_fwhm_rad: 0.0,
            };
            h.reweight(&spec, &rw);
            let mut gp = GridPair::new(spec);
            h.grid(&mut gp, &crate::compute::Cpu);
            (gp.sum_w, h.vis.vis.len(), gp.finish_f64().unwrap())
        };
        let mut raw = HeldGroup::new(g.clone(), centre, &eop);
        // As read: the constructor's combination undone by holding the original arrays.
        raw.vis = g.with_f32_weights();
        let (w2, n2, (d2, p2)) = image(raw);
        let (w1, n1, (d1, p1)) = image(HeldGroup::new(g, centre, &eop));
        assert_eq!(n1 * 2, n2);
        assert!((w1 / w2 - 1.0).abs() < 1e-9, "weights {w1} vs {w2}");
        for (a, b) in [(&d1, &d2), (&p1, &p2)] {
            let peak = b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            let diff = a
                .iter()
                .zip(b)
                .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
            eprintln!("combined vs read: {:.2e} of the peak", diff / peak);
            // Measured: 1.6e-7 (dirty), 0 (PSF).
            assert!(diff <= 5e-7 * peak, "{diff} of {peak}");
        }
    }

    /// `beyond_grid` counts exactly the samples the gridder leaves out at the uv edge: none
    /// with a cell just under the one it names, some with a cell 10 % over it, and the
    /// gridder's own weight sum drops by the weight of those.
    #[test]
    fn samples_past_the_grid_edge_are_counted() {
        let (g, centre) = seed2_group();
        let eop = EarthOrientation::none();
        let held = HeldGroup::new(g, centre, &eop);
        let n = 256;
        let probe = GridSpec::new(n, (20.0f64 / 3600.0).to_radians(), 1e-4);
        let (_, total, longest) = held.beyond_grid(&probe);
        assert!(
            total > 0 && longest > 1e3,
            "{total} samples, longest {longest}"
        );
        let holds = probe.uv_edge_pixfrac() / longest;
        let weight = |cell: f64| {
            let spec = GridSpec::new(n, cell, 1e-4);
            let mut gp = GridPair::new(spec);
            held.grid(&mut gp, &crate::compute::Cpu);
            (held.beyond_grid(&spec).0, gp.sum_w)
        };
        let (none, w_all) = weight(0.999 * holds);
        let (some, w_cut) = weight(1.1 * holds);
        assert_eq!(none, 0);
        assert!(some > 0 && some < total, "{some} of {total}");
        assert!(w_cut < w_all, "weights {w_cut} vs {w_all}");
    }

    /// The direct prediction of a model pixel against the calibration's sky model
    /// (`calibrate::model`: each antenna's phase in the data's own phasing, from the pixel's
    /// ICRS direction through the apparent frame, and the Airy beam per integration), on
    /// an independently written group (pyuvdata): the same visibilities once the model's
    /// apparent flux (the image sees the group's mean beam) is divided out. Checks the
    /// image geometry (pixel to direction, rephasing, w-term), the channel average and the
    /// drifting beam together.
    #[test]
    fn direct_prediction_matches_the_sky_model_through_the_drifting_beam() {
        let (g, centre) = seed2_group();
        let eop = EarthOrientation::none();
        let n = 512;
        let spec = GridSpec::new(n, (20.0f64 / 3600.0).to_radians(), 1e-4);
        let beam = DriftBeam::new(
            spec,
            centre,
            &eop,
            g.site,
            g.pointing_dec_rad,
            g.freqs.clone(),
            4.65,
            super::super::aterm::DriftMode::Cubic,
            0,
            1.405e9,
            std::slice::from_ref(&g.times_jd),
        );
        let held = HeldGroup::new(g.clone(), centre, &eop);
        // A pixel 0.9 deg east and 0.4 deg north of the centre (the beam's flank: the
        // drift moves its response by tens of per cent over the group).
        let (x, y) = (n / 2 - 162, n / 2 + 72);
        let mut model = vec![0.0; n * n];
        model[y * n + x] = 2.0;
        let mut got = vec![Complex32::new(0.0, 0.0); held.uvw.len() * held.vis.n_chan()];
        let pix = [y * n + x];
        held.predict_direct(
            &spec,
            &[&model],
            &pix,
            1.405e9,
            Some(&beam),
            1.0,
            &mut got,
            &crate::compute::Cpu,
        );
        let c = (n / 2) as f64;
        let (l, m) = (
            (c - x as f64) * spec.cell_rad,
            (y as f64 - c) * spec.cell_rad,
        );
        let basis = UvwBasis::new(radec_to_vec(centre.ra_rad, centre.dec_rad), [0.0, 0.0, 1.0]);
        let (sra, sdec) = vec_to_radec(basis.from_lm(l, m));
        let src = [PointSource {
            ra_rad: sra,
            dec_rad: sdec,
            flux_jy: 1.0,
            spectral_index: 0.0,
        }];
        let sky = ModelPredictor::new(&g, &src, &eop, 4.65);
        // The group's mean beam at the pixel, per channel.
        let own = beam.pointings(&g.times_jd);
        let s = basis.from_lm(l, m);
        let (nt, nc) = (g.n_times(), g.n_chan());
        let mean: Vec<f64> = g
            .freqs
            .iter()
            .map(|&f| {
                own.iter()
                    .map(|p| crate::primitives::beam::airy_power(separation(s, *p), f, 4.65))
                    .sum::<f64>()
                    / nt as f64
            })
            .collect();
        // Amplitudes (beam, channel average) and phases (as a position offset: the
        // gridder's geometry and the calibration model's reach the apparent frame by
        // different routes) apart.
        let (mut amp_err, mut offset, mut peak) = (0.0f64, 0.0f64, 0.0f64);
        for (b, &(a1, a2)) in g.baselines.iter().enumerate().filter(|(_, (a, b))| a != b) {
            let d = crate::primitives::astrometry::sub(g.ant_pos[a2], g.ant_pos[a1]);
            let len = crate::primitives::astrometry::dot(d, d).sqrt();
            for t in 0..nt {
                for ch in 0..nc {
                    let want = sky.vis(a1, a2, t, ch) * (2.0 / mean[ch]);
                    let v = got[(b * nt + t) * nc + ch];
                    let v = Complex64::new(v.re as f64, v.im as f64);
                    peak = peak.max(want.norm());
                    amp_err = amp_err.max((v.norm() / want.norm() - 1.0).abs());
                    let lam = crate::primitives::C_M_S / g.freqs[ch];
                    let rad = (v / want).arg().abs() / (std::f64::consts::TAU * len / lam);
                    offset = offset.max(rad.to_degrees() * 3600.0);
                }
            }
        }
        // The model is 2 Jy: the beam ratio B(t) / B_eff reaches 1.39 here (the drift).
        assert!(peak > 2.5, "{peak}");
        // Measured 2.0e-5 and 0.032".
        assert!(amp_err < 6e-5, "amplitude off by {amp_err:e}");
        assert!(
            offset < 0.1,
            "phases as a position offset of {offset} arcsec"
        );
    }
}
