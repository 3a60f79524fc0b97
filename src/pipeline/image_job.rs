//! The image job: one image's groups on this rank collected (read and flagged by the
//! prefetcher, calibrated, optionally written as a Measurement Set, checked, rephased),
//! weighted and gridded, reduced over the ranks that hold the image's groups, and CLEANed;
//! the owner rank then writes the products (products.rs).
//!
//! Every rank takes part in each of the image's collectives in the same order (the density
//! sum, the grid and PSF reductions, CLEAN's major cycles) whatever happened to its groups.

use super::calibration::Tables;
use super::{add_seconds, add_time, prefetch, products, Ctx};
use crate::calibrate::catalog::Calibrator;
use crate::config::Config;
use crate::core::{GroupVis, StokesBuffers};
use crate::flag::FlagSummary;
use crate::imaging::aterm::{DriftBeam, DriftMode};
use crate::imaging::deconvolve::{clean_image, CleanSetup, CleanStart, HeldGroup};
use crate::imaging::GridPair;
use crate::night::{GroupReport, ImageReport, RankReport};
use crate::plan::PlannedGroup;
use std::time::Instant;

/// What the images read besides the run's context: this rank's group reader, the
/// calibration tables, the outliers' catalogue, and the buffers of the last image's held
/// groups, kept for the next image's (with the reader one group ahead, whose buffers as
/// read circulate too: `prefetch::Lent`).
pub(super) struct Inputs {
    pub outliers: Vec<Calibrator>,
    pub groups: prefetch::Groups,
    pub tables: Tables,
    pub spare_held: Vec<StokesBuffers>,
}

/// Buffers of `n` samples for a group's imaging form, when a retired group left some.
fn take_held(spare: &mut Vec<StokesBuffers>, n: usize) -> Option<StokesBuffers> {
    let i = spare
        .iter()
        .position(|(v, w)| v.len() == n && w.len() == n)?;
    Some(spare.swap_remove(i))
}

impl Inputs {
    /// Keeps the buffers of an image's held groups for the next image's groups (only while
    /// the reader reads ahead and hands buffers over, so that reading in line keeps its
    /// smaller memory).
    fn retire(&mut self, held: &mut Vec<HeldGroup>) {
        if self.groups.reads_ahead() {
            self.spare_held
                .extend(held.drain(..).map(HeldGroup::into_buffers));
        } else {
            held.clear();
        }
    }
}

/// This rank's groups in the order the image loop takes them (images not done yet), for
/// the prefetcher.
pub(super) fn jobs(ctx: &Ctx) -> Vec<prefetch::Job> {
    let plan = ctx.plan;
    (0..plan.images.len())
        .filter(|&ii| !plan.image_is_done(ii))
        .flat_map(|ii| ctx.mine(ii))
        .map(|g| prefetch::Job {
            group: g,
            id: plan.groups[g].id.clone(),
            files: plan.groups[g].files.iter().flatten().cloned().collect(),
        })
        .collect()
}

/// The outliers' catalogue (sources outside a tile inside the beam), read once; empty when
/// outliers are off or CLEAN is.
pub(super) fn outlier_catalogue(cfg: &Config) -> Vec<Calibrator> {
    if !(cfg.imaging.outlier_min_beam > 0.0 && cfg.imaging.niter > 0) {
        return Vec::new();
    }
    let path = cfg
        .imaging
        .outlier_catalog
        .as_deref()
        .or(cfg.calibration.calibrator_list.as_deref());
    crate::calibrate::catalog::load_calibrators(path).unwrap_or_else(|e| {
        log::error!("imaging.outlier_catalog: {e}; sources outside the tiles are not subtracted");
        Vec::new()
    })
}

