//! Typed configuration: `config/default.toml`, an optional file, then the environment.
//!
//! The defaults are compiled in from `config/default.toml` (the same file documents every key),
//! so the binary runs from any directory. Unknown keys and bad values stop start-up with a
//! message that names the key.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

/// The shipped defaults, which also document every key.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// The environment variable prefix for overrides: `CARBON_LEAGUE_DATABASE__MAX_CONNECTIONS`.
pub const ENV_PREFIX: &str = "CARBON_LEAGUE_";

/// All settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// HTTP server.
    pub server: ServerSettings,
    /// Postgres.
    pub database: DatabaseSettings,
    /// Redis.
    pub redis: RedisSettings,
    /// Tokens and sign-in limits.
    pub auth: AuthSettings,
    /// Game rules' parameters.
    pub league: LeagueSettings,
    /// Live fan-out.
    pub live: LiveSettings,
    /// WebSocket limits.
    pub ws: WsSettings,
    /// Logging.
    pub log: LogSettings,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Listen address.
    pub bind_addr: SocketAddr,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Grace period after a shutdown signal, milliseconds.
    pub shutdown_grace_ms: u64,
    /// Migrate when `serve` starts.
    pub migrate_on_start: bool,
}

/// `[database]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Connection URL (may hold a password: never logged). Empty: the embedded SQLite file at
    /// [`DatabaseSettings::sqlite_path`].
    pub url: String,
    /// The embedded database file, used when `url` is empty.
    pub sqlite_path: String,
    /// Pool maximum.
    pub max_connections: u32,
    /// Pool minimum.
    pub min_connections: u32,
    /// Wait for a pooled connection, milliseconds.
    pub acquire_timeout_ms: u64,
    /// Statement timeout, milliseconds.
    pub statement_timeout_ms: u64,
}

/// `[redis]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// Connection URL (may hold a password: never logged). Empty: leaderboards and live
    /// fan-out in this process.
    pub url: String,
    /// Pool size.
    pub pool_size: u32,
    /// Wait for a connection or a command, milliseconds.
    pub timeout_ms: u64,
    /// Prefix of every key.
    pub key_prefix: String,
}

/// `[auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Adult token lifetime, seconds.
    pub user_token_ttl_secs: u64,
    /// Student device token lifetime, seconds.
    pub student_token_ttl_secs: u64,
    /// Sign-in attempts per username per minute.
    pub login_attempts_per_minute: u32,
    /// Join attempts per client address per minute.
    pub join_attempts_per_minute: u32,
}

/// `[league]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeagueSettings {
    /// Catalogue file; empty for the compiled-in copy.
    pub catalogue_path: String,
    /// Maximum lateness of a report, hours.
    pub max_lateness_hours: u32,
    /// Allowed clock skew, seconds.
    pub clock_skew_secs: u32,
    /// Peer confirmations outside challenges.
    pub default_required_confirmations: u8,
    /// Challenge finaliser period, milliseconds.
    pub finalize_interval_ms: u64,
}

/// `[live]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveSettings {
    /// Coalescing period, milliseconds.
    pub coalesce_ms: u64,
    /// Rows per board push.
    pub board_rows: u32,
    /// Per-topic lag allowed, frames.
    pub topic_buffer_len: usize,
}

