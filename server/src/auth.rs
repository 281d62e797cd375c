//! Who is calling: bearer tokens, passwords and the [`Principal`] extractor.
//!
//! Tokens are 256 random bits from the operating system's CSPRNG (through `rand`'s thread RNG,
//! a ChaCha generator seeded from the OS), shown to the client once, and stored only as their
//! SHA-256. They expire and can be revoked. Passwords are hashed with argon2id on the blocking
//! pool. Neither a token nor a password is ever logged.

use crate::store::{Conn, query};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine as _;
use rand::RngExt as _;
use schema::api::Role;
use schema::{ClassId, SchoolId, StationId, StudentId, UserId};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Who it is.
    pub actor: Actor,
    /// SHA-256 of the bearer token (for logout).
    pub token_hash: Vec<u8>,
}

/// The identity behind a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// An adult account.
    User {
        /// Its id.
        id: UserId,
        /// programme_admin, school_admin or teacher.
        role: Role,
        /// Its school (none for the programme office).
        school_id: Option<SchoolId>,
    },
    /// A student's device.
    Student {
        /// The student.
        id: StudentId,
        /// Their class.
        class_id: ClassId,
        /// Their school.
        school_id: SchoolId,
    },
    /// A station's display (a screen at a canteen line or sorting point): it may only read and
    /// follow its own station's code.
    Station {
        /// The station.
        id: StationId,
        /// Its school.
        school_id: SchoolId,
    },
}

impl Actor {
    /// The caller's role.
    pub fn role(&self) -> Role {
        match self {
            Self::User { role, .. } => *role,
            Self::Student { .. } => Role::Student,
            Self::Station { .. } => Role::Station,
        }
    }

    /// The caller's school, if any.
    pub fn school_id(&self) -> Option<SchoolId> {
        match self {
            Self::User { school_id, .. } => *school_id,
            Self::Student { school_id, .. } | Self::Station { school_id, .. } => Some(*school_id),
        }
    }

    /// The caller's user id, if an adult.
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Self::User { id, .. } => Some(*id),
            Self::Student { .. } | Self::Station { .. } => None,
        }
    }

    /// Only the programme office.
    pub fn require_programme_admin(&self) -> ApiResult<()> {
        if self.role() == Role::ProgrammeAdmin {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// The programme office, or the admin of `school`.
    pub fn require_school_admin_of(&self, school: SchoolId) -> ApiResult<()> {
        match self.role() {
            Role::ProgrammeAdmin => Ok(()),
            Role::SchoolAdmin if self.school_id() == Some(school) => Ok(()),
            _ => Err(ApiError::Forbidden),
        }
    }

    /// Whether the caller administers `class` — its teacher, its school's admin or the programme
    /// office. Students never do.
    pub fn manages_class(&self, school: SchoolId, teacher: UserId) -> bool {
        match *self {
            Self::User {
                role: Role::ProgrammeAdmin,
                ..
            } => true,
            Self::User {
                role: Role::SchoolAdmin,
                school_id,
                ..
            } => school_id == Some(school),
            Self::User {
                role: Role::Teacher,
                id,
                ..
            } => id == teacher,
            _ => false,
        }
    }
}

/// A fresh bearer token and its hash.
pub fn new_token() -> (String, Vec<u8>) {
    let bytes: [u8; 32] = rand::rng().random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_token(&token);
    (token, hash)
}

/// SHA-256 of a token, as stored.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Stores a token for a user or a student and returns it with its expiry.
pub async fn issue_token(
    db: impl Into<Conn<'_>>,
    owner: TokenOwner,
    ttl_secs: u64,
) -> ApiResult<(String, OffsetDateTime)> {
    let (token, hash) = new_token();
    let ttl = i64::try_from(ttl_secs).unwrap_or(i64::MAX / 2);
    let expires_at = OffsetDateTime::now_utc() + time::Duration::seconds(ttl);
    let (user_id, student_id, station_id) = match owner {
        TokenOwner::User(id) => (Some(id), None, None),
        TokenOwner::Student(id) => (None, Some(id), None),
        TokenOwner::Station(id) => (None, None, Some(id)),
    };
    query(
        "INSERT INTO auth_tokens (token_hash, user_id, student_id, station_id, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&hash)
    .bind(user_id)
    .bind(student_id)
    .bind(station_id)
    .bind(expires_at)
    .execute(db)
    .await?;
    Ok((token, expires_at))
}

/// Whom a token is issued to.
#[derive(Debug, Clone, Copy)]
pub enum TokenOwner {
    /// An adult account.
    User(UserId),
    /// A student's device.
    Student(StudentId),
    /// A station's display.
    Station(StationId),
}

/// Password hashes computed at once. Each argon2id run takes 19 MiB and a core for tens of
/// milliseconds: unbounded, a burst of sign-ins would take hundreds of MiB (which the allocator
/// keeps) and every core. One per core keeps both bounded; the rest wait their turn.
static HASHING: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    tokio::sync::Semaphore::new(
        std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
    )
});