/// Image `ii` on this rank (collective over the ranks of the run). Its owner rank hands
/// the images to `writer`, which writes the products and makes the image's report.
pub(super) fn image(
    ctx: &Ctx,
    ii: usize,
    inputs: &mut Inputs,
    report: &mut RankReport,
    writer: &mut products::Writer,
) {
    let image = &ctx.plan.images[ii];
    let clean_on = ctx.cfg.imaging.niter > 0;
    let (mut held, n_ok, freqs) = collect(ctx, ii, inputs, report);
    let t = Instant::now();
    let grids = grid(ctx, ii, &mut held);
    if !clean_on {
        inputs.retire(&mut held);
    }
    add_time(report, "grid", t);
    let t = Instant::now();
    let r = reduce(ctx, ii, grids, n_ok, freqs);
    add_time(report, "reduce", t);
    let drift = drift_beam(ctx, ii, &held);
    let setup = CleanSetup {
        owner: image.owner,
        distributed: r.distributed,
        spec: &ctx.spec,
        params: &ctx.cfg.imaging,
        max_major: ctx.cfg.imaging.max_major_cycles,
        nterms: if clean_on { ctx.cfg.imaging.nterms } else { 1 },
        ref_hz: ctx.cfg.imaging.spectral_ref_hz,
        beam: drift.as_ref(),
        compute: ctx.compute.as_ref(),
    };
    if ctx.rank() != image.owner {
        if r.distributed && clean_on {
            let t = Instant::now();
            clean_image(ctx.comm, &setup, &mut held, None);
            add_time(report, "clean", t);
        }
        inputs.retire(&mut held);
        return;
    }
    let t = Instant::now();
    let rep = ImageReport {
        name: image.name.clone(),
        products: vec![],
        groups_used: r.n_ok,
        peak_jy: 0.0,
        error: None,
        beam_deg: None,
        clean_iterations: 0,
        major_cycles: 0,
        residual_rms_jy: 0.0,
    };
    let mut images = r.grids.and_then(GridPair::finish_f64);
    // The PSF product and the restoring beam: the centre of CLEAN's 2n x 2n PSF.
    if let (Some((_, psf)), Some(Some(p2))) = (images.as_mut(), r.psfs2.first()) {
        *psf = crate::imaging::clean::central(p2, ctx.spec.n_image);
    }
    let cleaned = if clean_on && (r.distributed || images.is_some()) {
        let tc = Instant::now();
        let start = images
            .clone()
            .filter(|_| r.psfs2.iter().all(Option::is_some))
            .map(|(d, _)| {
                let mut st = CleanStart {
                    residuals: vec![d],
                    psfs: r.psfs2.into_iter().flatten().collect(),
                };
                // Terms 1.. (x^t-weighted dirty images), in order.
                for g in r.spectral {
                    if let Some((it, _)) = g.and_then(GridPair::finish_f64) {
                        st.residuals.push(it);
                    }
                }
                st
            });
        let out = clean_image(ctx.comm, &setup, &mut held, start);
        add_time(report, "clean", tc);
        out
    } else {
        None
    };
    let site = held.first().map(|h| h.vis.site);
    inputs.retire(&mut held);
    add_time(report, "image", t);
    writer.submit(products::Finished {
        ii,
        images,
        cleaned,
        site,
        freqs: r.freqs,
        rep,
    });
}

/// This rank's groups of image `ii`, each read, flagged, calibrated and checked: the groups
/// held for gridding (and CLEAN's major cycles), how many, and their band (lowest, highest
/// frequency). A group that fails is recorded in `report` (once, here) and left out.
fn collect(
    ctx: &Ctx,
    ii: usize,
    inputs: &mut Inputs,
    report: &mut RankReport,
) -> (Vec<HeldGroup>, usize, (f64, f64)) {
    let image = &ctx.plan.images[ii];
    let mut held = Vec::new();
    let mut freqs: (f64, f64) = (f64::INFINITY, 0.0);
    let reported = report.groups.len();
    for gi in ctx.mine(ii) {
        let g = &ctx.plan.groups[gi];
        // Read and flagged in line, or already (one group ahead) by the prefetcher.
        let (loaded, lent) = match inputs.groups.next(gi) {
            Some(r) => {
                add_seconds(report, "convert", r.convert_s);
                add_seconds(report, "flag", r.flag_s);
                (r.result, r.lent)
            }
            None => (Err(prefetch::ReadError::Stopped), Default::default()),
        };
        match prepare(ctx, ii, g, (loaded, lent), inputs, report) {
            Ok(h) => {
                freqs = (
                    freqs.0.min(h.vis.freqs[0]),
                    freqs.1.max(*h.vis.freqs.last().unwrap_or(&0.0)),
                );
                held.push(h);
                log::info!(
                    "rank {}: group {} gridded for image {}",
                    ctx.rank(),
                    g.id,
                    image.name
                );
            }
            Err(failed) => {
                let e = failed.error.as_deref().unwrap_or_default();
                log::error!("rank {}: group {} failed: {e}", ctx.rank(), g.id);
                report.groups.push(*failed);
            }
        }
    }
    for g in &report.groups[reported..] {
        crate::progress::mark(
            &ctx.out,
            ctx.rank(),
            &g.id,
            if g.ok { "gridded" } else { "failed" },
        );
    }
    // Buffers no group of this image took are not kept through its CLEAN.
    inputs.spare_held.clear();
    let n_ok = held.len();
    (held, n_ok, freqs)
}

