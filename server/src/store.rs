//! Storage: the one interface every query of the league goes through, and its two
//! implementations.
//!
//! - **Postgres** (production): a pool on `database.url`; writers serialise with advisory locks
//!   and row locks.
//! - **SQLite** (the zero-setup embedded mode): one database file in WAL mode with
//!   `synchronous = FULL`, so a commit is on disk before the client hears "ok". Reads use a pool
//!   of connections; every transaction runs on the one writer connection with `BEGIN IMMEDIATE`,
//!   so writers queue fairly in the pool (a long queue answers 503, like Postgres) and the locks
//!   Postgres needs are implied.
//!
//! Domain code builds a [`Q`] (SQL text with `$1…` parameters and its bound values) and runs it
//! on a [`Db`] or inside a [`Tx`]; it does not know which backend it is on. The few places where
//! the SQL dialects differ ask the [`Dialect`] for the fragment. Rows decode through `FromRow`,
//! which works for both backends as long as the row's field types do; [`IdList`] and
//! [`TextList`] carry the two list shapes (Postgres arrays, SQLite JSON arrays).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{
    PgArgumentBuffer, PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow,
    PgTypeInfo, PgValueRef, Postgres,
};
use sqlx::sqlite::{
    Sqlite, SqliteArguments, SqliteArgumentsBuffer, SqliteConnectOptions, SqliteConnection,
    SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous, SqliteTypeInfo,
    SqliteValueRef,
};
use sqlx::{Arguments as _, Decode, Encode, FromRow, Transaction, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::settings::DatabaseSettings;

/// Which SQL dialect a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

impl Dialect {
    /// The backend's name, as `/readyz` and the logs say it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }

    /// Picks the SQL text for this dialect.
    pub fn pick(self, postgres: &'static str, sqlite: &'static str) -> &'static str {
        match self {
            Self::Postgres => postgres,
            Self::Sqlite => sqlite,
        }
    }

    /// ` FOR UPDATE` on Postgres; nothing on SQLite, where the transaction already holds the
    /// database's one write lock.
    pub fn for_update(self) -> &'static str {
        self.pick(" FOR UPDATE", "")
    }

    /// `column` is one of the ids in list parameter `param` (`$n`).
    pub fn in_ids(self, column: &str, param: &str) -> String {
        match self {
            Self::Postgres => format!("{column} = ANY({param})"),
            Self::Sqlite => format!("{column} IN (SELECT unhex(value) FROM json_each({param}))"),
        }
    }

    /// Text `value` (a parameter or column) is in the [`TextList`] column `list`.
    pub fn has_text(self, list: &str, value: &str) -> String {
        match self {
            Self::Postgres => format!("{value} = ANY({list})"),
            Self::Sqlite => format!("{value} IN (SELECT value FROM json_each({list}))"),
        }
    }
}

/// The database: Postgres or the embedded SQLite file. Cheap to clone.
#[derive(Clone, Debug)]
pub enum Db {
    /// A Postgres pool.
    Postgres(PgPool),
    /// The embedded SQLite database.
    Sqlite(Embedded),
}

/// The embedded database's two pools: readers, and the one writer every transaction uses.
#[derive(Clone, Debug)]
pub struct Embedded {
    read: SqlitePool,
    write: SqlitePool,
    path: PathBuf,
}

impl Db {
    /// Opens the database the settings name: Postgres when `database.url` is a `postgres://`
    /// URL, otherwise the SQLite file at `database.sqlite_path` (its directory is created on
    /// first run). Fails when the database cannot be reached now.
    pub async fn connect(s: &DatabaseSettings) -> anyhow::Result<Self> {
        let url = s.url.trim();
        if url.is_empty() {
            Self::open_sqlite(s, Path::new(&s.sqlite_path)).await
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            Self::open_sqlite(s, Path::new(path)).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::connect_postgres(s).await
        } else {
            anyhow::bail!(
                "configuration error: database.url must be empty (embedded SQLite), a postgres:// \
                 URL or a sqlite:// path"
            )
        }
    }

    async fn connect_postgres(s: &DatabaseSettings) -> anyhow::Result<Self> {
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
        Ok(Self::Postgres(pool))
    }

