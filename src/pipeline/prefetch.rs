//! Reading and flagging the next group while this one is imaged.
//!
//! A rank's groups are read (HDF5, conversion) and flagged in the order the imaging loop
//! takes them. With prefetching on (`compute.prefetch`), one thread does that one group
//! ahead: while the loop calibrates, grids and CLEANs group k, group k+1 is read and
//! flagged, so the GPU (or the CPU pool) is not left idle during the read. At most one
//! finished group waits (a rendezvous channel), so memory stays bounded at two groups in
//! flight beside those an image holds. The thread makes no MPI call.

use crate::compute::Compute;
use crate::config::FlagConfig;
use crate::core::GroupVis;
use crate::flag::FlagSummary;
use crate::uvh5::group::{load_group, LoadError};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::time::Instant;

/// Why a group could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("the group reader stopped (see the log)")]
    Stopped,
}

/// One group read and flagged.
pub struct Ready {
    /// The group's index in the plan.
    pub group: usize,
    /// The visibilities and the flagging summary, or why the group could not be read.
    pub result: Result<(GroupVis, FlagSummary), ReadError>,
    /// Seconds reading and converting, and flagging (flag file included).
    pub convert_s: f64,
    pub flag_s: f64,
}

/// What reading and flagging one group needs.
#[derive(Clone)]
pub struct Job {
    pub group: usize,
    pub id: String,
    pub files: Vec<PathBuf>,
}

/// Reads and flags one group (the same on the prefetch thread and in line).
pub fn read_and_flag(
    job: &Job,
    flagging: &FlagConfig,
    compute: &dyn Compute,
    out: &Path,
    rank: usize,
) -> Ready {
    let t = Instant::now();
    let files: Vec<&Path> = job.files.iter().map(PathBuf::as_path).collect();
    let loaded = load_group(&files);
    let convert_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let result = loaded.map_err(ReadError::from).map(|mut vis| {
        crate::progress::mark(out, rank, &job.id, "converted");
        let fsum = crate::flag::run_with(&mut vis, flagging, compute);
        crate::progress::mark(out, rank, &job.id, "flagged");
        if flagging.write_flags {
            let dir = out.join("flags");
            let path = dir.join(format!("{}.h5", job.id));
            if let Err(e) = std::fs::create_dir_all(&dir) {
                log::warn!("rank {rank}: {}: cannot write flags: {e}", path.display());
            } else if let Err(e) = crate::flag::write_flags(&path, &vis) {
                log::warn!("rank {rank}: {}: cannot write flags: {e}", path.display());
            }
        }
        (vis, fsum)
    });
    Ready {
        group: job.group,
        result,
        convert_s,
        flag_s: t.elapsed().as_secs_f64(),
    }
}

/// The groups of a run, read and flagged in order: ahead on a thread, or in line.
pub struct Groups {
    ahead: Option<(Receiver<Ready>, std::thread::JoinHandle<()>)>,
    inline: std::collections::VecDeque<Job>,
    flagging: FlagConfig,
    compute: Arc<dyn Compute>,
    out: PathBuf,
    rank: usize,
}

impl Groups {
    /// Starts reading `jobs` (in the order `next` will be asked for them), one ahead on a
    /// thread when `prefetch` is set.
    pub fn start(
        jobs: Vec<Job>,
        prefetch: bool,
        flagging: &FlagConfig,
        compute: Arc<dyn Compute>,
        out: &Path,
        rank: usize,
    ) -> Groups {
        let ahead = (prefetch && jobs.len() > 1).then(|| {
            let (tx, rx) = sync_channel::<Ready>(0);
            let (flagging, compute, out, jobs) = (
                flagging.clone(),
                compute.clone(),
                out.to_path_buf(),
                jobs.clone(),
            );
            let handle = std::thread::Builder::new()
                .name(format!("prefetch-{rank}"))
                .spawn(move || {
                    for job in &jobs {
                        // The loop has stopped taking groups (an error ended the run).
                        if tx
                            .send(read_and_flag(job, &flagging, compute.as_ref(), &out, rank))
                            .is_err()
                        {
                            break;
                        }
                    }
                })
                .expect("spawn the prefetch thread");
            (rx, handle)
        });
        let inline = if ahead.is_some() {
            Default::default()
        } else {
            jobs.into()
        };
        Groups {
            ahead,
            inline,
            flagging: flagging.clone(),
            compute,
            out: out.to_path_buf(),
            rank,
        }
    }

    /// The next group, which must be `group` (the plan's order). None when the thread
    /// stopped early (it panicked): the caller reports the group failed.
    pub fn next(&mut self, group: usize) -> Option<Ready> {
        let ready = match &self.ahead {
            Some((rx, _)) => rx.recv().ok()?,
            None => {
                let job = self.inline.pop_front()?;
                read_and_flag(
                    &job,
                    &self.flagging,
                    self.compute.as_ref(),
                    &self.out,
                    self.rank,
                )
            }
        };
        debug_assert_eq!(ready.group, group, "groups taken out of the planned order");
        (ready.group == group).then_some(ready)
    }
}

impl Drop for Groups {
    fn drop(&mut self) {
        if let Some((rx, handle)) = self.ahead.take() {
            drop(rx); // a send still waiting fails, and the thread ends
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unreadable groups come back as errors naming the file, in order, from the thread
    /// and in line alike; a group asked for out of order is refused, not mixed up.
    #[test]
    fn errors_come_back_in_order_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let jobs: Vec<Job> = (0..3)
            .map(|g| Job {
                group: g,
                id: format!("g{g}"),
                files: vec![dir.path().join(format!("missing-{g}_sb00.hdf5"))],
            })
            .collect();
        for prefetch in [false, true] {
            let mut groups = Groups::start(
                jobs.clone(),
                prefetch,
                &FlagConfig::default(),
                Arc::new(crate::compute::Cpu),
                dir.path(),
                0,
            );
            for g in 0..3 {
                let r = groups.next(g).expect("a result per group");
                assert_eq!(r.group, g);
                let e = r.result.expect_err("unreadable").to_string();
                assert!(e.contains(&format!("missing-{g}_sb00.hdf5")), "{e}");
            }
        }
    }

    /// Dropping the reader while the thread still has groups to read ends it (no hang).
    #[test]
    fn dropping_early_stops_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let jobs: Vec<Job> = (0..50)
            .map(|g| Job {
                group: g,
                id: format!("g{g}"),
                files: vec![dir.path().join("none.hdf5")],
            })
            .collect();
        let mut groups = Groups::start(
            jobs,
            true,
            &FlagConfig::default(),
            Arc::new(crate::compute::Cpu),
            dir.path(),
            0,
        );
        assert!(groups.next(0).is_some());
        drop(groups);
    }
}
