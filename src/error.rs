//! The one error type the binary sees; each stage keeps its own typed error.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Simulate(#[from] crate::simulate::SimError),
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
    #[error(transparent)]
    Night(#[from] crate::night::NightError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    #[error(transparent)]
    Mosaic(#[from] crate::mosaic::MosaicError),
    #[error(transparent)]
    Catalog(#[from] crate::calibrate::catalog::CatalogError),
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Photometry(#[from] crate::photometry::PhotometryError),
    #[error(transparent)]
    Product(#[from] crate::products::ProductError),
    #[error(transparent)]
    Uvh5(#[from] crate::uvh5::Uvh5Error),
    #[error(transparent)]
    Load(#[from] crate::uvh5::group::LoadError),
    #[error(transparent)]
    Discover(#[from] crate::discover::DiscoverError),
    /// A command line that asks for nothing contimg can do.
    #[error("{0}")]
    Usage(&'static str),
}
