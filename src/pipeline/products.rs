//! An image's products on its owner rank: the dirty image and PSF, and with CLEAN the
//! model, residual and restored images, the primary beam and the pb-corrected image (down
//! to `imaging.pblimit`), each a FITS file with the image's headers; then the done marker
//! that lets a rerun skip the image (resume).
//!
//! They are made and written behind the image loop (`Writer`): on a thread of their own,
//! one image at a time, while the loop goes on with the next image's groups, so that the
//! restoring, the primary beam and the disk do not keep the rank's device (or its
//! collectives) waiting. No collective is made there.

use super::Ctx;
use crate::config::Config;
use crate::imaging::clean::Beam;
use crate::imaging::deconvolve::CleanOutcome;
use crate::imaging::GridSpec;
use crate::night::ImageReport;
use crate::plan::Plan;
use crate::primitives::astrometry::Site;
use crate::primitives::iers::EarthOrientation;
use crate::primitives::time::jd_to_iso;
use crate::products::{write_fits_image, ImageMeta};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Instant;

/// What writing an image's products reads of the run (the part of `Ctx` another thread
/// may share: no communicator).
pub(super) struct Shared<'a> {
    cfg: &'a Config,
    plan: &'a Plan,
    eop: &'a EarthOrientation,
    spec: GridSpec,
    images_dir: PathBuf,
}

impl<'a> Shared<'a> {
    pub(super) fn of(ctx: &Ctx<'a>) -> Self {
        Shared {
            cfg: ctx.cfg,
            plan: ctx.plan,
            eop: ctx.eop,
            spec: ctx.spec,
            images_dir: ctx.images_dir.clone(),
        }
    }
}

/// An image handed to the writer: its (dirty, psf) images (None: no group could be
/// gridded), CLEAN's outcome, the array's site, the band, and its report so far.
pub(super) struct Finished {
    pub ii: usize,
    pub images: Option<(Vec<f64>, Vec<f64>)>,
    pub cleaned: Option<CleanOutcome>,
    pub site: Option<Site>,
    pub freqs: (f64, f64),
    pub rep: ImageReport,
}

/// The thread that writes the owner's images' products in plan order. `submit` waits
/// while it is still writing the previous image, so at most one image's products are
/// held beside the loop's work.
pub(super) struct Writer<'scope> {
    tx: mpsc::SyncSender<Finished>,
    handle: ScopedJoinHandle<'scope, (Vec<ImageReport>, f64)>,
    /// The images handed over, for their reports should the thread die.
    names: Vec<String>,
}

impl<'scope> Writer<'scope> {
    pub(super) fn start<'env>(s: &'scope Scope<'scope, 'env>, shared: Shared<'env>) -> Self {
        let (tx, rx) = mpsc::sync_channel::<Finished>(0);
        let handle = std::thread::Builder::new()
            .name("products".into())
            .spawn_scoped(s, move || {
                let (mut reps, mut secs) = (Vec::new(), 0.0);
                for f in rx {
                    let t = Instant::now();
                    reps.push(finish(&shared, f));
                    secs += t.elapsed().as_secs_f64();
                }
                (reps, secs)
            })
            .expect("the products thread starts");
        Writer {
            tx,
            handle,
            names: Vec::new(),
        }
    }

    /// Hands an image over (waiting while the previous one is written).
    pub(super) fn submit(&mut self, f: Finished) {
        self.names.push(f.rep.name.clone());
        if let Err(mpsc::SendError(f)) = self.tx.send(f) {
            // The thread is gone (it panicked): the join below reports its images.
            drop(f);
        }
    }

    /// Waits for the last image's products: every image's report in plan order, and the
    /// seconds spent making and writing them.
    pub(super) fn finish(self) -> (Vec<ImageReport>, f64) {
        drop(self.tx);
        match self.handle.join() {
            Ok(done) => done,
            Err(_) => {
                log::error!("the products thread stopped; images without a report are failed");
                let reps = self
                    .names
                    .into_iter()
                    .map(|name| ImageReport {
                        name,
                        error: Some(
                            "its products were not written (the products thread stopped)".into(),
                        ),
                        ..Default::default()
                    })
                    .collect();
                (reps, 0.0)
            }
        }
    }
}

