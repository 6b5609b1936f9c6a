//! Turning sqlx errors into [`SourceError`]s that an operator can act on.
//!
//! The database's own message is kept word for word (`syntax error at or near
//! "SELEC"`), because that is what the person fixing the query searches for.
//! A connection problem names its target by the redacted URL only: this module
//! must never put the configured URL (which may hold a password) into a text.

use std::time::Duration;

use sqlx::error::DatabaseError;

use crate::perception::SourceError;

/// What error mapping needs to know about one source.
#[derive(Debug, Clone)]
pub(crate) struct ErrorContext {
    /// The source's URL without credentials or query.
    pub(crate) target: String,
    /// The source's timeout, reported when the server cancelled the query for it.
    pub(crate) timeout: Duration,
    /// Whether a database error means "cancelled by our statement timeout"
    /// (each server has its own code for that).
    pub(crate) cancelled: fn(&dyn DatabaseError) -> bool,
}

impl ErrorContext {
    /// A failure while getting a connection: whatever went wrong, the source
    /// could not be reached (refused, TLS, authentication, unknown database…).
    pub(crate) fn connect(&self, error: sqlx::Error) -> SourceError {
        let message = match &error {
            sqlx::Error::Database(db) => database_message(db.as_ref()),
            other => other.to_string(),
        };
        self.connect_message(message)
    }

    /// A connection failure with our own explanation.
    pub(crate) fn connect_message(&self, message: String) -> SourceError {
        SourceError::Connect {
            target: self.target.clone(),
            message,
        }
    }

    /// A failure while the query ran.
    pub(crate) fn query(&self, error: sqlx::Error) -> SourceError {
        match error {
            sqlx::Error::Database(db) if (self.cancelled)(db.as_ref()) => SourceError::Timeout(self.timeout),
            sqlx::Error::Database(db) => SourceError::Query(database_message(db.as_ref())),
            // The connection broke under the query: the server went away.
            e @ (sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed) => self.connect(e),
            sqlx::Error::ColumnDecode { index, source } => SourceError::Decode {
                column: index,
                message: source.to_string(),
            },
            other => SourceError::Query(other.to_string()),
        }
    }
}

/// The server's message with its error code, e.g.
/// `syntax error at or near "SELEC" (code 42601)`.
fn database_message(db: &dyn DatabaseError) -> String {
    match db.code() {
        Some(code) => format!("{} (code {code})", db.message()),
        None => db.message().to_owned(),
    }
}
