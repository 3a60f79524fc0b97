//! `contimg run`: the SPMD driver. Rank 0 plans and broadcasts; each rank converts and grids
//! its groups; grids of images spread over several ranks are reduced to the image's owner,
//! which transforms and writes it; rank 0 gathers what every rank did into `summary.json`.
//!
//! Every rank joins every collective in plan order whatever happened to its own work: a
//! failed group contributes an empty grid and a failure record.
//!
//! `run` is the orchestrator; each stage has its driver here: `calibration` (the solve at
//! the calibrator's transit, its table, registry and QA; the apply to each group),
//! `image_job` (one image: collect its groups, weight, grid, reduce, CLEAN), `products`
//! (the image's FITS products, pb-correction, headers, done marker) and `bookkeeping` (the
//! gathered reports, the night's state, `summary.json`, the night's products). The night's
//! plan and records (`plan_night`, `Summary`, ...) live in `crate::night`, shared with
//! `export`, `report` and `status`.

use crate::comm::Comm;
use crate::compute::Compute;
use crate::config::Config;
use crate::imaging::GridSpec;
use crate::night::registry_path;
use crate::plan::Plan;
use crate::primitives::iers::EarthOrientation;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

mod bookkeeping;
mod calibration;
mod image_job;
mod prefetch;
mod prepare;
mod products;

/// The night's records, at their old paths (now in `crate::night`).
pub use crate::night::{plan_night, GroupReport, ImageReport, RankReport, Summary};

/// Why `run` stopped on this rank (a group's or an image's failure does not stop it: it is
/// recorded in the summary).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Night(#[from] crate::night::NightError),
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

/// What every stage driver of one run reads: the settings, the communicator, the plan and
/// the Earth orientation, this rank's compute backend, the output folders and the grid.
struct Ctx<'a> {
    cfg: &'a Config,
    comm: &'a dyn Comm,
    plan: &'a Plan,
    eop: &'a EarthOrientation,
    compute: Arc<dyn Compute>,
    out: PathBuf,
    images_dir: PathBuf,
    spec: GridSpec,
}

impl Ctx<'_> {
    fn rank(&self) -> usize {
        self.comm.rank()
    }

    /// This rank's groups of image `ii` that are to be imaged (not retired), in plan order.
    fn mine(&self, ii: usize) -> Vec<usize> {
        let plan = self.plan;
        plan.images[ii]
            .groups
            .iter()
            .copied()
            .filter(|&g| plan.groups[g].rank == self.rank() && !plan.is_retired(&plan.groups[g].id))
            .collect()
    }
}

/// The image grid of the settings (`imaging.npix`, `cell_arcsec`, `epsilon`, uv range).
fn grid_spec(cfg: &Config) -> GridSpec {
    let mut s = GridSpec::new(
        cfg.imaging.npix,
        (cfg.imaging.cell_arcsec / 3600.0).to_radians(),
        cfg.imaging.epsilon,
    );
    s.uv_min_lambda = cfg.imaging.uv_min_lambda;
    s.uv_max_lambda = cfg.imaging.uv_max_lambda;
    s
}

/// This rank's compute backend (a GPU where there is one and it is allowed); collective:
/// when any rank cannot get the one it needs, every rank stops.
fn select_compute(cfg: &Config, comm: &dyn Comm) -> Result<Arc<dyn Compute>, PipelineError> {
    let chosen = crate::compute::select(&cfg.compute);
    if !comm.all_ok(chosen.is_ok()) {
        return Err(chosen
            .err()
            .map(PipelineError::from)
            .unwrap_or(PipelineError::GpuElsewhere));
    }
    let (compute, line) = chosen.expect("checked on all ranks");
    log::info!("rank {}: {line}", comm.rank());
    Ok(compute.into())
}

/// The progress bar over the groups still to image (rank 0).
fn progress_bar(plan: &Plan, out: &std::path::Path, ranks: usize) -> crate::progress::Bar {
    let todo = (0..plan.images.len())
        .filter(|&i| !plan.image_is_done(i))
        .flat_map(|i| plan.images[i].groups.iter())
        .filter(|&&g| !plan.is_retired(&plan.groups[g].id))
        .count();
    crate::progress::Bar::start(out, todo as u64, ranks)
}

/// Runs the night. Returns the summary on rank 0 (None elsewhere).
pub fn run(cfg: &Config, comm: &dyn Comm) -> Result<Option<Summary>, PipelineError> {
    let t_start = Instant::now();
    let out = cfg.output.dir.clone();
    let images_dir = out.join("images");
    let mut report = RankReport {
        rank: comm.rank(),
        ..Default::default()
    };
    // Provenance in every FITS: the version and the settings that shape the images.
    products::set_provenance(cfg);
    // Rank 0 plans; the plan (or the planning error) is broadcast so no rank hangs.
    let t0 = Instant::now();
    let (plan, eop) = plan_night(cfg, comm, &images_dir, cfg.output.resume)?;
    add_time(&mut report, "plan", t0);
    let compute = select_compute(cfg, comm)?;
    let _bar = comm
        .is_root()
        .then(|| progress_bar(&plan, &out, comm.size()));
    report.compute = compute.name();
    // GPU utilisation and memory over the run (NVML), where this rank has a device.
    let monitor = crate::compute::monitor::Monitor::start(compute.pci());
    let ctx = Ctx {
        cfg,
        comm,
        plan: &plan,
        eop: &eop,
        compute,
        out,
        images_dir,
        spec: grid_spec(cfg),
    };

    // Calibration solve on the calibrator's groups (collective).
    let registry = crate::calibrate::table::Registry::new(registry_path(cfg));
    let cal_qa = calibration::solve(&ctx, &registry, &mut report);

    // The images in plan order; this rank's groups read, flagged and made ready to grid
    // one ahead while the previous one is imaged (compute.prefetch).
    let tables = calibration::Tables::new(registry, &ctx);
    let (jobs, preparer, pool) = prepare::jobs(&ctx, tables);
    let mut inputs = image_job::Inputs {
        groups: prefetch::Groups::start(
            jobs,
            cfg.compute.prefetch,
            &cfg.flagging,
            ctx.compute.clone(),
            &ctx.out,
            comm.rank(),
            preparer,
        ),
        pool,
    };
    // An image's products are written behind the loop, on a thread of their own
    // (products::Writer), while the next image's groups are imaged.
    std::thread::scope(|s| {
        let mut writer = products::Writer::start(s, products::Shared::of(&ctx));
        for ii in 0..plan.images.len() {
            if plan.image_is_done(ii) {
                continue; // the same on every rank: the plan says so
            }
            image_job::image(&ctx, ii, &mut inputs, &mut report, &mut writer);
        }
        drop(inputs);
        let (images, secs) = writer.finish();
        report.images.extend(images);
        add_seconds(&mut report, "products", secs);
    });

    report.gpu = monitor.and_then(crate::compute::monitor::Monitor::finish);
    bookkeeping::finish(&ctx, report, cal_qa, t_start)
}
