//! The communicator seam: the pipeline talks to `Comm`; MPI implements it, and `SingleComm`
//! (one rank) serves plain runs and unit tests.
//!
//! Every method is a collective: all ranks must call it, in the same order, with the same
//! `root`. Buffers may exceed 2^31 elements: implementations chunk.

#[cfg(feature = "mpi")]
mod mpi_comm;
pub mod settings;
#[cfg(feature = "mpi")]
pub use mpi_comm::MpiComm;

pub trait Comm: Send + Sync {
    fn rank(&self) -> usize;
    fn size(&self) -> usize;
    fn barrier(&self);
    /// Element-wise sum of `buf` over all ranks, result on `root` (others' buffers unspecified).
    fn reduce_sum_f64(&self, root: usize, buf: &mut [f64]);
    /// Element-wise sum over all ranks, result everywhere.
    fn all_reduce_sum_f64(&self, buf: &mut [f64]);
    /// Replaces `buf` on every rank with root's bytes.
    fn broadcast_bytes(&self, root: usize, buf: &mut Vec<u8>);
    /// Every rank's bytes, in rank order, on `root` (None elsewhere).
    fn gather_bytes(&self, root: usize, send: &[u8]) -> Option<Vec<Vec<u8>>>;

    fn is_root(&self) -> bool {
        self.rank() == 0
    }
    /// Every rank's bytes, in rank order, everywhere.
    fn all_gather_bytes(&self, send: &[u8]) -> Vec<Vec<u8>> {
        let gathered = self.gather_bytes(0, send);
        let mut packed = match gathered {
            Some(parts) => serde_json::to_vec(&parts).expect("Vec<Vec<u8>> serialises"),
            None => Vec::new(),
        };
        self.broadcast_bytes(0, &mut packed);
        serde_json::from_slice(&packed).expect("root sent valid JSON")
    }
    /// How long a rank waits at a collective for the others before it ends the job with an
    /// error naming the ranks that did not arrive (MPI only; one rank never waits).
    fn set_collective_timeout(&self, _timeout: std::time::Duration) {}
    /// Logical AND of a flag over all ranks.
    fn all_ok(&self, ok: bool) -> bool {
        let mut v = [if ok { 0.0 } else { 1.0 }];
        self.all_reduce_sum_f64(&mut v);
        v[0] == 0.0
    }
}

/// Writes one line to stderr in a single write: unbuffered `eprintln!` writes each piece of
/// its format separately, and mpirun's output forwarding may then print the job's abort
/// banner in the middle of the line that explains the abort.
pub fn say(line: &str) {
    use std::io::Write;
    let mut s = String::with_capacity(line.len() + 1);
    s.push_str(line);
    s.push('\n');
    let _ = std::io::stderr().lock().write_all(s.as_bytes());
}

/// Ends the whole job now with `code`: `MPI_Abort` on the world communicator where MPI is
/// running (every rank of the job ends), else a plain exit of this process.
pub fn abort(code: i32) -> ! {
    #[cfg(feature = "mpi")]
    {
        if mpi::environment::is_initialized() && !mpi::environment::is_finalized() {
            use mpi::topology::Communicator;
            mpi::topology::SimpleCommunicator::world().abort(code);
        }
    }
    std::process::exit(code)
}

/// A communicator of one rank.
#[derive(Debug, Default, Clone, Copy)]
pub struct SingleComm;

impl Comm for SingleComm {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn barrier(&self) {}
    fn reduce_sum_f64(&self, _root: usize, _buf: &mut [f64]) {}
    fn all_reduce_sum_f64(&self, _buf: &mut [f64]) {}
    fn broadcast_bytes(&self, _root: usize, _buf: &mut Vec<u8>) {}
    fn gather_bytes(&self, _root: usize, send: &[u8]) -> Option<Vec<Vec<u8>>> {
        Some(vec![send.to_vec()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_comm_collectives_are_identities() {
        let c = SingleComm;
        let mut v = vec![1.0, 2.0];
        c.reduce_sum_f64(0, &mut v);
        c.all_reduce_sum_f64(&mut v);
        assert_eq!(v, vec![1.0, 2.0]);
        assert_eq!(c.all_gather_bytes(b"ab"), vec![b"ab".to_vec()]);
        assert!(c.all_ok(true) && !c.all_ok(false));
    }
}
