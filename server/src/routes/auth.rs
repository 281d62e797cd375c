//! Signing in (adults, with a password), joining a class (students, with a join code and a
//! nickname), signing out, and `GET /me`.

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use game_rules::join_code::JoinCode;
use game_rules::nickname::Nickname;
use schema::ErrorBody;
use schema::api::{
    JoinRequest, JoinResponse, LoginRequest, LoginResponse, Me, StationRef, TokenResponse,
};
use schema::{ClassId, StudentId, UserId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Actor, Principal, TokenOwner, issue_token, verify_password};
use crate::error::{ApiError, ApiResult, violated_constraint};
use crate::extract::Json;
use crate::listener::ClientAddr;
use crate::routes::classes::{StudentRow, fetch_student};
use crate::routes::schools::fetch_user;
use crate::state::{AppState, check_rate};
use crate::store::{AsConn, query};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(join))
}

/// Signs an admin or a teacher in with a password and returns a bearer token.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = LoginResponse),
    (status = 401, body = ErrorBody, description = "wrong username or password (`invalid_credentials`)"),
    (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
))]
#[tracing::instrument(skip_all)]
async fn login(
    State(state): State<AppState>,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    if req.username.len() > 100 || req.password.len() > 1024 {
        return Err(ApiError::Unauthorized(
            "invalid_credentials",
            "wrong username or password",
        ));
    }
    let key = req.username.trim().to_lowercase();
    check_rate(&state.limits.login, &key)?;
    let row: Option<(UserId, String)> =
        query("SELECT id, password_hash FROM users WHERE lower(username) = $1")
            .bind(&key)
            .fetch_optional(&state.db)
            .await?;
    let (id, stored) = row.map_or((None, None), |(id, hash)| (Some(id), Some(hash)));
    let ok = verify_password(req.password, stored).await?;
    let Some(id) = id.filter(|_| ok) else {
        tracing::info!("sign-in refused");
        return Err(ApiError::Unauthorized(
            "invalid_credentials",
            "wrong username or password",
        ));
    };
    let (token, expires_at) = issue_token(
        &state.db,
        TokenOwner::User(id),
        state.settings.auth.user_token_ttl_secs,
    )
    .await?;
    let user = fetch_user(&state.db, id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    tracing::info!(user.id = %id, "signed in");
    Ok(Json(LoginResponse {
        token: TokenResponse { token, expires_at },
        user: user.into_wire(),
    }))
}

/// Revokes the token the request is made with.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])), responses(
    (status = 204, description = "the token no longer works"),
    (status = 401, body = ErrorBody),
))]
async fn logout(State(state): State<AppState>, principal: Principal) -> ApiResult<StatusCode> {
    query("UPDATE auth_tokens SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL")
        .bind(&principal.token_hash)
        .bind(time::OffsetDateTime::now_utc())
        .execute(&state.db)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who the token belongs to.
#[utoipa::path(get, path = "/me", tag = "auth", security(("bearer" = [])), responses(
    (status = 200, body = Me), (status = 401, body = ErrorBody),
))]
async fn me(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<Me>> {
    me_of(&state, principal.actor).await.map(Json)
}

/// Who an actor is: the body of `GET /me`, and of the WebSocket's `auth` reply.
pub(crate) async fn me_of(state: &AppState, actor: Actor) -> ApiResult<Me> {
    let me = match actor {
        Actor::Station { id, school_id } => Me::Station(StationRef { id, school_id }),
        Actor::User { id, .. } => Me::User(
            fetch_user(&state.db, id)
                .await?
                .ok_or(ApiError::NotFound("user"))?
                .into_wire(),
        ),
        Actor::Student { id, .. } => Me::Student(
            fetch_student(&state.db, id)
                .await?
                .ok_or(ApiError::NotFound("student"))?
                .into_wire(),
        ),
    };
    Ok(me)
}

/// A student joins a class from their device with its join code and a nickname — no real
/// name, no phone number, no password — and receives a device token.
#[utoipa::path(post, path = "/join", tag = "auth", request_body = JoinRequest, responses(
    (status = 201, body = JoinResponse),
    (status = 404, body = ErrorBody, description = "no class has this join code (`invalid_join_code`)"),
    (status = 409, body = ErrorBody, description = "the nickname is taken in this class (`nickname_taken`)"),
    (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
))]
#[tracing::instrument(skip_all)]
async fn join(
    State(state): State<AppState>,
    ConnectInfo(ClientAddr(addr)): ConnectInfo<ClientAddr>,
    Json(req): Json<JoinRequest>,
) -> ApiResult<(StatusCode, Json<JoinResponse>)> {
    check_rate(&state.limits.join, &addr.ip())?;
    let code = JoinCode::parse(&req.join_code)
        .map_err(|e| ApiError::validation("join_code", e.to_string()))?;
    let nickname = Nickname::parse(&req.nickname)
        .map_err(|e| ApiError::validation("nickname", e.to_string()))?;
    let class: Option<(ClassId,)> = query("SELECT id FROM classes WHERE join_code = $1")
        .bind(code.as_str())
        .fetch_optional(&state.db)
        .await?;
    let Some((class_id,)) = class else {
        return Err(invalid_join_code());
    };
    let mut tx = state.db.begin().await?;
    let student = insert_student(&mut tx, class_id, &nickname, true).await?;
    let (token, expires_at) = issue_token(
        &mut tx,
        TokenOwner::Student(student.id),
        state.settings.auth.student_token_ttl_secs,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(student.id = %student.id, class.id = %class_id, "student joined");
    roster_changed(&state, class_id).await;
    Ok((
        StatusCode::CREATED,
        Json(JoinResponse {
            token: TokenResponse { token, expires_at },
            student: student.into_wire(),
        }),
    ))
}

/// Refreshes per-capita scores after a class's roster changed. Best effort: the roster is
/// committed; boards can always be rebuilt.
pub(crate) async fn roster_changed(state: &AppState, class: ClassId) {
    let event = match state.db.acquire().await {
        Ok(mut conn) => crate::league::events::class_size_changed(&mut conn, class).await,
        Err(e) => Err(e.into()),
    };
    match event {
        Ok(Some(event)) => crate::league::events::apply(state, &[event]).await,
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, class.id = %class, "cannot refresh per-capita boards"),
    }
}

fn invalid_join_code() -> ApiError {
    ApiError::NotFoundWith(
        "invalid_join_code",
        "no class has this join code; ask your teacher for the current one",
    )
}

/// Puts a student on a class roster; a nickname already used in the class is a 409.
pub(crate) async fn insert_student(
    conn: &mut dyn AsConn,
    class_id: ClassId,
    nickname: &Nickname,
    has_device: bool,
) -> ApiResult<StudentRow> {
    let id = StudentId::new();
    query(
        "INSERT INTO students (id, class_id, nickname, nickname_key, has_device) VALUES ($1, $2, $3, $4, $5) \
         RETURNING id, class_id, nickname, has_device, created_at",
    )
    .bind(id)
    .bind(class_id)
    .bind(nickname.as_str())
    .bind(nickname.key())
    .bind(has_device)
    .fetch_one(conn)
    .await
    .map_err(|e| match violated_constraint(&e) {
        Some("students_class_nickname_key") => {
            ApiError::Conflict("nickname_taken", "this nickname is already taken in the class; choose another".into())
        }
        _ => e.into(),
    })
}
