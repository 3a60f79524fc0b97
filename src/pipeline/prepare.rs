//! A group read and flagged made ready to image: calibrated, written as a Measurement Set
//! when asked, checked for usable data, combined into Stokes I, its geometry toward the
//! image's centre computed and its outliers selected ([`Preparer`], the reader's
//! [`prefetch::Finish`]). With prefetching on this runs on the reader's thread, one group
//! ahead of the image loop, so that a GPU rank's loop goes from one group's device work to
//! the next's without this host work between them; in line otherwise. Where a group's
//! imaging weights depend on it alone (an image of one group, as the tiles are; or a taper
//! alone) the reader sets them too ([`reader_weights`]), and then, ahead, on a device,
//! copies the group up there for CLEAN's major cycles (`HeldGroup::hold_ahead`; also with
//! natural weighting, where nothing changes the weights), so that its transfer too
//! overlaps the previous group's imaging.
//!
//! The held groups' buffers circulate: the loop hands an image's held groups' buffers back
//! through the [`HeldPool`] once it is done with them, and the next groups are combined
//! into them (no page faults on memory already mapped).

use super::calibration::{calibrated, Tables};
use super::prefetch::{self, Finish, Job, ReadResult};
use super::Ctx;
use crate::calibrate::apply::{stokes_i_calibrated, StokesInto};
use crate::calibrate::catalog::Calibrator;
use crate::compute::Compute;
use crate::config::Config;
use crate::core::{Centre, GroupVis, RawBuffers, StokesBuffers, StokesGroup};
use crate::flag::FlagSummary;
use crate::imaging::deconvolve::HeldGroup;
use crate::imaging::weighting::{changes_weights, Reweight, Weighting};
use crate::imaging::GridSpec;
use crate::night::GroupReport;
use crate::primitives::iers::EarthOrientation;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Buffers of held groups the image loop is done with, for the next groups' Stokes I
/// (shared by the loop and the reader).
#[derive(Clone, Default)]
pub(super) struct HeldPool(Arc<Mutex<Vec<StokesBuffers>>>);

impl HeldPool {
    /// Gives back the buffers of an image's held groups, at most `max` of them (the
    /// groups of the next image: the rest are let go).
    pub fn give(&self, buffers: impl Iterator<Item = StokesBuffers>, max: usize) {
        let mut pool = self.0.lock().unwrap_or_else(|p| p.into_inner());
        pool.extend(buffers.take(max));
    }

    /// Buffers of `n` samples, when there are some.
    fn take(&self, n: usize) -> Option<StokesBuffers> {
        let mut pool = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let i = pool
            .iter()
            .position(|(v, w)| v.len() == n && w.len() == n)?;
        Some(pool.swap_remove(i))
    }

    /// Lets go of all but `keep` of the buffers.
    fn trim(&self, keep: usize) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .truncate(keep);
    }
}

/// What making a group ready needs, owned: it runs on the reader's thread.
pub(super) struct Preparer {
    cfg: Config,
    eop: EarthOrientation,
    spec: GridSpec,
    out: PathBuf,
    rank: usize,
    /// Each image's centre, by its index in the plan.
    centres: Vec<Centre>,
    /// The last of each image's groups on this rank (after it the pool keeps one buffer,
    /// for the next image's first group: buffers no group of an image took are not kept
    /// through its CLEAN).
    last: HashSet<usize>,
    outliers: Vec<Calibrator>,
    tables: Tables,
    pool: HeldPool,
    /// The rank's backend; by image, whether the reader weights its groups
    /// (`reader_weights`) and whether it holds them there for CLEAN when reading ahead
    /// (CLEAN with major cycles, the weights final once the reader is done).
    compute: Arc<dyn Compute>,
    weights: Vec<bool>,
    hold_ahead: Vec<bool>,
}

/// A group made ready: held for gridding with its report, or the failed group's report
/// (boxed: it is large); and what its steps leave for the rank's report.
pub(super) struct Prepared {
    pub result: Made,
    pub notes: Notes,
}

/// A group held for gridding with its report, or the failed group's report.
pub(super) type Made = Result<(HeldGroup, GroupReport), Box<GroupReport>>;

