//! A night as the pipeline layer shares it: its plan, made on rank 0 and broadcast
//! (`plan_night`, collective), and its records (what each rank did, `RankReport`, and the
//! night's `Summary`, written as `summary.json`). `pipeline` (the run), `export` (convert),
//! `report` (QA) and `status` all use them; this module imports none of those.

use crate::comm::Comm;
use crate::config::Config;
use crate::plan::{make_plan, Plan};
use crate::primitives::iers::EarthOrientation;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Why a night could not be planned, or its records not written.
#[derive(Debug, thiserror::Error)]
pub enum NightError {
    /// Rank 0's planning error as it came over the wire (the other ranks see this).
    #[error("planning failed on rank 0: {0}")]
    Plan(String),
    /// Rank 0's own planning error.
    #[error("planning failed on rank 0: {0}")]
    Planning(#[from] crate::plan::PlanError),
    #[error(transparent)]
    Iers(#[from] crate::primitives::iers::IersError),
    #[error("another rank could not load the IERS table")]
    IersElsewhere,
    #[error("{path}: cannot create output ({source})")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
}

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

impl GroupReport {
    /// A group that failed, and why (nothing of it imaged).
    pub fn failed(id: &str, error: String, flags: Option<crate::flag::FlagSummary>) -> Self {
        GroupReport {
            id: id.to_string(),
            ok: false,
            error: Some(error),
            n_vis: 0,
            flagged_fraction: 0.0,
            flags,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
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

/// Loads the Earth orientation on every rank, plans on rank 0 (creating `make_dir` there
/// first) and broadcasts the plan, or the planning error, so that no rank hangs.
pub fn plan_night(
    cfg: &Config,
    comm: &dyn Comm,
    make_dir: &Path,
    resume: bool,
) -> Result<(Plan, EarthOrientation), NightError> {
    let eop = EarthOrientation::load(cfg.astrometry.iers_file.as_deref());
    if !comm.all_ok(eop.is_ok()) {
        return Err(eop
            .err()
            .map(NightError::from)
            .unwrap_or(NightError::IersElsewhere));
    }
    let eop = eop.expect("checked on all ranks");
    let mut bytes = Vec::new();
    let mut root_error = None;
    if comm.is_root() {
        crate::progress::reset(&cfg.output.dir); // before any rank can mark progress
        let res: Result<Plan, NightError> = std::fs::create_dir_all(make_dir)
            .map_err(|source| NightError::Output {
                path: make_dir.to_path_buf(),
                source,
            })
            .and_then(|_| make_plan(cfg, comm.size(), &eop).map_err(NightError::from))
            .map(|mut p| {
                if resume {
                    crate::resume::apply(cfg, &mut p);
                    p.cal_reuse = calibration_registered(cfg, &p);
                }
                p
            });
        // On the wire the error is its message; rank 0 keeps the typed error.
        let wire: Result<&Plan, String> = res.as_ref().map_err(|e| e.to_string());
        bytes = serde_json::to_vec(&wire).expect("plan serialises");
        root_error = res.err();
    }
    comm.broadcast_bytes(0, &mut bytes);
    if let Some(e) = root_error {
        return Err(e);
    }
    // Every rank, rank 0 included, plans with the plan as it came over the wire.
    let plan: Plan = serde_json::from_slice::<Result<Plan, String>>(&bytes)
        .expect("rank 0 sent a plan")
        .map_err(NightError::Plan)?;
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

/// Where the night's calibration registry is (`calibration.registry`, else `<output>/cal`).
pub fn registry_path(cfg: &Config) -> PathBuf {
    cfg.calibration
        .registry
        .clone()
        .unwrap_or_else(|| cfg.output.dir.join("cal").join("registry.jsonl"))
}
