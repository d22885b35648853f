//! Logging through `tracing` to stderr, as text or JSON lines, with a filter that SIGHUP can
//! change while the daemon runs. The format is fixed at start (changing it needs a restart).

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::config::{LogFormat, LogSettings};

/// Changes the active log filter.
pub struct LogHandle(reload::Handle<EnvFilter, Registry>);

impl LogHandle {
    pub fn set_level(&self, settings: &LogSettings) -> Result<(), String> {
        self.0
            .reload(settings.level.filter())
            .map_err(|e| format!("cannot change log level: {e}"))
    }
}

pub fn init(settings: &LogSettings) -> LogHandle {
    let (filter, handle) = reload::Layer::new(settings.level.filter());
    let (text, json) = match settings.format {
        LogFormat::Text => (
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal()),
            ),
            None,
        ),
        LogFormat::Json => (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            ),
        ),
    };
    // A second init (tests) keeps the first subscriber; that is harmless.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .try_init();
    LogHandle(handle)
}
