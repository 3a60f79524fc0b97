//! `contimg run`: the SPMD driver. Rank 0 plans and broadcasts; each rank converts and grids
//! its groups; grids of images spread over several ranks are reduced to the image's owner,
//! which transforms and writes it; rank 0 gathers what every rank did into `summary.json`.
//!
//! Every rank joins every collective in plan order whatever happened to its own work: a
//! failed group contributes an empty grid and a failure record.

use crate::comm::Comm;
use crate::config::Config;
use crate::uvh5::group::load_group;

mod prefetch;
use crate::imaging::aterm::DriftBeam;
use crate::imaging::deconvolve::{clean_image, CleanSetup, CleanStart, HeldGroup};
use crate::imaging::{GridPair, GridSpec};
use crate::plan::{make_plan, Plan};
use crate::primitives::iers::EarthOrientation;
use crate::primitives::time::jd_to_iso;
use crate::products::{write_atomic, write_fits_image, ImageMeta};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What one rank did, gathered to rank 0.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RankReport {
    pub rank: usize,
    pub groups: Vec<GroupReport>,
    pub images: Vec<ImageReport>,
    /// Seconds per stage on this rank (summed over its groups/images).
    pub stage_s: std::collections::BTreeMap<String, f64>,
    /// The compute backend this rank used ("cpu (...)" or the GPU).
    #[serde(default)]
    pub compute: String,
    /// Groups whose Measurement Set (`output.ms.write`) could not be written: (id, error).
    #[serde(default)]
    pub ms_errors: Vec<(String, String)>,
    /// This rank's GPU utilisation and memory over the run (NVML; GPU runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<crate::compute::monitor::GpuUsage>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupReport {
    pub id: String,
    pub ok: bool,
    pub error: Option<String>,
    pub n_vis: usize,
    pub flagged_fraction: f64,
    /// The flagging stage's summary (the waterfall is left out here: see `flags/`).
    pub flags: Option<crate::flag::FlagSummary>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageReport {
    pub name: String,
    pub products: Vec<PathBuf>,
    pub groups_used: usize,
    pub peak_jy: f64,
    pub error: Option<String>,
    /// Restoring beam: BMAJ, BMIN (deg), BPA (deg east of north).
    pub beam_deg: Option<[f64; 3]>,
    pub clean_iterations: usize,
    pub major_cycles: usize,
    /// Robust rms of the residual image.
    pub residual_rms_jy: f64,
}

/// The run summary written as `summary.json` by rank 0.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub n_ranks: usize,
    pub wall_s: f64,
    pub groups_planned: usize,
    pub groups_ok: usize,
    pub groups_failed: Vec<(String, String)>,
    pub groups_skipped: Vec<(String, String)>,
    pub bad_files: Vec<(PathBuf, String)>,
    pub images: Vec<ImageReport>,
    /// Images found done with unchanged inputs and skipped (resume).
    #[serde(default)]
    pub images_resumed: Vec<String>,
    pub ranks: Vec<RankReport>,
    /// True when every discovered group was imaged (false for a night without groups).
    pub complete: bool,
    /// "complete", "incomplete" (some groups imaged, some failed or skipped) or "nothing
    /// imaged" (no groups, or all failed): exit codes 0, 3 and 4 (src/exit.rs).
    #[serde(default)]
    pub outcome: String,
    /// Provenance: the contimg version, the command line and the effective settings.
    #[serde(default)]
    pub contimg_version: String,
    #[serde(default)]
    pub command_line: Vec<String>,
    #[serde(default)]
    pub settings: serde_json::Value,
    /// The night's calibration solve and its QA.
    pub calibration_note: String,
    pub calibration: Option<crate::calibrate::CalQa>,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("planning failed on rank 0: {0}")]
    Plan(String),
    #[error(transparent)]
    Iers(#[from] crate::primitives::iers::IersError),
    #[error("another rank could not load the IERS table")]
    IersElsewhere,
    #[error("{path}: cannot create output ({source})")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Gpu(#[from] crate::compute::GpuError),
    #[error("another rank could not get the GPU it needs (gpu: required)")]
    GpuElsewhere,
}

fn add_time(r: &mut RankReport, stage: &str, t0: Instant) {
    add_seconds(r, stage, t0.elapsed().as_secs_f64());
}

fn add_seconds(r: &mut RankReport, stage: &str, s: f64) {
    *r.stage_s.entry(stage.to_string()).or_insert(0.0) += s;
}

