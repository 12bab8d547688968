//! Progress bars of `pingback import` and `pingback generate`: drawn on stderr when it
//! is a terminal, nothing otherwise (logs and pipes must not fill with redraws).

use std::io::{self, IsTerminal};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pingback_import::Progress;

/// A bar fed by an import or a generation ([`Progress`]).
pub struct Bar {
    bar: ProgressBar,
    kind: Kind,
}

enum Kind {
    /// A file: bytes read against its size (a spinner when unknown), counts in words.
    Import,
    /// Conversations made against the count asked for, messages in words.
    Generate,
}

impl Bar {
    /// For importing `file`; `total_bytes` is its length when known.
    pub fn import(file: &str, total_bytes: Option<u64>) -> Arc<Self> {
        let template = if total_bytes.is_some() {
            "{spinner} {prefix} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {msg}"
        } else {
            "{spinner} {prefix} {binary_bytes} read, {msg}"
        };
        Arc::new(Self {
            bar: on_stderr(total_bytes, template, file),
            kind: Kind::Import,
        })
    }

    /// For generating `conversations` conversations.
    pub fn generate(conversations: u64) -> Arc<Self> {
        Arc::new(Self {
            bar: on_stderr(
                Some(conversations),
                "{spinner} {prefix} [{wide_bar}] {pos}/{len} conversations, {msg}",
                "generating",
            ),
            kind: Kind::Generate,
        })
    }

    /// Removes the bar once the work is over.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Bar {
    fn bytes_read(&self, total: u64) {
        if let Kind::Import = self.kind {
            self.bar.set_position(total);
        }
    }

    fn produced(&self, conversations: u64, messages: u64) {
        if self.bar.is_hidden() {
            return;
        }
        match self.kind {
            Kind::Import => {
                self.bar.set_message(format!(
                    "{conversations} conversations, {messages} messages"
                ));
            }
            Kind::Generate => {
                self.bar.set_position(conversations);
                if conversations.is_multiple_of(64) {
                    self.bar.set_message(format!("{messages} messages"));
                }
            }
        }
    }
}

/// A bar (of `len`, else a spinner) on stderr, or a hidden one when stderr is not a
/// terminal.
fn on_stderr(len: Option<u64>, template: &str, prefix: &str) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(len) => ProgressBar::new(len),
        None => ProgressBar::new_spinner(),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_prefix(prefix.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
