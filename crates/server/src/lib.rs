//! Pingback's composition root: configuration, adapters chosen by it and wired into the
//! use cases, and the `pingback` command line (presentation included: progress bars).
//! It owns no business rule, no parsing and no storage code; nothing depends on it.

pub mod app;
pub mod progress;
pub mod settings;
pub mod telemetry;