/// One loaded group made ready to grid: calibrated, written as a Measurement Set when asked,
/// checked for usable data, rephased to the image's centre, its outliers selected. Its
/// report is pushed when it is usable; the failed group's report is the error (boxed: it
/// is large).
fn prepare(
    ctx: &Ctx,
    ii: usize,
    g: &PlannedGroup,
    (loaded, lent): (
        Result<(GroupVis, FlagSummary), prefetch::ReadError>,
        prefetch::Lent,
    ),
    inputs: &mut Inputs,
    report: &mut RankReport,
) -> Result<HeldGroup, Box<GroupReport>> {
    let cfg = ctx.cfg;
    let image = &ctx.plan.images[ii];
    let (mut vis, mut fsum) =
        loaded.map_err(|e| Box::new(GroupReport::failed(&g.id, e.to_string(), None)))?;
    fsum.waterfall.clear();
    let calibrate = cfg.calibration.enabled && cfg.calibration.apply;
    let failed = |e: String, fsum: FlagSummary| Box::new(GroupReport::failed(&g.id, e, Some(fsum)));
    // With a Measurement Set to write, the group is calibrated per polarization first;
    // otherwise the table is applied while Stokes I is formed.
    let mut table = None;
    if calibrate {
        let t = Instant::now();
        let selected = if cfg.output.ms.write {
            inputs.tables.apply(ctx, &g.id, &mut vis)
        } else {
            inputs.tables.select(ctx, &g.id, &vis).map(|x| table = x)
        };
        if let Err(e) = selected {
            return Err(failed(e.to_string(), fsum));
        }
        add_time(report, "calibrate_apply", t);
    }
    if cfg.output.ms.write {
        let t = Instant::now();
        write_ms(ctx, &g.id, &vis, calibrate, report);
        add_time(report, "ms_export", t);
    }
    let n_vis = vis.vis.len();
    let nothing_left = |fsum: FlagSummary| {
        Box::new(GroupReport {
            n_vis,
            flagged_fraction: 1.0,
            ..GroupReport::failed(&g.id, all_flagged(calibrate, &fsum), Some(fsum))
        })
    };
    let mut t = Instant::now();
    let n_stokes = n_vis / vis.npol.max(1);
    let (stokes, flagged) = match table {
        Some((path, table)) => {
            use crate::calibrate::apply::{stokes_i_calibrated, StokesInto};
            let into = if lent.is_open() {
                StokesInto::Buffers(take_held(&mut inputs.spare_held, n_stokes))
            } else {
                StokesInto::OwnBuffer
            };
            let (c, raw, frac) = stokes_i_calibrated(vis, table, into);
            super::calibration::calibrated(ctx, &g.id, path, frac);
            if let Some(raw) = raw {
                lent.give(raw);
            }
            add_time(report, "calibrate_apply", t);
            t = Instant::now();
            (c.stokes, c.flagged)
        }
        None => {
            let flagged = vis.weight.count_flagged();
            if flagged == n_vis {
                return Err(nothing_left(fsum));
            }
            if lent.is_open() {
                let dest = take_held(&mut inputs.spare_held, n_stokes);
                let (stokes, raw) = vis.into_stokes_i_reusing(dest);
                lent.give(raw);
                (stokes, flagged)
            } else {
                (vis.into_stokes_i(), flagged)
            }
        }
    };
    if flagged == n_vis {
        return Err(nothing_left(fsum));
    }
    report.groups.push(GroupReport {
        id: g.id.clone(),
        ok: true,
        error: None,
        n_vis,
        flagged_fraction: flagged as f64 / n_vis.max(1) as f64,
        flags: Some(fsum),
    });
    let mut h = HeldGroup::from_stokes(stokes, image.centre, ctx.eop);
    add_time(report, "rephase_geometry", t);
    let (beyond, total, longest) = h.beyond_grid(&ctx.spec);
    if beyond > 0 {
        // The image's cell cannot hold the longest baselines: say so (once per group) with
        // the cell that would, rather than lose them silently.
        let arcsec = |rad: f64| rad.to_degrees() * 3600.0;
        log::warn!(
            "rank {}: group {}: {beyond} of {total} unflagged samples ({:.2} %; baselines up to {:.1} k lambda) lie beyond the uv grid's edge of a {}\" cell and are left out of the image; a cell of {:.1}\" holds them (3 pixels per fringe of the longest baseline: {:.1}\")",
            ctx.rank(),
            g.id,
            100.0 * beyond as f64 / total.max(1) as f64,
            longest / 1e3,
            cfg.imaging.cell_arcsec,
            (arcsec(ctx.spec.uv_edge_pixfrac() / longest) * 10.0).floor() / 10.0,
            arcsec(1.0 / (3.0 * longest)),
        );
    }
    if !inputs.outliers.is_empty() {
        let t = Instant::now();
        let dish = crate::core::telescope::DISH_DIAMETER_M;
        let found = crate::imaging::outliers::select(
            &inputs.outliers,
            &h.vis,
            &ctx.spec,
            image.centre,
            ctx.eop,
            cfg.imaging.outlier_min_beam,
            dish,
        );
        for o in &found {
            log::info!(
                "rank {}: group {}: outlier {} (mean beam {:.3}, catalogue {:.3} Jy) fitted and subtracted in the major cycles",
                ctx.rank(),
                g.id,
                o.name,
                o.beam,
                o.source.flux_jy
            );
        }
        h.set_outliers(crate::imaging::outliers::OutlierModel::new(
            &h.vis, found, ctx.eop, dish,
        ));
        add_time(report, "outliers", t);
    }
    Ok(h)
}