/// The seconds of a group's steps (by stage), and why its Measurement Set was not written.
#[derive(Default)]
pub(super) struct Notes {
    pub seconds: Vec<(&'static str, f64)>,
    pub ms_error: Option<(String, String)>,
}

impl Notes {
    fn took(&mut self, stage: &'static str, t: Instant) {
        self.seconds.push((stage, t.elapsed().as_secs_f64()));
    }
}

/// This rank's groups in the order the image loop takes them (images not done yet), for
/// the reader; and the reader's preparer, whose held buffers come back through the pool.
pub(super) fn jobs(ctx: &Ctx, tables: Tables) -> (Vec<Job>, Preparer, HeldPool) {
    let plan = ctx.plan;
    let mut last = HashSet::new();
    let jobs: Vec<Job> = (0..plan.images.len())
        .filter(|&ii| !plan.image_is_done(ii))
        .flat_map(|ii| {
            let mine = ctx.mine(ii);
            last.extend(mine.last().copied());
            mine.into_iter().map(move |g| (ii, g))
        })
        .map(|(ii, g)| Job {
            group: g,
            image: ii,
            id: plan.groups[g].id.clone(),
            files: plan.groups[g].files.iter().flatten().cloned().collect(),
        })
        .collect();
    let pool = HeldPool::default();
    let im = &ctx.cfg.imaging;
    let reweights = changes_weights(im.weighting, im.taper_gaussian_arcsec);
    let clean = im.niter > 0 && im.max_major_cycles > 0;
    let weights: Vec<bool> = (0..plan.images.len())
        .map(|ii| reader_weights(ctx, ii))
        .collect();
    let preparer = Preparer {
        cfg: ctx.cfg.clone(),
        eop: ctx.eop.clone(),
        spec: ctx.spec,
        out: ctx.out.clone(),
        rank: ctx.rank(),
        centres: plan.images.iter().map(|im| im.centre).collect(),
        last,
        outliers: outlier_catalogue(ctx.cfg),
        tables,
        pool: pool.clone(),
        compute: ctx.compute.clone(),
        hold_ahead: weights
            .iter()
            .map(|&w| clean && (w || !reweights))
            .collect(),
        weights,
    };
    (jobs, preparer, pool)
}

/// Whether the reader sets the imaging weights of image `ii`'s groups: where they change
/// and depend on each group alone, that is with a taper alone (natural weighting), or
/// uniform or Briggs weighting of an image of one group to image (its density is that
/// group's; never an image spread over ranks, whose density is summed over them by the
/// image loop). The loop weights the groups that come unweighted.
pub(super) fn reader_weights(ctx: &Ctx, ii: usize) -> bool {
    let im = &ctx.cfg.imaging;
    let image = &ctx.plan.images[ii];
    changes_weights(im.weighting, im.taper_gaussian_arcsec)
        && (im.weighting == Weighting::Natural
            || (!image.needs_reduce(ctx.plan) && ctx.mine(ii).len() == 1))
}

/// The outliers' catalogue (sources outside a tile inside the beam), read once; empty when
/// outliers are off or CLEAN is.
fn outlier_catalogue(cfg: &Config) -> Vec<Calibrator> {
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

impl Finish for Preparer {
    type Out = Prepared;

    fn finish(
        &mut self,
        job: &Job,
        read: ReadResult,
        ahead: bool,
    ) -> (Prepared, Option<RawBuffers>) {
        let mut notes = Notes::default();
        let (result, raw) = match read {
            Ok((vis, fsum)) => self.prepare(job, vis, fsum, ahead, &mut notes),
            Err(e) => {
                let e = GroupReport::failed(&job.id, e.to_string(), None);
                (Err(Box::new(e)), None)
            }
        };
        if self.last.contains(&job.group) {
            // One is kept for the next image's first group, made ready while this image is
            // CLEANed (before the loop gives this image's buffers back).
            self.pool.trim(1);
        }
        (Prepared { result, notes }, raw)
    }
}

/// A group's buffers as read, for the next read.
fn raw_of(vis: GroupVis) -> RawBuffers {
    (vis.vis, vis.weight.into_stored())
}

impl Preparer {
    /// One group read and flagged made ready to grid (its report made, or the failed
    /// group's report), and the buffers it was read into (when `ahead`: the next group's).
    fn prepare(
        &mut self,
        job: &Job,
        mut vis: GroupVis,
        mut fsum: FlagSummary,
        ahead: bool,
        p: &mut Notes,
    ) -> (Made, Option<RawBuffers>) {
        let id = job.id.as_str();
        let cfg = &self.cfg;
        fsum.waterfall.clear();
        let calibrate = cfg.calibration.enabled && cfg.calibration.apply;
        let ms = cfg.output.ms.write;
        let failed =
            |e: String, fsum: FlagSummary| Box::new(GroupReport::failed(id, e, Some(fsum)));
        // With a Measurement Set to write, the group is calibrated per polarization first;
        // otherwise the table is applied while Stokes I is formed.
        let mut table = None;
        if calibrate {
            let t = Instant::now();
            let selected = if ms {
                self.tables.apply(id, &mut vis)
            } else {
                self.tables.select(id, &vis).map(|x| table = x)
            };
            if let Err(e) = selected {
                return (Err(failed(e.to_string(), fsum)), Some(raw_of(vis)));
            }
            p.took("calibrate_apply", t);
        }
        if ms {
            let t = Instant::now();
            p.ms_error = write_ms(cfg, &self.eop, &self.out, self.rank, id, &vis, calibrate);
            p.took("ms_export", t);
        }
        let n_vis = vis.vis.len();
        let nothing_left = |fsum: FlagSummary| {
            Box::new(GroupReport {
                n_vis,
                flagged_fraction: 1.0,
                ..GroupReport::failed(id, all_flagged(calibrate, &fsum), Some(fsum))
            })
        };
        let mut t = Instant::now();
        let n_stokes = n_vis / vis.npol.max(1);
        let (pool, rank) = (&self.pool, self.rank);
        let into = || {
            if !ahead {
                return StokesInto::OwnBuffer;
            }
            let dest = pool.take(n_stokes);
            if dest.is_some() {
                log::debug!(
                    "rank {rank}: group {id} combined into an earlier group's held buffers"
                );
            }
            StokesInto::Buffers(dest)
        };
        let (stokes, flagged, raw): (StokesGroup, usize, Option<RawBuffers>) = match table {
            Some((path, table)) => {
                let (c, raw, frac) = stokes_i_calibrated(vis, table, into());
                calibrated(self.rank, &self.out, id, path, frac);
                p.took("calibrate_apply", t);
                t = Instant::now();
                (c.stokes, c.flagged, raw)
            }
            None => {
                let flagged = vis.weight.count_flagged();
                if flagged == n_vis {
                    return (Err(nothing_left(fsum)), Some(raw_of(vis)));
                }
                match into() {
                    StokesInto::Buffers(dest) => {
                        let (stokes, raw) = vis.into_stokes_i_reusing(dest);
                        (stokes, flagged, Some(raw))
                    }
                    StokesInto::OwnBuffer => (vis.into_stokes_i(), flagged, None),
                }
            }
        };
        if flagged == n_vis {
            return (Err(nothing_left(fsum)), raw);
        }
        let report = GroupReport {
            id: id.to_string(),
            ok: true,
            error: None,
            n_vis,
            flagged_fraction: flagged as f64 / n_vis.max(1) as f64,
            flags: Some(fsum),
        };
        let centre = self.centres[job.image];
        let mut h = HeldGroup::from_stokes(stokes, centre, &self.eop);
        p.took("rephase_geometry", t);
        self.warn_beyond_grid(id, &h);
        if !self.outliers.is_empty() {
            let t = Instant::now();
            self.select_outliers(id, centre, &mut h);
            p.took("outliers", t);
        }
        if self.weights[job.image] {
            let t = Instant::now();
            self.weight(&mut h);
            p.took("reweight", t);
        }
        if ahead && self.hold_ahead[job.image] {
            let t = Instant::now();
            if h.hold_ahead(&self.spec, self.compute.as_ref()) {
                log::debug!(
                    "rank {}: group {id} held on the device ahead of the image loop",
                    self.rank
                );
                p.took("hold_ahead", t);
            }
        }
        (Ok((h, report)), raw)
    }

    /// Sets the group's imaging weights (an image the reader weights: `reader_weights`),
    /// as the image loop does with the density of the image's one group.
    fn weight(&self, h: &mut HeldGroup) {
        let im = &self.cfg.imaging;
        let mut density = Vec::new();
        if im.weighting != Weighting::Natural {
            density = vec![0.0; self.spec.n_grid * self.spec.n_grid];
            h.add_density(&self.spec, &mut density);
        }
        h.reweight(&self.spec, &Reweight::of(im, &density));
    }

    /// The image's cell cannot hold the longest baselines: say so (once per group) with
    /// the cell that would, rather than lose them silently.
    fn warn_beyond_grid(&self, id: &str, h: &HeldGroup) {
        let (beyond, total, longest) = h.beyond_grid(&self.spec);
        if beyond == 0 {
            return;
        }
        let arcsec = |rad: f64| rad.to_degrees() * 3600.0;
        log::warn!(
            "rank {}: group {id}: {beyond} of {total} unflagged samples ({:.2} %; baselines up to {:.1} k lambda) lie beyond the uv grid's edge of a {}\" cell and are left out of the image; a cell of {:.1}\" holds them (3 pixels per fringe of the longest baseline: {:.1}\")",
            self.rank,
            100.0 * beyond as f64 / total.max(1) as f64,
            longest / 1e3,
            self.cfg.imaging.cell_arcsec,
            (arcsec(self.spec.uv_edge_pixfrac() / longest) * 10.0).floor() / 10.0,
            arcsec(1.0 / (3.0 * longest)),
        );
    }

    /// The catalogue's sources outside the image inside the beam, set on the group to be
    /// fitted and subtracted in the major cycles.
    fn select_outliers(&self, id: &str, centre: Centre, h: &mut HeldGroup) {
        let dish = crate::core::telescope::DISH_DIAMETER_M;
        let found = crate::imaging::outliers::select(
            &self.outliers,
            &h.vis,
            &self.spec,
            centre,
            &self.eop,
            self.cfg.imaging.outlier_min_beam,
            dish,
        );
        for o in &found {
            log::info!(
                "rank {}: group {id}: outlier {} (mean beam {:.3}, catalogue {:.3} Jy) fitted and subtracted in the major cycles",
                self.rank,
                o.name,
                o.beam,
                o.source.flux_jy
            );
        }
        h.set_outliers(crate::imaging::outliers::OutlierModel::new(
            &h.vis, found, &self.eop, dish,
        ));
    }
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

/// The group as imaged, as a Measurement Set (`output.ms.write`); a failure is returned for
/// the rank's report (group id, error), the group is still imaged.
fn write_ms(
    cfg: &Config,
    eop: &EarthOrientation,
    out: &std::path::Path,
    rank: usize,
    id: &str,
    vis: &GroupVis,
    calibrated: bool,
) -> Option<(String, String)> {
    let centre = crate::export::group_centre(vis, eop);
    let history = format!(
        "contimg run: group {id} flagged{}",
        if calibrated { " and calibrated" } else { "" }
    );
    match crate::export::export_group(
        &out.join("ms"),
        id,
        vis,
        centre,
        eop,
        &cfg.output.ms,
        &history,
    ) {
        Ok((p, _)) => {
            log::info!("rank {rank}: group {id} -> {}", p.display());
            None
        }
        Err(e) => {
            log::error!("rank {rank}: group {id}: Measurement Set not written: {e}");
            Some((id.to_string(), e.to_string()))
        }
    }
}

/// What the reader's thread hands the image loop.
pub(super) type Groups = prefetch::Groups<Preparer>;

#[cfg(test)]
mod tests {
    use super::*;

    fn buffers(n: usize) -> StokesBuffers {
        (vec![Default::default(); n], vec![0.0; n])
    }

    /// The pool keeps at most the buffers asked for, hands out only buffers of the size
    /// asked (each once), and keeps what `trim` says; its clones are the same pool.
    #[test]
    fn the_pool_keeps_what_the_next_image_can_use() {
        let pool = HeldPool::default();
        let loop_side = pool.clone();
        loop_side.give([8, 8, 4, 8].into_iter().map(buffers), 3);
        assert!(pool.take(5).is_none(), "no buffers of another size");
        let a = pool.take(4).expect("the one of 4 samples");
        assert_eq!((a.0.len(), a.1.len()), (4, 4));
        assert!(pool.take(4).is_none(), "each handed out once");
        assert!(pool.take(8).is_some() && pool.take(8).is_some());
        assert!(
            pool.take(8).is_none(),
            "the fourth was let go (at most 3 kept)"
        );
        loop_side.give([8, 8, 8].into_iter().map(buffers), 3);
        pool.trim(1);
        assert!(pool.take(8).is_some());
        assert!(pool.take(8).is_none(), "one kept");
    }
}
