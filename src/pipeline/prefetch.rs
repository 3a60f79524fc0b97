//! Reading and flagging the next group while this one is imaged.
//!
//! A rank's groups are read (HDF5, conversion) and flagged in the order the imaging loop
//! takes them. With prefetching on (`compute.prefetch`), one thread does that one group
//! ahead: while the loop calibrates, grids and CLEANs group k, group k+1 is read and
//! flagged, so the GPU (or the CPU pool) is not left idle during the read. At most one
//! finished group waits (a rendezvous channel). The thread makes no MPI call.
//!
//! Buffers circulate: each group the thread hands over comes with a [`Lent`] token, and
//! the loop gives the group's buffers as read back through it once the group is held in
//! its imaging form (Stokes I, a few seconds after it arrived). The thread waits for them
//! before it reads the next group into them, so a run of same-shaped groups reads into
//! memory already mapped (no page faults, no kernel zeroing: a full-size group's read
//! into fresh buffers took 2.2x as long on the development VM) and at most one group as
//! read is in memory at a time beside those an image holds.

use crate::compute::Compute;
use crate::config::FlagConfig;
use crate::core::{GroupVis, RawBuffers};
use crate::flag::FlagSummary;
use crate::uvh5::group::{load_group, load_group_into, LoadError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// Where the group's buffers go back to the reader (nothing when read in line).
    pub lent: Lent,
}

/// The way back to the reader for a group's buffers as read: `give` them once the group
/// is held in its imaging form; dropping the token unused tells the reader to read its
/// next group into new memory instead.
#[derive(Default)]
pub struct Lent {
    back: Option<SyncSender<Option<RawBuffers>>>,
}

impl Lent {
    /// Whether a reader waits for the buffers (false in line: nothing to give back to).
    pub fn is_open(&self) -> bool {
        self.back.is_some()
    }

    /// Hands the buffers back for the next group's read.
    pub fn give(mut self, raw: RawBuffers) {
        if let Some(back) = self.back.take() {
            let _ = back.send(Some(raw)); // the reader may have stopped
        }
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(back) = self.back.take() {
            let _ = back.send(None);
        }
    }
}

/// The buffers the loop hands back (None: read the next group into new memory), or None
/// when the reader is told to stop first.
fn wait_back(back: &Receiver<Option<RawBuffers>>, stop: &AtomicBool) -> Option<Option<RawBuffers>> {
    loop {
        match back.recv_timeout(Duration::from_millis(50)) {
            Ok(spare) => return Some(spare),
            Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::Relaxed) => continue,
            Err(_) => return None,
        }
    }
}

/// What reading and flagging one group needs.
#[derive(Clone)]
pub struct Job {
    pub group: usize,
    pub id: String,
    pub files: Vec<PathBuf>,
}

/// Reads and flags one group (the same on the prefetch thread and in line), into `spare`
/// buffers where given and of the group's size.
pub fn read_and_flag(
    job: &Job,
    flagging: &FlagConfig,
    compute: &dyn Compute,
    out: &Path,
    rank: usize,
    spare: Option<RawBuffers>,
) -> Ready {
    let t = Instant::now();
    let files: Vec<&Path> = job.files.iter().map(PathBuf::as_path).collect();
    let loaded = match spare {
        Some(spare) => load_group_into(&files, spare),
        None => load_group(&files),
    };
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
        lent: Lent::default(),
    }
}

