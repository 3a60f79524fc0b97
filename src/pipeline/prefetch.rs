//! Reading, flagging and preparing the next group while this one is imaged.
//!
//! A rank's groups are read (HDF5, conversion), flagged and then finished by the
//! pipeline's [`Finish`] (calibrated and combined into their imaging form: `prepare.rs`)
//! in the order the imaging loop takes them. With prefetching on (`compute.prefetch`), one
//! thread does that one group ahead: while the loop grids and CLEANs group k (on the GPU,
//! or the CPU pool), group k+1 is read, flagged, calibrated and made ready to hold, so
//! that neither the device nor the loop waits for that host work. At most one finished
//! group waits (a rendezvous channel). The thread makes no MPI call.
//!
//! The buffers a group was read into come back from `Finish` once the group is in its
//! imaging form, and the thread reads its next group into them: a run of same-shaped
//! groups reads into memory already mapped (no page faults, no kernel zeroing: a
//! full-size group's read into fresh buffers took 2.2x as long on the development VM),
//! and at most one group as read is in memory at a time. In line, they are let go (the
//! smaller memory).

use crate::compute::Compute;
use crate::config::FlagConfig;
use crate::core::{GroupVis, RawBuffers};
use crate::flag::FlagSummary;
use crate::uvh5::group::{load_group, load_group_into, LoadError};
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

/// A group read and flagged (with its flagging summary), or why it could not be read.
pub type ReadResult = Result<(GroupVis, FlagSummary), ReadError>;

/// What is done with each group once read and flagged, on the reader's thread (or in
/// line, on the loop's).
pub trait Finish: Send + 'static {
    /// What the image loop gets.
    type Out: Send + 'static;
    /// Finishes the group of `job`: what the loop gets, and the buffers the group was read
    /// into when they are free again. `ahead`: whether a thread reads ahead (the buffers
    /// are then the next group's, and the loop may hand buffers back for reuse).
    fn finish(
        &mut self,
        job: &Job,
        read: ReadResult,
        ahead: bool,
    ) -> (Self::Out, Option<RawBuffers>);
}

/// One group read, flagged and finished.
pub struct Ready<T> {
    /// The group's index in the plan.
    pub group: usize,
    /// What `Finish` made of it.
    pub out: T,
    /// Seconds reading and converting, and flagging (flag file included).
    pub convert_s: f64,
    pub flag_s: f64,
}

/// What reading and flagging one group needs.
#[derive(Clone)]
pub struct Job {
    pub group: usize,
    /// The image it is read for (its index in the plan).
    pub image: usize,
    pub id: String,
    pub files: Vec<PathBuf>,
}

/// How groups are read and flagged (the same on the thread and in line).
struct Reader {
    flagging: FlagConfig,
    compute: Arc<dyn Compute>,
    out: PathBuf,
    rank: usize,
}

impl Reader {
    /// Reads, flags and finishes one group, into `spare` buffers where given and of the
    /// group's size.
    fn ready<F: Finish>(
        &self,
        job: &Job,
        finish: &mut F,
        ahead: bool,
        spare: Option<RawBuffers>,
    ) -> (Ready<F::Out>, Option<RawBuffers>) {
        let (read, convert_s, flag_s) = read_and_flag(
            job,
            &self.flagging,
            self.compute.as_ref(),
            &self.out,
            self.rank,
            spare,
        );
        let (out, raw) = finish.finish(job, read, ahead);
        let ready = Ready {
            group: job.group,
            out,
            convert_s,
            flag_s,
        };
        (ready, raw)
    }
}

/// Reads and flags one group (the same on the prefetch thread and in line), into `spare`
/// buffers where given and of the group's size; with the seconds reading and converting,
/// and flagging.
fn read_and_flag(
    job: &Job,
    flagging: &FlagConfig,
    compute: &dyn Compute,
    out: &Path,
    rank: usize,
    spare: Option<RawBuffers>,
) -> (ReadResult, f64, f64) {
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
    (result, convert_s, t.elapsed().as_secs_f64())
}

/// The groups of a run, read, flagged and finished in order.
pub struct Groups<F: Finish>(Mode<F>);

