//! Turning a panicked task into a message, so a bug in one source or one cycle
//! is recorded and logged instead of taking the daemon down.

/// The text of a task's panic payload, or why the task ended without output.
pub fn message(err: tokio::task::JoinError) -> String {
    if err.is_cancelled() {
        return "task cancelled".to_owned();
    }
    let payload = err.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-text panic payload".to_owned()
    }
}
