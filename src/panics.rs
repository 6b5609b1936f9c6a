//! Turning a panicked task into a message, so a bug in one source, one action
//! or one cycle is recorded and logged instead of taking the daemon down.

/// The text of a task's panic payload, or why the task ended without output.
pub fn message(err: tokio::task::JoinError) -> String {
    if err.is_cancelled() {
        return "task cancelled".to_owned();
    }
    payload_message(err.into_panic().as_ref())
}

/// The text of a panic payload (from `catch_unwind` or a join error).
pub fn payload_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-text panic payload".to_owned()
    }
}
