//! `contimg status DIR`: what a night's run left behind (its `summary.json`), or, for a
//! directory of night output directories (an archive campaign), one line per night and the
//! totals. Reads only; a night without a summary is reported as not finished.

use crate::night::Summary;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NightStatus {
    pub dir: PathBuf,
    /// "complete", "incomplete" (finished with failed or skipped groups) or "not finished".
    pub state: String,
    pub groups_planned: usize,
    pub groups_ok: usize,
    pub groups_failed: usize,
    pub groups_skipped: usize,
    pub images: usize,
    pub n_ranks: usize,
    pub wall_s: f64,
    pub groups_per_hour: f64,
    /// Failed or skipped groups with their reasons (first few).
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArchiveStatus {
    pub nights: Vec<NightStatus>,
    pub complete: usize,
    pub incomplete: usize,
    pub not_finished: usize,
    pub groups_ok: usize,
    pub groups_planned: usize,
}

/// The status of one night's output directory.
pub fn night(dir: &Path) -> NightStatus {
    let path = dir.join("summary.json");
    let summary: Option<Summary> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    match summary {
        None => NightStatus {
            dir: dir.into(),
            state: "not finished".into(),
            // A night still running or killed: its ranks' progress files say how far it got.
            groups_planned: 0,
            groups_ok: 0,
            groups_failed: 0,
            groups_skipped: 0,
            images: 0,
            n_ranks: 0,
            wall_s: 0.0,
            groups_per_hour: 0.0,
            problems: {
                let st = crate::progress::stages(dir);
                let mut p = vec![format!("{}: missing or unreadable", path.display())];
                if st.iter().any(|s| s.1 > 0) {
                    p.push(format!(
                        "progress: {}",
                        st.iter()
                            .map(|(s, n)| format!("{n} {s}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                p
            },
        },
        Some(s) => {
            let problems = s
                .groups_failed
                .iter()
                .chain(&s.groups_skipped)
                .take(5)
                .map(|(g, e)| format!("{g}: {e}"))
                .collect();
            NightStatus {
                dir: dir.into(),
                state: if s.complete { "complete" } else { "incomplete" }.into(),
                groups_planned: s.groups_planned,
                groups_ok: s.groups_ok,
                groups_failed: s.groups_failed.len(),
                groups_skipped: s.groups_skipped.len(),
                images: s.images.iter().filter(|i| i.error.is_none()).count()
                    + s.images_resumed.len(),
                n_ranks: s.n_ranks,
                wall_s: s.wall_s,
                groups_per_hour: if s.wall_s > 0.0 {
                    3600.0 * s.groups_ok as f64 / s.wall_s
                } else {
                    0.0
                },
                problems,
            }
        }
    }
}

/// A night directory itself, or every subdirectory of an archive root that looks like a
/// night's output (has `summary.json`, `images/` or `progress/`), sorted by name.
pub fn collect(root: &Path) -> Result<ArchiveStatus, std::io::Error> {
    let is_night = |p: &Path| {
        p.join("summary.json").exists() || p.join("images").is_dir() || p.join("progress").is_dir()
    };
    let dirs: Vec<PathBuf> = if is_night(root) {
        vec![root.to_path_buf()]
    } else {
        let mut v: Vec<PathBuf> = std::fs::read_dir(root)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir() && is_night(p))
            .collect();
        v.sort();
        v
    };
    let nights: Vec<NightStatus> = dirs.iter().map(|d| night(d)).collect();
    let count = |s: &str| nights.iter().filter(|n| n.state == s).count();
    Ok(ArchiveStatus {
        complete: count("complete"),
        incomplete: count("incomplete"),
        not_finished: count("not finished"),
        groups_ok: nights.iter().map(|n| n.groups_ok).sum(),
        groups_planned: nights.iter().map(|n| n.groups_planned).sum(),
        nights,
    })
}

/// The human-readable table.
pub fn render(a: &ArchiveStatus) -> String {
    let mut s = format!(
        "{:<40} {:<13} {:>9} {:>6} {:>7} {:>6} {:>8} {:>10}\n",
        "night", "state", "groups", "failed", "skipped", "ranks", "wall s", "groups/h"
    );
    for n in &a.nights {
        let name = n
            .dir
            .file_name()
            .map(|x| x.to_string_lossy().into_owned())
            .unwrap_or_else(|| n.dir.display().to_string());
        s += &format!(
            "{:<40} {:<13} {:>4}/{:<4} {:>6} {:>7} {:>6} {:>8.1} {:>10.1}\n",
            name,
            n.state,
            n.groups_ok,
            n.groups_planned,
            n.groups_failed,
            n.groups_skipped,
            n.n_ranks,
            n.wall_s,
            n.groups_per_hour
        );
        for p in &n.problems {
            s += &format!("    {p}\n");
        }
    }
    s += &format!(
        "{} nights: {} complete, {} incomplete, {} not finished; {} of {} groups imaged\n",
        a.nights.len(),
        a.complete,
        a.incomplete,
        a.not_finished,
        a.groups_ok,
        a.groups_planned
    );
    s
}