    async fn open_sqlite(s: &DatabaseSettings, path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is synced to disk before it returns, so "ok" survives a power cut.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_millis(s.statement_timeout_ms))
            .pragma("temp_store", "memory");
        // No ping when a connection is handed out: an in-process SQLite connection does not go
        // stale, and under load a ping that outlasts the acquire timeout made sqlx drop and
        // reopen the one writer (with an empty statement cache).
        let write = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .acquire_timeout(s.acquire_timeout())
            .connect_with(options.clone())
            .await
            .with_context(|| format!("cannot open the SQLite database {}", path.display()))?;
        let read = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(s.max_connections.clamp(1, 16))
            .acquire_timeout(s.acquire_timeout())
            .idle_timeout(Some(Duration::from_secs(300)))
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open the SQLite database {}", path.display()))?;
        Ok(Self::Sqlite(Embedded {
            read,
            write,
            path: path.to_owned(),
        }))
    }

    /// The SQL dialect of this database.
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Postgres(_) => Dialect::Postgres,
            Self::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Where the embedded database lives, if this is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Self::Postgres(_) => None,
            Self::Sqlite(e) => Some(&e.path),
        }
    }

    /// Applies the pending migrations of this backend.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self {
            Self::Postgres(pool) => schema::MIGRATOR.run(pool).await,
            Self::Sqlite(e) => schema::SQLITE_MIGRATOR.run(&e.write).await,
        }
    }

    /// Starts a transaction. On SQLite it takes the database's write lock at once
    /// (`BEGIN IMMEDIATE`), so a transaction never fails half-way for lack of it.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Self::Postgres(pool) => Tx::Postgres(pool.begin().await?),
            Self::Sqlite(e) => Tx::Sqlite(e.write.begin_with("BEGIN IMMEDIATE").await?),
        })
    }

    /// One connection for several statements in a row (reads; on SQLite a reader).
    pub async fn acquire(&self) -> Result<Pooled, sqlx::Error> {
        Ok(match self {
            Self::Postgres(pool) => Pooled::Postgres(pool.acquire().await?),
            Self::Sqlite(e) => Pooled::Sqlite(e.read.acquire().await?),
        })
    }

    /// `SELECT 1`.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        query("SELECT 1").execute(self).await.map(|_| ())
    }

    /// Closes the pools, waiting for connections in use to come back.
    pub async fn close(&self) {
        match self {
            Self::Postgres(pool) => pool.close().await,
            Self::Sqlite(e) => {
                e.read.close().await;
                e.write.close().await;
            }
        }
    }
}

/// A connection taken from the pool, given back when dropped.
#[derive(Debug)]
pub enum Pooled {
    /// From the Postgres pool.
    Postgres(PoolConnection<Postgres>),
    /// From the SQLite readers' pool.
    Sqlite(PoolConnection<Sqlite>),
}

/// A transaction on either backend; dropped without [`Tx::commit`], it rolls back.
#[derive(Debug)]
pub enum Tx {
    /// On Postgres.
    Postgres(Transaction<'static, Postgres>),
    /// On the embedded SQLite database (holding its write lock).
    Sqlite(Transaction<'static, Sqlite>),
}

impl Tx {
    /// Commits.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Postgres(tx) => tx.commit().await,
            Self::Sqlite(tx) => tx.commit().await,
        }
    }

    /// The SQL dialect of this transaction.
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Postgres(_) => Dialect::Postgres,
            Self::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Holds the lock named `key` exclusively until the transaction ends (see [`lock`]).
    pub async fn lock(&mut self, key: i64) -> Result<(), sqlx::Error> {
        lock(self, key, false).await
    }

    /// Holds the lock named `key` shared until the transaction ends (see [`lock`]).
    pub async fn lock_shared(&mut self, key: i64) -> Result<(), sqlx::Error> {
        lock(self, key, true).await
    }
}

/// Inside a transaction, holds the lock named `key` until the transaction ends: shared (other
/// shared holders run beside it, an exclusive holder waits) or exclusive. On Postgres this is
/// an advisory lock; on SQLite the transaction already excludes every other writer, so there is
/// nothing more to take.
pub async fn lock(conn: &mut dyn AsConn, key: i64, shared: bool) -> Result<(), sqlx::Error> {
    let sql = if shared {
        "SELECT pg_advisory_xact_lock_shared($1)"
    } else {
        "SELECT pg_advisory_xact_lock($1)"
    };
    match conn.as_conn() {
        Conn::Pg(c) => sqlx::query(sql).bind(key).execute(c).await.map(|_| ()),
        Conn::PgPool(_) | Conn::SqlitePool(_) | Conn::Sqlite(_) => Ok(()),
    }
}

