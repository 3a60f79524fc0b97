//! A group held in memory for CLEAN's major cycles: its geometry toward the image centre,
//! the model's prediction (degridded, or a direct sum over the model's pixels through the
//! drifting beam), the subtraction, the outliers' refit and the residuals' gridding.

use super::aterm::{chunks, DriftBeam};
use super::deconvolve::{direct_is_cheaper, PredictMode};
use super::degridder::{degrid_subtract_with, degrid_sum_with, Weights};
use super::gridder::{GridPair, GridSpec, VisBlock};
use super::outliers::OutlierModel;
use crate::compute::dft::{DftBlock, Point};
use crate::compute::{Compute, Cpu, GpuError, Resident};
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
    /// The samples held in the backend's memory for the major cycles (`hold`), and the
    /// spectral-term models subtracted there since: while held, `vis` is the group as it
    /// was when held and the held copy is the residual.
    resident: Option<Box<dyn Resident>>,
    pending: Vec<Vec<f64>>,
    /// The outliers' increments subtracted from the held copy since (their coefficients,
    /// summed: the model is linear in them).
    pending_outliers: Vec<f64>,
    /// Whether `reweight` has run (the group's imaging weights are set).
    reweighted: bool,
}

/// How model increments are predicted for a held group (the image's grid, reference
/// frequency, drifting beam and prediction mode; CLEAN's setup).
#[derive(Clone, Copy)]
pub struct Prediction<'a> {
    pub spec: &'a GridSpec,
    pub ref_hz: f64,
    pub beam: Option<&'a DriftBeam<'a>>,
    pub mode: PredictMode,
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
            resident: None,
            pending: Vec::new(),
            pending_outliers: Vec::new(),
            reweighted: false,
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
    /// without outliers), on the host. Not while held (see `fit_outliers`).
    pub fn refit_outliers(&mut self) {
        debug_assert!(
            self.resident.is_none(),
            "the host copy of a held group is not current"
        );
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
            resident: self.resident.as_deref(),
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
        debug_assert!(
            self.resident.is_none(),
            "weights set before the group is held"
        );
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
        self.reweighted = true;
    }

    /// Whether `reweight` has run (by the group reader, for an image it weights alone).
    pub fn is_reweighted(&self) -> bool {
        self.reweighted
    }

    /// Grids this group into `grids` on `compute` (before CLEAN). A failure falls back to
    /// the CPU with the host copy; where the held copy has the outliers' first fit
    /// subtracted and the host copy not, the held copy is given up first and the host copy
    /// brought up to date.
    pub fn grid(&mut self, grids: &mut GridPair, compute: &dyn Compute) {
        debug_assert!(self.pending.is_empty(), "no CLEAN model before CLEAN");
        if self.resident.is_some() && !self.pending_outliers.is_empty() {
            match grids.try_add(&self.block(), compute) {
                Ok(()) => return,
                Err(e) => self.give_up_held(None, &e),
            }
        }
        grids.add_with(&self.block(), compute);
    }

    /// Holds this group's samples in `compute`'s own memory for CLEAN's major cycles
    /// (`Compute::hold`): the re-griddings then read them there and the model increments
    /// are subtracted there, and the outliers fitted there (`fit_outliers`,
    /// `refit_outliers_held`), so the group does not cross the bus again. Only on a device,
    /// with the w-term (`spec`), and where the device has room.
    /// A group already held ahead (`hold_ahead`) is adopted (`adopt`).
    pub fn hold(&mut self, spec: &GridSpec, compute: &dyn Compute) {
        if self.resident.is_some() {
            self.adopt(compute);
        } else if compute.is_device() && spec.w_terms {
            self.hold_now(compute);
        }
    }

    /// A copy held ahead (`hold_ahead`) counts as the image loop's from now on
    /// (`Compute::adopt`; on the loop's thread, between its passes, as it takes the group).
    pub fn adopt(&self, compute: &dyn Compute) {
        if let Some(r) = &self.resident {
            compute.adopt(r.as_ref());
        }
    }

    /// `hold` from the group reader's thread, ahead of the image loop
    /// (`Compute::hold_ahead`): the group crosses the bus while the loop images the one
    /// before. Only for a group whose samples the loop holds as they are (its weights
    /// final: natural, or set by the reader); the loop then adopts the copy (`adopt`).
    /// Whether the group is held.
    pub fn hold_ahead(&mut self, spec: &GridSpec, compute: &dyn Compute) -> bool {
        if compute.is_device() && spec.w_terms && self.resident.is_none() {
            self.resident = compute.hold_ahead(&self.block()).unwrap_or_else(|e| {
                log::warn!(
                    "holding a group on {} ahead of the image loop failed ({e}); the loop holds it",
                    compute.name()
                );
                None
            });
        }
        self.resident.is_some()
    }

    fn hold_now(&mut self, compute: &dyn Compute) {
        self.resident = None;
        self.pending.clear();
        self.pending_outliers.clear();
        self.resident = match compute.hold(&self.block()) {
            Ok(r) => r,
            Err(e) => {
                log::warn!(
                    "holding a group on {} failed ({e}); its major cycles copy it in",
                    compute.name()
                );
                None
            }
        };
    }

    /// The outliers' first fit, before the dirty image is gridded (`refit_outliers`, on the
    /// held copy where there is one: see `refit_outliers_held`).
    pub fn fit_outliers(&mut self, compute: &dyn Compute) {
        debug_assert!(
            self.pending.is_empty(),
            "no CLEAN model before the first fit"
        );
        self.refit_outliers_on(None, compute);
    }

    /// `refit_outliers` in CLEAN's major cycles on a held group.
    pub(super) fn refit_outliers_held(&mut self, p: Prediction, compute: &dyn Compute) {
        self.refit_outliers_on(Some(p), compute);
    }

    /// The outliers refitted on the backend that holds the group (`OutlierModel::fit_held`:
    /// the normal matrix at the first fit and the right side at every fit summed there,
    /// solved here, the increment subtracted there), or on the host copy where there is
    /// none. A backend failure gives the held copy up (the host copy brought up to date,
    /// `give_up_held`) and the host refits.
    fn refit_outliers_on(&mut self, p: Option<Prediction>, compute: &dyn Compute) {
        let Some(m) = self.outliers.as_mut() else {
            return;
        };
        let Some(r) = self.resident.as_deref() else {
            self.refit_outliers();
            return;
        };
        match m.fit_held(&self.vis, &self.use_row, compute, r) {
            Ok(delta) => {
                let acc = &mut self.pending_outliers;
                acc.resize(delta.len().max(acc.len()), 0.0);
                acc.iter_mut().zip(&delta).for_each(|(a, d)| *a += d);
                log::debug!("outliers refitted on the device");
            }
            Err(e) => {
                self.give_up_held(p, &e);
                self.refit_outliers();
            }
        }
    }

    /// Whether the group's samples are held in a backend's memory.
    pub fn is_held(&self) -> bool {
        self.resident.is_some()
    }

    /// Gives up the held copy after a backend failure: `vis` is brought up to date by
    /// subtracting again, on the CPU, the models subtracted on the backend since the group
    /// was held (its copy may have lost part of a prediction, so it is not fetched).
    /// `p`: how CLEAN predicts (None before CLEAN, when no model has been subtracted).
    fn give_up_held(&mut self, p: Option<Prediction>, why: &GpuError) {
        self.resident = None;
        let pending = std::mem::take(&mut self.pending);
        log::warn!("a group held on the device is given up ({why}); its model so far is subtracted again on the CPU");
        if pending.iter().any(|m| m.iter().any(|&x| x != 0.0)) {
            match p {
                Some(p) => self.subtract(p, &pending, &Cpu, &Workspace::new()),
                None => debug_assert!(false, "a CLEAN model pending before CLEAN"),
            }
        }
        let outliers = std::mem::take(&mut self.pending_outliers);
        if let Some(m) = self
            .outliers
            .as_ref()
            .filter(|_| outliers.iter().any(|&x| x != 0.0))
        {
            m.subtract_increment(&mut self.vis, &self.use_row, &outliers);
        }
    }

    /// Grids the residual visibilities into `grids` (CLEAN's re-gridding), from the held
    /// copy where there is one; a backend failure there gives the copy up and grids the
    /// group's brought-up-to-date visibilities instead.
    pub(super) fn grid_residuals(
        &mut self,
        grids: &mut [GridPair],
        p: Prediction,
        compute: &dyn Compute,
        ws: &Workspace,
    ) {
        if self.resident.is_some() {
            let b = VisBlock {
                workspace: Some(ws),
                ..self.block()
            };
            match GridPair::try_add_all(grids, &b, compute) {
                Ok(()) => return,
                Err(e) => self.give_up_held(Some(p), &e),
            }
        }
        let b = VisBlock {
            workspace: Some(ws),
            ..self.block()
        };
        GridPair::add_all_with(grids, &b, compute);
    }

    /// Subtracts the model's visibilities (Stokes I, both polarizations): sum over the
    /// spectral terms of x^t times term t's prediction, x = (nu - ref_hz) / ref_hz; with a
    /// drifting beam, each chunk of integrations is predicted from the model it saw (or, with
    /// the polynomial schemes, the beam a polynomial in time), the beam linear in frequency.
    /// Where the group is held (`hold`), the prediction is subtracted from the held copy
    /// and the models are kept to subtract again should that copy be lost.
    pub(super) fn subtract(
        &mut self,
        p: Prediction,
        models: &[Vec<f64>],
        compute: &dyn Compute,
        ws: &Workspace,
    ) {
        let (spec, ref_hz, beam, mode) = (p.spec, p.ref_hz, p.beam, p.mode);
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
        let held = self
            .resident
            .as_deref()
            .map(|r| self.subtract_held(r, spec, &refs, &pix, direct, ref_hz, beam, compute, ws));
        match held {
            Some(Ok(())) => {
                self.pending
                    .resize(models.len().max(self.pending.len()), Vec::new());
                for (acc, m) in self.pending.iter_mut().zip(models) {
                    if acc.is_empty() {
                        acc.resize(m.len(), 0.0);
                    }
                    acc.iter_mut().zip(m).for_each(|(a, x)| *a += x);
                }
                log::debug!(
                    "predicted {n_points} model pixels {} and subtracted on the device in {:.2} s",
                    if direct { "directly" } else { "by degridding" },
                    t0.elapsed().as_secs_f64()
                );
                return;
            }
            Some(Err(e)) => self.give_up_held(Some(p), &e),
            None => {}
        }
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

    /// The prediction subtracted from the held copy `r`, predicted there (directly, or by
    /// degridding).
    #[allow(clippy::too_many_arguments)]
    fn subtract_held(
        &self,
        r: &dyn Resident,
        spec: &GridSpec,
        refs: &[&[f64]],
        pix: &[usize],
        direct: bool,
        ref_hz: f64,
        beam: Option<&DriftBeam>,
        compute: &dyn Compute,
        ws: &Workspace,
    ) -> Result<(), GpuError> {
        if direct {
            return self.direct_batches(spec, refs, pix, ref_hz, beam, 1.0, |b, p, a| {
                compute.predict_points_subtract(r, b, p, a)
            });
        }
        let dnu = self.vis.channel_width_hz.abs();
        self.predict_with(refs, ref_hz, beam, Some(ws), |refs, weights, b| {
            degrid_channel_average_subtract(spec, refs, weights, b, dnu, compute)
        })
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
        let done = self.direct_batches(spec, models, pix, ref_hz, beam, sign, |b, p, a| {
            crate::compute::or_cpu(compute, "direct prediction", |c, _| {
                c.predict_points(b, p, a, out)
            });
            Ok(())
        });
        debug_assert!(done.is_ok(), "the host prediction does not fail");
    }

    /// `predict_direct`'s batches of components (the block, the components' directions,
    /// their amplitude table) handed to `emit` in turn; the first error stops them.
    #[allow(clippy::too_many_arguments)]
    fn direct_batches(
        &self,
        spec: &GridSpec,
        models: &[&[f64]],
        pix: &[usize],
        ref_hz: f64,
        beam: Option<&DriftBeam>,
        sign: f64,
        mut emit: impl FnMut(&DftBlock, &[Point], &[f32]) -> Result<(), GpuError>,
    ) -> Result<(), GpuError> {
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
            emit(&block, &points, &amp)?;
        }
        Ok(())
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
        let nc = self.vis.n_chan();
        let mut out: Vec<Complex32> = Vec::new();
        let done = self.predict_with(models, ref_hz, beam, ws, |refs, weights, b| {
            let part = degrid_channel_average_sum(spec, refs, weights, b, dnu, compute);
            if out.is_empty() {
                out = part;
            } else {
                // A chunk of integrations (its rows in use) after the first.
                for (row, &u) in b.use_row.iter().enumerate() {
                    if u {
                        out[row * nc..(row + 1) * nc]
                            .copy_from_slice(&part[row * nc..(row + 1) * nc]);
                    }
                }
            }
            Ok(())
        });
        debug_assert!(done.is_ok(), "the host prediction does not fail");
        if out.is_empty() {
            out = vec![Complex32::new(0.0, 0.0); self.uvw.len() * nc];
        }
        out
    }

    /// `predict`'s degridding passes, each handed to `emit` as (models, their weights, the
    /// block restricted to the pass's rows): the first error stops them.
    fn predict_with(
        &self,
        models: &[&[f64]],
        ref_hz: f64,
        beam: Option<&DriftBeam>,
        ws: Option<&Workspace>,
        mut emit: impl FnMut(&[&[f64]], &[Weights], &VisBlock) -> Result<(), GpuError>,
    ) -> Result<(), GpuError> {
        let block = VisBlock {
            workspace: ws,
            ..self.block()
        };
        let nt = self.vis.n_times();
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
                emit(models, &plain, &block)
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
                emit(&refs, &weights, &block)
            }
            Some(db) => {
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
                    emit(&refs, &weights, &b)?;
                }
                Ok(())
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
    let mut out: Option<Vec<Complex32>> = None;
    for d in channel_nodes(dnu) {
        let p = at_node(b, d, |node| {
            degrid_sum_with(spec, models, weights, node, compute)
        });
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

/// `degrid_channel_average_sum`'s prediction subtracted from the visibilities the block's
/// backend holds (`degridder::degrid_subtract_with`): each node's prediction as it comes,
/// at half weight where there are two.
pub fn degrid_channel_average_subtract(
    spec: &GridSpec,
    models: &[&[f64]],
    weights: &[Weights],
    b: &VisBlock,
    dnu: f64,
    compute: &dyn Compute,
) -> Result<(), GpuError> {
    let nodes = channel_nodes(dnu);
    let scale = 1.0 / nodes.len() as f32;
    for d in nodes {
        at_node(b, d, |node| {
            degrid_subtract_with(spec, models, weights, node, compute, scale)
        })?;
    }
    Ok(())
}

/// The frequency offsets (Hz) at which a channel of width `dnu` is averaged: the two
/// Gauss-Legendre nodes, or the centre alone without a width.
fn channel_nodes(dnu: f64) -> Vec<f64> {
    if dnu <= 0.0 {
        return vec![0.0];
    }
    let h = dnu / (2.0 * 3f64.sqrt());
    vec![-h, h]
}

/// `f` of the block with its channels moved by `d` Hz.
fn at_node<R>(b: &VisBlock, d: f64, f: impl FnOnce(&VisBlock) -> R) -> R {
    if d == 0.0 {
        return f(b);
    }
    let freqs: Vec<f64> = b.freqs.iter().map(|x| x + d).collect();
    f(&VisBlock {
        freqs: &freqs,
        ..*b
    })
}

#[cfg(test)]
#[path = "held_tests.rs"]
mod tests;
