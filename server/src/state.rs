//! The shared application state and the connections it holds.
//!
//! One cheap-to-clone [`AppState`]: the Postgres pool, the Redis pool, the settings, the rate
//! limiters, the league, the WebSocket count and the shutdown token. Pools have explicit sizes
//! and timeouts, so a dependency that is down or saturated turns into a prompt 503 instead of a
//! hang.

use std::num::NonZeroU32;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bb8_redis::RedisConnectionManager;
use governor::{DefaultKeyedRateLimiter, Quota};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::error::{ApiError, ApiResult};
use crate::league::League;
use crate::league::boards::RedisBoards;
use crate::league::live::{Hub, RedisBus};
use crate::league::names::Names;
use crate::settings::{DatabaseSettings, RedisSettings, Settings};

/// The Redis pool type.
pub type RedisPool = bb8::Pool<RedisConnectionManager>;

/// Everything a handler needs; clone freely.
#[derive(Clone)]
pub struct AppState {
    /// Postgres: the source of truth.
    pub db: PgPool,
    /// Redis: leaderboards and live events between server processes.
    pub redis: RedisPool,
    /// The settings the server started with.
    pub settings: Arc<Settings>,
    /// Sign-in and join rate limits.
    pub limits: Arc<Limiters>,
    /// The league: catalogue, boards, live fan-out.
    pub league: Arc<League>,
    /// Background tasks of this node (the live bus listener), stopped with the server.
    pub tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    /// Open WebSocket connections on this node.
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    /// Cancelled when the server starts shutting down: open WebSockets close with 1001.
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// In-process rate limiters. Each server process limits on its own; behind a load balancer of
/// N processes the effective limit is up to N times higher, which is acceptable for their job
/// (slowing down password and join-code guessing).
pub struct Limiters {
    /// Per username.
    pub login: DefaultKeyedRateLimiter<String>,
    /// Per client address.
    pub join: DefaultKeyedRateLimiter<std::net::IpAddr>,
}

impl Limiters {
    fn new(settings: &Settings) -> Self {
        let quota = |per_minute: u32| {
            Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN))
        };
        Self {
            login: DefaultKeyedRateLimiter::keyed(quota(settings.auth.login_attempts_per_minute)),
            join: DefaultKeyedRateLimiter::keyed(quota(settings.auth.join_attempts_per_minute)),
        }
    }

    /// Forgets keys that are back to a full quota, so the maps do not grow without bound.
    pub fn purge(&self) {
        self.login.retain_recent();
        self.join.retain_recent();
    }
}

/// Checks one attempt against a keyed limiter; too many is a 429 with a retry delay.
pub fn check_rate<K: Clone + std::hash::Hash + Eq>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
) -> ApiResult<()> {
    use governor::clock::{Clock as _, DefaultClock};
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::TooManyRequests(wait.as_secs().max(1))
    })
}

impl AppState {
    /// Connects to Postgres and Redis (checking both answer), loads the behaviour catalogue
    /// and subscribes to the live bus.
    pub async fn connect(settings: Settings) -> anyhow::Result<Self> {
        let catalogue = crate::league::load_catalogue(&settings)?;
        let db = connect_postgres(&settings.database).await?;
        let redis = connect_redis(&settings.redis).await?;
        let limits = Arc::new(Limiters::new(&settings));
        let hub = Arc::new(Hub::new(settings.live.topic_buffer_len));
        let bus = RedisBus::new(redis.clone(), &settings.redis.key_prefix);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let listener = bus.listen(settings.redis.url.clone(), hub.clone(), ready_tx);
        tokio::time::timeout(settings.redis.timeout() * 5, ready_rx)
            .await
            .map_err(|_| {
                anyhow::anyhow!("cannot subscribe to the live bus on redis.url (REDIS_URL)")
            })?
            .map_err(|_| anyhow::anyhow!("the live bus listener stopped"))?;
        let league = League {
            catalogue,
            boards: Arc::new(RedisBoards::new(redis.clone(), &settings.redis.key_prefix)),
            bus: Arc::new(bus),
            hub,
            names: Names::default(),
            lateness: crate::league::lateness(&settings),
            default_confirmations: settings.league.default_required_confirmations,
        };
        Ok(Self {
            db,
            redis,
            settings: Arc::new(settings),
            limits,
            league: Arc::new(league),
            tasks: Arc::new(std::sync::Mutex::new(vec![listener])),
            connections: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            shutdown: tokio_util::sync::CancellationToken::new(),
        })
    }
}

/// A Postgres pool with explicit size and timeouts; fails if Postgres does not answer now.
pub async fn connect_postgres(s: &DatabaseSettings) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(&s.url)
        .context("configuration error: database.url is not a valid Postgres URL")?
        .application_name("carbon-league")
        .options([("statement_timeout", s.statement_timeout_ms.to_string())]);
    let pool = PgPoolOptions::new()
        .max_connections(s.max_connections)
        .min_connections(s.min_connections)
        .acquire_timeout(s.acquire_timeout())
        .idle_timeout(Some(Duration::from_secs(300)))
        .connect_lazy_with(options);
    sqlx::query("SELECT 1")
        .execute(&pool)
        .await
        .context("cannot reach Postgres at database.url (DATABASE_URL)")?;
    Ok(pool)
}

/// A bb8 Redis pool with explicit size and timeouts; fails if Redis does not answer now.
pub async fn connect_redis(s: &RedisSettings) -> anyhow::Result<RedisPool> {
    let manager = RedisConnectionManager::new(s.url.as_str())
        .context("configuration error: redis.url is not a valid Redis URL")?;
    let pool = bb8::Pool::builder()
        .max_size(s.pool_size)
        .connection_timeout(s.timeout())
        // bb8-redis cannot tell a broken multiplexed connection (its `has_broken` is always
        // false): the PING on checkout is what replaces a connection that died while Redis was
        // away, so the pool recovers by itself when Redis returns.
        .test_on_check_out(true)
        .build_unchecked(manager);
    ping_redis(&pool, s.timeout())
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach Redis at redis.url (REDIS_URL): {e}"))?;
    Ok(pool)
}

/// `PING` within `timeout`.
pub async fn ping_redis(pool: &RedisPool, timeout: Duration) -> ApiResult<()> {
    let ping = async {
        let mut conn = pool.get().await?;
        let _: String = redis::cmd("PING").query_async(&mut *conn).await?;
        Ok::<_, ApiError>(())
    };
    tokio::time::timeout(timeout, ping)
        .await
        .map_err(|_| ApiError::RedisUnavailable("timed out".into()))?
}

/// `SELECT 1` within `timeout`.
pub async fn ping_postgres(pool: &PgPool, timeout: Duration) -> ApiResult<()> {
    let ping = async {
        sqlx::query("SELECT 1").execute(pool).await?;
        Ok::<_, ApiError>(())
    };
    tokio::time::timeout(timeout, ping)
        .await
        .map_err(|_| ApiError::DatabaseUnavailable(sqlx::Error::PoolTimedOut))?
}
