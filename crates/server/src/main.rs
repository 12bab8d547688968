//! `pingback`: serve the API, migrate the database, import and generate data, mint
//! tokens. Exit codes: 0 success, 1 runtime failure, 2 bad usage or invalid input.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use pingback_application::{Scope, Scopes, Subject};
use pingback_domain::BusinessId;
use pingback_http::TokenAuthority;
use pingback_server::app::Application;
use pingback_server::progress::Bar;
use pingback_server::settings::Settings;
use pingback_server::telemetry;

#[derive(Parser)]
#[command(
    name = "pingback",
    version,
    about = "Pingback: the customer-support conversation API",
    long_about = "Pingback serves GET /api/v1/conversations/{id} from PostgreSQL or an embedded SQLite file.\n\n\
Configuration: config/default.toml → config/$PINGBACK_ENV.toml → PINGBACK__SECTION__KEY variables,\n\
e.g. PINGBACK__DATABASE__URL=postgres://user@localhost/pingback (default: sqlite://data/pingback.sqlite)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (does not migrate: run `pingback migrate` first).
    Serve,
    /// Apply pending migrations to the configured database (creates an SQLite file).
    Migrate,
    /// Import conversations from JSON files in the GET response shape (`-` = stdin).
    ///
    /// Each file holds one conversation or an array of them. A file is validated
    /// completely and written in one transaction: on any invalid value nothing of it
    /// is written and every problem (up to 50) is listed with its JSON path. Files
    /// are taken in order; the first invalid one stops the command. Importing a
    /// conversation again replaces it (fields, customer, whole message set).
    Import {
        /// JSON files, or `-` for standard input.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<String>,
    },
    /// Write deterministic synthetic data (for demos and benchmarks) and print the
    /// created conversation ids, one per line.
    ///
    /// The same business, counts and seed always produce the same ids, so running it
    /// again replaces the data instead of duplicating it.
    Generate {
        #[arg(long, value_name = "UUID", value_parser = parse_business)]
        business_id: BusinessId,
        /// How many conversations.
        #[arg(long, value_name = "N")]
        conversations: usize,
        /// Messages in each conversation.
        #[arg(long, value_name = "M")]
        messages: usize,
        /// Varies the data; the same seed gives the same data.
        #[arg(long, value_name = "S", default_value_t = 1)]
        seed: u64,
        /// What the messages look like: `chat` (mostly short lines, 5 % with
        /// attachments) or `long` (every message 20–400 characters with some non-ASCII
        /// text, quotes and line breaks, 10 % with attachments: what `make bench` reads).
        /// The ids are the same in either style.
        #[arg(long, value_enum, value_name = "STYLE", default_value_t = Style::Chat)]
        style: Style,
    },
    /// Print a signed access token for the configured key.
    Token {
        /// The tenant the token grants access to.
        #[arg(long, value_name = "UUID", value_parser = parse_business)]
        business_id: BusinessId,
        /// The caller's id (agent or API client), the `sub` claim.
        #[arg(long, value_name = "SUBJECT")]
        sub: String,
        /// Lifetime in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
        ttl: u64,
        /// Scopes to grant (repeatable or space-separated): conversations:read,
        /// conversations:write, webhooks:manage. Default: all three.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Allow minting when PINGBACK_ENV=production.
        #[arg(long)]
        allow_production: bool,
    },
}

fn parse_business(input: &str) -> Result<BusinessId, String> {
    BusinessId::parse(input).map_err(|e| e.to_string())
}

/// A failure and its exit code.
struct Failure {
    code: u8,
    message: String,
}

fn runtime(message: impl std::fmt::Display) -> Failure {
    Failure {
        code: 1,
        message: message.to_string(),
    }
}

fn usage(message: impl std::fmt::Display) -> Failure {
    Failure {
        code: 2,
        message: message.to_string(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("pingback: {error}");
            return ExitCode::from(2);
        }
    };
    // `serve` logs off the request path; the commands log in order with their output.
    let output = match cli.command {
        Command::Serve => telemetry::Output::Background,
        _ => telemetry::Output::Direct,
    };
    let logs = telemetry::init(&settings.log.format, &settings.log.level, output);
    let result = match cli.command {
        Command::Serve => serve(&settings),
        Command::Migrate => migrate(&settings),
        Command::Import { files } => import(&settings, &files),
        Command::Generate {
            business_id,
            conversations,
            messages,
            seed,
            style,
        } => generate(&settings, business_id, conversations, messages, seed, style),
        Command::Token {
            business_id,
            sub,
            ttl,
            scopes,
            allow_production,
        } => token(&settings, business_id, &sub, ttl, &scopes, allow_production),
    };
    // Writes the lines still pending (after SIGTERM: those of the last requests and
    // "pingback stopped"), before the failure, which is the last line.
    drop(logs);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("pingback: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn serve(settings: &Settings) -> Result<(), Failure> {
    pingback_http::block_on(async {
        let app = Application::build(settings).map_err(runtime)?;
        tracing::info!(address = %app.address(), environment = %settings.environment, "pingback ready");
        // The one line scripts read: where to send requests.
        #[allow(clippy::print_stdout)]
        {
            println!("listening on http://{}", app.address());
        }
        app.run_until_stopped().await.map_err(runtime)?;
        tracing::info!("pingback stopped");
        Ok(())
    })
}

fn tokio_runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(runtime)
}