/// `[ws]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsSettings {
    /// Connection cap.
    pub max_connections: usize,
    /// Application frame limit, bytes.
    pub max_frame_bytes: usize,
    /// Transport frame limit, bytes.
    pub transport_max_bytes: usize,
    /// Per-connection send queue, messages.
    pub send_queue_len: usize,
    /// Auth deadline, milliseconds.
    pub auth_deadline_ms: u64,
    /// Ping interval, milliseconds.
    pub ping_interval_ms: u64,
    /// Pong deadline, milliseconds.
    pub pong_timeout_ms: u64,
    /// Bad frames before closing.
    pub max_bad_frames: u32,
    /// Read buffer, bytes.
    pub read_buffer_bytes: usize,
    /// Write buffer, bytes.
    pub write_buffer_bytes: usize,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// tracing filter.
    pub filter: String,
    /// "text" or "json".
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A key is missing, unknown or of the wrong type.
    #[error("configuration error: {0}")]
    Load(#[from] Box<figment::Error>),
    /// A key parsed but its value makes no sense.
    #[error("configuration error: {key} {problem}")]
    Invalid {
        /// The dotted key, e.g. `database.max_connections`.
        key: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
}

impl Settings {
    /// Loads the defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment
            .merge(Env::prefixed(ENV_PREFIX).split("__"))
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL"])
                    .map(|_| "database.url".into()),
            )
            .merge(Env::raw().only(&["REDIS_URL"]).map(|_| "redis.url".into()))
            .merge(
                Env::raw()
                    .only(&["BIND_ADDR"])
                    .map(|_| "server.bind_addr".into()),
            );
        Self::from_figment(figment)
    }

    /// The compiled-in defaults alone, ignoring the environment (for tests and tools).
    pub fn defaults() -> Result<Self, SettingsError> {
        Self::from_figment(Figment::from(Toml::string(DEFAULT_TOML)))
    }

    fn from_figment(figment: Figment) -> Result<Self, SettingsError> {
        let settings: Self = figment.extract().map_err(Box::new)?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let checks: &[(bool, &'static str, &'static str)] = &[
            (
                (1..=10).contains(&self.league.default_required_confirmations),
                "league.default_required_confirmations",
                "must be between 1 and 10",
            ),
            (
                self.league.max_lateness_hours >= 1,
                "league.max_lateness_hours",
                "must be at least 1",
            ),
            (
                self.league.finalize_interval_ms >= 10,
                "league.finalize_interval_ms",
                "must be at least 10",
            ),
            (
                self.live.coalesce_ms >= 10,
                "live.coalesce_ms",
                "must be at least 10",
            ),
            (
                (1..=100).contains(&self.live.board_rows),
                "live.board_rows",
                "must be between 1 and 100",
            ),
            (
                self.live.topic_buffer_len >= 1,
                "live.topic_buffer_len",
                "must be at least 1",
            ),
            (
                self.ws.max_frame_bytes >= 1024
                    && self.ws.transport_max_bytes >= self.ws.max_frame_bytes,
                "ws.max_frame_bytes",
                "must be at least 1024 and at most ws.transport_max_bytes",
            ),
            (
                self.ws.max_connections >= 1,
                "ws.max_connections",
                "must be at least 1",
            ),
            (
                self.ws.send_queue_len >= 1,
                "ws.send_queue_len",
                "must be at least 1",
            ),
            (
                self.ws.auth_deadline_ms >= 1,
                "ws.auth_deadline_ms",
                "must be positive",
            ),
            (
                self.ws.ping_interval_ms >= 10,
                "ws.ping_interval_ms",
                "must be at least 10",
            ),
            (
                self.ws.pong_timeout_ms >= 1,
                "ws.pong_timeout_ms",
                "must be positive",
            ),
            (
                self.ws.read_buffer_bytes >= 256 && self.ws.write_buffer_bytes >= 256,
                "ws.read_buffer_bytes",
                "ws.read_buffer_bytes and ws.write_buffer_bytes must be at least 256",
            ),
            (
                self.server.max_body_bytes >= 1024,
                "server.max_body_bytes",
                "must be at least 1024",
            ),
            (
                self.database.max_connections >= 1,
                "database.max_connections",
                "must be at least 1",
            ),
            (
                self.database.min_connections <= self.database.max_connections,
                "database.min_connections",
                "must not exceed database.max_connections",
            ),
            (
                self.database.acquire_timeout_ms >= 1,
                "database.acquire_timeout_ms",
                "must be positive",
            ),
            (
                self.redis.pool_size >= 1,
                "redis.pool_size",
                "must be at least 1",
            ),
            (
                self.redis.timeout_ms >= 1,
                "redis.timeout_ms",
                "must be positive",
            ),
            (
                !self.redis.key_prefix.is_empty()
                    && self
                        .redis
                        .key_prefix
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b':'),
                "redis.key_prefix",
                "must be non-empty ASCII letters, digits, '_', '-' or ':'",
            ),
            (
                self.auth.user_token_ttl_secs >= 60 && self.auth.student_token_ttl_secs >= 60,
                "auth.*_token_ttl_secs",
                "must be at least 60 seconds",
            ),
            (
                self.auth.login_attempts_per_minute >= 1 && self.auth.join_attempts_per_minute >= 1,
                "auth.*_attempts_per_minute",
                "must be at least 1",
            ),
        ];
        for &(ok, key, problem) in checks {
            if !ok {
                return Err(SettingsError::Invalid { key, problem });
            }
        }
        Ok(())
    }
}

impl DatabaseSettings {
    /// Wait for a pooled connection.
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }
}

impl RedisSettings {
    /// Whether a Redis is configured (otherwise boards and fan-out stay in this process).
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// Wait for a connection or a command.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

// URLs may carry passwords: keep them out of `{:?}`.
impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &"<redacted>")
            .field("sqlite_path", &self.sqlite_path)
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("acquire_timeout_ms", &self.acquire_timeout_ms)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .finish()
    }
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &"<redacted>")
            .field("pool_size", &self.pool_size)
            .field("timeout_ms", &self.timeout_ms)
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_defaults_load_and_validate() {
        let s = Settings::defaults().unwrap();
        assert_eq!(s.server.bind_addr.port(), 8080);
        assert_eq!(s.redis.key_prefix, "cl");
    }

    #[test]
    fn the_shipped_defaults_run_embedded_with_nothing_else_installed() {
        let s = Settings::defaults().unwrap();
        assert!(s.database.url.is_empty());
        assert!(!s.redis.enabled());
        assert!(!s.database.sqlite_path.is_empty());
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let figment = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(Toml::string("[database]\nmax_connections = \"many\""));
        let err = Settings::from_figment(figment).unwrap_err().to_string();
        assert!(err.contains("max_connections"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let figment = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(Toml::string("[database]\nmax_conections = 3"));
        let err = Settings::from_figment(figment).unwrap_err().to_string();
        assert!(err.contains("max_conections"), "{err}");
    }

    #[test]
    fn a_senseless_value_names_its_key() {
        let figment =
            Figment::from(Toml::string(DEFAULT_TOML)).merge(Toml::string("[redis]\npool_size = 0"));
        let err = Settings::from_figment(figment).unwrap_err().to_string();
        assert!(err.contains("redis.pool_size"), "{err}");
    }
}
