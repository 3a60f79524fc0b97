//! Night progress aggregated over ranks: every rank appends a line per group and stage
//! (converted, flagged, calibrated, gridded, failed) to `<out>/progress/rank-<r>.log` (one
//! writer per file; the output directory is shared by the ranks, as the products are), and
//! rank 0 draws one indicatif bar from all of them in a background thread (hidden when
//! stderr is not a terminal; the log lines carry the rank either way). `contimg status`
//! reads the same files for a night still running or killed.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub fn dir(out: &Path) -> PathBuf {
    out.join("progress")
}

/// Rank 0, before the plan is broadcast: a fresh progress directory.
pub fn reset(out: &Path) {
    let d = dir(out);
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::create_dir_all(&d);
}

/// Records that this rank took a group through a stage.
pub fn mark(out: &Path, rank: usize, group: &str, stage: &str) {
    let path = dir(out).join(format!("rank-{rank}.log"));
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{group} {stage}");
    }
}

/// How many groups reached each stage, over all ranks, in stage order.
pub fn stages(out: &Path) -> Vec<(String, u64)> {
    let order = ["converted", "flagged", "calibrated", "gridded", "failed"];
    let mut n = [0u64; 5];
    for e in std::fs::read_dir(dir(out)).into_iter().flatten().flatten() {
        if let Ok(t) = std::fs::read_to_string(e.path()) {
            for l in t.lines() {
                if let Some(k) = l
                    .rsplit(' ')
                    .next()
                    .and_then(|s| order.iter().position(|o| *o == s))
                {
                    n[k] += 1;
                }
            }
        }
    }
    order
        .iter()
        .zip(n)
        .map(|(o, c)| (o.to_string(), c))
        .collect()
}

/// Groups finished so far over all ranks: (gridded or failed, failed).
pub fn count(out: &Path) -> (u64, u64) {
    let s = stages(out);
    (s[3].1 + s[4].1, s[4].1)
}

/// Rank 0's bar; stops and clears when dropped.
pub struct Bar {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bar {
    pub fn start(out: &Path, total: u64, n_ranks: usize) -> Bar {
        let stop = Arc::new(AtomicBool::new(false));
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} groups ({per_sec}, eta {eta}) {msg}") {
            bar.set_style(style);
        }
        let (out, s) = (out.to_path_buf(), stop.clone());
        let thread = std::thread::spawn(move || loop {
            let (done, failed) = count(&out);
            bar.set_position(done.min(total));
            bar.set_message(format!("{failed} failed, {n_ranks} ranks"));
            if s.load(Ordering::Relaxed) {
                bar.finish_and_clear();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        });
        Bar {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_from_every_rank_are_counted() {
        let d = tempfile::tempdir().unwrap();
        reset(d.path());
        mark(d.path(), 0, "g1", "converted");
        mark(d.path(), 0, "g1", "gridded");
        mark(d.path(), 1, "g2", "failed");
        mark(d.path(), 1, "g3", "converted");
        mark(d.path(), 1, "g3", "gridded");
        assert_eq!(count(d.path()), (3, 1));
        assert_eq!(stages(d.path())[0], ("converted".to_string(), 2));
        let bar = Bar::start(d.path(), 3, 2);
        drop(bar);
        reset(d.path());
        assert_eq!(count(d.path()), (0, 0));
    }
}