/// A lock key derived from an id (for [`Tx::lock`]).
pub fn lock_key(id: Uuid, namespace: u8) -> i64 {
    let b = id.as_bytes();
    let mut k = [0u8; 8];
    for (i, byte) in b.iter().enumerate() {
        k[i % 8] ^= *byte;
    }
    k[0] ^= namespace;
    i64::from_le_bytes(k)
}

/// Where a statement runs: a pool, or an open transaction.
pub enum Conn<'c> {
    /// A Postgres pool.
    PgPool(&'c PgPool),
    /// A Postgres connection (inside a transaction).
    Pg(&'c mut PgConnection),
    /// The SQLite readers' pool.
    SqlitePool(&'c SqlitePool),
    /// The SQLite writer (inside a transaction).
    Sqlite(&'c mut SqliteConnection),
}

impl<'c> From<&'c Db> for Conn<'c> {
    fn from(db: &'c Db) -> Self {
        match db {
            Db::Postgres(pool) => Conn::PgPool(pool),
            Db::Sqlite(e) => Conn::SqlitePool(&e.read),
        }
    }
}

/// Anything a statement can run on several times in a row: an open transaction, a pooled
/// connection, or a [`Conn`]. Helpers that run several statements take `&mut dyn AsConn`.
pub trait AsConn: Send {
    /// Borrows it for one statement.
    fn as_conn(&mut self) -> Conn<'_>;
}

impl AsConn for Tx {
    fn as_conn(&mut self) -> Conn<'_> {
        match self {
            Tx::Postgres(tx) => Conn::Pg(tx),
            Tx::Sqlite(tx) => Conn::Sqlite(tx),
        }
    }
}

impl AsConn for Pooled {
    fn as_conn(&mut self) -> Conn<'_> {
        match self {
            Pooled::Postgres(c) => Conn::Pg(c),
            Pooled::Sqlite(c) => Conn::Sqlite(c),
        }
    }
}

impl AsConn for Conn<'_> {
    fn as_conn(&mut self) -> Conn<'_> {
        match self {
            Conn::PgPool(p) => Conn::PgPool(p),
            Conn::Pg(c) => Conn::Pg(c),
            Conn::SqlitePool(p) => Conn::SqlitePool(p),
            Conn::Sqlite(c) => Conn::Sqlite(c),
        }
    }
}

impl<'a, T: AsConn + ?Sized> From<&'a mut T> for Conn<'a> {
    fn from(t: &'a mut T) -> Self {
        t.as_conn()
    }
}

impl Conn<'_> {
    /// The dialect this connection speaks.
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::PgPool(_) | Self::Pg(_) => Dialect::Postgres,
            Self::SqlitePool(_) | Self::Sqlite(_) => Dialect::Sqlite,
        }
    }
}

/// A value that binds the same way on both backends (instants bind on their own: see
/// [`sqlite_instant`]).
pub trait Portable<'a>:
    Encode<'a, Postgres> + Type<Postgres> + Encode<'a, Sqlite> + Type<Sqlite> + Send
{
}