/// Loads the Earth orientation on every rank, plans on rank 0 (creating `make_dir` there
/// first) and broadcasts the plan, or the planning error, so that no rank hangs.
pub fn plan_night(
    cfg: &Config,
    comm: &dyn Comm,
    make_dir: &Path,
    resume: bool,
) -> Result<(Plan, EarthOrientation), PipelineError> {
    let eop = EarthOrientation::load(cfg.astrometry.iers_file.as_deref());
    if !comm.all_ok(eop.is_ok()) {
        return Err(eop
            .err()
            .map(PipelineError::from)
            .unwrap_or(PipelineError::IersElsewhere));
    }
    let eop = eop.expect("checked on all ranks");
    let mut bytes = Vec::new();
    if comm.is_root() {
        crate::progress::reset(&cfg.output.dir); // before any rank can mark progress
        let res: Result<Plan, String> = std::fs::create_dir_all(make_dir)
            .map_err(|e| format!("{}: cannot create output ({e})", make_dir.display()))
            .and_then(|_| make_plan(cfg, comm.size(), &eop).map_err(|e| e.to_string()))
            .map(|mut p| {
                if resume {
                    crate::resume::apply(cfg, &mut p);
                    p.cal_reuse = calibration_registered(cfg, &p);
                }
                p
            });
        bytes = serde_json::to_vec(&res).expect("plan serialises");
    }
    comm.broadcast_bytes(0, &mut bytes);
    let plan: Plan = serde_json::from_slice::<Result<Plan, String>>(&bytes)
        .expect("rank 0 sent a plan")
        .map_err(PipelineError::Plan)?;
    if comm.is_root() {
        log::info!(
            "plan: {} groups -> {} images on {} ranks; {} skipped",
            plan.groups.len(),
            plan.images.len(),
            plan.n_ranks,
            plan.skipped.len()
        );
        if let Some(g) = plan.groups.first() {
            if eop.covers(g.times_jd[0]) && eop.covers(*g.times_jd.last().unwrap_or(&g.times_jd[0]))
            {
                log::info!("astrometry: {}", eop.describe(g.times_jd[0]));
            } else {
                log::warn!("astrometry: {}", eop.describe(g.times_jd[0]));
            }
        }
    }
    Ok((plan, eop))
}

/// Whether the registry already holds a valid table covering the plan's calibrator transit.
fn calibration_registered(cfg: &Config, plan: &Plan) -> bool {
    let Some(cp) = &plan.calibration else {
        return false;
    };
    let registry = crate::calibrate::table::Registry::new(registry_path(cfg));
    let found = registry.entries().map(|es| {
        es.into_iter().any(|e| {
            e.valid && e.start_jd <= cp.transit_jd && cp.transit_jd <= e.end_jd && e.path.exists()
        })
    });
    if found.as_ref().is_ok_and(|&f| f) {
        log::info!(
            "resume: the registry already calibrates the {} transit: solve skipped",
            cp.calibrator.name
        );
    }
    found.unwrap_or(false)
}

fn registry_path(cfg: &Config) -> PathBuf {
    cfg.calibration
        .registry
        .clone()
        .unwrap_or_else(|| cfg.output.dir.join("cal").join("registry.jsonl"))
}

