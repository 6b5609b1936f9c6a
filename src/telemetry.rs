//! Logging setup: `tracing` events, pretty for people or JSON for machines.
//!
//! Logs go to standard error so command output on standard output (plans,
//! JSON) stays clean. `RUST_LOG`, when set, overrides the configured level.
//! Log lines never carry secrets: config values that could hold one are
//! secret types and print redacted.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The level filter does not parse.
    #[error("invalid log filter {filter:?}: {message}")]
    Filter {
        /// The filter text.
        filter: String,
        /// The parser's message.
        message: String,
    },
    /// A global subscriber was already installed.
    #[error("logging was already initialised")]
    AlreadySet,
}

/// Installs the global subscriber. `format` `auto` means JSON when standard
/// error is not a terminal (systemd, Docker), pretty otherwise.
pub fn init(format: LogFormat, level: &str) -> Result<(), TelemetryError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(from_env) if !from_env.trim().is_empty() => from_env,
        _ => level.to_owned(),
    };
    let mut env_filter = EnvFilter::builder()
        .parse(&filter)
        .map_err(|e| TelemetryError::Filter {
            filter: filter.clone(),
            message: e.to_string(),
        })?;
    // async-openai logs whole LLM answers (data from the warehouse) at ERROR
    // when a local server leaves out fields it wants; our client reads such
    // answers itself and logs what matters. Unless asked for by name, silence it.
    if !filter.contains("async_openai")
        && let Ok(quiet) = "async_openai=off".parse()
    {
        env_filter = env_filter.add_directive(quiet);
    }
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.with_target(false).try_init()
    };
    result.map_err(|_| TelemetryError::AlreadySet)?;
    install_panic_hook();
    Ok(())
}

/// Reports panics as one log event (JSON in production) instead of the
/// default multi-line text on stderr, so a panic is one searchable record
/// in the journal like everything else. Panics inside cycles and actions are
/// caught and recorded; this hook only says where they happened.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = crate::panics::payload_message(info.payload());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(panic = %message, location = %location, "Panicked");
    }));
}
