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
    Uvh5(#[from] crate::uvh5::Uvh5Error),
    #[error(transparent)]
    Load(#[from] crate::uvh5::group::LoadError),
    #[error(transparent)]
    Discover(#[from] crate::discover::DiscoverError),
    #[error("{0}")]
    Other(String),
}
