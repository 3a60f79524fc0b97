//! `Comm` over MPI (rsmpi).

use super::Comm;
use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;
use mpi::Count;

/// Largest element count passed to one MPI call (counts are i32).
const CHUNK: usize = 1 << 28;

pub struct MpiComm {
    // Dropping the universe finalises MPI: keep it for the life of the communicator.
    _universe: mpi::environment::Universe,
    world: SimpleCommunicator,
}

// MPI is initialised with the funneled threading level: only the main thread makes calls.
unsafe impl Send for MpiComm {}
unsafe impl Sync for MpiComm {}

impl MpiComm {
    /// Initialises MPI (a singleton rank 0 of 1 when not launched by mpirun/srun).
    /// Returns None if MPI was already initialised.
    pub fn init() -> Option<Self> {
        let (universe, _threading) = mpi::initialize_with_threading(mpi::Threading::Funneled)?;
        let world = universe.world();
        Some(MpiComm { _universe: universe, world })
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
        self.world.barrier();
    }
    fn reduce_sum_f64(&self, root: usize, buf: &mut [f64]) {
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
        for chunk in buf.chunks_mut(CHUNK) {
            let send = chunk.to_vec();
            self.world.all_reduce_into(&send[..], chunk, SystemOperation::sum());
        }
    }
    fn broadcast_bytes(&self, root: usize, buf: &mut Vec<u8>) {
        let rp = self.world.process_at_rank(root as i32);
        let mut len = buf.len() as u64;
        rp.broadcast_into(&mut len);
        buf.resize(len as usize, 0);
        for chunk in buf.chunks_mut(CHUNK) {
            rp.broadcast_into(chunk);
        }
    }
    fn gather_bytes(&self, root: usize, send: &[u8]) -> Option<Vec<Vec<u8>>> {
        assert!(send.len() < i32::MAX as usize, "gather_bytes: contribution over 2 GiB");
        let rp = self.world.process_at_rank(root as i32);
        let n = self.size();
        let len = send.len() as Count;
        if self.rank() == root {
            let mut lens = vec![0 as Count; n];
            rp.gather_into_root(&len, &mut lens[..]);
            let total: usize = lens.iter().map(|&l| l as usize).sum();
            assert!(total < i32::MAX as usize, "gather_bytes: total over 2 GiB");
            let displs: Vec<Count> = lens.iter().scan(0, |acc, &l| { let d = *acc; *acc += l; Some(d) }).collect();
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