macro_rules! portable {
    ($($t:ty),* $(,)?) => { $(impl Portable<'_> for $t {})* };
}

portable!(
    Uuid,
    String,
    bool,
    i16,
    i32,
    i64,
    Vec<u8>,
    time::Date,
    IdList,
    TextList,
    schema::SchoolId,
    schema::UserId,
    schema::ClassId,
    schema::StudentId,
    schema::SeasonId,
    schema::ChallengeId,
    schema::ClubId,
    schema::StationId,
    schema::SubmissionId,
);

impl<'a> Portable<'a> for &'a str {}
impl<'a> Portable<'a> for &'a [u8] {}
impl<'a, T: Portable<'a> + Sync> Portable<'a> for &'a T {}
impl<'a, T: Portable<'a> + 'a> Portable<'a> for Option<T> {}

/// A bound parameter of a [`Q`].
pub trait Arg: Send {
    /// Adds it to Postgres arguments.
    fn add_pg(self: Box<Self>, args: &mut PgArguments) -> Result<(), BoxDynError>;
    /// Adds it to SQLite arguments.
    fn add_sqlite(self: Box<Self>, args: &mut SqliteArguments) -> Result<(), BoxDynError>;
}

impl<'a, T: Portable<'a>> Arg for T {
    fn add_pg(self: Box<Self>, args: &mut PgArguments) -> Result<(), BoxDynError> {
        args.add(*self)
    }
    fn add_sqlite(self: Box<Self>, args: &mut SqliteArguments) -> Result<(), BoxDynError> {
        args.add(*self)
    }
}

/// Instants are stored in SQLite as UTC text of one fixed width
/// (`2026-12-04T19:16:42.123456Z`), so comparing and ordering them as text is comparing and
/// ordering the instants. (sqlx's own SQLite text drops trailing zeros, which does not sort.)
pub fn sqlite_instant(t: OffsetDateTime) -> Result<String, BoxDynError> {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    Ok(t.to_offset(time::UtcOffset::UTC).format(&format)?)
}

impl Arg for OffsetDateTime {
    fn add_pg(self: Box<Self>, args: &mut PgArguments) -> Result<(), BoxDynError> {
        args.add(*self)
    }
    fn add_sqlite(self: Box<Self>, args: &mut SqliteArguments) -> Result<(), BoxDynError> {
        args.add(sqlite_instant(*self)?)
    }
}

impl Arg for &OffsetDateTime {
    fn add_pg(self: Box<Self>, args: &mut PgArguments) -> Result<(), BoxDynError> {
        args.add(**self)
    }
    fn add_sqlite(self: Box<Self>, args: &mut SqliteArguments) -> Result<(), BoxDynError> {
        args.add(sqlite_instant(**self)?)
    }
}

impl Arg for Option<OffsetDateTime> {
    fn add_pg(self: Box<Self>, args: &mut PgArguments) -> Result<(), BoxDynError> {
        args.add(*self)
    }
    fn add_sqlite(self: Box<Self>, args: &mut SqliteArguments) -> Result<(), BoxDynError> {
        match *self {
            Some(t) => args.add(Some(sqlite_instant(t)?)),
            None => args.add(None::<String>),
        }
    }
}

/// A row type that decodes on both backends.
pub trait Record:
    for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin
{
}
impl<T> Record for T where
    T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin
{
}

/// A single-column value that decodes on both backends.
pub trait Scalar:
    for<'r> Decode<'r, Postgres>
    + Type<Postgres>
    + for<'r> Decode<'r, Sqlite>
    + Type<Sqlite>
    + Send
    + Unpin
{
}
impl<T> Scalar for T where
    T: for<'r> Decode<'r, Postgres>
        + Type<Postgres>
        + for<'r> Decode<'r, Sqlite>
        + Type<Sqlite>
        + Send
        + Unpin
{
}

/// A statement and its parameters, ready to run on either backend.
#[must_use = "a query does nothing until it is run"]
pub struct Q<'a> {
    sql: Cow<'static, str>,
    args: Vec<Box<dyn Arg + 'a>>,
}

/// A statement from SQL text (use `$1`, `$2`… for parameters).
pub fn query<'a>(sql: impl Into<Cow<'static, str>>) -> Q<'a> {
    Q {
        sql: sql.into(),
        args: Vec::new(),
    }
}

/// What a statement that returns no rows did.
#[derive(Debug, Clone, Copy)]
pub struct Done(u64);

impl Done {
    /// Rows inserted, updated or deleted.
    pub fn rows_affected(&self) -> u64 {
        self.0
    }
}

fn sql_text(sql: Cow<'static, str>) -> sqlx::SqlStr {
    use sqlx::SqlSafeStr as _;
    match sql {
        Cow::Borrowed(s) => s.into_sql_str(),
        // Built by this crate from fixed fragments and `$n` placeholders only; values are
        // always bound.
        Cow::Owned(s) => sqlx::AssertSqlSafe(s).into_sql_str(),
    }
}

fn pg_args(args: Vec<Box<dyn Arg + '_>>) -> Result<PgArguments, sqlx::Error> {
    let mut out = PgArguments::default();
    for a in args {
        a.add_pg(&mut out).map_err(sqlx::Error::Encode)?;
    }
    Ok(out)
}

fn sqlite_args(args: Vec<Box<dyn Arg + '_>>) -> Result<SqliteArguments, sqlx::Error> {
    let mut out = SqliteArguments::default();
    for a in args {
        a.add_sqlite(&mut out).map_err(sqlx::Error::Encode)?;
    }
    Ok(out)
}

