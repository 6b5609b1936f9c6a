//! Builds what an agent runs with from its compiled config: one source per
//! `[sources.*]` entry and the executor with its channels, investigator and
//! the advisor's summaries. Building never connects or sends.

use std::sync::Arc;

use super::{AgentError, Compiled};
use crate::config::Settings;
use crate::execution::{self, Executor};
use crate::perception::{self, Source};

/// The executor with every configured channel, the investigator (when there
/// are queries) and the advisor's summaries (when there is an LLM).
pub(super) fn build_executor(
    compiled: &Compiled,
    advisor: Option<&Arc<crate::advisor::Advisor>>,
) -> Result<Executor, AgentError> {
    let settings = compiled.shared_settings();
    let channels = execution::channels::build(settings).map_err(|e| AgentError::Execution(e.to_string()))?;
    let investigations: Option<Arc<dyn crate::model::Investigations>> = if settings.queries.is_empty() {
        None
    } else {
        let investigator = crate::perception::investigate::Investigator::new(settings)
            .map_err(|e| AgentError::Execution(e.to_string()))?;
        Some(Arc::new(investigator))
    };
    let mut executor = Executor::new(
        Arc::clone(settings),
        Arc::clone(compiled.policy()),
        channels,
        investigations,
    );
    if let Some(a) = advisor {
        executor = executor.with_summarizer(Arc::clone(a) as Arc<dyn execution::Summarizer>);
    }
    Ok(executor)
}

/// Builds every configured source, in name order.
pub(super) fn build_sources(settings: &Settings) -> Result<Vec<Arc<dyn Source>>, AgentError> {
    settings
        .sources
        .iter()
        .map(|(name, s)| {
            perception::build_source(name, s).map_err(|source| AgentError::Source {
                name: name.clone(),
                source,
            })
        })
        .collect()
}