/// Ahead on a thread (what it hands over, and its handle), or in line (the jobs left, the
/// reader and the finisher).
enum Mode<F: Finish> {
    Ahead(Receiver<Ready<F::Out>>, std::thread::JoinHandle<()>),
    Inline(Box<(std::collections::VecDeque<Job>, Reader, F)>),
    /// The thread's end, once dropped.
    Ended,
}

impl<F: Finish> Groups<F> {
    /// Starts reading `jobs` (in the order `next` will be asked for them), one ahead on a
    /// thread when `prefetch` is set and there is more than one.
    pub fn start(
        jobs: Vec<Job>,
        prefetch: bool,
        flagging: &FlagConfig,
        compute: Arc<dyn Compute>,
        out: &Path,
        rank: usize,
        mut finish: F,
    ) -> Self {
        let reader = Reader {
            flagging: flagging.clone(),
            compute,
            out: out.to_path_buf(),
            rank,
        };
        if !(prefetch && jobs.len() > 1) {
            return Groups(Mode::Inline(Box::new((jobs.into(), reader, finish))));
        }
        let (tx, rx) = sync_channel::<Ready<F::Out>>(0);
        let handle = std::thread::Builder::new()
            .name(format!("prefetch-{rank}"))
            .spawn(move || {
                let mut spare = None;
                for job in &jobs {
                    let (ready, raw) = reader.ready(job, &mut finish, true, spare.take());
                    spare = raw;
                    // The loop has stopped taking groups (an error ended the run).
                    if tx.send(ready).is_err() {
                        break;
                    }
                }
            })
            .expect("spawn the prefetch thread");
        Groups(Mode::Ahead(rx, handle))
    }

    /// Whether a thread reads one group ahead.
    pub fn reads_ahead(&self) -> bool {
        matches!(self.0, Mode::Ahead(..))
    }

    /// The next group, which must be `group` (the plan's order). None when the thread
    /// stopped early (it panicked): the caller reports the group failed.
    pub fn next(&mut self, group: usize) -> Option<Ready<F::Out>> {
        let ready = match &mut self.0 {
            Mode::Ahead(rx, _) => rx.recv().ok()?,
            Mode::Inline(inline) => {
                let (jobs, reader, finish) = &mut **inline;
                let job = jobs.pop_front()?;
                // In line the buffers as read are let go: the smaller memory.
                reader.ready(&job, finish, false, None).0
            }
            Mode::Ended => return None,
        };
        debug_assert_eq!(ready.group, group, "groups taken out of the planned order");
        (ready.group == group).then_some(ready)
    }
}

