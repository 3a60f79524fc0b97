//! The exit codes of `contimg` (also in `--help` and the README; the Slurm scripts act on
//! them). A usage error is clap's 2 and shares its code with nothing else.

/// Everything asked for was done (`run`/`convert`: every discovered group imaged).
pub const OK: u8 = 0;
/// An error stopped the command (bad settings, unreadable input directory, output not
/// writable, ...): nothing to retry until it is fixed.
pub const ERROR: u8 = 1;
/// A usage error on the command line (clap).
pub const USAGE: u8 = 2;
/// The night finished incomplete: some groups failed or were skipped, others were imaged.
/// A rerun retries the failed ones (resume).
pub const INCOMPLETE: u8 = 3;
/// Nothing was imaged: no groups were found, or every group failed.
pub const NOTHING_IMAGED: u8 = 4;
/// `report`: a QA gate failed (`--warn-only` exits 0 instead).
pub const GATE_FAILED: u8 = 5;
/// An internal error (a panic) ended the job on every rank.
pub const PANIC: i32 = 101;
/// A rank stopped answering at a collective for `mpi.collective_timeout_s`: the job was ended.
pub const HUNG: i32 = 124;

/// The text for `--help`.
pub const HELP: &str = "Exit codes: 0 complete; 1 error (settings, input, output); 2 usage error; \
3 night incomplete (some groups failed or skipped; rerun to retry); 4 nothing imaged (no groups, or all failed); \
5 a QA gate failed (report); 101 internal error (panic, job aborted); 124 a rank stopped answering (job aborted); \
other codes (e.g. 137) come from a signal.";
