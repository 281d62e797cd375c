//! Carbon League's schema: the Postgres migrations and every wire type of the HTTP and
//! WebSocket API.
//!
//! Nothing else in the workspace declares a request, response or message struct: the server,
//! the end-to-end tests and the load generator all speak through these types, so the OpenAPI
//! document and the code cannot drift apart.

pub mod api;
pub mod error;
pub mod ids;
pub mod league;
pub mod ws;

pub use error::{ErrorBody, ErrorDetail};
pub use ids::{
    ChallengeId, ClassId, ClubId, SchoolId, SeasonId, StationId, StudentId, SubmissionId, UserId,
};

/// The Postgres migrations in `schema/migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The SQLite migrations of the embedded mode in `schema/migrations-sqlite/`: the same tables,
/// columns and constraint names as the Postgres schema, in SQLite's types (ids are 16-byte
/// blobs, instants fixed-width UTC text, lists JSON arrays).
pub static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations-sqlite");
