//! Setting up the simulated schools through the server's own API: the programme admin creates
//! each school, its admin and its teachers; each teacher creates a class; students join with
//! the class's code from "their device"; each school's admin opens a class-versus-class
//! challenge over every behaviour; each school's admin registers its stations and a display
//! token for each.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use carbon_league::store::{Db, query};
use futures_util::StreamExt as _;
use futures_util::stream;
use schema::api::{Class, CreateClass, CreateUser, JoinResponse, LoginResponse, School, User};
use schema::league::{Behavior, Challenge};
use schema::{ChallengeId, ClassId, SchoolId, SeasonId, StationId, StudentId};
use serde_json::json;
use time::{Date, Duration, OffsetDateTime};

use crate::api::Api;
use crate::cli::Params;
use crate::ledger::Ledger;
use crate::plan::{BehaviorInfo, Budget, Calendar, Pick, zone_offset};

/// A station of a school. Its display (a simulated client) follows `station:<id>` and keeps
/// the code it shows in `code`, where students read it.
pub struct Station {
    /// Its id.
    pub id: StationId,
    /// The display's token.
    pub display_token: String,
    /// The code on the display: (window index, code).
    pub code: std::sync::Mutex<Option<(u64, String)>>,
}

/// A joined student.
pub struct Student {
    /// Its id.
    pub id: StudentId,
    /// Its device token.
    pub token: String,
}

/// A class with its teacher and students.
pub struct ClassSim {
    /// Its id.
    pub id: ClassId,
    /// Its teacher's token.
    pub teacher_token: String,
    /// Its students.
    pub students: Vec<Student>,
}

/// A school.
pub struct SchoolSim {
    /// Index in the run (0..S).
    pub index: usize,
    /// Its id.
    pub id: SchoolId,
    /// Its classes.
    pub classes: Vec<ClassSim>,
    /// Its stations.
    pub stations: Vec<Station>,
    /// Its class-versus-class challenge (two classes or more).
    pub challenge: Option<ChallengeId>,
}

/// Everything a run set up.
pub struct World {
    /// The active season.
    pub season: SeasonId,
    /// The programme admin's token.
    pub admin_token: String,
    /// This process's schools.
    pub schools: Vec<SchoolSim>,
    /// The behaviour catalogue.
    pub catalogue: Vec<BehaviorInfo>,
    /// The school days submissions are dated in.
    pub calendar: Calendar,
    /// Every student, class and school of the run, for push latency.
    pub ledger: Ledger,
}

impl World {
    /// Takes one unit of a student's budget (see [`Budget::take`]).
    pub fn budget_take(
        &self,
        budget: &mut Budget,
        station: bool,
        rng: &mut impl rand::Rng,
    ) -> Option<Pick> {
        budget.take(&self.catalogue, &self.calendar, station, rng)
    }
}

#[derive(sqlx::FromRow)]
struct ActiveSeason {
    id: SeasonId,
    starts_on: Date,
    ends_on: Date,
    timezone: String,
}

async fn active_season(db: &Db) -> anyhow::Result<Option<ActiveSeason>> {
    Ok(
        query("SELECT id, starts_on, ends_on, timezone FROM seasons WHERE status = 'active'")
            .fetch_optional(db)
            .await?,
    )
}

/// The active season, or a new one (seven days back, four months ahead) activated now.
async fn season(api: &Api, db: &Db, admin: &str) -> anyhow::Result<ActiveSeason> {
    if let Some(s) = active_season(db).await? {
        return Ok(s);
    }
    let today = OffsetDateTime::now_utc().date();
    let created: schema::api::Season = api
        .post(
            "/seasons",
            Some(admin),
            &json!({
                "name": "Load test season",
                "starts_on": (today - Duration::days(7)).to_string(),
                "ends_on": (today + Duration::days(120)).to_string(),
            }),
        )
        .await?;
    // Another shard may have activated one meanwhile: then use that one.
    let activated: anyhow::Result<serde_json::Value> = api
        .post(
            &format!("/seasons/{}/activate", created.id),
            Some(admin),
            &json!({}),
        )
        .await;
    match active_season(db).await? {
        Some(s) => Ok(s),
        None => Err(activated
            .err()
            .unwrap_or_else(|| anyhow::anyhow!("no active season"))),
    }
}