impl<F: Finish> Drop for Groups<F> {
    fn drop(&mut self) {
        if let Mode::Ahead(rx, handle) = std::mem::replace(&mut self.0, Mode::Ended) {
            drop(rx); // a send still waiting fails, and the thread ends
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_complex::Complex32;

    /// Keeps what was read (nothing given back).
    struct Keep;
    impl Finish for Keep {
        type Out = ReadResult;
        fn finish(
            &mut self,
            _: &Job,
            read: ReadResult,
            _: bool,
        ) -> (ReadResult, Option<RawBuffers>) {
            (read, None)
        }
    }

    fn jobs(files: impl Fn(usize) -> PathBuf, n: usize) -> Vec<Job> {
        (0..n)
            .map(|g| Job {
                group: g,
                image: g / 2,
                id: format!("g{g}"),
                files: vec![files(g)],
            })
            .collect()
    }

    fn start<F: Finish>(jobs: Vec<Job>, prefetch: bool, dir: &Path, finish: F) -> Groups<F> {
        Groups::start(
            jobs,
            prefetch,
            &FlagConfig::default(),
            Arc::new(crate::compute::Cpu),
            dir,
            0,
            finish,
        )
    }

    /// `n` groups of a file that is not there, read ahead.
    fn unreadable<F: Finish>(dir: &Path, n: usize, finish: F) -> Groups<F> {
        start(jobs(|_| dir.join("none.hdf5"), n), true, dir, finish)
    }

    /// Unreadable groups come back as errors naming the file, in order, from the thread
    /// and in line alike; a group asked for out of order is refused, not mixed up.
    #[test]
    fn errors_come_back_in_order_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = jobs(|g| dir.path().join(format!("missing-{g}_sb00.hdf5")), 3);
        for prefetch in [false, true] {
            let mut groups = start(jobs.clone(), prefetch, dir.path(), Keep);
            assert_eq!(groups.reads_ahead(), prefetch);
            for g in 0..3 {
                let r = groups.next(g).expect("a result per group");
                assert_eq!(r.group, g);
                let e = r.out.expect_err("unreadable").to_string();
                assert!(e.contains(&format!("missing-{g}_sb00.hdf5")), "{e}");
            }
        }
    }

    /// A group as read: its visibilities' bits, its weights, where its visibilities lay.
    type Seen = (Vec<(u32, u32)>, Vec<half::f16>, usize);

    /// Gives the buffers back after spoiling them (stale values a later read must
    /// overwrite), except for the groups in `keep`.
    struct Spoil {
        keep: Vec<usize>,
        ahead: Vec<bool>,
    }
    impl Finish for Spoil {
        type Out = Seen;
        fn finish(
            &mut self,
            job: &Job,
            read: ReadResult,
            ahead: bool,
        ) -> (Seen, Option<RawBuffers>) {
            self.ahead.push(ahead);
            let (vis, _) = read.expect("readable");
            let (mut v, w) = (vis.vis, vis.weight.into_stored());
            let bits = v.iter().map(|c| (c.re.to_bits(), c.im.to_bits())).collect();
            let seen = (bits, w.clone(), v.as_ptr() as usize);
            v.fill(Complex32::new(f32::NAN, 1.0));
            let back = (!self.keep.contains(&job.group)).then_some((v, w));
            (seen, back)
        }
    }

    /// On the thread, the buffers `Finish` gives back are the next group's: the group read
    /// into them is the same as one read into new memory; where none are given back, the
    /// next is read into new memory.
    #[test]
    fn buffers_given_back_are_read_into() {
        let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pyuvdata_small.uvh5");
        let dir = tempfile::tempdir().unwrap();
        let spoil = Spoil {
            keep: vec![1],
            ahead: vec![],
        };
        let mut groups = start(jobs(|_| f.clone(), 4), true, dir.path(), spoil);
        let seen: Vec<Seen> = (0..4)
            .map(|g| groups.next(g).expect("a group").out)
            .collect();
        for s in &seen[1..] {
            assert_eq!(s.0, seen[0].0, "the same visibilities, bit for bit");
            assert_eq!(s.1, seen[0].1);
        }
        assert_eq!(seen[1].2, seen[0].2, "read into the buffers given back");
        // Group 1's buffers were not given back: group 2 went into new memory, and gave
        // its own back to group 3.
        assert_eq!(seen[3].2, seen[2].2);
        // In line nothing is read ahead, and `Finish` is told so.
        let spoil = Spoil {
            keep: vec![],
            ahead: vec![],
        };
        let mut groups = start(jobs(|_| f.clone(), 2), false, dir.path(), spoil);
        for g in 0..2 {
            assert!(groups.next(g).is_some());
        }
        let Mode::Inline(inline) = &groups.0 else {
            panic!("in line");
        };
        assert_eq!(inline.2.ahead, vec![false, false]);
    }

    /// Panics at group `at` (a bug in `Finish`).
    struct PanicAt(usize);
    impl Finish for PanicAt {
        type Out = ();
        fn finish(&mut self, job: &Job, _: ReadResult, _: bool) -> ((), Option<RawBuffers>) {
            assert_ne!(job.group, self.0, "a bug in Finish");
            ((), None)
        }
    }

    /// A reader thread that panics ends the groups it had not handed over (`next` gives
    /// None: the loop reports them failed and goes on to its collectives), without a hang.
    #[test]
    fn a_reader_that_panics_ends_its_groups_without_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let mut groups = unreadable(dir.path(), 4, PanicAt(1));
        assert!(groups.next(0).is_some());
        assert!(groups.next(1).is_none());
        assert!(groups.next(2).is_none());
        drop(groups);
    }

    /// Dropping the reader while the thread still has groups to read ends it (no hang).
    #[test]
    fn dropping_early_stops_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let mut groups = unreadable(dir.path(), 50, Keep);
        assert!(groups.next(0).is_some());
        drop(groups);
    }
}
