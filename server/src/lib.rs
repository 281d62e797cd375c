//! Carbon League's server: the axum HTTP API and the WebSocket (`/api/v1/ws`) over Postgres
//! and Redis.
//!
//! `main.rs` is a thin command line over this library. Tests and the load generator boot the
//! real server in-process with [`Server::build`] on port 0, read [`Server::local_addr`], and run
//! it with [`Server::run_until`].

pub mod admin;
pub mod auth;
pub mod demo;
pub mod error;
pub mod extract;
pub mod league;
pub mod listener;
pub mod metrics;
pub mod routes;
pub mod settings;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::error::error_response;
use crate::settings::Settings;
use crate::state::AppState;

/// A server bound to its address, ready to run.
pub struct Server {
    listener: crate::listener::GuardedListener,
    local_addr: SocketAddr,
    router: axum::Router,
    state: AppState,
}

impl Server {
    /// Opens the database and, when configured, Redis (failing fast if either does not answer),
    /// applies the migrations when `migrate` is true, rebuilds in-process leaderboards from the
    /// database when there is no Redis, and binds `server.bind_addr`.
    pub async fn build(settings: Settings, migrate: bool) -> anyhow::Result<Self> {
        let bind_addr = settings.server.bind_addr;
        let max_body = settings.server.max_body_bytes;
        let state = AppState::connect(settings).await?;
        if migrate {
            state
                .db
                .migrate()
                .await
                .context("applying database migrations")?;
        }
        if let Some(path) = state.db.sqlite_path() {
            tracing::info!(path = %path.display(), "embedded database (SQLite, WAL)");
        }
        if state.boards_in_process() {
            // Boards are derived state: without Redis they start empty and are rebuilt from the
            // database before the first request.
            let season = crate::league::active_season(&state.db)
                .await
                .map_err(|e| anyhow::anyhow!("reading the active season: {e}"))?;
            if let Some(season) = season {
                let boards = crate::league::standings::rebuild_season(&state, season.id)
                    .await
                    .map_err(|e| anyhow::anyhow!("rebuilding the leaderboards: {e}"))?;
                tracing::info!(season.id = %season.id, boards, "leaderboards rebuilt from the database");
            }
        }
        let listener = TcpListener::bind(bind_addr).await.with_context(|| {
            format!("cannot listen on server.bind_addr (BIND_ADDR) {bind_addr}")
        })?;
        let local_addr = listener.local_addr()?;
        let listener = crate::listener::GuardedListener::new(listener);
        crate::metrics::handle();
        tracing::info!(
            open_files.limit = crate::listener::open_files_limit().unwrap_or(0),
            ws.max_connections = state.settings.ws.max_connections,
            "open-file limit"
        );
        let router = routes::router(state.clone())
            .layer(DefaultBodyLimit::max(max_body))
            .layer(TraceLayer::new_for_http())
            .layer(CatchPanicLayer::custom(
                |_: Box<dyn std::any::Any + Send>| {
                    tracing::error!("a request handler panicked");
                    error_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal_error",
                        "internal error".into(),
                        None,
                    )
                },
            ));
        Ok(Self {
            listener,
            local_addr,
            router,
            state,
        })
    }

    /// The address the server listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local_addr)
    }

    /// The shared state (pools and settings), e.g. for tests that inspect the database.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then lets open requests finish within
    /// `server.shutdown_grace_ms`. Open WebSockets are closed with 1001 (going away) as soon as
    /// `shutdown` completes.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // However this returns (shutdown, a failed server), the WebSockets are told to close.
        let _close_sockets = self.state.shutdown.clone().drop_guard();
        let sockets = self.state.shutdown.clone();
        let grace = Duration::from_millis(self.state.settings.server.shutdown_grace_ms);
        let background = crate::league::spawn_background(self.state.clone());
        let limits = self.state.limits.clone();
        let purge = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                limits.purge();
            }
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let serve = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<crate::listener::ClientAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Upgraded WebSockets are not requests axum waits for: tell them to close now.
            sockets.cancel();
            let _ = stop_tx.send(());
        });
        let serve = tokio::spawn(async move { serve.await });
        tokio::pin!(serve);
        let result = tokio::select! {
            r = &mut serve => r,
            _ = async { if stop_rx.await.is_ok() { tokio::time::sleep(grace).await } else { std::future::pending::<()>().await } } => {
                tracing::warn!("grace period over; closing remaining connections");
                serve.abort();
                Ok(Ok(()))
            }
        };
        purge.abort();
        for task in background {
            task.abort();
        }
        for task in self
            .state
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default()
        {
            task.abort();
        }
        self.state.db.close().await;
        result
            .context("server task failed")?
            .context("server failed")
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received");
}
