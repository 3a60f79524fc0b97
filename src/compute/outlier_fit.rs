//! The outliers' unit predictions as a backend takes them for their refit on a group it
//! holds (`Compute::outlier_normal`, `Compute::outlier_subtract`; kernels/outliers.cu): the
//! tables of calibrate::model::ModelPredictor, flattened (point_model::PointModel), and the
//! fit's channel slopes. The CPU's refit (imaging::outliers::OutlierModel::fit_and_subtract)
//! reads the same tables through the predictor.

use super::point_model::PointModel;

/// Point sources' unit predictions on a group's rows: row r is baseline r / nt,
/// integration r % nt; source s on row r, channel c is `model`'s (see point_model).
pub struct UnitModel<'a> {
    pub nt: usize,
    pub model: PointModel<'a>,
    /// Per channel, the slope basis (nu - ref) / ref.
    pub xs: &'a [f64],
    pub baselines: &'a [(usize, usize)],
    pub use_row: &'a [bool],
}
