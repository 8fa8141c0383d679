//! The broker library's error type.

use std::io;

/// Errors the broker library reports to its embedder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the broker was doing.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A broker or topic configuration value is invalid.
    #[error("invalid config: {0}")]
    Config(String),
    /// Persisted metadata could not be read.
    #[error("corrupt metadata in {path}: {message}")]
    Metadata {
        /// The file that could not be read.
        path: String,
        /// What is wrong with it.
        message: String,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result type of the broker library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a human-readable context to io errors.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}
