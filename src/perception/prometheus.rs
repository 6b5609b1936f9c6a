//! The Prometheus HTTP API's result shapes (placeholder: filled in by the HTTP adapter work).