async fn hashing_permit() -> ApiResult<tokio::sync::SemaphorePermit<'static>> {
    HASHING
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("hashing semaphore closed: {e}")))
}

/// Hashes a password with argon2id (default parameters: 19 MiB, 2 passes) off the async threads.
pub async fn hash_password(password: String) -> ApiResult<String> {
    let _permit = hashing_permit().await?;
    tokio::task::spawn_blocking(move || {
        use argon2::PasswordHasher as _;
        argon2::Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
    })
    .await
    .map_err(|e| anyhow::anyhow!("hashing task failed: {e}"))?
    .map_err(ApiError::Internal)
}

/// Verifies a password against a stored hash, or against a dummy hash when the account does
/// not exist, so that timing does not tell which usernames exist.
pub async fn verify_password(password: String, stored: Option<String>) -> ApiResult<bool> {
    let _permit = hashing_permit().await?;
    tokio::task::spawn_blocking(move || {
        use argon2::PasswordVerifier as _;
        let hash = stored.as_deref().unwrap_or(DUMMY_HASH.as_str());
        let ok = argon2::Argon2::default()
            .verify_password(password.as_bytes(), hash)
            .is_ok();
        ok && stored.is_some()
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("verification task failed: {e}")))
}

/// The argon2id hash of a random password nobody knows, with the default parameters: verifying
/// against it costs what verifying a real account costs.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    use argon2::PasswordHasher as _;
    let (password, _) = new_token();
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .unwrap_or_default()
});

#[derive(sqlx::FromRow)]
struct TokenRow {
    user_id: Option<UserId>,
    role: Option<String>,
    user_school_id: Option<SchoolId>,
    student_id: Option<StudentId>,
    class_id: Option<ClassId>,
    class_school_id: Option<SchoolId>,
    station_id: Option<StationId>,
    station_school_id: Option<SchoolId>,
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header =
            parts
                .headers
                .get(axum::http::header::AUTHORIZATION)
                .ok_or(ApiError::Unauthorized(
                    "unauthenticated",
                    "sign in first: send Authorization: Bearer <token>",
                ))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 128)
            .ok_or(ApiError::Unauthorized(
                "unauthenticated",
                "the Authorization header must be `Bearer <token>`",
            ))?;
        authenticate(state, token).await
    }
}

/// Resolves a bearer token to its principal (also used by the WebSocket's first frame).
pub async fn authenticate(state: &AppState, token: &str) -> ApiResult<Principal> {
    let token_hash = hash_token(token);
    let row: Option<TokenRow> = query(
        "SELECT u.id AS user_id, u.role, u.school_id AS user_school_id, \
                s.id AS student_id, s.class_id, c.school_id AS class_school_id, \
                st.id AS station_id, st.school_id AS station_school_id \
         FROM auth_tokens t \
         LEFT JOIN users u ON u.id = t.user_id \
         LEFT JOIN students s ON s.id = t.student_id AND s.removed_at IS NULL \
         LEFT JOIN classes c ON c.id = s.class_id \
         LEFT JOIN stations st ON st.id = t.station_id \
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > $2",
    )
    .bind(&token_hash)
    .bind(time::OffsetDateTime::now_utc())
    .fetch_optional(&state.db)
    .await?;
    let row = row.ok_or(ApiError::Unauthorized(
        "invalid_token",
        "the token is unknown, expired or revoked",
    ))?;
    let actor = match row {
        TokenRow {
            user_id: Some(id),
            role: Some(role),
            user_school_id,
            ..
        } => Actor::User {
            id,
            role: Role::parse(&role).ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("unknown role {role} in users"))
            })?,
            school_id: user_school_id,
        },
        TokenRow {
            student_id: Some(id),
            class_id: Some(class_id),
            class_school_id: Some(school_id),
            ..
        } => Actor::Student {
            id,
            class_id,
            school_id,
        },
        TokenRow {
            station_id: Some(id),
            station_school_id: Some(school_id),
            ..
        } => Actor::Station { id, school_id },
        _ => {
            return Err(ApiError::Unauthorized(
                "invalid_token",
                "the token is unknown, expired or revoked",
            ));
        }
    };
    Ok(Principal { actor, token_hash })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_256_random_bits_and_differ() {
        let (a, ha) = new_token();
        let (b, hb) = new_token();
        assert_ne!(a, b);
        assert_ne!(ha, hb);
        assert_eq!(a.len(), 43);
        assert_eq!(ha, hash_token(&a));
        assert_eq!(ha.len(), 32);
    }
}
