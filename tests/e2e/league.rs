//! The league over HTTP: scoring, verification, boards, challenges, seasons.

use carbon_league::store::{TextList, query};
use serde_json::{Value, json};

use crate::helpers::league::{just_now, rfc3339};
use crate::helpers::{TestApp, World, spawn_app};

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// Joins `n` students named `<prefix>-<i>`; returns their tokens and ids.
async fn students(app: &TestApp, code: &str, prefix: &str, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (sid, token) = app.join(code, &format!("{prefix}-{i}")).await;
        out.push((token, sid));
    }
    out
}

async fn league_world(app: &TestApp) -> (World, String) {
    let w = app.world().await;
    let season = app.active_season(&w.admin).await;
    (w, season)
}

#[tokio::test]
async fn a_small_class_beats_a_big_one_per_capita_while_the_big_one_leads_in_total() {
    let app = spawn_app().await;
    let (w, _) = league_world(&app).await;
    let big_teacher = app
        .staff(&w.school_admin, &w.school, "teachers", "teacher.big")
        .await;
    let (big_class, big_code) = app.class(&big_teacher, 5, "大班").await;
    let small = students(&app, &w.join_code, "s", 10).await;
    let big = students(&app, &big_code, "b", 40).await;

    let challenge = app
        .post(
            "/challenges",
            Some(&w.school_admin),
            json!({
                "kind": "class_vs_class", "title": "Meatless week", "behaviors": ["meatless_meal"],
                "starts_at": rfc3339(time::OffsetDateTime::now_utc() - time::Duration::hours(1)),
                "ends_at": rfc3339(time::OffsetDateTime::now_utc() + time::Duration::days(5)),
                "participants": [w.class, big_class],
                "goal": {"behavior": "meatless_meal", "quantity": 100}
            }),
        )
        .await
        .expect(201);
    assert_eq!(challenge["scoring"], "per_capita");
    assert!(
        challenge["participants"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["state"] == "accepted"),
        "{challenge}"
    );
    let cid = id(&challenge);

    // Every student of the small class, and half of the big class, eat one meatless meal.
    let mut small_ids = Vec::new();
    for (i, (token, _)) in small.iter().enumerate() {
        small_ids.push(id(&app
            .submit(token, "meatless_meal", 1, &format!("m{i}"))
            .await
            .expect(201)));
    }
    let mut big_ids = Vec::new();
    for (i, (token, _)) in big.iter().take(20).enumerate() {
        big_ids.push(id(&app
            .submit(token, "meatless_meal", 1, &format!("m{i}"))
            .await
            .expect(201)));
    }
    app.approve(
        &w.teacher,
        &small_ids.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    app.approve(
        &big_teacher,
        &big_ids.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;

    let per_capita = app
        .board(&w.teacher, &format!("challenge:{cid}:per_capita"))
        .await;
    assert_eq!(
        per_capita["entries"][0]["id"],
        w.class.as_str(),
        "{per_capita}"
    );
    assert_eq!(
        per_capita["entries"][0]["score"], 1000,
        "10 points over 10 students"
    );
    assert_eq!(
        per_capita["entries"][1]["score"], 500,
        "20 points over 40 students"
    );
    let total = app
        .board(&w.teacher, &format!("challenge:{cid}:total"))
        .await;
    assert_eq!(total["entries"][0]["id"], big_class.as_str());
    assert_eq!(total["entries"][0]["points"], 20);

    let school = app.board(&w.teacher, &format!("school:{}", w.school)).await;
    assert_eq!(
        school["entries"][0]["id"],
        w.class.as_str(),
        "classes within a school rank per capita"
    );
    let province = app.board(&w.teacher, "province").await;
    assert_eq!(province["entries"][0]["points"], 30);

    let got = app
        .get(&format!("/challenges/{cid}"), Some(&small[0].0))
        .await
        .expect(200);
    assert_eq!(got["goal_progress"], 30);
    assert_eq!(got["goal_percent"], 30);
}

#[tokio::test]
async fn one_submission_sent_three_times_counts_once() {
    let app = spawn_app().await;
    let (w, _) = league_world(&app).await;
    let (_, student) = app.join(&w.join_code, "Retry").await;
    let body = json!({"behavior": "meatless_meal", "quantity": 1, "occurred_at": just_now(), "idempotency_key": "lunch-1"});
    let first = app
        .post("/submissions", Some(&student), body.clone())
        .await
        .expect(201);
    let second = app
        .post("/submissions", Some(&student), body.clone())
        .await
        .expect(201);
    let third = app
        .post("/submissions", Some(&student), body)
        .await
        .expect(201);
    assert_eq!(first["id"], second["id"]);
    assert_eq!(first["id"], third["id"]);
    let (count,): (i64,) = query("SELECT count(*) FROM submissions")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 1);
    app.approve(&w.teacher, &[first["id"].as_str().unwrap()])
        .await;
    let board = app.board(&w.teacher, &format!("class:{}", w.class)).await;
    assert_eq!(board["entries"][0]["points"], 1);
}

#[tokio::test]
async fn over_the_daily_cap_and_bad_claims_are_refused_and_store_nothing() {
    let app = spawn_app().await;
    let (w, _) = league_world(&app).await;
    let (_, student) = app.join(&w.join_code, "Hungry").await;
    app.submit(&student, "meatless_meal", 1, "a")
        .await
        .expect(201);
    app.submit(&student, "meatless_meal", 1, "b")
        .await
        .expect(201);
    app.submit(&student, "meatless_meal", 1, "c")
        .await
        .expect_error(422, "over_daily_cap");
    app.submit(&student, "meatless_meal", 2, "d")
        .await
        .expect_error(422, "quantity_out_of_range");
    app.submit(&student, "unicorn_rides", 1, "e")
        .await
        .expect_error(422, "unknown_behavior");
    let late = rfc3339(time::OffsetDateTime::now_utc() - time::Duration::hours(100));
    app.post("/submissions", Some(&student), json!({"behavior": "clean_plate", "quantity": 1, "occurred_at": late, "idempotency_key": "f"}))
        .await
        .expect_error(422, "too_late");
    let future = rfc3339(time::OffsetDateTime::now_utc() + time::Duration::hours(2));
    app.post("/submissions", Some(&student), json!({"behavior": "clean_plate", "quantity": 1, "occurred_at": future, "idempotency_key": "g"}))
        .await
        .expect_error(422, "in_the_future");
    let (count,): (i64,) = query("SELECT count(*) FROM submissions")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 2);
    // A teacher cannot use the student endpoint.
    app.submit(&w.teacher, "meatless_meal", 1, "h")
        .await
        .expect_error(403, "forbidden");
}

