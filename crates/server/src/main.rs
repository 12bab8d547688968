//! `pingback`: serve the API, migrate the database, import and generate data, mint
//! tokens. Exit codes: 0 success, 1 runtime failure, 2 bad usage or invalid input.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use pingback_application::Subject;
use pingback_domain::BusinessId;
use pingback_http::TokenAuthority;
use pingback_server::app::Application;
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
    Failure { code: 1, message: message.to_string() }
}

fn usage(message: impl std::fmt::Display) -> Failure {
    Failure { code: 2, message: message.to_string() }
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
    telemetry::init(&settings.log.format, &settings.log.level);
    let result = match cli.command {
        Command::Serve => serve(&settings),
        Command::Migrate => migrate(&settings),
        Command::Token { business_id, sub, ttl, allow_production } => {
            token(&settings, business_id, &sub, ttl, allow_production)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("pingback: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn serve(settings: &Settings) -> Result<(), Failure> {
    actix_web::rt::System::new().block_on(async {
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
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(runtime)
}

fn migrate(settings: &Settings) -> Result<(), Failure> {
    tokio_runtime()?.block_on(async {
        let applied = pingback_persistence::migrate(&settings.database()).await.map_err(runtime)?;
        if applied.is_empty() {
            tracing::info!("database schema is up to date");
        } else {
            tracing::info!(applied = ?applied, "migrations applied");
        }
        Ok(())
    })
}

fn token(settings: &Settings, business: BusinessId, sub: &str, ttl: u64, allow_production: bool) -> Result<(), Failure> {
    if settings.is_production() && !allow_production {
        return Err(usage("refusing to mint a token with PINGBACK_ENV=production (pass --allow-production)"));
    }
    let subject = Subject::new(sub).map_err(|e| usage(format!("--sub: {e}")))?;
    let authority = TokenAuthority::new(&settings.auth().map_err(usage)?).map_err(usage)?;
    let token = authority.mint(business, &subject, Duration::from_secs(ttl)).map_err(usage)?;
    #[allow(clippy::print_stdout)]
    {
        println!("{token}");
    }
    Ok(())
}
