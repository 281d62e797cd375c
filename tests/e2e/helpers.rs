//! The test harness: boots the real server in-process on port 0, one fresh database (and Redis
//! key prefix) per test, so tests run in parallel.
//!
//! The backend is chosen by `CARBON_LEAGUE_TEST_BACKEND`:
//! - `postgres` (the default): real Postgres and Redis. `DATABASE_URL` and `REDIS_URL` point at
//!   the services (defaults: the local ones). A missing service fails the test: nothing skips.
//! - `sqlite`: the embedded mode, a fresh SQLite file per test and in-process leaderboards and
//!   live fan-out, exactly as `carbon-league serve` runs with no configuration.

pub mod league;
pub mod proxy;
pub mod ws_client;

use std::net::SocketAddr;
use std::time::Duration;

use carbon_league::Server;
use carbon_league::settings::Settings;
use carbon_league::store::Db;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection as _, PgConnection};

/// Which backend the suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Postgres and Redis.
    Postgres,
    /// The embedded SQLite file, leaderboards and fan-out in process.
    Sqlite,
}

impl Backend {
    /// What `/readyz` names the database.
    pub fn database_name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }

    /// What `/readyz` says of Redis.
    pub fn redis_readiness(self) -> &'static str {
        match self {
            Self::Postgres => "ok",
            Self::Sqlite => "in_process",
        }
    }
}

/// The backend named by `CARBON_LEAGUE_TEST_BACKEND` (default `postgres`); any other value
/// fails the test rather than silently running something else.
pub fn backend() -> Backend {
    match std::env::var("CARBON_LEAGUE_TEST_BACKEND").as_deref() {
        Err(_) | Ok("" | "postgres") => Backend::Postgres,
        Ok("sqlite") => Backend::Sqlite,
        Ok(other) => panic!("CARBON_LEAGUE_TEST_BACKEND must be postgres or sqlite, not {other}"),
    }
}

/// For tests of one backend's own machinery (a TCP proxy cut in front of Postgres or Redis, two
/// server nodes sharing Redis): whether to run here. Says so on stderr when not.
pub fn only_on(wanted: Backend, what: &str) -> bool {
    if backend() == wanted {
        return true;
    }
    eprintln!(
        "{what}: only meaningful on the {} backend, not run on {}",
        wanted.database_name(),
        backend().database_name()
    );
    false
}

/// The Postgres server tests create their databases on.
pub fn base_database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The Redis tests use.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The test's own database (the server's pool), for checks and for arranging odd states.
    pub db: Db,
    /// The test's database: a Postgres database name, or the SQLite file's path.
    pub db_name: String,
    /// The server's state (pools, boards), for checks that reach behind the API.
    pub state: carbon_league::state::AppState,
    /// The settings the server runs with (a peer reuses them).
    pub settings: Settings,
    /// Whether dropping this app drops the database (a peer shares its first app's).
    owns_database: bool,
    http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Settings for a test: the defaults, a fresh database and key prefix, port 0.
pub async fn test_settings() -> (Settings, String) {
    let (mut settings, db_name) = match backend() {
        Backend::Postgres => postgres_settings().await,
        Backend::Sqlite => sqlite_settings(),
    };
    settings.server.bind_addr = "127.0.0.1:0".parse().expect("addr");
    settings.server.shutdown_grace_ms = 1000;
    (settings, db_name)
}

/// Where the tests' SQLite files go.
fn sqlite_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("carbon-league-tests")
}

fn sqlite_settings() -> (Settings, String) {
    let path = sqlite_dir().join(format!("{}.sqlite3", uuid::Uuid::new_v4().simple()));
    let mut settings = Settings::defaults().expect("default settings");
    settings.database.url = String::new();
    settings.database.sqlite_path = path.display().to_string();
    settings.database.max_connections = 8;
    settings.database.acquire_timeout_ms = 1500;
    settings.redis.url = String::new();
    (settings, path.display().to_string())
}

