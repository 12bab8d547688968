//! Prints the OpenAPI document exactly as `/api/openapi.json` serves it:
//! `cargo run -p pingback-http --example openapi > docs/openapi.json` (`make openapi`).

use std::io::Write as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let written = pingback_http::openapi::render(&pingback_http::openapi::document())
        .map_err(|e| e.to_string())
        .and_then(|json| {
            std::io::stdout()
                .lock()
                .write_all(json.as_bytes())
                .map_err(|e| e.to_string())
        });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("openapi: {error}");
            ExitCode::FAILURE
        }
    }
}