/// Writes one finished image's products (or records why there are none) and logs it.
fn finish(ctx: &Shared, f: Finished) -> ImageReport {
    let Finished {
        ii,
        images,
        cleaned,
        site,
        freqs,
        mut rep,
    } = f;
    if let Some(s) = &site {
        crate::products::set_obsgeo(s.ecef);
    }
    match images {
        None => rep.error = Some("no group of this image could be gridded".into()),
        Some(images) => write(ctx, ii, images, cleaned, site, freqs, &mut rep),
    }
    let n = ctx.plan.images.len();
    match &rep.error {
        None => log::info!("image {} ({}/{n}) done", rep.name, ii + 1),
        Some(e) => log::error!("image {} ({}/{n}) failed: {e}", rep.name, ii + 1),
    }
    rep
}

/// Provenance in every FITS of the run: the version and the settings that shape the images.
pub(super) fn set_provenance(cfg: &Config) {
    fn section<T: Serialize>(v: &T) -> serde_json::Value {
        serde_json::to_value(v).expect("settings serialise")
    }
    crate::products::set_provenance(crate::products::Provenance {
        obsgeo_m: None,
        history: crate::products::settings_history(&[
            ("imaging", section(&cfg.imaging)),
            ("flagging", section(&cfg.flagging)),
            ("calibration", section(&cfg.calibration)),
            ("astrometry", section(&cfg.astrometry)),
            ("input", section(&cfg.input)),
        ]),
    });
}

