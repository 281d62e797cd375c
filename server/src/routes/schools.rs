//! Schools and their staff: the programme office creates schools and their admins; a school
//! admin creates the school's teachers.

use crate::store::{Conn, query};
use axum::extract::State;
use axum::http::StatusCode;
use schema::api::{CreateSchool, CreateUser, Page, PageQuery, Role, School, User};
use schema::{ErrorBody, SchoolId, UserId};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Principal, hash_password};
use crate::error::{ApiError, ApiResult, violated_constraint};
use crate::extract::{Json, Path, Query};
use crate::routes::{into_page, page_params, text_field};
use crate::state::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_school, list_schools))
        .routes(routes!(get_school))
        .routes(routes!(create_school_admin))
        .routes(routes!(create_teacher, list_teachers))
}

#[derive(sqlx::FromRow)]
pub(crate) struct SchoolRow {
    id: SchoolId,
    name: String,
    county: String,
    pioneer: bool,
    created_at: OffsetDateTime,
}

impl SchoolRow {
    fn into_wire(self) -> School {
        School {
            id: self.id,
            name: self.name,
            county: self.county,
            pioneer: self.pioneer,
            created_at: self.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: UserId,
    role: String,
    school_id: Option<SchoolId>,
    username: String,
    display_name: String,
    created_at: OffsetDateTime,
}

impl UserRow {
    pub(crate) fn into_wire(self) -> User {
        User {
            id: self.id,
            role: Role::parse(&self.role).unwrap_or(Role::Teacher),
            school_id: self.school_id,
            username: self.username,
            display_name: self.display_name,
            created_at: self.created_at,
        }
    }
}

macro_rules! user_columns {
    () => {
        "id, role, school_id, username, display_name, created_at"
    };
}

/// One adult account.
pub(crate) async fn fetch_user(db: impl Into<Conn<'_>>, id: UserId) -> ApiResult<Option<UserRow>> {
    Ok(query(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?)
}

async fn fetch_school(db: impl Into<Conn<'_>>, id: SchoolId) -> ApiResult<SchoolRow> {
    query("SELECT id, name, county, pioneer, created_at FROM schools WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or(ApiError::NotFound("school"))
}

/// Creates a school (programme admin).
#[utoipa::path(post, path = "/schools", tag = "schools", security(("bearer" = [])), request_body = CreateSchool, responses(
    (status = 201, body = School),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 409, body = ErrorBody, description = "a school of that name exists in that county (`school_exists`)"),
    (status = 422, body = ErrorBody),
))]
#[tracing::instrument(skip_all)]
async fn create_school(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<CreateSchool>,
) -> ApiResult<(StatusCode, Json<School>)> {
    principal.actor.require_programme_admin()?;
    let name = text_field("name", &req.name, 100)?;
    let county = text_field("county", &req.county, 100)?;
    let row: SchoolRow = query(
        "INSERT INTO schools (id, name, county, pioneer) VALUES ($1, $2, $3, $4) \
         RETURNING id, name, county, pioneer, created_at",
    )
    .bind(SchoolId::new())
    .bind(&name)
    .bind(&county)
    .bind(req.pioneer)
    .fetch_one(&state.db)
    .await
    .map_err(|e| match violated_constraint(&e) {
        Some("schools_name_county_key") => ApiError::Conflict(
            "school_exists",
            "a school of that name already exists in that county".into(),
        ),
        _ => e.into(),
    })?;
    tracing::info!(school.id = %row.id, "school created");
    Ok((StatusCode::CREATED, Json(row.into_wire())))
}

/// Lists schools: every school for the programme office, one's own school for everyone else.
#[utoipa::path(get, path = "/schools", tag = "schools", security(("bearer" = [])), params(PageQuery), responses(
    (status = 200, body = Page<School>), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody),
))]
async fn list_schools(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<School>>> {
    let (limit, after) = page_params(&q)?;
    let only = principal.actor.school_id();
    let rows: Vec<SchoolRow> = query(
        "SELECT id, name, county, pioneer, created_at FROM schools \
         WHERE ($1 IS NULL OR id = $1) AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
    )
    .bind(only)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(
        into_page(rows, limit, |r| r.id.0).map(SchoolRow::into_wire),
    ))
}