#[tokio::test]
async fn classmates_confirm_a_behaviour_but_never_their_own() {
    let app = spawn_app().await;
    let (w, _) = league_world(&app).await;
    let kids = students(&app, &w.join_code, "k", 3).await;
    let sub = app
        .submit(&kids[0].0, "walk_or_cycle", 3, "walk")
        .await
        .expect(201);
    let sid = id(&sub);
    assert_eq!(sub["status"], "pending");
    assert_eq!(sub["required_confirmations"], 2);

    app.post(
        &format!("/submissions/{sid}/confirm"),
        Some(&kids[0].0),
        json!({}),
    )
    .await
    .expect_error(409, "self_confirmation");
    let once = app
        .post(
            &format!("/submissions/{sid}/confirm"),
            Some(&kids[1].0),
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(once["status"], "pending");
    app.post(
        &format!("/submissions/{sid}/confirm"),
        Some(&kids[1].0),
        json!({}),
    )
    .await
    .expect_error(409, "already_confirmed");
    let twice = app
        .post(
            &format!("/submissions/{sid}/confirm"),
            Some(&kids[2].0),
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(twice["status"], "verified");
    assert_eq!(twice["method"], "peer");

    // A student of another class cannot confirm.
    let other_teacher = app
        .staff(&w.school_admin, &w.school, "teachers", "teacher.other")
        .await;
    let (_, other_code) = app.class(&other_teacher, 4, "1班").await;
    let (_, stranger) = app.join(&other_code, "Stranger").await;
    let sub2 = app
        .submit(&kids[1].0, "walk_or_cycle", 2, "walk2")
        .await
        .expect(201);
    app.post(
        &format!("/submissions/{}/confirm", id(&sub2)),
        Some(&stranger),
        json!({}),
    )
    .await
    .expect_error(403, "forbidden");
    // Lights off accepts only the teacher.
    let lights = app
        .submit(&kids[1].0, "lights_off", 1, "lights")
        .await
        .expect(201);
    app.post(
        &format!("/submissions/{}/confirm", id(&lights)),
        Some(&kids[2].0),
        json!({}),
    )
    .await
    .expect_error(409, "peer_not_accepted");
}

async fn add_station(
    app: &TestApp,
    school: &str,
    teacher_id: &str,
    behavior: &str,
) -> (String, Vec<u8>) {
    let id = uuid::Uuid::now_v7();
    let secret: Vec<u8> = (0u8..32).collect();
    query(
        "INSERT INTO stations (id, school_id, name, behaviors, secret, window_secs, created_by) VALUES ($1, $2, 'Canteen', $3, $4, 60, $5)",
    )
    .bind(id)
    .bind(uuid::Uuid::parse_str(school).unwrap())
    .bind(TextList(vec![behavior.to_owned()]))
    .bind(&secret)
    .bind(uuid::Uuid::parse_str(teacher_id).unwrap())
    .execute(&app.db)
    .await
    .unwrap();
    (id.to_string(), secret)
}

fn code(secret: &[u8], windows_ago: u64) -> String {
    let secret = game_rules::station::StationSecret::new(secret.to_vec()).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let index =
        game_rules::station::WindowIndex::containing(now, game_rules::station::DEFAULT_WINDOW_SECS);
    game_rules::station::code_for_window(
        &secret,
        game_rules::station::WindowIndex(index.0 - windows_ago),
    )
    .to_string()
}

#[tokio::test]
async fn a_valid_station_code_verifies_at_once_and_an_expired_or_reused_one_is_refused() {
    let app = spawn_app().await;
    let (w, _) = league_world(&app).await;
    let me = app.get("/me", Some(&w.teacher)).await.expect(200);
    let (station, secret) =
        add_station(&app, &w.school, me["id"].as_str().unwrap(), "meatless_meal").await;
    let (_, student) = app.join(&w.join_code, "Canteen Kid").await;
    let with_code = |key: &str, code: String| json!({"behavior": "meatless_meal", "quantity": 1, "occurred_at": just_now(), "idempotency_key": key, "station_code": code});
    let ok = app
        .post(
            "/submissions",
            Some(&student),
            with_code("s1", code(&secret, 0)),
        )
        .await
        .expect(201);
    assert_eq!(ok["status"], "verified");
    assert_eq!(ok["method"], "station");
    app.post(
        "/submissions",
        Some(&student),
        with_code("s2", code(&secret, 0)),
    )
    .await
    .expect_error(422, "station_code_used");
    app.post(
        "/submissions",
        Some(&student),
        with_code("s3", code(&secret, 2)),
    )
    .await
    .expect_error(422, "invalid_station_code");
    app.post(
        "/submissions",
        Some(&student),
        with_code("s4", "12345".into()),
    )
    .await
    .expect_error(422, "validation_failed");
    let board = app.board(&w.teacher, &format!("class:{}", w.class)).await;
    assert_eq!(board["entries"][0]["points"], 1);
    let _ = station;
}

#[tokio::test]
async fn a_revocation_takes_the_points_off_every_board() {
    let app = spawn_app().await;
    let (w, _) = league_world(&app).await;
    let (sid_student, student) = app.join(&w.join_code, "Revoked").await;
    let a = id(&app
        .submit(&student, "meatless_meal", 1, "a")
        .await
        .expect(201));
    let b = id(&app
        .submit(&student, "clean_plate", 1, "b")
        .await
        .expect(201));
    app.approve(&w.teacher, &[&a, &b]).await;
    let boards = [
        format!("class:{}", w.class),
        format!("school:{}", w.school),
        "province".to_owned(),
    ];
    for board in &boards {
        assert_eq!(
            app.board(&w.teacher, board).await["entries"][0]["points"],
            2,
            "{board}"
        );
    }
    let revoked = app
        .post(
            &format!("/submissions/{a}/revoke"),
            Some(&w.teacher),
            json!({"reason": "no lunch that day"}),
        )
        .await
        .expect(200);
    assert_eq!(revoked["status"], "revoked");
    for board in &boards {
        assert_eq!(
            app.board(&w.teacher, board).await["entries"][0]["points"],
            1,
            "{board}"
        );
    }
    app.post(
        &format!("/submissions/{a}/revoke"),
        Some(&w.teacher),
        json!({}),
    )
    .await
    .expect_error(409, "not_verified");
    let around = app
        .get(
            &format!("/leaderboards/class:{}?around={sid_student}&k=1", w.class),
            Some(&student),
        )
        .await
        .expect(200);
    assert_eq!(around["entries"][0]["id"], sid_student.as_str());
}

#[tokio::test]
async fn boards_emptied_from_the_store_are_rebuilt_exactly_from_the_database() {
    let app = spawn_app().await;
    let (w, season) = league_world(&app).await;
    let kids = students(&app, &w.join_code, "r", 6).await;
    let mut ids = Vec::new();
    for (i, (token, _)) in kids.iter().enumerate() {
        ids.push(id(&app
            .submit(token, "meatless_meal", 1, &format!("x{i}"))
            .await
            .expect(201)));
        if i % 2 == 0 {
            ids.push(id(&app
                .submit(token, "walk_or_cycle", 3, &format!("y{i}"))
                .await
                .expect(201)));
        }
    }
    app.approve(
        &w.teacher,
        &ids.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    app.post(
        &format!("/submissions/{}/revoke", ids[1]),
        Some(&w.teacher),
        json!({}),
    )
    .await
    .expect(200);
    // A roster change after scoring refreshes per-capita scores too.
    app.join(&w.join_code, "Latecomer").await;

    let before = app.boards_dump().await;
    assert!(
        before
            .keys()
            .any(|k| k.contains(":z:class:") || k.contains(":class:")),
        "{before:?}"
    );
    app.empty_boards().await;
    assert!(app.boards_dump().await.is_empty());
    let season = schema::SeasonId(season.parse().unwrap());
    carbon_league::league::standings::rebuild_season(&app.state, season)
        .await
        .unwrap();
    let after = app.boards_dump().await;
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (key, content) in &before {
        assert_eq!(
            Some(content),
            after.get(key),
            "board {key} differs after the rebuild"
        );
    }
}

#[tokio::test]
async fn a_closed_seasons_standings_stay_readable_after_the_live_boards_are_emptied_and_the_next_season_starts_at_zero()
 {
    let app = spawn_app().await;
    let (w, season) = league_world(&app).await;
    let kids = students(&app, &w.join_code, "c", 3).await;
    let mut ids = Vec::new();
    for (i, (token, _)) in kids.iter().enumerate() {
        for (j, behavior) in ["meatless_meal", "clean_plate"]
            .iter()
            .take(i + 1)
            .enumerate()
        {
            ids.push(id(&app
                .submit(token, behavior, 1, &format!("{i}-{j}"))
                .await
                .expect(201)));
        }
    }
    app.approve(
        &w.teacher,
        &ids.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    let live = app.board(&w.teacher, &format!("class:{}", w.class)).await;
    assert_eq!(live["final"], false);

    app.post(
        &format!("/seasons/{season}/close"),
        Some(&w.admin),
        json!({}),
    )
    .await
    .expect(200);
    app.empty_boards().await;
    let closed = app
        .get(
            &format!(
                "/leaderboards/class:{}?season_id={season}&limit=10",
                w.class
            ),
            Some(&w.teacher),
        )
        .await
        .expect(200);
    assert_eq!(closed["final"], true);
    let points: Vec<i64> = closed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["points"].as_i64().unwrap())
        .collect();
    assert_eq!(points, [2, 2, 1]);
    assert_eq!(closed["entries"][0]["rank"], 1);

    // Scoring stopped with the season.
    app.submit(&kids[0].0, "reusable_cup", 1, "after")
        .await
        .expect_error(409, "no_active_season");
    // The next season starts from zero.
    let next = app
        .post("/seasons", Some(&w.admin), json!({"name": "Next", "starts_on": (time::OffsetDateTime::now_utc().date() - time::Duration::days(1)).to_string(), "ends_on": (time::OffsetDateTime::now_utc().date() + time::Duration::days(90)).to_string()}))
        .await
        .expect(201);
    app.post(
        &format!("/seasons/{}/activate", id(&next)),
        Some(&w.admin),
        json!({}),
    )
    .await
    .expect(200);
    let fresh = app.board(&w.teacher, &format!("class:{}", w.class)).await;
    assert_eq!(fresh["entries"], json!([]));
}

#[tokio::test]
async fn a_teacher_enters_a_meatless_lunch_for_the_present_students_at_once() {
    let app = spawn_app().await;
    let (w, _) = league_world(&app).await;
    let mut roster = Vec::new();
    for i in 0..5 {
        let s = app
            .post(
                &format!("/classes/{}/students", w.class),
                Some(&w.teacher),
                json!({"nickname": format!("pupil{i}")}),
            )
            .await
            .expect(201);
        roster.push(id(&s));
    }
    let present = &roster[..4];
    let body = json!({"behavior": "meatless_meal", "quantity": 1, "occurred_at": just_now(), "idempotency_key": "lunch", "student_ids": present});
    let result = app
        .post(
            &format!("/classes/{}/submissions", w.class),
            Some(&w.teacher),
            body.clone(),
        )
        .await
        .expect(201);
    assert_eq!(result["done"].as_array().unwrap().len(), 4);
    assert!(
        result["done"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "verified" && s["method"] == "teacher_entered")
    );
    // The same entry again changes nothing.
    app.post(
        &format!("/classes/{}/submissions", w.class),
        Some(&w.teacher),
        body,
    )
    .await
    .expect(201);
    let board = app.board(&w.teacher, &format!("class:{}", w.class)).await;
    assert_eq!(board["size"], 4);
    assert!(
        board["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["points"] == 1)
    );
    // Another teacher cannot enter for this class.
    let other = app
        .staff(&w.school_admin, &w.school, "teachers", "teacher.zhao")
        .await;
    app.post(
        &format!("/classes/{}/submissions", w.class),
        Some(&other),
        json!({"behavior": "meatless_meal", "quantity": 1, "occurred_at": just_now(), "idempotency_key": "x"}),
    )
    .await
    .expect_error(403, "forbidden");
}

#[tokio::test]
async fn an_invited_class_accepts_and_an_ended_challenge_keeps_its_final_standings() {
    let app = spawn_app().await;
    let (w, _) = league_world(&app).await;
    let other_teacher = app
        .staff(&w.school_admin, &w.school, "teachers", "teacher.sun")
        .await;
    let (other_class, other_code) = app.class(&other_teacher, 5, "3班").await;
    let now = time::OffsetDateTime::now_utc();
    let challenge = app
        .post(
            "/challenges",
            Some(&w.teacher),
            json!({
                "kind": "class_vs_class", "title": "Clean plates", "behaviors": ["clean_plate"],
                "starts_at": rfc3339(now - time::Duration::minutes(10)), "ends_at": rfc3339(now + time::Duration::days(2)),
                "scoring": "total", "participants": [w.class, other_class]
            }),
        )
        .await
        .expect(201);
    let cid = id(&challenge);
    let states: Vec<&str> = challenge["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["state"].as_str().unwrap())
        .collect();
    assert!(
        states.contains(&"accepted") && states.contains(&"invited"),
        "{challenge}"
    );
    // Only the invited class's teacher answers for it.
    app.post(
        &format!("/challenges/{cid}/accept"),
        Some(&w.teacher),
        json!({"participant_ids": [other_class]}),
    )
    .await
    .expect_error(403, "forbidden");
    app.post(
        &format!("/challenges/{cid}/accept"),
        Some(&other_teacher),
        json!({"participant_ids": [other_class]}),
    )
    .await
    .expect(200);

    let (_, a) = app.join(&w.join_code, "A").await;
    let (_, b) = app.join(&other_code, "B").await;
    let sa = id(&app.submit(&a, "clean_plate", 1, "a").await.expect(201));
    let sb1 = id(&app.submit(&b, "clean_plate", 1, "b1").await.expect(201));
    let sb2 = id(&app.submit(&b, "clean_plate", 1, "b2").await.expect(201));
    app.approve(&w.teacher, &[&sa]).await;
    app.approve(&other_teacher, &[&sb1, &sb2]).await;

    let ended = app
        .post(
            &format!("/challenges/{cid}/end"),
            Some(&w.school_admin),
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(ended["status"], "finished");
    assert_eq!(ended["finalized"], true);
    app.empty_boards().await;
    let standings = app
        .board(&w.teacher, &format!("challenge:{cid}:total"))
        .await;
    assert_eq!(standings["final"], true);
    assert_eq!(standings["entries"][0]["id"], other_class.as_str());
    assert_eq!(standings["entries"][0]["points"], 2);
    // Behaviours after the end no longer count for it.
    let late = app.submit(&a, "clean_plate", 1, "late").await.expect(201);
    assert_eq!(late["challenge_ids"], json!([]));
}

#[tokio::test]
async fn boards_are_private_to_their_class_and_school() {
    let app = spawn_app().await;
    let (w, _) = league_world(&app).await;
    let other_school = app.school(&w.admin, "Faraway Middle").await;
    let other_admin = app
        .staff(&w.admin, &other_school, "admins", "head.faraway")
        .await;
    let other_teacher = app
        .staff(&other_admin, &other_school, "teachers", "teacher.far")
        .await;
    let (_, far_code) = app.class(&other_teacher, 7, "1班").await;
    let (_, far_student) = app.join(&far_code, "Far").await;
    app.get(
        &format!("/leaderboards/class:{}", w.class),
        Some(&far_student),
    )
    .await
    .expect_error(403, "forbidden");
    app.get(
        &format!("/leaderboards/school:{}", w.school),
        Some(&far_student),
    )
    .await
    .expect_error(403, "forbidden");
    app.get("/leaderboards/province", Some(&far_student))
        .await
        .expect(200);
    app.get("/leaderboards/nonsense", Some(&far_student))
        .await
        .expect_error(422, "validation_failed");
}
