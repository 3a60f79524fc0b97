//! The night's bookkeeping on rank 0, after the images: every rank's report gathered
//! (collective), each group's failure recorded or cleared for resume, the night's state
//! (one record per planned group), `summary.json` (atomic), and the night's products built
//! from what was written (mosaic, photometry, QA report; a failure there is logged, the
//! night's images stand).

use super::{Ctx, PipelineError};
use crate::calibrate::CalQa;
use crate::night::{ImageReport, RankReport, Summary};
use crate::plan::Plan;
use crate::products::write_atomic;
use crate::resume::GroupState;
use std::path::Path;
use std::time::Instant;

/// Gathers every rank's report to rank 0 (collective) and, there, records the night.
/// Returns the summary on rank 0, None elsewhere.
pub(super) fn finish(
    ctx: &Ctx,
    report: RankReport,
    cal_qa: Option<CalQa>,
    t_start: Instant,
) -> Result<Option<Summary>, PipelineError> {
    let (cfg, plan, comm, out) = (ctx.cfg, ctx.plan, ctx.comm, &ctx.out);
    let gathered = comm.gather_bytes(0, &serde_json::to_vec(&report).expect("report serialises"));
    let Some(parts) = gathered else {
        return Ok(None);
    };
    let ranks: Vec<RankReport> = parts
        .iter()
        .filter_map(|b| serde_json::from_slice(b).ok())
        .collect();
    record_failures(out, &ranks);
    write_state(out, plan, &ranks);
    let mut summary = summarise(ctx, ranks, t_start);
    summary.calibration = cal_qa;
    let path = out.join("summary.json");
    write_atomic(
        &path,
        serde_json::to_string_pretty(&summary)
            .expect("summary serialises")
            .as_bytes(),
    )
    .map_err(|source| PipelineError::Output { path, source })?;
    night_products(cfg, out, &summary);
    Ok(Some(summary))
}

/// Resume bookkeeping (rank 0 is the one writer of the group states): a failed group's
/// attempt recorded, an imaged group's record cleared.
fn record_failures(out: &Path, ranks: &[RankReport]) {
    for g in ranks.iter().flat_map(|r| r.groups.iter()) {
        if g.ok {
            crate::resume::clear_failure(out, &g.id);
        } else if let Err(e) =
            crate::resume::record_failure(out, &g.id, g.error.as_deref().unwrap_or(""))
        {
            log::warn!("{}: cannot record the failure: {e}", g.id);
        }
    }
}

/// The night's state, one record per planned group (rank 0, the one writer; atomic):
/// `<output>/state/night.json`.
fn write_state(out: &Path, plan: &Plan, ranks: &[RankReport]) {
    let state: Vec<GroupState> = plan
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
            let attempts = crate::resume::read_failure(out, &g.id)
                .map(|s| s.attempts)
                .unwrap_or(0);
            GroupState {
                id: g.id.clone(),
                stage,
                error,
                attempts,
            }
        })
        .collect();
    let path = out.join("state/night.json");
    if let Err(e) = std::fs::create_dir_all(out.join("state")).and_then(|_| {
        write_atomic(
            &path,
            serde_json::to_string_pretty(&state)
                .expect("serialises")
                .as_bytes(),
        )
    }) {
        log::warn!("{}: cannot write the night's state: {e}", path.display());
    }
}

/// The night's summary from the gathered reports and the plan: what was imaged, failed,
/// skipped or resumed, the outcome (exit code), and the run's provenance.
fn summarise(ctx: &Ctx, ranks: Vec<RankReport>, t_start: Instant) -> Summary {
    let (cfg, plan) = (ctx.cfg, ctx.plan);
    let groups_failed: Vec<(String, String)> = ranks
        .iter()
        .flat_map(|r| r.groups.iter())
        .filter(|g| !g.ok)
        .map(|g| (g.id.clone(), g.error.clone().unwrap_or_default()))
        .collect();
    let resumed: Vec<usize> = (0..plan.images.len())
        .filter(|&i| plan.image_is_done(i))
        .collect();
    let images_resumed: Vec<String> = resumed
        .iter()
        .map(|&i| plan.images[i].name.clone())
        .collect();
    let groups_resumed: usize = resumed.iter().map(|&i| plan.images[i].groups.len()).sum();
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
    Summary {
        n_ranks: ctx.comm.size(),
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
        calibration: None,
    }
}

/// The night's products from its images (rank 0): the mosaic (when a pb-corrected image
/// was made or resumed), the photometry and the QA report, as the settings ask.
fn night_products(cfg: &crate::config::Config, out: &Path, summary: &Summary) {
    let has_pbcor = summary.images.iter().any(|i| {
        i.products
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".pbcor.fits"))
    });
    if cfg.output.mosaic && (has_pbcor || !summary.images_resumed.is_empty()) {
        match crate::mosaic::build(out, &out.join("mosaic"), cfg.imaging.pblimit) {
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
            out,
            cfg.output.photometry_catalog.as_deref(),
        ) {
            Ok(n) => log::info!("photometry: {n} measurements -> photometry/night.csv"),
            Err(e) => log::warn!("photometry not made: {e}"),
        }
    }
    if cfg.output.report {
        match crate::report::write(out, None) {
            Ok(r) => log::info!(
                "QA report: {} gates -> {}",
                r.gates.len(),
                out.join("qa/report.html").display()
            ),
            Err(e) => log::warn!("QA report not made: {e}"),
        }
    }
}
