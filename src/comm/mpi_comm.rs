//! `Comm` over MPI (rsmpi).

use super::Comm;
use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;
use mpi::Count;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Largest element count passed to one MPI call (counts are i32).
const CHUNK: usize = 1 << 28;

/// Message tags of the watchdog's rendezvous (point-to-point, apart from the collectives).
const TAG_ARRIVED: i32 = 7101;
const TAG_GO: i32 = 7102;
/// Exit code of a job ended by the watchdog (as `timeout(1)`).
pub const EXIT_HUNG: i32 = crate::exit::HUNG;
/// Default wait at a collective before the job is ended (s); `mpi.collective_timeout_s`.
pub const DEFAULT_TIMEOUT_S: f64 = 1800.0;

pub struct MpiComm {
    // Dropping the universe finalises MPI: keep it for the life of the communicator.
    _universe: mpi::environment::Universe,
    world: SimpleCommunicator,
    /// The watchdog's deadline at each collective (ms).
    timeout_ms: AtomicU64,
    /// Collectives entered so far (the rendezvous checks every rank is at the same one).
    seq: AtomicU64,
}

// MPI is initialised with the funneled threading level: only the main thread makes calls.
unsafe impl Send for MpiComm {}
unsafe impl Sync for MpiComm {}

impl MpiComm {
    /// Initialises MPI (a singleton rank 0 of 1 when not launched by mpirun/srun).
    /// Returns None if MPI was already initialised.
    pub fn init() -> Option<Self> {
        // A singleton (no mpirun, srun or other launcher) has no PMIx server to
        // authenticate to, yet OpenMPI's munge security plugin, where libmunge is installed
        // (e.g. beside Slurm) but no munge daemon runs, retries the daemon's socket for ~2 s
        // before MPI_Init returns. Such a rank uses the native plugin unless told otherwise.
        let launched = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"]
            .iter()
            .any(|v| std::env::var_os(v).is_some());
        if !launched && std::env::var_os("PMIX_MCA_psec").is_none() {
            // Before MPI and any other thread start (called first thing by the binary).
            std::env::set_var("PMIX_MCA_psec", "native");
        }
        let (universe, _threading) = mpi::initialize_with_threading(mpi::Threading::Funneled)?;
        let world = universe.world();
        Some(MpiComm {
            _universe: universe,
            world,
            timeout_ms: AtomicU64::new((DEFAULT_TIMEOUT_S * 1e3) as u64),
            seq: AtomicU64::new(0),
        })
    }

    /// The watchdog: before every collective, each rank checks in with rank 0, which waits
    /// for all of them with a deadline and then lets them go. A rank that does not arrive in
    /// time (stopped, hung, or gone without ending the job) is named and the job is ended
    /// with `MPI_Abort`; a rank that rank 0 does not release in time (rank 0 itself stuck)
    /// ends it the same way, a little later so that rank 0's own verdict comes first.
    /// Waiting polls with a growing sleep (at most 5 ms), so idle ranks do not spin.
    fn rendezvous(&self) {
        let n = self.size();
        if n == 1 {
            return;
        }
        let me = self.rank();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let timeout = Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed));
        let start = Instant::now();
        let pause = |polls: &mut u32| {
            *polls += 1;
            if *polls > 100 {
                std::thread::sleep(Duration::from_micros((*polls as u64 * 10).min(5000)));
            }
        };
        let mut polls = 0u32;
        if me == 0 {
            let mut arrived = vec![false; n];
            arrived[0] = true;
            let mut waiting = n - 1;
            while waiting > 0 {
                while let Some((msg, status)) = self
                    .world
                    .any_process()
                    .immediate_matched_probe_with_tag(TAG_ARRIVED)
                {
                    let (theirs, _) = msg.matched_receive::<u64>();
                    let r = status.source_rank() as usize;
                    if theirs != seq {
                        super::say(&format!("contimg: rank {r} is at collective #{theirs}, rank 0 at #{seq}: the ranks are out of step; ending the job"));
                        super::abort(EXIT_HUNG);
                    }
                    if !arrived[r] {
                        arrived[r] = true;
                        waiting -= 1;
                    }
                }
                if waiting == 0 {
                    break;
                }
                if start.elapsed() > timeout {
                    let missing: Vec<String> = (0..n)
                        .filter(|&r| !arrived[r])
                        .map(|r| r.to_string())
                        .collect();
                    super::say(&format!(
                        "contimg: rank{} {} did not answer at collective #{seq} within {:.0} s (mpi.collective_timeout_s): stopped, hung or lost; ending the job",
                        if missing.len() > 1 { "s" } else { "" },
                        missing.join(", "),
                        timeout.as_secs_f64()
                    ));
                    super::abort(EXIT_HUNG);
                }
                pause(&mut polls);
            }
            for r in 1..n {
                self.world
                    .process_at_rank(r as i32)
                    .send_with_tag(&seq, TAG_GO);
            }
        } else {
            let root = self.world.process_at_rank(0);
            root.send_with_tag(&seq, TAG_ARRIVED);
            let grace = timeout + Duration::from_secs(5).max(timeout / 10);
            loop {
                if let Some((msg, _)) = root.immediate_matched_probe_with_tag(TAG_GO) {
                    let _: (u64, _) = msg.matched_receive();
                    break;
                }
                if start.elapsed() > grace {
                    super::say(&format!(
                        "contimg: rank {me}: rank 0 did not answer at collective #{seq} within {:.0} s (mpi.collective_timeout_s): stopped, hung or lost; ending the job",
                        grace.as_secs_f64()
                    ));
                    super::abort(EXIT_HUNG);
                }
                pause(&mut polls);
            }
        }
    }
}