async fn login(api: &Api, username: &str, password: &str) -> anyhow::Result<LoginResponse> {
    api.post(
        "/auth/login",
        None,
        &json!({"username": username, "password": password}),
    )
    .await
}

/// Sets up the world. `joined` counts students as they join (for the progress bar).
pub async fn build(
    params: &Params,
    api: &Api,
    db: &Db,
    admin_user: &str,
    admin_password: &str,
    joined: Arc<AtomicU64>,
) -> anyhow::Result<World> {
    let admin = login(api, admin_user, admin_password)
        .await
        .context("sign in as the programme admin (see --admin-user, --admin-password)")?
        .token
        .token;
    let season = season(api, db, &admin).await.context("an active season")?;
    let behaviors: Vec<Behavior> = api.get("/behaviors", None).await?;
    let catalogue: Vec<BehaviorInfo> = behaviors.iter().map(BehaviorInfo::from).collect();

    // Submissions are dated in [earliest, latest): inside the season, within the lateness the
    // server accepts, and before now (minus a margin for clock skew and the run's length).
    let offset = zone_offset(&season.timezone);
    let now = OffsetDateTime::now_utc();
    let season_start = season.starts_on.midnight().assume_offset(offset);
    let season_end = season
        .ends_on
        .next_day()
        .unwrap_or(season.ends_on)
        .midnight()
        .assume_offset(offset);
    let backdate = Duration::hours(i64::try_from(params.backdate_hours).unwrap_or(68));
    let earliest = (now - backdate).max(season_start + Duration::minutes(2));
    let latest = now - Duration::minutes(2);
    anyhow::ensure!(
        latest > earliest,
        "the active season started less than a few minutes ago; nothing can be dated in it"
    );
    let calendar = Calendar::new(earliest, latest, offset);
    let challenge_window = (
        earliest - Duration::minutes(1),
        season_end.min(now + Duration::days(2)),
    );

    let station_behaviors: Vec<String> = catalogue
        .iter()
        .filter(|b| b.station)
        .map(|b| b.id.clone())
        .collect();
    let all_behaviors: Vec<String> = catalogue.iter().map(|b| b.id.clone()).collect();
    let ctx = SchoolCtx {
        params,
        api,
        admin: &admin,
        station_behaviors: &station_behaviors,
        all_behaviors: &all_behaviors,
        challenge_window,
        joined: &joined,
    };
    let schools: Vec<anyhow::Result<SchoolSim>> = stream::iter(params.my_schools())
        .map(|k| build_school(&ctx, k))
        .buffer_unordered(params.setup_concurrency.div_ceil(4).max(1))
        .collect()
        .await;
    let mut schools = schools.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    schools.sort_by_key(|s| s.index);

    let mut ledger = Ledger::default();
    for s in &schools {
        ledger.add(s.id.0);
        for c in &s.classes {
            ledger.add(c.id.0);
            for st in &c.students {
                ledger.add(st.id.0);
            }
        }
    }
    Ok(World {
        season: season.id,
        admin_token: admin,
        schools,
        catalogue,
        calendar,
        ledger,
    })
}

struct SchoolCtx<'a> {
    params: &'a Params,
    api: &'a Api,
    admin: &'a str,
    station_behaviors: &'a [String],
    all_behaviors: &'a [String],
    challenge_window: (OffsetDateTime, OffsetDateTime),
    joined: &'a AtomicU64,
}

fn password(run: &str) -> String {
    format!("loadtest-{run}-password")
}