/// Writes image `ii`'s products from its (dirty, psf) images and CLEAN's outcome into
/// `<output>/images`, recording them (or the first failure) in `rep`; then its done marker
/// when the image is complete. `site` is the array's (None: no group of it on this rank),
/// `freqs` the band (lowest, highest channel frequency).
fn write(
    ctx: &Shared,
    ii: usize,
    (dirty, psf): (Vec<f64>, Vec<f64>),
    cleaned: Option<CleanOutcome>,
    site: Option<Site>,
    freqs: (f64, f64),
    rep: &mut ImageReport,
) {
    let (cfg, spec) = (ctx.cfg, &ctx.spec);
    let image = &ctx.plan.images[ii];
    rep.peak_jy = dirty.iter().fold(0f64, |a, &b| a.max(b));
    let beam = crate::imaging::clean::fit_beam(&psf, spec.n_image);
    let cell = cfg.imaging.cell_arcsec / 3600.0;
    rep.beam_deg = Some([beam.major_px * cell, beam.minor_px * cell, beam.pa_deg]);
    let mut products: Vec<(&str, Vec<f64>, &'static str)> =
        vec![("dirty", dirty, "JY/BEAM"), ("psf", psf, "")];
    let mfs_hz = cleaned.as_ref().and_then(|c| c.mfs_hz);
    if let Some(c) = cleaned {
        rep.clean_iterations = c.iterations;
        rep.major_cycles = c.major_cycles;
        let restored = crate::imaging::clean::restore(&c.model, &c.residual, spec.n_image, &beam);
        rep.residual_rms_jy = crate::primitives::stats::median_and_mad_sigma(&c.residual)
            .map(|x| x.1)
            .unwrap_or(0.0);
        if let Some(site) = site {
            let (pb, pbcor) = pb_corrected(ctx, ii, &restored, &site, freqs);
            products.push(("pb", pb, ""));
            products.push(("pbcor", pbcor, "JY/BEAM"));
        }
        products.push(("model", c.model, "JY/PIXEL"));
        products.push(("residual", c.residual, "JY/BEAM"));
        products.push(("restored", restored, "JY/BEAM"));
    }
    for (kind, data, unit) in &products {
        let path = ctx.images_dir.join(format!("{}.{kind}.fits", image.name));
        let data32: Vec<f32> = data.iter().map(|&x| x as f32).collect();
        let meta = meta(ctx, ii, unit, &beam, freqs, mfs_hz, rep.groups_used);
        match write_fits_image(&path, spec.n_image, &data32, &meta) {
            Ok(()) => rep.products.push(path),
            Err(e) => {
                rep.error = Some(e.to_string());
                break; // the image failed: no later products (the disk is full or read-only)
            }
        }
    }
    done_marker(ctx, ii, rep);
}

/// The primary beam over image `ii` (averaged over its groups' times and 8 frequencies
/// across the band) and the restored image divided by it, NaN below `imaging.pblimit`.
fn pb_corrected(
    ctx: &Shared,
    ii: usize,
    restored: &[f64],
    site: &Site,
    freqs: (f64, f64),
) -> (Vec<f64>, Vec<f64>) {
    let (plan, image) = (ctx.plan, &ctx.plan.images[ii]);
    let first_g = &plan.groups[image.groups[0]];
    let times: Vec<f64> = image
        .groups
        .iter()
        .flat_map(|&g| plan.groups[g].times_jd.clone())
        .collect();
    let fr: Vec<f64> = (0..8)
        .map(|k| freqs.0 + (freqs.1 - freqs.0) * k as f64 / 7.0)
        .collect();
    let pb = crate::imaging::pb::primary_beam(
        &ctx.spec,
        image.centre,
        &times,
        first_g.pointing_dec_rad,
        site,
        ctx.eop,
        &fr,
        crate::core::telescope::DISH_DIAMETER_M,
    );
    let pblimit = ctx.cfg.imaging.pblimit;
    let pbcor: Vec<f64> = restored
        .iter()
        .zip(&pb)
        .map(|(r, p)| if *p >= pblimit { r / p } else { f64::NAN })
        .collect();
    (pb, pbcor)
}

/// The FITS headers of image `ii`'s products: centre, cell, band, date of its first group,
/// restoring beam, and the imaging settings in HISTORY. The frequency is the imaging-
/// weighted mean of the band where CLEAN measured it (`mfs_hz`, multi-term), else the
/// band's centre.
fn meta(
    ctx: &Shared,
    ii: usize,
    bunit: &'static str,
    beam: &Beam,
    freqs: (f64, f64),
    mfs_hz: Option<f64>,
    n_ok: usize,
) -> ImageMeta {
    let (cfg, plan) = (ctx.cfg, ctx.plan);
    let image = &plan.images[ii];
    let first = &plan.groups[image.groups[0]];
    let cell = cfg.imaging.cell_arcsec / 3600.0;
    let im = &cfg.imaging;
    ImageMeta {
        ra_deg: image.centre.ra_rad.to_degrees(),
        dec_deg: image.centre.dec_rad.to_degrees(),
        cell_deg: cfg.imaging.cell_arcsec / 3600.0,
        freq_hz: mfs_hz.unwrap_or(0.5 * (freqs.0 + freqs.1)),
        bandwidth_hz: freqs.1 - freqs.0,
        date_obs: jd_to_iso(first.times_jd[0], 3),
        bunit,
        object: image.name.clone(),
        beam_deg: Some([beam.major_px * cell, beam.minor_px * cell, beam.pa_deg]),
        history: vec![
            format!(
                "contimg run: npix={} cell={}arcsec eps={:e}",
                im.npix, im.cell_arcsec, im.epsilon
            ),
            format!(
                "weighting={:?} robust={} taper={}arcsec groups={} ranks={}",
                im.weighting, im.robust, im.taper_gaussian_arcsec, n_ok, plan.n_ranks
            ),
            format!(
                "clean: niter={} gain={} mgain={} threshold={}Jy",
                im.niter, im.gain, im.mgain, im.threshold_jy
            ),
            format!(
                "auto_threshold={} auto_mask={} pblimit={}",
                im.auto_threshold, im.auto_mask, im.pblimit
            ),
        ],
    }
}

/// The done marker (resume): only for a complete image (every group used, every product
/// written), after its products.
fn done_marker(ctx: &Shared, ii: usize, rep: &ImageReport) {
    let (plan, image) = (ctx.plan, &ctx.plan.images[ii]);
    let Some(hash) = plan
        .image_hash
        .get(ii)
        .filter(|_| rep.error.is_none() && rep.groups_used == image.groups.len())
    else {
        return;
    };
    let marker = crate::resume::DoneMarker::new(
        hash.clone(),
        image
            .groups
            .iter()
            .map(|&g| plan.groups[g].id.clone())
            .collect(),
        rep.products.clone(),
    );
    if let Err(e) = marker.and_then(|m| crate::resume::write_done(&ctx.images_dir, &image.name, &m))
    {
        log::warn!("{}: cannot write the done marker: {e}", image.name);
    }
}