async fn postgres_settings() -> (Settings, String) {
    let db_name = format!("cl_test_{}", uuid::Uuid::new_v4().simple());
    let base = base_database_url();
    let mut conn = PgConnection::connect(&base)
        .await
        .expect("Postgres must be reachable at DATABASE_URL for the end-to-end tests");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
        .execute(&mut conn)
        .await
        .expect("create the test database");
    let mut settings = Settings::defaults().expect("default settings");
    settings.database.url = replace_db_name(&base, &db_name);
    settings.database.max_connections = 8;
    settings.database.acquire_timeout_ms = 1500;
    settings.redis.url = redis_url();
    settings.redis.key_prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    (settings, db_name)
}

fn replace_db_name(url: &str, db: &str) -> String {
    let (before_query, query) = url
        .split_once('?')
        .map_or((url, None), |(a, b)| (a, Some(b)));
    let base = before_query
        .rsplit_once('/')
        .map_or(before_query, |(a, _)| a);
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// Boots the server with the default test settings.
pub async fn spawn_app() -> TestApp {
    let (settings, db_name) = test_settings().await;
    spawn_with(settings, db_name).await
}

/// Boots the server with adjusted settings.
pub async fn spawn_with(settings: Settings, db_name: String) -> TestApp {
    boot(settings, db_name, true).await
}

/// Boots a second server node beside `app`: the same database and the same Redis key prefix
/// (so the same boards and live bus), its own port. It does not drop the shared database.
pub async fn spawn_peer(app: &TestApp) -> TestApp {
    let mut settings = app.settings.clone();
    settings.server.bind_addr = "127.0.0.1:0".parse().expect("addr");
    boot(settings, app.db_name.clone(), false).await
}

async fn boot(settings: Settings, db_name: String, owns_database: bool) -> TestApp {
    // TEST_LOG=1 shows the server's log (RUST_LOG filters it), e.g. to see why a 500 happened.
    if std::env::var_os("TEST_LOG").is_some() {
        carbon_league::telemetry::init(&settings.log);
    }
    // The first app migrates its fresh database; a peer finds it migrated.
    let server = Server::build(settings.clone(), owns_database)
        .await
        .expect("the server boots");
    let addr = server.local_addr().expect("bound address");
    let state = server.state().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(server.run_until(async {
        let _ = rx.await;
    }));
    let db = state.db.clone();
    TestApp {
        addr,
        db,
        db_name,
        state,
        settings,
        owns_database,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("http client"),
        shutdown: Some(tx),
        server: Some(handle),
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if !self.owns_database {
            return;
        }
        if backend() == Backend::Sqlite {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", self.db_name));
            }
            return;
        }
        let db_name = self.db_name.clone();
        let key_prefix = self.settings.redis.key_prefix.clone();
        // Drop the test database and the test's Redis keys from a thread with its own runtime:
        // Drop cannot await.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&base_database_url()).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
                if let Ok(client) = redis::Client::open(redis_url())
                    && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                {
                    let keys: Vec<String> = redis::cmd("KEYS")
                        .arg(format!("{key_prefix}:*"))
                        .query_async(&mut conn)
                        .await
                        .unwrap_or_default();
                    if !keys.is_empty() {
                        let _: redis::RedisResult<()> =
                            redis::cmd("DEL").arg(&keys).query_async(&mut conn).await;
                    }
                }
            });
        })
        .join();
    }
}

/// A response: status and JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body as JSON.
    pub body: Value,
}

impl Reply {
    /// The error code of an error reply.
    pub fn code(&self) -> &str {
        self.body["error"]["code"]
            .as_str()
            .unwrap_or("<no error code>")
    }

    /// Asserts the status and returns the body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected reply: {}",
            self.body
        );
        self.body
    }

    /// Asserts an error reply's status and code.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected reply: {}",
            self.body
        );
        assert_eq!(self.code(), code, "unexpected reply: {}", self.body);
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "an error carries a message: {}",
            self.body
        );
    }
}

impl TestApp {
    /// Signals the server to shut down (as SIGTERM would), leaving it to finish gracefully.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// `http://addr`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    async fn send(&self, req: reqwest::RequestBuilder, token: Option<&str>) -> Reply {
        let req = match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let res = req.send().await.expect("the server answers");
        let status = res.status();
        let bytes = res.bytes().await.expect("a body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply { status, body }
    }

