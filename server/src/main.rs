//! The `carbon-league` command line: `serve`, `migrate`, `admin bootstrap`.

use std::path::PathBuf;

use anyhow::Context as _;
use carbon_league::settings::Settings;
use carbon_league::store::Db;
use carbon_league::{Server, shutdown_signal, telemetry};
use clap::{Parser, Subcommand};

/// Carbon League: the real-time game backend of a low-carbon schools programme.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML file layered over config/default.toml (environment variables still win).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (applies pending migrations first unless --no-migrate).
    Serve {
        /// Do not apply migrations at start-up.
        #[arg(long)]
        no_migrate: bool,
        /// Seed a demo school (two classes, a teacher, a live class-versus-class challenge)
        /// and print how to sign in. Harmless to repeat: a second run prints the same.
        #[arg(long)]
        demo: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Rebuild every Redis leaderboard of a season exactly from the database (default: the active
    /// season).
    RebuildLeaderboards {
        /// The season to rebuild.
        #[arg(long)]
        season: Option<uuid::Uuid>,
    },
    /// Administration tasks.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create the first programme admin and print its credentials once (refuses when one exists).
    Bootstrap {
        /// The programme admin's username.
        #[arg(long, default_value = "admin")]
        username: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref())?;
    telemetry::init(&settings.log);
    match cli.command {
        Command::Serve { no_migrate, demo } => {
            let migrate = settings.server.migrate_on_start && !no_migrate;
            let server = Server::build(settings, migrate).await?;
            let addr = server.local_addr()?;
            tracing::info!(%addr, "carbon-league listening");
            if demo {
                let info = carbon_league::demo::seed(server.state())
                    .await
                    .context("seeding the demo school")?;
                println!("\nCarbon League is running at http://{addr}\n\n{info}");
            }
            server.run_until(shutdown_signal()).await
        }
        Command::Migrate => {
            let db = Db::connect(&settings.database).await?;
            db.migrate().await.context("applying database migrations")?;
            println!("migrations applied");
            Ok(())
        }
        Command::RebuildLeaderboards { season } => {
            let state = carbon_league::state::AppState::connect(settings).await?;
            if state.boards_in_process() {
                println!(
                    "no Redis is configured: leaderboards live in the server's process and are \
                     rebuilt from the database every time it starts; nothing to do"
                );
                return Ok(());
            }
            let season = match season {
                Some(id) => schema::SeasonId(id),
                None => carbon_league::league::active_season(&state.db)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .map(|s| s.id)
                    .context("no season is active; name one with --season")?,
            };
            let boards = carbon_league::league::standings::rebuild_season(&state, season)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("rebuilt {boards} leaderboards of season {season} from the database");
            Ok(())
        }
        Command::Admin {
            command: AdminCommand::Bootstrap { username },
        } => {
            let db = Db::connect(&settings.database).await?;
            db.migrate().await.context("applying database migrations")?;
            let creds = carbon_league::admin::bootstrap(&db, &username).await?;
            println!("Programme admin created. These credentials are shown once:");
            println!("  username: {}", creds.username);
            println!("  password: {}", creds.password);
            Ok(())
        }
    }
}
