//! The outliers' unit predictions as a backend takes them for their refit on a group it
//! holds (`Compute::outlier_atb`, `Compute::outlier_subtract`; kernels/outliers.cu): the
//! tables of calibrate::model::ModelPredictor, flattened, and the fit's channel slopes.
//! The CPU's refit (imaging::outliers::OutlierModel::fit_and_subtract) reads the same
//! tables through the predictor.

/// Point sources' unit predictions on a group's rows: row r is baseline r / nt,
/// integration r % nt; source s on row r, channel c is
/// `amp[(t * ns + s) * nc + c] * sinc(pi (smear_b - smear_a)) * exp(2 pi i freqs[c] (delay_b - delay_a))`
/// with `delay` and `smear` indexed `(t * n_ant + antenna) * ns + s` (seconds, cycles).
pub struct UnitModel<'a> {
    pub nt: usize,
    pub ns: usize,
    pub n_ant: usize,
    pub amp: &'a [f64],
    pub delay: &'a [f64],
    pub smear: &'a [f64],
    pub freqs: &'a [f64],
    /// Per channel, the slope basis (nu - ref) / ref.
    pub xs: &'a [f64],
    pub baselines: &'a [(usize, usize)],
    pub use_row: &'a [bool],
}