    /// GET `/api/v1{path}`.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(self.http.get(self.url(&format!("/api/v1{path}"))), token)
            .await
    }

    /// POST JSON to `/api/v1{path}`.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.send(
            self.http
                .post(self.url(&format!("/api/v1{path}")))
                .json(&body),
            token,
        )
        .await
    }

    /// POST raw bytes with a content type to `/api/v1{path}`.
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Reply {
        let req = self
            .http
            .post(self.url(&format!("/api/v1{path}")))
            .header("content-type", content_type)
            .body(body);
        self.send(req, token).await
    }

    /// DELETE `/api/v1{path}`.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(self.http.delete(self.url(&format!("/api/v1{path}"))), token)
            .await
    }

    /// GET a path outside `/api/v1` (the probes).
    pub async fn get_root(&self, path: &str) -> Reply {
        self.send(self.http.get(self.url(path)), None).await
    }

    /// Bootstraps the programme admin and signs in; returns its token.
    pub async fn programme_admin(&self) -> String {
        let creds = carbon_league::admin::bootstrap(&self.db, "admin")
            .await
            .expect("bootstrap");
        self.login(&creds.username, &creds.password).await
    }

    /// Signs in and returns the token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let body = self
            .post(
                "/auth/login",
                None,
                json!({"username": username, "password": password}),
            )
            .await
            .expect(200);
        body["token"].as_str().expect("token").to_owned()
    }

    /// Creates a school and returns its id.
    pub async fn school(&self, admin: &str, name: &str) -> String {
        let body = self
            .post(
                "/schools",
                Some(admin),
                json!({"name": name, "county": "Jinghong", "pioneer": true}),
            )
            .await
            .expect(201);
        body["id"].as_str().expect("id").to_owned()
    }

    /// Creates an account (school admin or teacher) in a school and signs it in.
    pub async fn staff(&self, creator: &str, school: &str, kind: &str, username: &str) -> String {
        let password = "correct horse battery";
        self.post(
            &format!("/schools/{school}/{kind}"),
            Some(creator),
            json!({"username": username, "display_name": username, "password": password}),
        )
        .await
        .expect(201);
        self.login(username, password).await
    }

    /// Creates a class; returns `(id, join_code)`.
    pub async fn class(&self, teacher: &str, grade: i64, name: &str) -> (String, String) {
        let body = self
            .post(
                "/classes",
                Some(teacher),
                json!({"grade": grade, "name": name}),
            )
            .await
            .expect(201);
        (
            body["id"].as_str().expect("id").to_owned(),
            body["join_code"].as_str().expect("join code").to_owned(),
        )
    }

    /// A student joins with a code; returns `(student id, device token)`.
    pub async fn join(&self, code: &str, nickname: &str) -> (String, String) {
        let body = self
            .post(
                "/join",
                None,
                json!({"join_code": code, "nickname": nickname}),
            )
            .await
            .expect(201);
        (
            body["student"]["id"].as_str().expect("id").to_owned(),
            body["token"].as_str().expect("token").to_owned(),
        )
    }
}

/// A whole school: programme admin, one school, its admin and a teacher with one class.
pub struct World {
    /// Programme admin token.
    pub admin: String,
    /// The school's id.
    pub school: String,
    /// School admin token.
    pub school_admin: String,
    /// Teacher token.
    pub teacher: String,
    /// The teacher's class id.
    pub class: String,
    /// Its join code.
    pub join_code: String,
}

impl TestApp {
    /// Sets up a [`World`].
    pub async fn world(&self) -> World {
        let admin = self.programme_admin().await;
        let school = self.school(&admin, "Menghai No.1 Primary").await;
        let school_admin = self.staff(&admin, &school, "admins", "head.menghai").await;
        let teacher = self
            .staff(&school_admin, &school, "teachers", "teacher.li")
            .await;
        let (class, join_code) = self.class(&teacher, 5, "2班").await;
        World {
            admin,
            school,
            school_admin,
            teacher,
            class,
            join_code,
        }
    }
}

/// Polls `f` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