/// One school: the programme office sees any; everyone else only their own.
#[utoipa::path(get, path = "/schools/{school_id}", tag = "schools", security(("bearer" = [])),
    params(("school_id" = String, Path, description = "the school's id")), responses(
    (status = 200, body = School), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
))]
async fn get_school(
    State(state): State<AppState>,
    principal: Principal,
    Path(school_id): Path<SchoolId>,
) -> ApiResult<Json<School>> {
    let school = fetch_school(&state.db, school_id).await?;
    if principal.actor.role() != Role::ProgrammeAdmin
        && principal.actor.school_id() != Some(school_id)
    {
        return Err(ApiError::Forbidden);
    }
    Ok(Json(school.into_wire()))
}

/// Creates a school admin for a school (programme admin).
#[utoipa::path(post, path = "/schools/{school_id}/admins", tag = "schools", security(("bearer" = [])),
    params(("school_id" = String, Path, description = "the school's id")), request_body = CreateUser, responses(
    (status = 201, body = User), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "`username_taken`"), (status = 422, body = ErrorBody),
))]
#[tracing::instrument(skip_all)]
async fn create_school_admin(
    State(state): State<AppState>,
    principal: Principal,
    Path(school_id): Path<SchoolId>,
    Json(req): Json<CreateUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    principal.actor.require_programme_admin()?;
    fetch_school(&state.db, school_id).await?;
    let user = create_user(&state, Role::SchoolAdmin, Some(school_id), req).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Creates a teacher in a school (that school's admin, or the programme office).
#[utoipa::path(post, path = "/schools/{school_id}/teachers", tag = "schools", security(("bearer" = [])),
    params(("school_id" = String, Path, description = "the school's id")), request_body = CreateUser, responses(
    (status = 201, body = User), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "`username_taken`"), (status = 422, body = ErrorBody),
))]
#[tracing::instrument(skip_all)]
async fn create_teacher(
    State(state): State<AppState>,
    principal: Principal,
    Path(school_id): Path<SchoolId>,
    Json(req): Json<CreateUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    principal.actor.require_school_admin_of(school_id)?;
    fetch_school(&state.db, school_id).await?;
    let user = create_user(&state, Role::Teacher, Some(school_id), req).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Lists a school's teachers (that school's admin, or the programme office).
#[utoipa::path(get, path = "/schools/{school_id}/teachers", tag = "schools", security(("bearer" = [])),
    params(("school_id" = String, Path, description = "the school's id"), PageQuery), responses(
    (status = 200, body = Page<User>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
))]
async fn list_teachers(
    State(state): State<AppState>,
    principal: Principal,
    Path(school_id): Path<SchoolId>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<User>>> {
    principal.actor.require_school_admin_of(school_id)?;
    let (limit, after) = page_params(&q)?;
    let rows: Vec<UserRow> = query(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE school_id = $1 AND role = 'teacher' \
         AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
    ))
    .bind(school_id)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(
        into_page(rows, limit, |r| r.id.0).map(UserRow::into_wire),
    ))
}

/// Validates and stores an adult account; the password is hashed with argon2id.
pub(crate) async fn create_user(
    state: &AppState,
    role: Role,
    school_id: Option<SchoolId>,
    req: CreateUser,
) -> ApiResult<User> {
    let username = validate_username(&req.username)?;
    let display_name = text_field("display_name", &req.display_name, 60)?;
    validate_password(&req.password)?;
    let hash = hash_password(req.password).await?;
    let row: UserRow = query(concat!(
        "INSERT INTO users (id, role, school_id, username, display_name, password_hash) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
        user_columns!()
    ))
    .bind(UserId::new())
    .bind(role.as_str())
    .bind(school_id)
    .bind(&username)
    .bind(&display_name)
    .bind(&hash)
    .fetch_one(&state.db)
    .await
    .map_err(|e| match violated_constraint(&e) {
        Some("users_username_key") => {
            ApiError::Conflict("username_taken", "this username is already taken".into())
        }
        _ => e.into(),
    })?;
    tracing::info!(user.id = %row.id, user.role = role.as_str(), "account created");
    Ok(row.into_wire())
}

/// 3 to 40 ASCII letters, digits, `.`, `_` or `-`.
pub(crate) fn validate_username(username: &str) -> ApiResult<String> {
    let ok_chars = username
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !(3..=40).contains(&username.len()) || !ok_chars {
        return Err(ApiError::validation(
            "username",
            "username must be 3 to 40 ASCII letters, digits, '.', '_' or '-'",
        ));
    }
    Ok(username.to_owned())
}

/// At least 10 characters, at most 256.
pub(crate) fn validate_password(password: &str) -> ApiResult<()> {
    let len = password.chars().count();
    if !(10..=256).contains(&len) {
        return Err(ApiError::validation(
            "password",
            "password must be 10 to 256 characters long",
        ));
    }
    Ok(())
}
