//! The image job: one image's groups on this rank collected (read, flagged, calibrated,
//! optionally written as a Measurement Set, checked and rephased by the reader one group
//! ahead: prefetch.rs, prepare.rs), weighted and gridded, reduced over the ranks that
//! hold the image's groups, and CLEANed; the owner rank then writes the products
//! (products.rs).
//!
//! Every rank takes part in each of the image's collectives in the same order (the density
//! sum, the grid and PSF reductions, CLEAN's major cycles) whatever happened to its groups.

use super::{add_seconds, add_time, prefetch, prepare, products, Ctx};
use crate::imaging::aterm::{DriftBeam, DriftMode};
use crate::imaging::deconvolve::{clean_image, CleanSetup, CleanStart, HeldGroup};
use crate::imaging::weighting::{Reweight, Weighting};
use crate::imaging::GridPair;
use crate::night::{GroupReport, ImageReport, RankReport};
use std::time::Instant;

/// What the images read besides the run's context: this rank's groups, read, flagged and
/// made ready to grid one group ahead (`prepare.rs`), and the pool through which an
/// image's held groups' buffers go back to that reader for the next image's groups.
pub(super) struct Inputs {
    pub groups: prepare::Groups,
    pub pool: prepare::HeldPool,
}

impl Inputs {
    /// Gives the buffers of image `ii`'s held groups back for the next groups (only while
    /// the reader reads ahead, so that reading in line keeps its smaller memory; at most as
    /// many as this rank has groups in the next image it has any of: the first of them is
    /// made ready already, and one is kept for the image after, whose first group is made
    /// ready while that one is CLEANed).
    fn retire(&mut self, ctx: &Ctx, ii: usize, held: &mut Vec<HeldGroup>) {
        let plan = ctx.plan;
        let next = (ii + 1..plan.images.len())
            .filter(|&j| !plan.image_is_done(j))
            .map(|j| ctx.mine(j).len())
            .find(|&n| n > 0);
        match next {
            Some(n) if self.groups.reads_ahead() => self
                .pool
                .give(held.drain(..).map(HeldGroup::into_buffers), n),
            _ => held.clear(),
        }
    }
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
        inputs.retire(ctx, ii, &mut held);
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
        inputs.retire(ctx, ii, &mut held);
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
    inputs.retire(ctx, ii, &mut held);
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
        // Read, flagged and made ready in line, or already (one group ahead) by the reader:
        // then the loop's wait for it is timed (`wait_for_group`: the reader not keeping
        // up with the loop).
        let t = Instant::now();
        let next = inputs.groups.next(gi);
        if inputs.groups.reads_ahead() {
            add_time(report, "wait_for_group", t);
        }
        let result = match next {
            Some(r) => {
                add_seconds(report, "convert", r.convert_s);
                add_seconds(report, "flag", r.flag_s);
                for (stage, s) in r.out.notes.seconds {
                    add_seconds(report, stage, s);
                }
                report.ms_errors.extend(r.out.notes.ms_error);
                r.out.result
            }
            None => {
                let e = prefetch::ReadError::Stopped.to_string();
                Err(Box::new(GroupReport::failed(&g.id, e, None)))
            }
        };
        match result {
            Ok((h, rep)) => {
                // A copy the reader made on the device is the loop's from here.
                h.adopt(ctx.compute.as_ref());
                report.groups.push(rep);
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
    let n_ok = held.len();
    (held, n_ok, freqs)
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
/// that the weights do not depend on the rank count). The groups of an image the reader
/// could weight alone come weighted (`prepare::reader_weights`: with a density, never an
/// image spread over ranks, so whether the density is summed stays the plan's choice, the
/// same on every rank).
fn grid(ctx: &Ctx, ii: usize, held: &mut [HeldGroup]) -> Grids {
    let (cfg, spec) = (ctx.cfg, ctx.spec);
    let image = &ctx.plan.images[ii];
    let clean_on = cfg.imaging.niter > 0;
    let compute = ctx.compute.as_ref();
    let distributed = image.needs_reduce(ctx.plan);
    let unweighted = held.iter().any(|h| !h.is_reweighted());
    let mut density = Vec::new();
    if cfg.imaging.weighting != Weighting::Natural && (distributed || unweighted) {
        debug_assert!(
            !held.iter().any(HeldGroup::is_reweighted),
            "the density is of the data's own weights"
        );
        density = vec![0.0; spec.n_grid * spec.n_grid];
        for h in held.iter() {
            h.add_density(&spec, &mut density);
        }
        if distributed {
            ctx.comm.all_reduce_sum_f64(&mut density);
        }
    }
    let rw = Reweight::of(&cfg.imaging, &density);
    if rw.active() {
        for h in held.iter_mut().filter(|h| !h.is_reweighted()) {
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