/// Runs `$make(sql, args).$run(conn)` on whichever backend `conn` is.
macro_rules! dispatch {
    ($self:ident, $conn:ident, $make:ident, $run:ident) => {{
        let Q { sql, args } = $self;
        let sql = sql_text(sql);
        match $conn.into() {
            Conn::PgPool(c) => sqlx::$make(sql, pg_args(args)?).$run(c).await,
            Conn::Pg(c) => sqlx::$make(sql, pg_args(args)?).$run(c).await,
            Conn::SqlitePool(c) => sqlx::$make(sql, sqlite_args(args)?).$run(c).await,
            Conn::Sqlite(c) => sqlx::$make(sql, sqlite_args(args)?).$run(c).await,
        }
    }};
}

impl<'a> Q<'a> {
    /// Binds the next parameter.
    pub fn bind<T: Arg + 'a>(mut self, value: T) -> Self {
        self.args.push(Box::new(value));
        self
    }

    /// Runs a statement that returns no rows.
    pub async fn execute<'c>(self, conn: impl Into<Conn<'c>>) -> Result<Done, sqlx::Error> {
        let Q { sql, args } = self;
        let sql = sql_text(sql);
        Ok(Done(match conn.into() {
            Conn::PgPool(c) => sqlx::query_with(sql, pg_args(args)?)
                .execute(c)
                .await?
                .rows_affected(),
            Conn::Pg(c) => sqlx::query_with(sql, pg_args(args)?)
                .execute(c)
                .await?
                .rows_affected(),
            Conn::SqlitePool(c) => sqlx::query_with(sql, sqlite_args(args)?)
                .execute(c)
                .await?
                .rows_affected(),
            Conn::Sqlite(c) => sqlx::query_with(sql, sqlite_args(args)?)
                .execute(c)
                .await?
                .rows_affected(),
        }))
    }

    /// Exactly one row.
    pub async fn fetch_one<'c, T: Record>(
        self,
        conn: impl Into<Conn<'c>>,
    ) -> Result<T, sqlx::Error> {
        dispatch!(self, conn, query_as_with, fetch_one)
    }

    /// At most one row.
    pub async fn fetch_optional<'c, T: Record>(
        self,
        conn: impl Into<Conn<'c>>,
    ) -> Result<Option<T>, sqlx::Error> {
        dispatch!(self, conn, query_as_with, fetch_optional)
    }

    /// Every row.
    pub async fn fetch_all<'c, T: Record>(
        self,
        conn: impl Into<Conn<'c>>,
    ) -> Result<Vec<T>, sqlx::Error> {
        dispatch!(self, conn, query_as_with, fetch_all)
    }

    /// The one value of exactly one row.
    pub async fn scalar<'c, T: Scalar>(self, conn: impl Into<Conn<'c>>) -> Result<T, sqlx::Error> {
        dispatch!(self, conn, query_scalar_with, fetch_one)
    }

    /// The one value of at most one row.
    pub async fn scalar_optional<'c, T: Scalar>(
        self,
        conn: impl Into<Conn<'c>>,
    ) -> Result<Option<T>, sqlx::Error> {
        dispatch!(self, conn, query_scalar_with, fetch_optional)
    }

    /// The first column of every row.
    pub async fn scalars<'c, T: Scalar>(
        self,
        conn: impl Into<Conn<'c>>,
    ) -> Result<Vec<T>, sqlx::Error> {
        dispatch!(self, conn, query_scalar_with, fetch_all)
    }
}

/// A list of ids as one parameter or one column: a `uuid[]` on Postgres, a JSON array of hex
/// strings on SQLite. In SQL, test membership with [`Dialect::in_ids`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdList(pub Vec<Uuid>);

impl<T: Into<Uuid>> FromIterator<T> for IdList {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Self(iter.into_iter().map(Into::into).collect())
    }
}

/// A list of strings as one parameter or one column: a `text[]` on Postgres, a JSON array on
/// SQLite. In SQL, test membership with [`Dialect::has_text`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextList(pub Vec<String>);

impl From<TextList> for Vec<String> {
    fn from(l: TextList) -> Self {
        l.0
    }
}

impl From<IdList> for Vec<Uuid> {
    fn from(l: IdList) -> Self {
        l.0
    }
}

