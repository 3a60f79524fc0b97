//! The MPI job's settings (`mpi:` in the settings file).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MpiConfig {
    /// A rank waits this long (s) at a collective (a barrier, reduction, broadcast or gather)
    /// for the others; then the job ends (exit 124) with an error naming the ranks that did
    /// not arrive. It must cover the longest imbalance between ranks (one group's work).
    pub collective_timeout_s: f64,
}

impl Default for MpiConfig {
    fn default() -> Self {
        MpiConfig {
            collective_timeout_s: 1800.0,
        }
    }
}

impl MpiConfig {
    /// Checks every option for range and finiteness; the error names the key.
    pub fn validate(&self) -> Result<(), crate::primitives::check::SettingError> {
        crate::primitives::check::closed(
            "mpi.collective_timeout_s",
            self.collective_timeout_s,
            1.0,
            1e7,
        )
    }
}
