//! SQL sources (placeholder: filled in by the SQL adapter work).

use futures_util::future::BoxFuture;
use std::time::Duration;

use super::{Fetched, Source, SourceError};
use crate::config::SqlSourceSettings;

/// A `kind = "sql"` source.
pub struct SqlSource {
    name: String,
    confidence: f64,
    timeout: Duration,
}

impl SqlSource {
    /// Builds the adapter; connections are opened lazily.
    pub fn new(name: &str, settings: &SqlSourceSettings) -> Result<Self, SourceError> {
        Ok(Self {
            name: name.to_owned(),
            confidence: settings.confidence,
            timeout: settings.timeout,
        })
    }
}

impl Source for SqlSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn confidence(&self) -> f64 {
        self.confidence
    }
    fn timeout(&self) -> Duration {
        self.timeout
    }
    fn fetch(&self) -> BoxFuture<'_, Result<Fetched, SourceError>> {
        Box::pin(async {
            Err(SourceError::Settings(
                "sql sources are not built yet".into(),
            ))
        })
    }
}