macro_rules! list_type {
    ($list:ty, $item:ty, $to_text:expr, $from_text:expr) => {
        impl Type<Postgres> for $list {
            fn type_info() -> PgTypeInfo {
                <Vec<$item> as Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <Vec<$item> as Type<Postgres>>::compatible(ty)
            }
        }

        impl Encode<'_, Postgres> for $list {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <Vec<$item> as Encode<'_, Postgres>>::encode_by_ref(&self.0, buf)
            }
        }

        impl<'r> Decode<'r, Postgres> for $list {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                Ok(Self(<Vec<$item> as Decode<'r, Postgres>>::decode(value)?))
            }
        }

        impl Type<Sqlite> for $list {
            fn type_info() -> SqliteTypeInfo {
                <String as Type<Sqlite>>::type_info()
            }
            fn compatible(ty: &SqliteTypeInfo) -> bool {
                <String as Type<Sqlite>>::compatible(ty)
            }
        }

        impl Encode<'_, Sqlite> for $list {
            fn encode_by_ref(
                &self,
                buf: &mut SqliteArgumentsBuffer,
            ) -> Result<IsNull, BoxDynError> {
                let to_text: fn(&$item) -> String = $to_text;
                let items: Vec<String> = self.0.iter().map(to_text).collect();
                <String as Encode<'_, Sqlite>>::encode(serde_json::to_string(&items)?, buf)
            }
        }

        impl<'r> Decode<'r, Sqlite> for $list {
            fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as Decode<'r, Sqlite>>::decode(value)?;
                let items: Vec<String> = serde_json::from_str(text)?;
                let from_text: fn(String) -> Result<$item, BoxDynError> = $from_text;
                Ok(Self(
                    items.into_iter().map(from_text).collect::<Result<_, _>>()?,
                ))
            }
        }
    };
}

list_type!(IdList, Uuid, |id| id.simple().to_string(), |s| Ok(
    Uuid::parse_str(&s)?
));
list_type!(TextList, String, Clone::clone, Ok);

/// The constraint a SQLite error names, as the Postgres schema names it: SQLite reports a
/// unique violation by its columns (`UNIQUE constraint failed: classes.join_code`), a unique
/// expression index by name, and a check by name.
pub fn sqlite_constraint(message: &str) -> Option<&'static str> {
    const UNIQUE: &[(&str, &str)] = &[
        ("schools.name, schools.county", "schools_name_county_key"),
        ("index 'users_username_key'", "users_username_key"),
        ("classes.join_code", "classes_join_code_key"),
        (
            "classes.school_id, classes.grade, classes.name",
            "classes_school_grade_name_key",
        ),
        (
            "students.class_id, students.nickname_key",
            "students_class_nickname_key",
        ),
        ("seasons.status", "seasons_one_active"),
        ("clubs.join_code", "clubs_join_code_key"),
        ("clubs.school_id, clubs.name", "clubs_school_name_key"),
        (
            "club_members.club_id, club_members.student_id",
            "club_members_pkey",
        ),
        (
            "stations.school_id, stations.name",
            "stations_school_name_key",
        ),
        (
            "submissions.idempotency_scope, submissions.idempotency_key",
            "submissions_idempotency_key",
        ),
    ];
    if let Some(cols) = message.strip_prefix("UNIQUE constraint failed: ") {
        return UNIQUE
            .iter()
            .find(|(c, _)| *c == cols)
            .map(|(_, name)| *name);
    }
    None
}

/// Whether a SQLite error code (extended) means "busy or unavailable, try again shortly":
/// SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN.
pub fn sqlite_code_is_transient(code: &str) -> bool {
    code.parse::<i32>()
        .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13 | 14))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_instants_sort_as_text_in_time_order() {
        let base = time::macros::datetime!(2026-12-04 19:16:42 UTC);
        let later = base + time::Duration::milliseconds(500);
        let a = sqlite_instant(base).expect("format");
        let b = sqlite_instant(later).expect("format");
        assert_eq!(a, "2026-12-04T19:16:42.000000Z");
        assert!(a < b);
        let offset = base.to_offset(time::macros::offset!(+8));
        assert_eq!(sqlite_instant(offset).expect("format"), a);
    }

    #[test]
    fn sqlite_unique_violations_map_to_the_postgres_constraint_names() {
        assert_eq!(
            sqlite_constraint("UNIQUE constraint failed: classes.join_code"),
            Some("classes_join_code_key")
        );
        assert_eq!(
            sqlite_constraint("UNIQUE constraint failed: index 'users_username_key'"),
            Some("users_username_key")
        );
        assert_eq!(sqlite_constraint("FOREIGN KEY constraint failed"), None);
    }

    #[test]
    fn lock_keys_differ_by_namespace() {
        let id = Uuid::now_v7();
        assert_ne!(lock_key(id, 1), lock_key(id, 2));
        assert_eq!(lock_key(id, 1), lock_key(id, 1));
    }
}
