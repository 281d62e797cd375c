//! One-off administration: creating the first programme admin.

use anyhow::Context as _;
use schema::UserId;
use sqlx::PgPool;

use crate::auth::{hash_password, new_token};
use crate::routes::schools::validate_username;

/// The credentials printed once by `carbon-league admin bootstrap`.
#[derive(Debug)]
pub struct BootstrapCredentials {
    /// The programme admin's username.
    pub username: String,
    /// Its generated password: shown once, stored only as an argon2id hash.
    pub password: String,
}

/// Creates the first programme admin with a generated password; refuses when one exists.
/// Serialised with an advisory lock so two concurrent bootstraps cannot both succeed.
pub async fn bootstrap(db: &PgPool, username: &str) -> anyhow::Result<BootstrapCredentials> {
    let username = validate_username(username).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (password, _) = new_token();
    let hash = hash_password(password.clone())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tx = db.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('carbon-league:bootstrap'))")
        .execute(&mut *tx)
        .await?;
    let (exists,): (bool,) =
        sqlx::query_as("SELECT EXISTS (SELECT 1 FROM users WHERE role = 'programme_admin')")
            .fetch_one(&mut *tx)
            .await?;
    if exists {
        anyhow::bail!("a programme admin already exists; bootstrap refuses to create another");
    }
    sqlx::query(
        "INSERT INTO users (id, role, school_id, username, display_name, password_hash) \
         VALUES ($1, 'programme_admin', NULL, $2, 'Programme office', $3)",
    )
    .bind(UserId::new())
    .bind(&username)
    .bind(&hash)
    .execute(&mut *tx)
    .await
    .context("creating the programme admin")?;
    tx.commit().await?;
    Ok(BootstrapCredentials { username, password })
}
