//! `contimg convert`: the night's groups as Measurement Sets, one per group, spread over the
//! ranks like `run` spreads them. Each MS holds the group read, flagged (when flagging is
//! enabled) and rephased to the group's own centre (its median meridian position, J2000);
//! it is not calibrated (`run` with `output.ms.write` writes the calibrated data it images).

use crate::comm::Comm;
use crate::config::Config;
use crate::core::Centre;
use crate::core::GroupVis;
use crate::ms::{write_group_ms, MsConfig};
use crate::night::{plan_night, NightError};
use crate::primitives::astrometry::median_meridian_icrs;
use crate::primitives::iers::EarthOrientation;
use crate::uvh5::group::{load_group, LoadError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Why a group's Measurement Set, or the night's conversion, could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Night(#[from] NightError),
    #[error("{}: {source}", path.display())]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Ms(#[from] crate::ms::MsError),
    #[error("{}: cannot create output ({source})", path.display())]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One group's export.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exported {
    pub id: String,
    pub rank: usize,
    /// The MS written, or why not: the ExportError's message, as this record is gathered
    /// to rank 0 as JSON.
    pub result: Result<PathBuf, String>,
    pub rows: usize,
    pub seconds: f64,
}

/// What `convert` did over all ranks (rank 0 only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConvertSummary {
    pub groups: Vec<Exported>,
    pub skipped: Vec<(String, String)>,
    pub bad_files: Vec<(PathBuf, String)>,
    pub wall_s: f64,
}

impl ConvertSummary {
    pub fn complete(&self) -> bool {
        self.skipped.is_empty()
            && self.bad_files.is_empty()
            && self.groups.iter().all(|g| g.result.is_ok())
    }
}

/// The group's own phase centre: its median meridian position (J2000).
pub fn group_centre(g: &GroupVis, eop: &EarthOrientation) -> Centre {
    let (ra_rad, dec_rad) = median_meridian_icrs(&g.times_jd, g.pointing_dec_rad, &g.site, eop);
    Centre { ra_rad, dec_rad }
}

/// Writes `<dir>/<id>.ms` for a loaded group; returns the path and the row count.
pub fn export_group(
    dir: &Path,
    id: &str,
    g: &GroupVis,
    centre: Centre,
    eop: &EarthOrientation,
    ms: &MsConfig,
    history: &str,
) -> Result<(PathBuf, usize), ExportError> {
    std::fs::create_dir_all(dir).map_err(|source| ExportError::Dir {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(format!("{id}.ms"));
    let rows = write_group_ms(&path, g, centre, eop, ms, history)?;
    Ok((path, rows))
}

/// Converts the night (collective: every rank calls it).
pub fn convert_night(cfg: &Config, comm: &dyn Comm) -> Result<Option<ConvertSummary>, ExportError> {
    let t0 = std::time::Instant::now();
    let dir = cfg.output.dir.join("ms");
    let (plan, eop) = plan_night(cfg, comm, &dir, false)?;
    let mut mine = Vec::new();
    for g in plan.groups.iter().filter(|g| g.rank == comm.rank()) {
        let t = std::time::Instant::now();
        let files: Vec<&Path> = g.files.iter().flatten().map(PathBuf::as_path).collect();
        let res = load_group(&files)
            .map_err(ExportError::from)
            .and_then(|mut vis| {
                if cfg.flagging.enabled {
                    crate::flag::run(&mut vis, &cfg.flagging);
                }
                let centre = group_centre(&vis, &eop);
                let history = format!(
                    "contimg convert: group {} from {} subband files, flagging {}",
                    g.id,
                    files.len(),
                    if cfg.flagging.enabled { "on" } else { "off" }
                );
                export_group(&dir, &g.id, &vis, centre, &eop, &cfg.output.ms, &history)
            });
        match &res {
            Ok((p, _)) => log::info!("rank {}: group {} -> {}", comm.rank(), g.id, p.display()),
            Err(e) => log::error!("rank {}: group {} failed: {e}", comm.rank(), g.id),
        }
        let rows = res.as_ref().map(|r| r.1).unwrap_or(0);
        mine.push(Exported {
            id: g.id.clone(),
            rank: comm.rank(),
            result: res.map(|r| r.0).map_err(|e| e.to_string()),
            rows,
            seconds: t.elapsed().as_secs_f64(),
        });
    }
    let parts = comm.gather_bytes(0, &serde_json::to_vec(&mine).expect("serialises"));
    let Some(parts) = parts else { return Ok(None) };
    let mut groups: Vec<Exported> = parts
        .iter()
        .filter_map(|b| serde_json::from_slice::<Vec<Exported>>(b).ok())
        .flatten()
        .collect();
    groups.sort_by(|a, b| a.id.cmp(&b.id));
    let summary = ConvertSummary {
        groups,
        skipped: plan.skipped.clone(),
        bad_files: plan.bad_files.clone(),
        wall_s: t0.elapsed().as_secs_f64(),
    };
    let path = dir.join("convert.json");
    crate::products::write_atomic(
        &path,
        serde_json::to_string_pretty(&summary)
            .expect("serialises")
            .as_bytes(),
    )
    .map_err(|source| ExportError::Output { path, source })?;
    Ok(Some(summary))
}