async fn build_school(ctx: &SchoolCtx<'_>, k: usize) -> anyhow::Result<SchoolSim> {
    let p = ctx.params;
    let run = &p.run_id;
    let api = ctx.api;
    let school: School = api
        .post(
            "/schools",
            Some(ctx.admin),
            &json!({"name": format!("LT {run} school {k}"), "county": "Loadtest", "pioneer": false}),
        )
        .await?;
    let admin_name = format!("lt{run}s{k}a");
    let _school_admin: User = api
        .post(
            &format!("/schools/{}/admins", school.id),
            Some(ctx.admin),
            &CreateUser {
                username: admin_name.clone(),
                display_name: format!("Admin {k}"),
                password: password(run),
            },
        )
        .await?;
    let school_admin_token = login(api, &admin_name, &password(run)).await?.token.token;

    let mut stations = Vec::new();
    for i in 0..p.stations {
        let station: schema::league::Station = api
            .post(
                "/stations",
                Some(&school_admin_token),
                &json!({
                    "name": format!("Load station {i}"),
                    "behaviors": ctx.station_behaviors,
                    "window_secs": p.station_window_secs,
                }),
            )
            .await
            .context("register a station")?;
        let display: schema::api::TokenResponse = api
            .post(
                &format!("/stations/{}/display-token", station.id),
                Some(&school_admin_token),
                &json!({}),
            )
            .await
            .context("a station display token")?;
        stations.push(Station {
            id: station.id,
            display_token: display.token,
            code: std::sync::Mutex::new(None),
        });
    }

    let classes: Vec<anyhow::Result<ClassSim>> = stream::iter(0..p.classes)
        .map(|c| build_class(ctx, &school, c))
        .buffer_unordered(4)
        .collect()
        .await;
    let mut classes = classes.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    classes.sort_by_key(|c| c.id);

    let challenge = if classes.len() >= 2 {
        let (starts_at, ends_at) = ctx.challenge_window;
        let c: Challenge = api
            .post(
                "/challenges",
                Some(&school_admin_token),
                &json!({
                    "kind": "class_vs_class",
                    "title": format!("Load challenge {k}"),
                    "behaviors": ctx.all_behaviors,
                    "starts_at": starts_at.format(&time::format_description::well_known::Rfc3339)?,
                    "ends_at": ends_at.format(&time::format_description::well_known::Rfc3339)?,
                    "scoring": "per_capita",
                    "participants": classes.iter().take(200).map(|c| c.id).collect::<Vec<_>>(),
                }),
            )
            .await
            .context("create the school's challenge")?;
        Some(c.id)
    } else {
        None
    };
    Ok(SchoolSim {
        index: k,
        id: school.id,
        classes,
        stations,
        challenge,
    })
}

async fn build_class(ctx: &SchoolCtx<'_>, school: &School, c: usize) -> anyhow::Result<ClassSim> {
    let p = ctx.params;
    let run = &p.run_id;
    let api = ctx.api;
    let k = school_index_of(&school.name);
    let teacher_name = format!("lt{run}s{k}t{c}");
    let _teacher: User = api
        .post(
            &format!("/schools/{}/teachers", school.id),
            Some(ctx.admin),
            &CreateUser {
                username: teacher_name.clone(),
                display_name: format!("Teacher {c}"),
                password: password(run),
            },
        )
        .await?;
    let teacher_token = login(api, &teacher_name, &password(run)).await?.token.token;
    let class: Class = api
        .post(
            "/classes",
            Some(&teacher_token),
            &CreateClass {
                grade: i16::try_from(c % 12 + 1).unwrap_or(1),
                name: format!("Class {c}"),
            },
        )
        .await?;
    let code = class
        .join_code
        .clone()
        .context("the teacher sees the join code")?;
    let students: Vec<anyhow::Result<Student>> = stream::iter(0..p.students)
        .map(|i| {
            let code = code.clone();
            async move {
                let joined: JoinResponse = api
                    .post(
                        "/join",
                        None,
                        &json!({"join_code": code, "nickname": format!("s{i}")}),
                    )
                    .await?;
                ctx.joined.fetch_add(1, Ordering::Relaxed);
                Ok(Student {
                    id: joined.student.id,
                    token: joined.token.token,
                })
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    Ok(ClassSim {
        id: class.id,
        teacher_token,
        students: students.into_iter().collect::<anyhow::Result<Vec<_>>>()?,
    })
}

fn school_index_of(name: &str) -> &str {
    name.rsplit(' ').next().unwrap_or("0")
}
