//! contimg: DSA-110 continuum imaging pipeline.
//!
//! Data flow: discover -> plan -> convert (read) -> image (rephase, grid, reduce, FFT) ->
//! products. `primitives` knows nothing of the pipeline; `comm` is the MPI seam.

// `!(x > 0.0)` is used on purpose: unlike `x <= 0.0` it is also true for NaN, which is
// what settings checks and numeric guards want to reject.
#![allow(clippy::neg_cmp_op_on_partial_ord)]
// Index loops over several parallel arrays (channel, baseline, pol indices into flat
// buffers) are the numeric kernels' style and read better than zipped iterators.
#![allow(clippy::needless_range_loop)]

pub mod calibrate;
pub mod comm;
pub mod compute;
pub mod config;
pub mod core;
pub mod discover;
pub mod error;
pub mod exit;
pub mod export;
pub mod flag;
pub mod imaging;
pub mod mosaic;
pub mod ms;
pub mod night;
pub mod photometry;
pub mod pipeline;
pub mod plan;
pub mod primitives;
pub mod products;
pub mod progress;
pub mod report;
pub mod resume;
pub mod simulate;
pub mod status;
pub mod uvh5;

pub use error::Error;

/// This build's version (Cargo.toml), recorded in every product's provenance.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Old path of the UVH5 group loader (now `uvh5::group`), kept while parallel branches
/// merge (issue 17); new code uses the new path.
#[doc(hidden)]
pub mod convert {
    pub use crate::core::{GroupMeta, GroupVis};
    pub use crate::uvh5::group::LoadError as ConvertError;
    pub use crate::uvh5::group::*;
}

/// Old path of the station table (now `core::stations`), kept while parallel branches
/// merge (issue 17); new code uses the new path.
#[doc(hidden)]
pub mod stations {
    pub use crate::core::stations::*;
}

/// Old path of the compute layer (now `compute`), kept while parallel branches merge
/// (issue 17); new code uses the new path.
#[doc(hidden)]
pub use compute as gpu;