/// The groups of a run, read and flagged in order: ahead on a thread, or in line.
pub struct Groups {
    ahead: Option<(Receiver<Ready>, std::thread::JoinHandle<()>)>,
    /// Tells the thread to stop waiting for buffers (set when the reader is dropped).
    stop: Arc<AtomicBool>,
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
        let stop = Arc::new(AtomicBool::new(false));
        let ahead = (prefetch && jobs.len() > 1).then(|| {
            let (tx, rx) = sync_channel::<Ready>(0);
            let (flagging, compute, out, jobs, stop) = (
                flagging.clone(),
                compute.clone(),
                out.to_path_buf(),
                jobs.clone(),
                stop.clone(),
            );
            let handle = std::thread::Builder::new()
                .name(format!("prefetch-{rank}"))
                .spawn(move || {
                    // One slot: the loop gives back at most one group's buffers at a time.
                    let (back_tx, back_rx) = sync_channel::<Option<RawBuffers>>(1);
                    let mut spare = None;
                    for (k, job) in jobs.iter().enumerate() {
                        let mut ready = read_and_flag(
                            job,
                            &flagging,
                            compute.as_ref(),
                            &out,
                            rank,
                            spare.take(),
                        );
                        let lend = ready.result.is_ok() && k + 1 < jobs.len();
                        if lend {
                            ready.lent = Lent {
                                back: Some(back_tx.clone()),
                            };
                        }
                        // The loop has stopped taking groups (an error ended the run).
                        if tx.send(ready).is_err() {
                            break;
                        }
                        if lend {
                            match wait_back(&back_rx, &stop) {
                                Some(s) => spare = s,
                                None => break,
                            }
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
            stop,
            inline,
            flagging: flagging.clone(),
            compute,
            out: out.to_path_buf(),
            rank,
        }
    }

    /// Whether a thread reads one group ahead (and lends the groups' buffers).
    pub fn reads_ahead(&self) -> bool {
        self.ahead.is_some()
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
                    None,
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
            self.stop.store(true, Ordering::Relaxed); // a wait for buffers ends
            drop(rx); // a send still waiting fails, and the thread ends
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_complex::Complex32;

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

    /// Buffers given back through the token are the next group's: the group read into
    /// them is the same as one read into new memory; a token dropped unused lets the
    /// reader go on into new memory; the last group lends nothing; and a reader dropped
    /// while it waits for buffers ends (no hang).
    #[test]
    fn buffers_given_back_are_read_into() {
        let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pyuvdata_small.uvh5");
        let dir = tempfile::tempdir().unwrap();
        let jobs: Vec<Job> = (0..4)
            .map(|g| Job {
                group: g,
                id: format!("g{g}"),
                files: vec![f.clone()],
            })
            .collect();
        let flagging = FlagConfig::default();
        let start = |jobs: Vec<Job>| {
            Groups::start(
                jobs,
                true,
                &flagging,
                Arc::new(crate::compute::Cpu),
                dir.path(),
                0,
            )
        };
        let mut groups = start(jobs.clone());
        let take = |groups: &mut Groups, g: usize| {
            let r = groups.next(g).expect("a group");
            let (vis, _) = r.result.expect("readable");
            (vis, r.lent)
        };
        let (g0, lent) = take(&mut groups, 0);
        assert!(lent.is_open());
        let want = g0.clone();
        let (mut v, w) = (g0.vis, g0.weight.into_stored());
        v.fill(Complex32::new(f32::NAN, 1.0)); // stale values must all be overwritten
        let ptr = v.as_ptr();
        lent.give((v, w));
        let (g1, lent) = take(&mut groups, 1);
        assert_eq!(g1.vis.as_ptr(), ptr, "read into the buffers given back");
        let bits = |v: &[Complex32]| {
            v.iter()
                .map(|c| (c.re.to_bits(), c.im.to_bits()))
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&g1.vis), bits(&want.vis));
        assert_eq!(g1.weight, want.weight);
        drop(lent); // nothing given back: the next group is read into new memory
        let (g2, lent) = take(&mut groups, 2);
        assert_eq!(bits(&g2.vis), bits(&want.vis));
        lent.give((g2.vis, g2.weight.into_stored()));
        let (_, lent) = take(&mut groups, 3);
        assert!(!lent.is_open(), "the last group lends nothing");
        // Held token, reader dropped while it waits: it ends.
        let mut groups = start(jobs);
        let (_g0, lent) = take(&mut groups, 0);
        drop(groups);
        drop(lent);
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
