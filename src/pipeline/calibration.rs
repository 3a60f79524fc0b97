//! The calibration driver. The solve at the night's calibrator transit (collective: the
//! calibrator's groups read and flagged on their ranks, solved together over the ranks);
//! rank 0 writes the table, assesses it (QA) and registers it, valid when no QA gate
//! failed. The apply: each group calibrated with the registry's nearest valid table.

use super::{add_time, Ctx};
use crate::calibrate::memory;
use crate::calibrate::table::{CalTable, Registry, RegistryEntry, TableError};
use crate::calibrate::{CalPlan, CalQa};
use crate::core::GroupVis;
use crate::night::RankReport;
use crate::primitives::time::jd_to_iso;
use crate::uvh5::group::load_group;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Why a group could not be calibrated (the group fails; the night goes on).
#[derive(Debug, thiserror::Error)]
pub(super) enum ApplyError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("calibration table {} shares no antenna with the data ({table} table antennas, none of this group's {group})", path.display())]
    NoSharedAntenna {
        path: PathBuf,
        table: usize,
        group: usize,
    },
    #[error("no valid calibration within +-24 h in {}", registry.display())]
    Missing { registry: PathBuf },
}

/// Why the solved table could not be recorded.
#[derive(Debug, thiserror::Error)]
enum RecordError {
    #[error("cannot create {} ({source})", dir.display())]
    Dir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Table(#[from] TableError),
}

/// Solves at the plan's calibrator transit unless the registry already holds a table for it
/// (collective). Returns the QA of the table written (rank 0).
pub(super) fn solve(ctx: &Ctx, registry: &Registry, report: &mut RankReport) -> Option<CalQa> {
    let (plan, comm) = (ctx.plan, ctx.comm);
    let Some(cp) = plan.calibration.as_ref().filter(|_| !plan.cal_reuse) else {
        if comm.is_root() && ctx.cfg.calibration.enabled {
            log::warn!("{}", plan.calibration_note);
        }
        return None;
    };
    let t = Instant::now();
    let mine = calibrator_groups(ctx, cp);
    // The solve's accumulators and table, checked on every rank before they are allocated;
    // skipped on all ranks together when one lacks the memory.
    let fits = solve_fits_in_memory(ctx, cp);
    let solved = comm.all_ok(fits).then(|| {
        let compute = ctx.compute.as_ref();
        crate::calibrate::solve_night(comm, compute, cp, &mine, &ctx.cfg.calibration, ctx.eop)
    });
    drop(mine);
    let mut cal_qa = None;
    let ok = match solved {
        None => {
            if comm.is_root() {
                log::error!(
                    "calibration solve skipped: it does not fit in the memory of every rank"
                );
            }
            false
        }
        Some(Ok(table)) if comm.is_root() => {
            let name = format!("{}_{}", cp.calibrator.name, jd_to_iso(cp.transit_jd, 0));
            let path = ctx.out.join("cal").join(format!("{name}.h5"));
            match record(ctx, &table, &name, &path, registry, &mut cal_qa) {
                Ok(()) => {
                    log::info!(
                        "calibration solved on {} -> {}",
                        cp.calibrator.name,
                        path.display()
                    );
                    true
                }
                Err(e) => {
                    log::error!("calibration table {}: {e}", path.display());
                    false
                }
            }
        }
        Some(Ok(_)) => true,
        Some(Err(e)) => {
            if comm.is_root() {
                log::error!("calibration solve failed: {e}");
            }
            false
        }
    };
    let _ = comm.all_ok(ok); // the registry is written before anyone reads it
    add_time(report, "calibrate_solve", t);
    cal_qa
}

/// Whether the solve's accumulators and table fit in the memory this rank has left (its
/// calibrator groups already read); logs why not, naming the setting.
fn solve_fits_in_memory(ctx: &Ctx, cp: &CalPlan) -> bool {
    let times = cp
        .groups
        .iter()
        .flat_map(|&gi| ctx.plan.groups[gi].times_jd.iter().copied());
    let (t0, t1) = times.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), t| {
        (a.min(t), b.max(t))
    });
    let span = if t1 >= t0 { t1 - t0 } else { 0.0 };
    let cfg = &ctx.cfg.calibration;
    let need = memory::solve_memory(cp, span, cfg);
    match memory::check(need, crate::core::available_memory(), cp, cfg) {
        Ok(()) => true,
        Err(e) => {
            log::error!("rank {}: {e}", ctx.rank());
            false
        }
    }
}

/// This rank's calibrator groups, read and flagged (an unreadable one is left out).
fn calibrator_groups(ctx: &Ctx, cp: &CalPlan) -> Vec<GroupVis> {
    let mut mine = Vec::new();
    for &gi in &cp.groups {
        let g = &ctx.plan.groups[gi];
        if g.rank != ctx.rank() {
            continue;
        }
        let files: Vec<&Path> = g.files.iter().flatten().map(PathBuf::as_path).collect();
        match load_group(&files) {
            Ok(mut v) => {
                crate::flag::run_with(&mut v, &ctx.cfg.flagging, ctx.compute.as_ref());
                mine.push(v);
            }
            Err(e) => log::error!(
                "rank {}: calibrator group {} unreadable: {e}",
                ctx.rank(),
                g.id
            ),
        }
    }
    mine
}

