//! `bi-agent status`: what the agent has been doing, from memory, read-only:
//! [`gather`] reads, [`text`] and [`json`] present.

mod gather;
mod json;
mod text;

use std::process::ExitCode;

use anyhow::Context as _;

use crate::config::Settings;
use crate::memory::Memory;

/// Prints the summary (or JSON).
pub async fn status(settings: &Settings, json_out: bool) -> anyhow::Result<ExitCode> {
    let memory = Memory::open_read_only(&settings.memory.path, settings.memory.busy_timeout)
        .await
        .context("cannot open memory")?;
    let data = gather::StatusData::load(&memory, settings, crate::clock::now()).await;
    memory.close().await;
    let data = data?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&json::render(&data))?);
    } else {
        print!("{}", text::render(&data, settings));
    }
    Ok(ExitCode::SUCCESS)
}
