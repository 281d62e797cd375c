//! One-off administration: creating the first programme admin, and the demo's.

use crate::store::{Db, query};
use anyhow::Context as _;
use schema::UserId;

use crate::auth::{hash_password, new_token};
use crate::routes::schools::{validate_password, validate_username};

/// The credentials printed once by `carbon-league admin bootstrap`.
#[derive(Debug)]
pub struct BootstrapCredentials {
    /// The programme admin's username.
    pub username: String,
    /// Its generated password: shown once, stored only as an argon2id hash.
    pub password: String,
}

/// The lock that serialises bootstraps.
const BOOTSTRAP_LOCK: i64 = 0x6361_7262_6f6e_4253; // "carbonBS"

/// Creates the first programme admin with a generated password; refuses when one exists.
/// Serialised with a lock so two concurrent bootstraps cannot both succeed.
pub async fn bootstrap(db: &Db, username: &str) -> anyhow::Result<BootstrapCredentials> {
    let username = validate_username(username).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (password, _) = new_token();
    let hash = hash_password(password.clone())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tx = db.begin().await?;
    tx.lock(BOOTSTRAP_LOCK).await?;
    let (exists,): (bool,) =
        query("SELECT EXISTS (SELECT 1 FROM users WHERE role = 'programme_admin')")
            .fetch_one(&mut tx)
            .await?;
    if exists {
        anyhow::bail!("a programme admin already exists; bootstrap refuses to create another");
    }
    query(
        "INSERT INTO users (id, role, school_id, username, display_name, password_hash) \
         VALUES ($1, 'programme_admin', NULL, $2, 'Programme office', $3)",
    )
    .bind(UserId::new())
    .bind(&username)
    .bind(&hash)
    .execute(&mut tx)
    .await
    .context("creating the programme admin")?;
    tx.commit().await?;
    Ok(BootstrapCredentials { username, password })
}

/// Creates a programme admin with the given password, unless an account with that username
/// (case-insensitive) exists already: then nothing changes, whatever its password. For the demo
/// (`crate::demo`), whose credentials are fixed and printed; [`bootstrap`] is the real way in.
pub async fn create_programme_admin(db: &Db, username: &str, password: &str) -> anyhow::Result<()> {
    let username = validate_username(username).map_err(|e| anyhow::anyhow!("{e}"))?;
    validate_password(password).map_err(|e| anyhow::anyhow!("{e}"))?;
    let exists: bool =
        query("SELECT EXISTS (SELECT 1 FROM users WHERE lower(username) = lower($1))")
            .bind(&username)
            .scalar(db)
            .await?;
    if exists {
        return Ok(());
    }
    let hash = hash_password(password.to_owned())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // A concurrent creation of the same username loses the race quietly.
    query(
        "INSERT INTO users (id, role, school_id, username, display_name, password_hash) \
         VALUES ($1, 'programme_admin', NULL, $2, 'Programme office', $3) ON CONFLICT DO NOTHING",
    )
    .bind(UserId::new())
    .bind(&username)
    .bind(&hash)
    .execute(db)
    .await
    .context("creating the programme admin")?;
    Ok(())
}