/// Why a group with every visibility flagged cannot be imaged, and what flagged most.
fn all_flagged(calibrated: bool, fsum: &FlagSummary) -> String {
    format!(
        "every visibility is flagged after flagging{} ({:.1} % unusable in the files, {:.1} % after the flagger; most by {}): nothing to image",
        if calibrated { " and calibration" } else { "" },
        100.0 * fsum.fraction_before,
        100.0 * fsum.fraction_total,
        if fsum.fraction_before >= 0.999 {
            "the files (NaN, zero, flagged or bad nsamples)"
        } else {
            fsum.by_step
                .iter()
                .max_by_key(|s| s.1)
                .map(|s| s.0.as_str())
                .unwrap_or("the files")
        }
    )
}

/// The group as imaged, as a Measurement Set (`output.ms.write`); a failure is recorded in
/// the rank's report, the group is still imaged.
fn write_ms(ctx: &Ctx, id: &str, vis: &GroupVis, calibrated: bool, report: &mut RankReport) {
    let centre = crate::export::group_centre(vis, ctx.eop);
    let history = format!(
        "contimg run: group {id} flagged{}",
        if calibrated { " and calibrated" } else { "" }
    );
    match crate::export::export_group(
        &ctx.out.join("ms"),
        id,
        vis,
        centre,
        ctx.eop,
        &ctx.cfg.output.ms,
        &history,
    ) {
        Ok((p, _)) => log::info!("rank {}: group {id} -> {}", ctx.rank(), p.display()),
        Err(e) => {
            log::error!(
                "rank {}: group {id}: Measurement Set not written: {e}",
                ctx.rank()
            );
            report.ms_errors.push((id.to_string(), e.to_string()));
        }
    }
}

/// This rank's grids of one image: the image and PSF (or the image alone with CLEAN), the
/// x-weighted image of two-term MFS, and CLEAN's PSFs at twice the size.
struct Grids {
    grids: Option<GridPair>,
    spectral: Vec<GridPair>,
    psf_grids: Vec<GridPair>,
}