/// Runs the night. Returns the summary on rank 0 (None elsewhere).
pub fn run(cfg: &Config, comm: &dyn Comm) -> Result<Option<Summary>, PipelineError> {
    let t_start = Instant::now();
    let out = cfg.output.dir.clone();
    let images_dir = out.join("images");
    // Rank 0 plans; the plan (or the planning error) is broadcast so no rank hangs.
    let mut report = RankReport {
        rank: comm.rank(),
        ..Default::default()
    };
    // Provenance in every FITS: the version and the settings that shape the images.
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
    let t0 = Instant::now();
    let (plan, eop) = plan_night(cfg, comm, &images_dir, cfg.output.resume)?;
    add_time(&mut report, "plan", t0);
    // The compute backend of this rank (a GPU where there is one and it is allowed).
    let chosen = crate::compute::select(&cfg.compute);
    if !comm.all_ok(chosen.is_ok()) {
        return Err(chosen
            .err()
            .map(PipelineError::from)
            .unwrap_or(PipelineError::GpuElsewhere));
    }
    let (compute, line) = chosen.expect("checked on all ranks");
    let compute: std::sync::Arc<dyn crate::compute::Compute> = compute.into();
    let _bar = comm.is_root().then(|| {
        let todo = (0..plan.images.len())
            .filter(|&i| !plan.image_is_done(i))
            .flat_map(|i| plan.images[i].groups.iter())
            .filter(|&&g| !plan.is_retired(&plan.groups[g].id))
            .count();
        crate::progress::Bar::start(&out, todo as u64, comm.size())
    });
    log::info!("rank {}: {line}", comm.rank());
    report.compute = compute.name();
    // GPU utilisation and memory over the run (NVML), where this rank has a device.
    let monitor = crate::compute::monitor::Monitor::start(compute.pci());

    // Calibration solve on the calibrator's groups (collective).
    let registry = crate::calibrate::table::Registry::new(registry_path(cfg));
    let mut cal_qa = None;
    if let Some(cp) = plan.calibration.as_ref().filter(|_| !plan.cal_reuse) {
        let t = Instant::now();
        let mut mine = Vec::new();
        for &gi in &cp.groups {
            let g = &plan.groups[gi];
            if g.rank != comm.rank() {
                continue;
            }
            let files: Vec<&Path> = g.files.iter().flatten().map(PathBuf::as_path).collect();
            match load_group(&files) {
                Ok(mut v) => {
                    crate::flag::run_with(&mut v, &cfg.flagging, compute.as_ref());
                    mine.push(v);
                }
                Err(e) => log::error!(
                    "rank {}: calibrator group {} unreadable: {e}",
                    comm.rank(),
                    g.id
                ),
            }
        }
        let solved = crate::calibrate::solve_night(comm, cp, &mine, &cfg.calibration, &eop);
        drop(mine);
        let mut ok = true;
        match solved {
            Ok(table) => {
                if comm.is_root() {
                    let name = format!("{}_{}", cp.calibrator.name, jd_to_iso(cp.transit_jd, 0));
                    let dir = out.join("cal");
                    let path = dir.join(format!("{name}.h5"));
                    let res = std::fs::create_dir_all(&dir)
                        .map_err(|e| e.to_string())
                        .and_then(|_| table.write(&path).map_err(|e| e.to_string()))
                        .and_then(|_| {
                            let t0 = table.time_jd[0] - 0.5 * cfg.calibration.span_minutes / 1440.0;
                            let t1 = *table.time_jd.last().expect("non-empty")
                                + 0.5 * cfg.calibration.span_minutes / 1440.0;
                            let q = crate::calibrate::qa(&table, &name);
                            let valid = q.gates.iter().all(|g| g.1 != "fail");
                            for (what, verdict) in &q.gates {
                                log::info!("calibration QA {verdict}: {what}");
                            }
                            for f in &q.flagged_antennas {
                                log::warn!(
                                    "calibration QA: antenna {} pol {} flagged: {} ({:.3})",
                                    f.station,
                                    f.pol,
                                    f.reason,
                                    f.value
                                );
                            }
                            cal_qa = Some(q);
                            let abs = std::fs::canonicalize(&path).unwrap_or(path.clone());
                            registry
                                .register(&crate::calibrate::table::RegistryEntry {
                                    path: abs,
                                    calibrator: table.calibrator.clone(),
                                    start_jd: t0,
                                    end_jd: t1,
                                    centre_jd: 0.5 * (t0 + t1),
                                    valid,
                                })
                                .map_err(|e| e.to_string())
                        });
                    if let Err(e) = res {
                        log::error!("calibration table {}: {e}", path.display());
                        ok = false;
                    } else {
                        log::info!(
                            "calibration solved on {} -> {}",
                            cp.calibrator.name,
                            path.display()
                        );
                    }
                }
            }
            Err(e) => {
                if comm.is_root() {
                    log::error!("calibration solve failed: {e}");
                }
                ok = false;
            }
        }
        let _ = comm.all_ok(ok); // the registry is written before anyone reads it
        add_time(&mut report, "calibrate_solve", t);
    } else if comm.is_root() && cfg.calibration.enabled {
        log::warn!("{}", plan.calibration_note);
    }
    let mut tables: std::collections::HashMap<PathBuf, crate::calibrate::table::CalTable> =
        Default::default();

    let spec = {
        let mut s = GridSpec::new(
            cfg.imaging.npix,
            (cfg.imaging.cell_arcsec / 3600.0).to_radians(),
            cfg.imaging.epsilon,
        );
        s.uv_min_lambda = cfg.imaging.uv_min_lambda;
        s.uv_max_lambda = cfg.imaging.uv_max_lambda;
        s
    };
    // This rank's groups in the order the loop below takes them, read and flagged one
    // ahead while the previous one is imaged (compute.prefetch).
    let mine_of = |ii: usize| -> Vec<usize> {
        plan.images[ii]
            .groups
            .iter()
            .copied()
            .filter(|&g| plan.groups[g].rank == comm.rank() && !plan.is_retired(&plan.groups[g].id))
            .collect()
    };
    let jobs: Vec<prefetch::Job> = (0..plan.images.len())
        .filter(|&ii| !plan.image_is_done(ii))
        .flat_map(mine_of)
        .map(|g| prefetch::Job {
            group: g,
            id: plan.groups[g].id.clone(),
            files: plan.groups[g].files.iter().flatten().cloned().collect(),
        })
        .collect();
    // The outliers' catalogue (sources outside a tile inside the beam), read once.
    let outlier_cat: Vec<crate::calibrate::catalog::Calibrator> =
        if cfg.imaging.outlier_min_beam > 0.0 && cfg.imaging.niter > 0 {
            let path = cfg
                .imaging
                .outlier_catalog
                .as_deref()
                .or(cfg.calibration.calibrator_list.as_deref());
            crate::calibrate::catalog::load_calibrators(path).unwrap_or_else(|e| {
                log::error!(
                    "imaging.outlier_catalog: {e}; sources outside the tiles are not subtracted"
                );
                Vec::new()
            })
        } else {
            Vec::new()
        };
    let mut groups = prefetch::Groups::start(
        jobs,
        cfg.compute.prefetch,
        &cfg.flagging,
        compute.clone(),
        &out,
        comm.rank(),
    );
    for (ii, image) in plan.images.iter().enumerate() {
        if plan.image_is_done(ii) {
            continue; // the same on every rank: the plan says so
        }
        let mine = mine_of(ii);
        let mut grids: Option<GridPair> = None;
        let mut held: Vec<HeldGroup> = Vec::new();
        let clean_on = cfg.imaging.niter > 0;
        let mut n_ok = 0usize;
        let mut meta_freqs: (f64, f64) = (f64::INFINITY, 0.0);
        let reported = report.groups.len();
        for gi in mine {
            let g = &plan.groups[gi];
            // Read and flagged in line, or already (one group ahead) by the prefetcher.
            let loaded = match groups.next(gi) {
                Some(r) => {
                    add_seconds(&mut report, "convert", r.convert_s);
                    add_seconds(&mut report, "flag", r.flag_s);
                    r.result
                }
                None => Err("the group reader stopped (see the log)".to_string()),
            };
            match loaded {
                Ok((mut vis, mut fsum)) => {
                    fsum.waterfall.clear();
                    let t = Instant::now();
                    if cfg.calibration.enabled && cfg.calibration.apply {
                        let mid = vis.times_jd[vis.times_jd.len() / 2];
                        let found = registry.nearest(mid).map_err(|e| e.to_string()).and_then(
                            |n| match n {
                                Some((e, _)) => {
                                    if !tables.contains_key(&e.path) {
                                        let t = crate::calibrate::table::CalTable::read(&e.path)
                                            .map_err(|e| e.to_string())?;
                                        tables.insert(e.path.clone(), t);
                                    }
                                    Ok(Some(e.path))
                                }
                                None => Ok(None),
                            },
                        );
                        match found {
                            Ok(Some(p)) => {
                                // A table of other antennas calibrates nothing: say so, by name.
                                let ours: Vec<u32> = vis.antenna_names.iter().filter_map(|n| n.parse().ok()).collect();
                                if !ours.iter().any(|a| tables[&p].antenna_names.contains(a)) {
                                    let msg = format!("calibration table {} shares no antenna with the data ({} table antennas, none of this group's {})", p.display(), tables[&p].antenna_names.len(), ours.len());
                                    log::error!("rank {}: group {} failed: {msg}", comm.rank(), g.id);
                                    report.groups.push(GroupReport { id: g.id.clone(), ok: false, error: Some(msg), n_vis: 0, flagged_fraction: 0.0, flags: Some(fsum) });
                                    continue;
                                }
                                let frac = match crate::calibrate::apply::apply(&mut vis, &tables[&p], compute.as_ref()) {
                                    Ok(f) => f,
                                    Err(e) => {
                                        log::error!("rank {}: group {} failed: {e}", comm.rank(), g.id);
                                        report.groups.push(GroupReport { id: g.id.clone(), ok: false, error: Some(e.to_string()), n_vis: 0, flagged_fraction: 0.0, flags: Some(fsum) });
                                        continue;
                                    }
                                };
                                log::info!("rank {}: group {} calibrated with {} ({:.1} % newly flagged)", comm.rank(), g.id, p.display(), 100.0 * frac);
                                if frac > 0.5 {
                                    log::warn!("rank {}: group {}: calibration table {} flagged {:.1} % of the data (antennas, channels or solutions it lacks)", comm.rank(), g.id, p.display(), 100.0 * frac);
                                }
                                crate::progress::mark(&out, comm.rank(), &g.id, "calibrated");
                            }
                            Ok(None) if cfg.calibration.require => {
                                let msg = format!("no valid calibration within +-24 h in {}", registry.path.display());
                                log::error!("rank {}: group {} failed: {msg}", comm.rank(), g.id);
                                report.groups.push(GroupReport { id: g.id.clone(), ok: false, error: Some(msg), n_vis: 0, flagged_fraction: 0.0, flags: Some(fsum) });
                                continue;
                            }
                            Ok(None) => log::warn!("rank {}: group {} imaged uncalibrated: no calibration within +-24 h", comm.rank(), g.id),
                            Err(e) => {
                                log::error!("rank {}: group {} failed: {e}", comm.rank(), g.id);
                                report.groups.push(GroupReport { id: g.id.clone(), ok: false, error: Some(e), n_vis: 0, flagged_fraction: 0.0, flags: Some(fsum) });
                                continue;
                            }
                        }
                        add_time(&mut report, "calibrate_apply", t);
                    }
                    if cfg.output.ms.write {
                        let t = Instant::now();
                        let centre = crate::export::group_centre(&vis, &eop);
                        let history = format!(
                            "contimg run: group {} flagged{}",
                            g.id,
                            if cfg.calibration.enabled && cfg.calibration.apply {
                                " and calibrated"
                            } else {
                                ""
                            }
                        );
                        match crate::export::export_group(
                            &out.join("ms"),
                            &g.id,
                            &vis,
                            centre,
                            &eop,
                            &cfg.output.ms,
                            &history,
                        ) {
                            Ok((p, _)) => log::info!(
                                "rank {}: group {} -> {}",
                                comm.rank(),
                                g.id,
                                p.display()
                            ),
                            Err(e) => {
                                log::error!(
                                    "rank {}: group {}: Measurement Set not written: {e}",
                                    comm.rank(),
                                    g.id
                                );
                                report.ms_errors.push((g.id.clone(), e));
                            }
                        }
                        add_time(&mut report, "ms_export", t);
                    }
                    let flagged = vis.weight.iter().filter(|&&w| w == 0.0).count();
                    if flagged == vis.weight.len() {
                        let msg = format!(
                            "every visibility is flagged after flagging{} ({:.1} % unusable in the files, {:.1} % after the flagger; most by {}): nothing to image",
                            if cfg.calibration.enabled && cfg.calibration.apply { " and calibration" } else { "" },
                            100.0 * fsum.fraction_before,
                            100.0 * fsum.fraction_total,
                            if fsum.fraction_before >= 0.999 { "the files (NaN, zero, flagged or bad nsamples)" } else { fsum.by_step.iter().max_by_key(|s| s.1).map(|s| s.0.as_str()).unwrap_or("the files") }
                        );
                        log::error!("rank {}: group {} failed: {msg}", comm.rank(), g.id);
                        report.groups.push(GroupReport {
                            id: g.id.clone(),
                            ok: false,
                            error: Some(msg),
                            n_vis: vis.vis.len(),
                            flagged_fraction: 1.0,
                            flags: Some(fsum),
                        });
                        continue;
                    }
                    let t = Instant::now();
                    n_ok += 1;
                    meta_freqs = (
                        meta_freqs.0.min(vis.freqs[0]),
                        meta_freqs.1.max(*vis.freqs.last().unwrap_or(&0.0)),
                    );
                    report.groups.push(GroupReport {
                        id: g.id.clone(),
                        ok: true,
                        error: None,
                        n_vis: vis.vis.len(),
                        flagged_fraction: flagged as f64 / vis.weight.len().max(1) as f64,
                        flags: Some(fsum),
                    });
                    let mut h = HeldGroup::new(vis, image.centre, &eop);
                    add_time(&mut report, "rephase_geometry", t);
                    if !outlier_cat.is_empty() {
                        let t = Instant::now();
                        let dish = crate::core::telescope::DISH_DIAMETER_M;
                        let found = crate::imaging::outliers::select(
                            &outlier_cat,
                            &h.vis,
                            &spec,
                            image.centre,
                            &eop,
                            cfg.imaging.outlier_min_beam,
                            dish,
                        );
                        for o in &found {
                            log::info!("rank {}: group {}: outlier {} (mean beam {:.3}, catalogue {:.3} Jy) fitted and subtracted in the major cycles", comm.rank(), g.id, o.name, o.beam, o.source.flux_jy);
                        }
                        h.set_outliers(crate::imaging::outliers::OutlierModel::new(
                            &h.vis, found, &eop, dish,
                        ));
                        add_time(&mut report, "outliers", t);
                    }
                    held.push(h);
                    log::info!(
                        "rank {}: group {} gridded for image {}",
                        comm.rank(),
                        g.id,
                        image.name
                    );
                }
                Err(e) => {
                    log::error!("rank {}: group {} failed: {e}", comm.rank(), g.id);
                    report.groups.push(GroupReport {
                        id: g.id.clone(),
                        ok: false,
                        error: Some(e),
                        n_vis: 0,
                        flagged_fraction: 0.0,
                        flags: None,
                    });
                }
            }
        }
        for g in &report.groups[reported..] {
            crate::progress::mark(
                &out,
                comm.rank(),
                &g.id,
                if g.ok { "gridded" } else { "failed" },
            );
        }
        // Weighting: the uv density from every group of the image (summed over ranks when the
        // image is spread, so the weights do not depend on the rank count), then gridding.
        let t = Instant::now();
        let scheme = cfg.imaging.weighting;
        let mut density = Vec::new();
        if scheme != crate::imaging::weighting::Weighting::Natural {
            density = vec![0.0; spec.n_grid * spec.n_grid];
            for h in &held {
                h.add_density(&spec, &mut density);
            }
            if image.needs_reduce(&plan) {
                comm.all_reduce_sum_f64(&mut density);
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
        // With CLEAN, the PSFs are made at twice the image's size (below), so that the
        // minor cycles may place components anywhere in the image.
        for h in &held {
            h.grid(
                grids.get_or_insert_with(|| {
                    if clean_on {
                        GridPair::without_psf(spec)
                    } else {
                        GridPair::new(spec)
                    }
                }),
                compute.as_ref(),
            );
        }
        // Multi-term MFS: the x-weighted dirty image and the x- and x^2-weighted PSFs (on
        // every rank, so that the reductions below match).
        let ref_hz = cfg.imaging.spectral_ref_hz;
        let mut spectral: Vec<GridPair> = if clean_on && cfg.imaging.nterms == 2 {
            vec![GridPair::spectral(spec, ref_hz, Some(1), None)]
        } else {
            Vec::new()
        };
        // CLEAN's PSFs (2 nterms - 1 of them) at twice the image's size, 2n x 2n.
        let spec2 = spec.doubled();
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
        for h in &held {
            for g in spectral.iter_mut().chain(psf_grids.iter_mut()) {
                h.grid(g, compute.as_ref());
            }
        }
        if !clean_on {
            held.clear();
        }
        add_time(&mut report, "grid", t);
        // Reduce over ranks when the image is spread: the images and weight sum plus the
        // number of groups used (summed), and each rank's frequency range (gathered).
        let t = Instant::now();
        let (grids, n_ok, freqs) = if image.needs_reduce(&plan) {
            let mut buf = match &grids {
                Some(g) => g.to_buffer(),
                None => vec![0.0; GridPair::buffer_len(&spec)],
            };
            buf.push(n_ok as f64);
            comm.reduce_sum_f64(image.owner, &mut buf);
            // Frequency range: every rank sends its own; owner takes min/max.
            let f = comm.gather_bytes(
                image.owner,
                &serde_json::to_vec(&meta_freqs).expect("f64 pair"),
            );
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
                (None, 0, meta_freqs)
            }
        } else {
            (grids, n_ok, meta_freqs)
        };
        let distributed = image.needs_reduce(&plan);
        let spectral: Vec<Option<GridPair>> = spectral
            .into_iter()
            .map(|g| {
                if distributed {
                    g.reduce_to(comm, image.owner)
                } else {
                    Some(g)
                }
            })
            .collect();
        let psfs2: Vec<Option<Vec<f64>>> = psf_grids
            .into_iter()
            .map(|g| {
                if distributed {
                    g.reduce_to(comm, image.owner)
                } else {
                    Some(g)
                }
            })
            .map(|g| g.and_then(GridPair::finish_f64).map(|x| x.1))
            .collect();
        add_time(&mut report, "reduce", t);
        // The drifting beam for the major cycles, from the plan's times of every group of
        // the image (the same on every rank) and this rank's own data's band.
        let drift = match held.first() {
            Some(h) if clean_on && cfg.imaging.drift_beam_chunk > 0 => {
                let times: Vec<Vec<f64>> = image
                    .groups
                    .iter()
                    .map(|&g| plan.groups[g].times_jd.clone())
                    .collect();
                Some(DriftBeam::new(
                    spec,
                    image.centre,
                    &eop,
                    h.vis.site,
                    h.vis.pointing_dec_rad,
                    h.vis.freqs.clone(),
                    crate::core::telescope::DISH_DIAMETER_M,
                    cfg.imaging.drift_beam_chunk,
                    &times,
                ))
            }
            _ => None,
        };
        let setup = CleanSetup {
            owner: image.owner,
            distributed,
            spec: &spec,
            params: &cfg.imaging,
            max_major: cfg.imaging.max_major_cycles,
            nterms: if clean_on { cfg.imaging.nterms } else { 1 },
            ref_hz,
            beam: drift.as_ref(),
            compute: compute.as_ref(),
        };
        if comm.rank() != image.owner {
            if distributed && clean_on {
                let t = Instant::now();
                clean_image(comm, &setup, &mut held, None);
                add_time(&mut report, "clean", t);
            }
            continue;
        }
        let t = Instant::now();
        let mut rep = ImageReport {
            name: image.name.clone(),
            products: vec![],
            groups_used: n_ok,
            peak_jy: 0.0,
            error: None,
            beam_deg: None,
            clean_iterations: 0,
            major_cycles: 0,
            residual_rms_jy: 0.0,
        };
        let mut images = grids.and_then(GridPair::finish_f64);
        // The PSF product and the restoring beam: the centre of CLEAN's 2n x 2n PSF.
        if let (Some((_, psf)), Some(Some(p2))) = (images.as_mut(), psfs2.first()) {
            *psf = crate::imaging::clean::central(p2, spec.n_image);
        }
        let cleaned = if clean_on && (distributed || images.is_some()) {
            let tc = Instant::now();
            let start = images
                .clone()
                .filter(|_| psfs2.iter().all(Option::is_some))
                .map(|(d, _)| {
                    let mut st = CleanStart {
                        residuals: vec![d],
                        psfs: psfs2.into_iter().flatten().collect(),
                    };
                    if let Some(Some((i1, _))) = spectral
                        .into_iter()
                        .next()
                        .map(|g| g.and_then(GridPair::finish_f64))
                    {
                        st.residuals.push(i1);
                    }
                    st
                });
            let out = clean_image(comm, &setup, &mut held, start);
            add_time(&mut report, "clean", tc);
            out
        } else {
            None
        };
        let site = held.first().map(|h| h.vis.site);
        if let Some(s) = &site {
            crate::products::set_obsgeo(s.ecef);
        }
        drop(held);
        match images {
            None => rep.error = Some("no group of this image could be gridded".into()),
            Some((dirty, psf)) => {
                rep.peak_jy = dirty.iter().fold(0f64, |a, &b| a.max(b));
                let beam = crate::imaging::clean::fit_beam(&psf, spec.n_image);
                let cell = cfg.imaging.cell_arcsec / 3600.0;
                rep.beam_deg = Some([beam.major_px * cell, beam.minor_px * cell, beam.pa_deg]);
                let first = &plan.groups[image.groups[0]];
                let meta = |bunit: &'static str| ImageMeta {
                    ra_deg: image.centre.ra_rad.to_degrees(),
                    dec_deg: image.centre.dec_rad.to_degrees(),
                    cell_deg: cfg.imaging.cell_arcsec / 3600.0,
                    freq_hz: 0.5 * (freqs.0 + freqs.1),
                    bandwidth_hz: freqs.1 - freqs.0,
                    date_obs: jd_to_iso(first.times_jd[0], 3),
                    bunit,
                    object: image.name.clone(),
                    beam_deg: Some([beam.major_px * cell, beam.minor_px * cell, beam.pa_deg]),
                    history: vec![
                        format!(
                            "contimg run: npix={} cell={}arcsec eps={:e}",
                            cfg.imaging.npix, cfg.imaging.cell_arcsec, cfg.imaging.epsilon
                        ),
                        format!(
                            "weighting={:?} robust={} taper={}arcsec groups={} ranks={}",
                            cfg.imaging.weighting,
                            cfg.imaging.robust,
                            cfg.imaging.taper_gaussian_arcsec,
                            n_ok,
                            plan.n_ranks
                        ),
                        format!(
                            "clean: niter={} gain={} mgain={} threshold={}Jy",
                            cfg.imaging.niter,
                            cfg.imaging.gain,
                            cfg.imaging.mgain,
                            cfg.imaging.threshold_jy
                        ),
                        format!(
                            "auto_threshold={} auto_mask={} pblimit={}",
                            cfg.imaging.auto_threshold, cfg.imaging.auto_mask, cfg.imaging.pblimit
                        ),
                    ],
                };
                let mut products: Vec<(&str, Vec<f64>, &'static str)> =
                    vec![("dirty", dirty, "JY/BEAM"), ("psf", psf, "")];
                if let Some(c) = cleaned {
                    rep.clean_iterations = c.iterations;
                    rep.major_cycles = c.major_cycles;
                    let restored =
                        crate::imaging::clean::restore(&c.model, &c.residual, spec.n_image, &beam);
                    rep.residual_rms_jy =
                        crate::primitives::stats::median_and_mad_sigma(&c.residual)
                            .map(|x| x.1)
                            .unwrap_or(0.0);
                    if let Some(site) = site {
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
                            &spec,
                            image.centre,
                            &times,
                            first_g.pointing_dec_rad,
                            &site,
                            &eop,
                            &fr,
                            crate::core::telescope::DISH_DIAMETER_M,
                        );
                        let pbcor: Vec<f64> = restored
                            .iter()
                            .zip(&pb)
                            .map(|(r, p)| {
                                if *p >= cfg.imaging.pblimit {
                                    r / p
                                } else {
                                    f64::NAN
                                }
                            })
                            .collect();
                        products.push(("pb", pb, ""));
                        products.push(("pbcor", pbcor, "JY/BEAM"));
                    }
                    products.push(("model", c.model, "JY/PIXEL"));
                    products.push(("residual", c.residual, "JY/BEAM"));
                    products.push(("restored", restored, "JY/BEAM"));
                }
                for (kind, data, unit) in &products {
                    let path = images_dir.join(format!("{}.{kind}.fits", image.name));
                    let data32: Vec<f32> = data.iter().map(|&x| x as f32).collect();
                    match write_fits_image(&path, spec.n_image, &data32, &meta(unit)) {
                        Ok(()) => rep.products.push(path),
                        Err(e) => {
                            rep.error = Some(e.to_string());
                            break; // the image failed: no later products (the disk is full or read-only)
                        }
                    }
                }
                // Done marker (resume): only for a complete image, after its products.
                if let Some(hash) = plan
                    .image_hash
                    .get(ii)
                    .filter(|_| rep.error.is_none() && n_ok == image.groups.len())
                {
                    let marker = crate::resume::DoneMarker::new(
                        hash.clone(),
                        image
                            .groups
                            .iter()
                            .map(|&g| plan.groups[g].id.clone())
                            .collect(),
                        rep.products.clone(),
                    );
                    if let Err(e) =
                        marker.and_then(|m| crate::resume::write_done(&images_dir, &image.name, &m))
                    {
                        log::warn!("{}: cannot write the done marker: {e}", image.name);
                    }
                }
            }
        }
        add_time(&mut report, "image", t);
        match &rep.error {
            None => log::info!(
                "rank {}: image {} ({}/{}) done",
                comm.rank(),
                image.name,
                ii + 1,
                plan.images.len()
            ),
            Some(e) => log::error!(
                "rank {}: image {} ({}/{}) failed: {e}",
                comm.rank(),
                image.name,
                ii + 1,
                plan.images.len()
            ),
        }
        report.images.push(rep);
    }

    report.gpu = monitor.and_then(crate::compute::monitor::Monitor::finish);
    // Gather reports.
    let gathered = comm.gather_bytes(0, &serde_json::to_vec(&report).expect("report serialises"));
    let Some(parts) = gathered else {
        return Ok(None);
    };
    let ranks: Vec<RankReport> = parts
        .iter()
        .filter_map(|b| serde_json::from_slice(b).ok())
        .collect();
    let groups_failed: Vec<(String, String)> = ranks
        .iter()
        .flat_map(|r| r.groups.iter())
        .filter(|g| !g.ok)
        .map(|g| (g.id.clone(), g.error.clone().unwrap_or_default()))
        .collect();
    // Resume bookkeeping (rank 0 is the one writer of the group states).
    for g in ranks.iter().flat_map(|r| r.groups.iter()) {
        if g.ok {
            crate::resume::clear_failure(&out, &g.id);
        } else if let Err(e) =
            crate::resume::record_failure(&out, &g.id, g.error.as_deref().unwrap_or(""))
        {
            log::warn!("{}: cannot record the failure: {e}", g.id);
        }
    }
    // The night's state, one record per planned group (rank 0, the one writer; atomic).
    let state: Vec<crate::resume::GroupState> = plan
        .groups
        .iter()
        .map(|g| {
            let rep = ranks
                .iter()
                .flat_map(|r| r.groups.iter())
                .find(|x| x.id == g.id);
            let (stage, error) = if plan.image_is_done(g.image) {
                ("done (resumed)".to_string(), String::new())
            } else if let Some(r) = plan.retired.iter().find(|r| r.0 == g.id) {
                ("retired".to_string(), r.1.clone())
            } else {
                match rep {
                    Some(x) if x.ok => ("done".to_string(), String::new()),
                    Some(x) => ("failed".to_string(), x.error.clone().unwrap_or_default()),
                    None => ("pending".to_string(), String::new()),
                }
            };
            let attempts = crate::resume::read_failure(&out, &g.id)
                .map(|s| s.attempts)
                .unwrap_or(0);
            crate::resume::GroupState {
                id: g.id.clone(),
                stage,
                error,
                attempts,
            }
        })
        .collect();
    if let Err(e) = std::fs::create_dir_all(out.join("state")).and_then(|_| {
        write_atomic(
            &out.join("state/night.json"),
            serde_json::to_string_pretty(&state)
                .expect("serialises")
                .as_bytes(),
        )
    }) {
        log::warn!(
            "{}: cannot write the night's state: {e}",
            out.join("state/night.json").display()
        );
    }
    let images_resumed: Vec<String> = (0..plan.images.len())
        .filter(|&i| plan.image_is_done(i))
        .map(|i| plan.images[i].name.clone())
        .collect();
    let groups_resumed = (0..plan.images.len())
        .filter(|&i| plan.image_is_done(i))
        .map(|i| plan.images[i].groups.len())
        .sum::<usize>();
    let groups_ok = ranks
        .iter()
        .flat_map(|r| r.groups.iter())
        .filter(|g| g.ok)
        .count()
        + groups_resumed;
    let images: Vec<ImageReport> = ranks.iter().flat_map(|r| r.images.clone()).collect();
    let complete = groups_ok > 0
        && groups_failed.is_empty()
        && plan.retired.is_empty()
        && ranks.iter().all(|r| r.ms_errors.is_empty())
        && plan.skipped.is_empty()
        && plan.bad_files.is_empty()
        && images.iter().all(|i| i.error.is_none());
    let imaged = images.iter().any(|i| i.error.is_none()) || !images_resumed.is_empty();
    let outcome = if complete {
        "complete"
    } else if imaged {
        "incomplete"
    } else {
        "nothing imaged"
    };
    if !imaged {
        log::error!(
            "nothing imaged: {}",
            if plan.groups.is_empty() {
                format!("no groups found in {}", cfg.input.dir.display())
            } else {
                format!("all {} groups failed or were skipped", plan.groups.len())
            }
        );
    }
    let summary = Summary {
        n_ranks: comm.size(),
        wall_s: t_start.elapsed().as_secs_f64(),
        groups_planned: plan.groups.len(),
        groups_ok,
        complete,
        outcome: outcome.to_string(),
        contimg_version: crate::VERSION.to_string(),
        command_line: std::env::args().collect(),
        settings: serde_json::to_value(cfg).expect("settings serialise"),
        groups_failed,
        groups_skipped: plan.skipped.iter().chain(&plan.retired).cloned().collect(),
        images_resumed,
        bad_files: plan.bad_files.clone(),
        images,
        ranks,
        calibration_note: plan.calibration_note.clone(),
        calibration: cal_qa,
    };
    let path = out.join("summary.json");
    write_atomic(
        &path,
        serde_json::to_string_pretty(&summary)
            .expect("summary serialises")
            .as_bytes(),
    )
    .map_err(|source| PipelineError::Output { path, source })?;
    // Night products (rank 0; a failure here is logged, the night's images stand).
    let has_pbcor = summary.images.iter().any(|i| {
        i.products
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".pbcor.fits"))
    });
    if cfg.output.mosaic && (has_pbcor || !summary.images_resumed.is_empty()) {
        match crate::mosaic::build(&out, &out.join("mosaic"), cfg.imaging.pblimit) {
            Ok(m) => log::info!(
                "mosaic: {} tiles -> {} x {} pixels in {}",
                m.tiles,
                m.nx,
                m.ny,
                out.join("mosaic").display()
            ),
            Err(e) => log::warn!("mosaic not made: {e}"),
        }
    }
    if cfg.output.photometry {
        match crate::photometry::night::photometry_of_run(
            &out,
            cfg.output.photometry_catalog.as_deref(),
        ) {
            Ok(n) => log::info!("photometry: {n} measurements -> photometry/night.csv"),
            Err(e) => log::warn!("photometry not made: {e}"),
        }
    }
    if cfg.output.report {
        match crate::report::write(&out, None) {
            Ok(r) => log::info!(
                "QA report: {} gates -> {}",
                r.gates.len(),
                out.join("qa/report.html").display()
            ),
            Err(e) => log::warn!("QA report not made: {e}"),
        }
    }
    Ok(Some(summary))
}
