//! The composition root and command implementations of the `pingback` binary.

pub mod app;
pub mod generate;
pub mod import;
pub mod settings;
pub mod telemetry;