impl Comm for MpiComm {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }
    fn size(&self) -> usize {
        self.world.size() as usize
    }
    fn barrier(&self) {
        self.rendezvous();
        self.world.barrier();
    }
    fn set_collective_timeout(&self, timeout: Duration) {
        self.timeout_ms.store(
            timeout.as_millis().clamp(1, u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
    }
    fn reduce_sum_f64(&self, root: usize, buf: &mut [f64]) {
        self.rendezvous();
        let rp = self.world.process_at_rank(root as i32);
        for chunk in buf.chunks_mut(CHUNK) {
            if self.rank() == root {
                let send = chunk.to_vec();
                rp.reduce_into_root(&send[..], chunk, SystemOperation::sum());
            } else {
                rp.reduce_into(&chunk[..], SystemOperation::sum());
            }
        }
    }
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) {
        self.rendezvous();
        for chunk in buf.chunks_mut(CHUNK) {
            let send = chunk.to_vec();
            self.world
                .all_reduce_into(&send[..], chunk, SystemOperation::sum());
        }
    }
    fn broadcast_bytes(&self, root: usize, buf: &mut Vec<u8>) {
        self.rendezvous();
        let rp = self.world.process_at_rank(root as i32);
        let mut len = buf.len() as u64;
        rp.broadcast_into(&mut len);
        buf.resize(len as usize, 0);
        for chunk in buf.chunks_mut(CHUNK) {
            rp.broadcast_into(chunk);
        }
    }
    fn gather_bytes(&self, root: usize, send: &[u8]) -> Option<Vec<Vec<u8>>> {
        assert!(
            send.len() < i32::MAX as usize,
            "gather_bytes: contribution over 2 GiB"
        );
        self.rendezvous();
        let rp = self.world.process_at_rank(root as i32);
        let n = self.size();
        let len = send.len() as Count;
        if self.rank() == root {
            let mut lens = vec![0 as Count; n];
            rp.gather_into_root(&len, &mut lens[..]);
            let total: usize = lens.iter().map(|&l| l as usize).sum();
            assert!(total < i32::MAX as usize, "gather_bytes: total over 2 GiB");
            let displs: Vec<Count> = lens
                .iter()
                .scan(0, |acc, &l| {
                    let d = *acc;
                    *acc += l;
                    Some(d)
                })
                .collect();
            let mut recv = vec![0u8; total];
            {
                let mut part = PartitionMut::new(&mut recv[..], &lens[..], &displs[..]);
                rp.gather_varcount_into_root(send, &mut part);
            }
            Some(
                lens.iter()
                    .zip(&displs)
                    .map(|(&l, &d)| recv[d as usize..(d + l) as usize].to_vec())
                    .collect(),
            )
        } else {
            rp.gather_into(&len);
            rp.gather_varcount_into(send);
            None
        }
    }
}