/// Writes the solved table to `path`, assesses it (into `qa`) and registers it, valid when
/// no QA gate failed, over the calibration span about its solution times (rank 0).
fn record(
    ctx: &Ctx,
    table: &CalTable,
    name: &str,
    path: &Path,
    registry: &Registry,
    qa: &mut Option<CalQa>,
) -> Result<(), RecordError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|source| RecordError::Dir {
        dir: dir.to_path_buf(),
        source,
    })?;
    table.write(path)?;
    let half_span = 0.5 * ctx.cfg.calibration.span_minutes / 1440.0;
    let t0 = table.time_jd[0] - half_span;
    let t1 = *table.time_jd.last().expect("non-empty") + half_span;
    let q = crate::calibrate::qa(table, name);
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
    *qa = Some(q);
    let abs = std::fs::canonicalize(path).unwrap_or(path.to_path_buf());
    registry.register(&RegistryEntry {
        path: abs,
        calibrator: table.calibrator.clone(),
        start_jd: t0,
        end_jd: t1,
        centre_jd: 0.5 * (t0 + t1),
        valid,
    })?;
    Ok(())
}

/// The registry and the tables read from it so far (each read once per rank), with what
/// selecting one needs besides: owned, as they are used on the group reader's thread
/// (the rank, its output folder for progress marks, and whether a group without a table
/// fails: `calibration.require`).
pub(super) struct Tables {
    registry: Registry,
    read: HashMap<PathBuf, CalTable>,
    require: bool,
    rank: usize,
    out: PathBuf,
}

impl Tables {
    pub(super) fn new(registry: Registry, ctx: &Ctx) -> Self {
        Tables {
            registry,
            read: HashMap::new(),
            require: ctx.cfg.calibration.require,
            rank: ctx.rank(),
            out: ctx.out.clone(),
        }
    }

    /// The registry's valid table nearest group `id`'s middle time (each read once per
    /// rank), with its path, checked to share antennas with the group. None with no table
    /// within +-24 h: the group is imaged uncalibrated, or fails when
    /// `calibration.require` is set.
    pub(super) fn select(
        &mut self,
        id: &str,
        vis: &GroupVis,
    ) -> Result<Option<(&Path, &CalTable)>, ApplyError> {
        let mid = vis.times_jd[vis.times_jd.len() / 2];
        let Some((entry, _)) = self.registry.nearest(mid)? else {
            if self.require {
                return Err(ApplyError::Missing {
                    registry: self.registry.path.clone(),
                });
            }
            log::warn!(
                "rank {}: group {id} imaged uncalibrated: no calibration within +-24 h",
                self.rank
            );
            return Ok(None);
        };
        let p = entry.path;
        if !self.read.contains_key(&p) {
            let t = CalTable::read(&p)?;
            self.read.insert(p.clone(), t);
        }
        let (p, table) = self.read.get_key_value(&p).expect("read above");
        // A table of other antennas calibrates nothing: say so, by name.
        let ours: Vec<u32> = vis
            .antenna_names
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        if !ours.iter().any(|a| table.antenna_names.contains(a)) {
            return Err(ApplyError::NoSharedAntenna {
                path: p.clone(),
                table: table.antenna_names.len(),
                group: ours.len(),
            });
        }
        Ok(Some((p.as_path(), table)))
    }

    /// Calibrates group `id` in place, per polarization, on the host, with the
    /// table `select` gives (for a Measurement Set; the imaging applies it while forming
    /// Stokes I, `calibrate::apply::stokes_i_calibrated`).
    pub(super) fn apply(&mut self, id: &str, vis: &mut GroupVis) -> Result<(), ApplyError> {
        let (rank, out) = (self.rank, self.out.clone());
        let Some((p, table)) = self.select(id, vis)? else {
            return Ok(());
        };
        let frac = crate::calibrate::apply::apply(vis, table);
        calibrated(rank, &out, id, p, frac);
        Ok(())
    }
}

/// Logs group `id`'s calibration with table `p`, which flagged `frac` of its unflagged
/// data, and marks its progress (in `out`).
pub(super) fn calibrated(rank: usize, out: &Path, id: &str, p: &Path, frac: f64) {
    log::info!(
        "rank {rank}: group {id} calibrated with {} ({:.1} % newly flagged)",
        p.display(),
        100.0 * frac
    );
    if frac > 0.5 {
        log::warn!(
            "rank {rank}: group {id}: calibration table {} flagged {:.1} % of the data (antennas, channels or solutions it lacks)",
            p.display(),
            100.0 * frac
        );
    }
    crate::progress::mark(out, rank, id, "calibrated");
}