/// Weights and grids the held groups of image `ii`. Collective when the image is spread
/// over ranks and weighting is not natural (the uv density is summed over the ranks, so
/// that the weights do not depend on the rank count).
fn grid(ctx: &Ctx, ii: usize, held: &mut [HeldGroup]) -> Grids {
    let (cfg, spec) = (ctx.cfg, ctx.spec);
    let image = &ctx.plan.images[ii];
    let clean_on = cfg.imaging.niter > 0;
    let compute = ctx.compute.as_ref();
    let scheme = cfg.imaging.weighting;
    let mut density = Vec::new();
    if scheme != crate::imaging::weighting::Weighting::Natural {
        density = vec![0.0; spec.n_grid * spec.n_grid];
        for h in held.iter() {
            h.add_density(&spec, &mut density);
        }
        if image.needs_reduce(ctx.plan) {
            ctx.comm.all_reduce_sum_f64(&mut density);
        }
    }
    let rw = crate::imaging::weighting::Reweight {
        scheme,
        f2: crate::imaging::weighting::briggs_f2(&density, cfg.imaging.robust),
        density: &density,
        taper_fwhm_rad: (cfg.imaging.taper_gaussian_arcsec / 3600.0).to_radians(),
    };
    if rw.active() {
        for h in held.iter_mut() {
            h.reweight(&spec, &rw);
        }
    }
    if clean_on && cfg.imaging.max_major_cycles > 0 {
        // On a device, each group is copied up once for all of CLEAN's griddings,
        // subtractions and outlier fits, the first included (HeldGroup::hold).
        for h in held.iter_mut() {
            h.hold(&spec, compute);
        }
        let n = held.iter().filter(|h| h.is_held()).count();
        if n > 0 {
            log::debug!("{n} of {} groups held on the device for CLEAN", held.len());
        }
        subtract_outliers(ctx, held);
    }
    // With CLEAN, the PSFs are made at twice the image's size (below), so that the
    // minor cycles may place components anywhere in the image.
    let mut grids: Option<GridPair> = None;
    for h in held.iter_mut() {
        h.grid(
            grids.get_or_insert_with(|| {
                if clean_on {
                    GridPair::without_psf(spec)
                } else {
                    GridPair::new(spec)
                }
            }),
            compute,
        );
    }
    // Multi-term MFS: the x^t-weighted dirty images (t = 1 .. nterms - 1) and the x^k-
    // weighted PSFs (k = 1 .. 2 nterms - 2), on every rank, so that the reductions match.
    let ref_hz = cfg.imaging.spectral_ref_hz;
    let mut spectral: Vec<GridPair> = if clean_on {
        (1..cfg.imaging.nterms)
            .map(|t| GridPair::spectral(spec, ref_hz, Some(t as u8), None))
            .collect()
    } else {
        Vec::new()
    };
    // CLEAN's PSFs (2 nterms - 1 of them) at twice the image's size, 2n x 2n.
    let spec2 = if cfg.imaging.psf_w_terms {
        spec.doubled()
    } else {
        spec.doubled().flat()
    };
    let mut psf_grids: Vec<GridPair> = if clean_on {
        (0..2 * cfg.imaging.nterms - 1)
            .map(|k| {
                if k == 0 {
                    GridPair {
                        with_dirty: false,
                        ..GridPair::new(spec2)
                    }
                } else {
                    GridPair::spectral(spec2, ref_hz, None, Some(k as u8))
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    for h in held.iter_mut() {
        for g in spectral.iter_mut().chain(psf_grids.iter_mut()) {
            h.grid(g, compute);
        }
    }
    Grids {
        grids,
        spectral,
        psf_grids,
    }
}

/// The outliers of each held group (sources outside the tile, `prepare`) fitted to its
/// visibilities with the imaging weights and subtracted before the dirty image is gridded,
/// so that CLEAN starts from residuals without them and no major cycle is spent on it
/// (each major cycle then refits them). Left in, their sidelobes across the tile took CLEAN
/// components in the first minor cycle, which the later fits then balanced (a 5 Jy outlier
/// alone, noiseless: fitted 7.1 % low after a 200-component CLEAN, 0.5 % from the raw
/// data). On the device where the group is held there (`HeldGroup::fit_outliers`). Local
/// to the rank: no collective.
fn subtract_outliers(ctx: &Ctx, held: &mut [HeldGroup]) {
    if held.iter().all(|h| h.outliers.is_none()) {
        return;
    }
    let t = Instant::now();
    for h in held.iter_mut() {
        h.fit_outliers(ctx.compute.as_ref());
    }
    log::debug!(
        "rank {}: outliers fitted to the raw visibilities and subtracted in {:.2} s",
        ctx.rank(),
        t.elapsed().as_secs_f64()
    );
}

/// One image's grids where its owner transforms them: the reduced image and PSF (None on
/// the other ranks), the groups used over every rank and the band, the spectral image and
/// CLEAN's PSFs.
struct Reduced {
    grids: Option<GridPair>,
    n_ok: usize,
    freqs: (f64, f64),
    spectral: Vec<Option<GridPair>>,
    psfs2: Vec<Option<Vec<f64>>>,
    distributed: bool,
}

/// Reduces the grids of image `ii` to its owner when the image is spread over ranks
/// (collective there): the image and weight sum plus the number of groups used (summed),
/// each rank's band (gathered), then the spectral image and the PSFs.
fn reduce(ctx: &Ctx, ii: usize, g: Grids, n_ok: usize, freqs: (f64, f64)) -> Reduced {
    let (comm, spec) = (ctx.comm, ctx.spec);
    let image = &ctx.plan.images[ii];
    let distributed = image.needs_reduce(ctx.plan);
    let (grids, n_ok, freqs) = if distributed {
        let mut buf = match &g.grids {
            Some(g) => g.to_buffer(),
            None => vec![0.0; GridPair::buffer_len(&spec)],
        };
        buf.push(n_ok as f64);
        comm.reduce_sum_f64(image.owner, &mut buf);
        // Frequency range: every rank sends its own; owner takes min/max.
        let f = comm.gather_bytes(image.owner, &serde_json::to_vec(&freqs).expect("f64 pair"));
        if comm.rank() == image.owner {
            let n = buf.pop().unwrap_or(0.0) as usize;
            let ranges: Vec<(f64, f64)> = f
                .unwrap_or_default()
                .iter()
                .filter_map(|b| serde_json::from_slice(b).ok())
                .collect();
            let fr = ranges
                .iter()
                .fold((f64::INFINITY, 0.0f64), |a, r| (a.0.min(r.0), a.1.max(r.1)));
            (Some(GridPair::from_buffer(spec, &buf)), n, fr)
        } else {
            (None, 0, freqs)
        }
    } else {
        (g.grids, n_ok, freqs)
    };
    let to_owner = |g: GridPair| {
        if distributed {
            g.reduce_to(comm, image.owner)
        } else {
            Some(g)
        }
    };
    let spectral: Vec<Option<GridPair>> = g.spectral.into_iter().map(to_owner).collect();
    let psfs2: Vec<Option<Vec<f64>>> = g
        .psf_grids
        .into_iter()
        .map(to_owner)
        .map(|g| g.and_then(GridPair::finish_f64).map(|x| x.1))
        .collect();
    Reduced {
        grids,
        n_ok,
        freqs,
        spectral,
        psfs2,
        distributed,
    }
}

/// The drifting beam for CLEAN's major cycles, from the plan's times of every group of
/// image `ii` (the same on every rank) and this rank's own data's band; None without CLEAN,
/// with `imaging.drift_beam: off`, or without a group here. With chunks of 0 integrations
/// (the default) only the direct prediction follows it (exactly); the degridding follows
/// it per `imaging.drift_beam`.
fn drift_beam<'a>(ctx: &Ctx<'a>, ii: usize, held: &[HeldGroup]) -> Option<DriftBeam<'a>> {
    let cfg = ctx.cfg;
    let image = &ctx.plan.images[ii];
    let h = held.first()?;
    if cfg.imaging.niter == 0 || cfg.imaging.drift_beam == DriftMode::Off {
        return None;
    }
    let times: Vec<Vec<f64>> = image
        .groups
        .iter()
        .map(|&g| ctx.plan.groups[g].times_jd.clone())
        .collect();
    Some(DriftBeam::new(
        ctx.spec,
        image.centre,
        ctx.eop,
        h.vis.site,
        h.vis.pointing_dec_rad,
        h.vis.freqs.clone(),
        crate::core::telescope::DISH_DIAMETER_M,
        cfg.imaging.drift_beam,
        cfg.imaging.drift_beam_chunk,
        cfg.imaging.spectral_ref_hz,
        &times,
    ))
}
