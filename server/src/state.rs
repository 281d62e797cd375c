//! The shared application state and the connections it holds.
//!
//! One cheap-to-clone [`AppState`]: the database (Postgres or the embedded SQLite file), the
//! Redis pool when one is configured, the settings, the rate limiters, the league, the WebSocket
//! count and the shutdown token. Pools have explicit sizes and timeouts, so a dependency that is
//! down or saturated turns into a prompt 503 instead of a hang.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bb8_redis::RedisConnectionManager;
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::error::{ApiError, ApiResult};
use crate::league::League;
use crate::league::boards::{LeaderboardStore, RedisBoards};
use crate::league::live::{Hub, LiveBus, RedisBus};
use crate::league::memory::{LocalBus, MemoryBoards};
use crate::league::names::Names;
use crate::settings::{RedisSettings, Settings};
use crate::store::Db;

/// The Redis pool type.
pub type RedisPool = bb8::Pool<RedisConnectionManager>;

/// Everything a handler needs; clone freely.
#[derive(Clone)]
pub struct AppState {
    /// The database, the source of truth: Postgres, or the embedded SQLite file.
    pub db: Db,
    /// Redis, when configured: leaderboards and live events between server processes. Without
    /// it both stay in this process.
    pub redis: Option<RedisPool>,
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
    /// Opens the database and, when configured, Redis (checking each answers), loads the
    /// behaviour catalogue and starts the live bus. Without Redis, leaderboards and live
    /// fan-out stay in this process.
    pub async fn connect(settings: Settings) -> anyhow::Result<Self> {
        let catalogue = crate::league::load_catalogue(&settings)?;
        let db = Db::connect(&settings.database).await?;
        let limits = Arc::new(Limiters::new(&settings));
        let hub = Arc::new(Hub::new(settings.live.topic_buffer_len));
        let mut tasks = Vec::new();
        let (redis, boards, bus): (_, Arc<dyn LeaderboardStore>, Arc<dyn LiveBus>) =
            if settings.redis.enabled() {
                let redis = connect_redis(&settings.redis).await?;
                let bus = RedisBus::new(redis.clone(), &settings.redis.key_prefix);
                let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
                tasks.push(bus.listen(settings.redis.url.clone(), hub.clone(), ready_tx));
                tokio::time::timeout(settings.redis.timeout() * 5, ready_rx)
                    .await
                    .map_err(|_| {
                        anyhow::anyhow!("cannot subscribe to the live bus on redis.url (REDIS_URL)")
                    })?
                    .map_err(|_| anyhow::anyhow!("the live bus listener stopped"))?;
                let boards = RedisBoards::new(redis.clone(), &settings.redis.key_prefix);
                (Some(redis), Arc::new(boards), Arc::new(bus))
            } else {
                (
                    None,
                    Arc::new(MemoryBoards::default()),
                    Arc::new(LocalBus::new(hub.clone())),
                )
            };
        let league = League {
            catalogue,
            boards,
            bus,
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
            tasks: Arc::new(std::sync::Mutex::new(tasks)),
            connections: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            shutdown: tokio_util::sync::CancellationToken::new(),
        })
    }

    /// Whether leaderboards live in this process (no Redis): they start empty and are rebuilt
    /// from the database at start-up.
    pub fn boards_in_process(&self) -> bool {
        self.redis.is_none()
    }
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
pub async fn ping_database(db: &Db, timeout: Duration) -> ApiResult<()> {
    let ping = async {
        db.ping().await?;
        Ok::<_, ApiError>(())
    };
    tokio::time::timeout(timeout, ping)
        .await
        .map_err(|_| ApiError::DatabaseUnavailable(sqlx::Error::PoolTimedOut))?
}