fn migrate(settings: &Settings) -> Result<(), Failure> {
    tokio_runtime()?.block_on(async {
        let applied = pingback_persistence::migrate(&settings.database())
            .await
            .map_err(runtime)?;
        if applied.is_empty() {
            tracing::info!("database schema is up to date");
        } else {
            tracing::info!(applied = ?applied, "migrations applied");
        }
        Ok(())
    })
}

fn storage(settings: &Settings) -> Result<pingback_persistence::Storage, Failure> {
    pingback_persistence::connect(
        &settings.database(),
        &pingback_server::app::event_wiring(settings),
    )
    .map_err(runtime)
}

fn import(settings: &Settings, files: &[String]) -> Result<(), Failure> {
    tokio_runtime()?.block_on(async {
        let importer = storage(settings)?.importer;
        let started = std::time::Instant::now();
        let mut done: Vec<String> = Vec::new();
        for (index, name) in files.iter().enumerate() {
            let result = if name == "-" {
                import_showing_progress(importer.clone(), "-", std::io::stdin(), None).await
            } else {
                match std::fs::File::open(name) {
                    Ok(file) => {
                        let length = file.metadata().map(|m| m.len()).unwrap_or(0);
                        import_showing_progress(importer.clone(), name, file, Some(length)).await
                    }
                    Err(error) => {
                        let summary = summary_line(&done, &files[index..]);
                        return Err(usage(format!("{name}: cannot open: {error}\n{summary}")));
                    }
                }
            };
            match result {
                Ok(outcome) => {
                    let s = outcome.summary;
                    eprintln!(
                        "{name}: imported {} conversations, {} messages, {} customers, {} attachments",
                        s.conversations, s.messages, s.customers, s.attachments
                    );
                    done.push(name.clone());
                }
                Err(error) => {
                    let summary = summary_line(&done, &files[index..]);
                    let code = error.exit_code();
                    return Err(Failure {
                        code,
                        message: format!("{error}\n{name}: nothing written\n{summary}"),
                    });
                }
            }
        }
        eprintln!("imported {} file(s) in {:.1?}", done.len(), started.elapsed());
        Ok(())
    })
}

/// One file through the import adapter, with a progress bar on a terminal.
async fn import_showing_progress(
    importer: std::sync::Arc<dyn pingback_application::ConversationImporter>,
    name: &str,
    reader: impl std::io::Read + Send + 'static,
    total_bytes: Option<u64>,
) -> Result<pingback_import::ImportOutcome, pingback_import::ImportFileError> {
    let bar = Bar::import(name, total_bytes);
    let result = pingback_import::import_file(importer, name, reader, bar.clone()).await;
    bar.finish();
    result
}

/// Which files made it, for the last line of a failed import.
fn summary_line(done: &[String], not_done: &[String]) -> String {
    let list = |files: &[String]| {
        if files.is_empty() {
            "none".to_owned()
        } else {
            files.join(", ")
        }
    };
    format!("imported: {}; not imported: {}", list(done), list(not_done))
}

/// `pingback generate --style`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Style {
    Chat,
    Long,
}

fn generate(
    settings: &Settings,
    business: BusinessId,
    conversations: usize,
    messages: usize,
    seed: u64,
    style: Style,
) -> Result<(), Failure> {
    use pingback_import::{GenerateError, GenerateStyle, generate_into};

    let style = match style {
        Style::Chat => GenerateStyle::Chat,
        Style::Long => GenerateStyle::Long,
    };
    tokio_runtime()?.block_on(async {
        let importer = storage(settings)?.importer;
        let started = std::time::Instant::now();
        let bar = Bar::generate(conversations as u64);
        let generated = generate_into(
            importer,
            business,
            conversations,
            messages,
            seed,
            style,
            bar.clone(),
        )
        .await;
        bar.finish();
        let ids = generated.map_err(|error| match error {
            GenerateError::Invalid(_) => usage(error),
            _ => runtime(error),
        })?;
        let mut stdout = std::io::stdout().lock();
        for id in &ids {
            use std::io::Write as _;
            writeln!(stdout, "{id}").map_err(runtime)?;
        }
        eprintln!(
            "generated {} conversations of {messages} messages in {:.1?}",
            ids.len(),
            started.elapsed()
        );
        Ok(())
    })
}

fn token(
    settings: &Settings,
    business: BusinessId,
    sub: &str,
    ttl: u64,
    scopes: &[String],
    allow_production: bool,
) -> Result<(), Failure> {
    if settings.is_production() && !allow_production {
        return Err(usage(
            "refusing to mint a token with PINGBACK_ENV=production (pass --allow-production)",
        ));
    }
    let subject = Subject::new(sub).map_err(|e| usage(format!("--sub: {e}")))?;
    let scopes = if scopes.is_empty() {
        Scopes::all()
    } else {
        scopes
            .iter()
            .flat_map(|s| s.split_whitespace())
            .map(|name| {
                Scope::parse(name).ok_or_else(|| {
                    usage(format!(
                        "--scope: unknown scope {name:?} (expected: {})",
                        Scope::ALL.map(Scope::as_str).join(", ")
                    ))
                })
            })
            .collect::<Result<Scopes, _>>()?
    };
    let authority = TokenAuthority::new(&settings.auth().map_err(usage)?).map_err(usage)?;
    let token = authority
        .mint_with_scopes(business, &subject, Duration::from_secs(ttl), scopes)
        .map_err(usage)?;
    #[allow(clippy::print_stdout)]
    {
        println!("{token}");
    }
    Ok(())
}
