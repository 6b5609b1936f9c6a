//! HTTP sources (placeholder: filled in by the HTTP adapter work).

use futures_util::future::BoxFuture;
use std::time::Duration;

use super::{Fetched, Source, SourceError};
use crate::config::HttpSourceSettings;

/// A `kind = "http"` source.
pub struct HttpSource {
    name: String,
    confidence: f64,
    timeout: Duration,
}

impl HttpSource {
    /// Builds the adapter; connections are opened lazily.
    pub fn new(name: &str, settings: &HttpSourceSettings) -> Result<Self, SourceError> {
        Ok(Self {
            name: name.to_owned(),
            confidence: settings.confidence,
            timeout: settings.timeout,
        })
    }
}

impl Source for HttpSource {
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
        Box::pin(async { Err(SourceError::Settings("http sources are not built yet".into())) })
    }
}
