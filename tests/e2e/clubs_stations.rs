//! Clubs (creation, joining with a code, who sees what) and stations (registration, display
//! tokens, rotating codes).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::helpers::league::just_now;
use crate::helpers::{TestApp, spawn_app};

/// A second school with its admin, a teacher, a class and one student; returns
/// `(teacher token, student token)`.
async fn other_school(app: &TestApp, admin: &str) -> (String, String) {
    let school = app.school(admin, "Jinghong No.3 Middle").await;
    let head = app.staff(admin, &school, "admins", "head.jinghong").await;
    let teacher = app.staff(&head, &school, "teachers", "teacher.wang").await;
    let (_, code) = app.class(&teacher, 7, "1班").await;
    let (_, student) = app.join(&code, "阿芳").await;
    (teacher, student)
}

fn nicknames(page: &Value) -> BTreeSet<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["nickname"].as_str().expect("nickname").to_owned())
        .collect()
}

#[tokio::test]
async fn a_student_creates_a_club_that_classmates_and_other_classes_of_the_school_join() {
    let app = spawn_app().await;
    let w = app.world().await;
    let (founder_id, founder) = app.join(&w.join_code, "小明").await;
    let (_, classmate) = app.join(&w.join_code, "小红").await;
    let (_, other_class_code) = app.class(&w.teacher, 6, "1班").await;
    let (_, other_class) = app.join(&other_class_code, "阿强").await;
    let (_, outsider) = app.join(&other_class_code, "阿美").await;

    let club = app
        .post("/clubs", Some(&founder), json!({"name": "  Green Team "}))
        .await
        .expect(201);
    assert_eq!(club["name"], "Green Team");
    assert_eq!(club["school_id"], w.school.as_str());
    assert_eq!(
        club["member_count"], 1,
        "the student creator is its first member"
    );
    let id = club["id"].as_str().unwrap().to_owned();
    let code = club["join_code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 6);

    // A classmate joins with the code as typed (lower case, a dash); a student of another class
    // of the same school joins too.
    let typed = format!("{}-{}", &code[..3], &code[3..]).to_lowercase();
    let joined = app
        .post("/clubs/join", Some(&classmate), json!({"join_code": typed}))
        .await
        .expect(200);
    assert_eq!(joined["id"], id.as_str());
    assert_eq!(joined["member_count"], 2);
    assert_eq!(joined["join_code"], code.as_str());
    let joined = app
        .post(
            "/clubs/join",
            Some(&other_class),
            json!({"join_code": code}),
        )
        .await
        .expect(200);
    assert_eq!(joined["member_count"], 3);

    app.post("/clubs/join", Some(&classmate), json!({"join_code": code}))
        .await
        .expect_error(409, "already_member");
    app.post("/clubs/join", Some(&founder), json!({"join_code": code}))
        .await
        .expect_error(409, "already_member");

    // Members see the nicknames, page by page.
    let all = app
        .get(&format!("/clubs/{id}/members"), Some(&other_class))
        .await
        .expect(200);
    assert_eq!(
        nicknames(&all),
        ["小明", "小红", "阿强"].map(String::from).into()
    );
    assert!(
        all["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["student_id"] == founder_id.as_str())
    );
    let first = app
        .get(&format!("/clubs/{id}/members?limit=2"), Some(&founder))
        .await
        .expect(200);
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let after = first["next_after"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = app
        .get(
            &format!("/clubs/{id}/members?limit=2&after={after}"),
            Some(&founder),
        )
        .await
        .expect(200);
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert!(second["next_after"].is_null());
    let mut paged = nicknames(&first);
    paged.extend(nicknames(&second));
    assert_eq!(paged, nicknames(&all));

    // The school's staff see the club and its code; a student of the school who is not a member
    // sees it listed without its code, and cannot open it or its members.
    for staff in [&w.teacher, &w.school_admin, &w.admin] {
        let seen = app
            .get(&format!("/clubs/{id}"), Some(staff))
            .await
            .expect(200);
        assert_eq!(seen["join_code"], code.as_str());
        assert_eq!(seen["member_count"], 3);
        app.get(&format!("/clubs/{id}/members"), Some(staff))
            .await
            .expect(200);
    }
    app.get(&format!("/clubs/{id}"), Some(&outsider))
        .await
        .expect_error(403, "forbidden");
    app.get(&format!("/clubs/{id}/members"), Some(&outsider))
        .await
        .expect_error(403, "forbidden");
    let listed = app.get("/clubs", Some(&outsider)).await.expect(200);
    assert_eq!(listed["items"][0]["id"], id.as_str());
    assert!(listed["items"][0].get("join_code").is_none(), "{listed}");
    let listed = app.get("/clubs", Some(&founder)).await.expect(200);
    assert_eq!(listed["items"][0]["join_code"], code.as_str());

    // A teacher creates a club of their own (no members yet); names are unique in the school.
    let staff_club = app
        .post("/clubs", Some(&w.teacher), json!({"name": "Compost Crew"}))
        .await
        .expect(201);
    assert_eq!(staff_club["member_count"], 0);
    app.post(
        "/clubs",
        Some(&w.school_admin),
        json!({"name": "Green Team"}),
    )
    .await
    .expect_error(409, "club_exists");
    let r = app
        .post("/clubs", Some(&founder), json!({"name": "  "}))
        .await;
    r.expect_error(422, "validation_failed");
    assert_eq!(r.body["error"]["field"], "name");
    let r = app
        .post("/clubs", Some(&founder), json!({"name": "x".repeat(41)}))
        .await;
    assert_eq!(r.body["error"]["field"], "name");
    // The programme office belongs to no school, so it creates no club; it lists them all.
    app.post("/clubs", Some(&w.admin), json!({"name": "Province Club"}))
        .await
        .expect_error(403, "forbidden");
    let everything = app.get("/clubs?limit=1", Some(&w.admin)).await.expect(200);
    assert_eq!(everything["items"].as_array().unwrap().len(), 1);
    assert!(everything["next_after"].is_string());
}

#[tokio::test]
async fn a_student_of_another_school_cannot_join_and_a_wrong_code_is_refused() {
    let app = spawn_app().await;
    let w = app.world().await;
    let (_, founder) = app.join(&w.join_code, "小明").await;
    let club = app
        .post("/clubs", Some(&founder), json!({"name": "Green Team"}))
        .await
        .expect(201);
    let id = club["id"].as_str().unwrap().to_owned();
    let code = club["join_code"].as_str().unwrap().to_owned();
    let (other_teacher, stranger) = other_school(&app, &w.admin).await;

    // A club of another school answers like a code that does not exist: 404, so a guesser
    // learns nothing about other schools' codes.
    app.post("/clubs/join", Some(&stranger), json!({"join_code": code}))
        .await
        .expect_error(404, "invalid_join_code");
    let wrong = if code == "ZZZZZZ" { "YYYYYY" } else { "ZZZZZZ" };
    app.post("/clubs/join", Some(&founder), json!({"join_code": wrong}))
        .await
        .expect_error(404, "invalid_join_code");
    let r = app
        .post(
            "/clubs/join",
            Some(&founder),
            json!({"join_code": "O0O0O0"}),
        )
        .await;
    r.expect_error(422, "validation_failed");
    assert_eq!(r.body["error"]["field"], "join_code");
    // Only students join clubs.
    app.post("/clubs/join", Some(&w.teacher), json!({"join_code": code}))
        .await
        .expect_error(403, "forbidden");

    // Nobody of the other school sees the club or its members.
    for outsider in [&stranger, &other_teacher] {
        app.get(&format!("/clubs/{id}"), Some(outsider))
            .await
            .expect_error(403, "forbidden");
        app.get(&format!("/clubs/{id}/members"), Some(outsider))
            .await
            .expect_error(403, "forbidden");
        let listed = app.get("/clubs", Some(outsider)).await.expect(200);
        assert_eq!(listed["items"], json!([]), "{listed}");
    }
    let members = app
        .get(&format!("/clubs/{id}/members"), Some(&founder))
        .await
        .expect(200);
    assert_eq!(nicknames(&members), ["小明".to_owned()].into());
    app.get(
        "/clubs/0196f0c8-0000-7000-8000-000000000000",
        Some(&w.teacher),
    )
    .await
    .expect_error(404, "not_found");
}

fn is_station_code(code: &Value) -> bool {
    code.as_str()
        .is_some_and(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
}

#[tokio::test]
async fn a_teacher_registers_a_station_whose_display_reads_its_own_code_and_nothing_else() {
    let app = spawn_app().await;
    let w = app.world().await;
    let (_, student) = app.join(&w.join_code, "小明").await;

    app.post(
        "/stations",
        Some(&student),
        json!({"name": "Canteen line 1", "behaviors": ["meatless_meal"]}),
    )
    .await
    .expect_error(403, "forbidden");

    let station = app
        .post(
            "/stations",
            Some(&w.teacher),
            json!({"name": "Canteen line 1", "behaviors": ["meatless_meal"]}),
        )
        .await
        .expect(201);
    assert_eq!(station["behaviors"], json!(["meatless_meal"]));
    assert_eq!(station["window_secs"], 60);
    assert_eq!(station["school_id"], w.school.as_str());
    assert!(station.get("secret").is_none(), "{station}");
    let id = station["id"].as_str().unwrap().to_owned();
    let other = app
        .post(
            "/stations",
            Some(&w.school_admin),
            json!({"name": "Sorting point", "behaviors": ["waste_sorted", "pet_recycled"], "window_secs": 30}),
        )
        .await
        .expect(201);
    assert_eq!(other["window_secs"], 30);
    let other_id = other["id"].as_str().unwrap().to_owned();

    // A student may not issue a display token; the teacher does.
    app.post(
        &format!("/stations/{id}/display-token"),
        Some(&student),
        json!({}),
    )
    .await
    .expect_error(403, "forbidden");
    let token = app
        .post(
            &format!("/stations/{id}/display-token"),
            Some(&w.teacher),
            json!({}),
        )
        .await
        .expect(201);
    assert!(token["expires_at"].is_string());
    let display = token["token"].as_str().unwrap().to_owned();

    let me = app.get("/me", Some(&display)).await.expect(200);
    assert_eq!(me["kind"], "station");
    assert_eq!(me["id"], id.as_str());

    let code = app
        .get(&format!("/stations/{id}/code"), Some(&display))
        .await
        .expect(200);
    assert_eq!(code["station_id"], id.as_str());
    assert!(is_station_code(&code["code"]), "{code}");
    assert!(code["window_index"].is_u64());
    assert!(code["next_at"].is_string());
    let by_teacher = app
        .get(&format!("/stations/{id}/code"), Some(&w.teacher))
        .await
        .expect(200);
    assert!(is_station_code(&by_teacher["code"]), "{by_teacher}");
    if by_teacher["window_index"] == code["window_index"] {
        assert_eq!(by_teacher["code"], code["code"]);
    }
    app.get(&format!("/stations/{id}"), Some(&display))
        .await
        .expect(200);

    // The display reads its own station and nothing else.
    app.get(&format!("/stations/{other_id}/code"), Some(&display))
        .await
        .expect_error(403, "forbidden");
    app.get(&format!("/stations/{other_id}"), Some(&display))
        .await
        .expect_error(403, "forbidden");
    app.get("/classes", Some(&display))
        .await
        .expect_error(403, "forbidden");
    app.get("/stations", Some(&display))
        .await
        .expect_error(403, "forbidden");
    app.get("/clubs", Some(&display))
        .await
        .expect_error(403, "forbidden");
    app.post(
        "/stations",
        Some(&display),
        json!({"name": "Rogue", "behaviors": ["meatless_meal"]}),
    )
    .await
    .expect_error(403, "forbidden");
    app.post(
        &format!("/stations/{other_id}/display-token"),
        Some(&display),
        json!({}),
    )
    .await
    .expect_error(403, "forbidden");

    // Students read the code off the screen, never over the API.
    app.get(&format!("/stations/{id}/code"), Some(&student))
        .await
        .expect_error(403, "forbidden");
    app.get(&format!("/stations/{id}"), Some(&student))
        .await
        .expect_error(403, "forbidden");
    app.get("/stations", Some(&student))
        .await
        .expect_error(403, "forbidden");

    // Another school's staff neither see the station nor run its screen.
    let (other_teacher, _) = other_school(&app, &w.admin).await;
    app.get(&format!("/stations/{id}/code"), Some(&other_teacher))
        .await
        .expect_error(403, "forbidden");
    app.post(
        &format!("/stations/{id}/display-token"),
        Some(&other_teacher),
        json!({}),
    )
    .await
    .expect_error(403, "forbidden");
    let theirs = app.get("/stations", Some(&other_teacher)).await.expect(200);
    assert_eq!(theirs["items"], json!([]));

    let ours = app.get("/stations", Some(&w.teacher)).await.expect(200);
    let ids: BTreeSet<&str> = ours["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str(), other_id.as_str()].into());
    assert!(
        ours["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s.get("secret").is_none())
    );
}

#[tokio::test]
async fn a_station_is_refused_for_behaviours_it_cannot_verify_and_out_of_range_windows() {
    let app = spawn_app().await;
    let w = app.world().await;
    let refused = |body: Value| app.post("/stations", Some(w.teacher.as_str()), body);

    for behaviors in [
        json!(["meatless_meal", "walk_or_cycle"]),
        json!(["lights_off"]),
        json!(["no_such_behaviour"]),
        json!([]),
    ] {
        let r = refused(json!({"name": "Line", "behaviors": behaviors})).await;
        r.expect_error(422, "validation_failed");
        assert_eq!(r.body["error"]["field"], "behaviors", "{}", r.body);
    }
    for window_secs in [0, 14, 3601] {
        let r = refused(
            json!({"name": "Line", "behaviors": ["meatless_meal"], "window_secs": window_secs}),
        )
        .await;
        r.expect_error(422, "validation_failed");
        assert_eq!(r.body["error"]["field"], "window_secs", "{}", r.body);
    }
    let r =
        refused(json!({"name": "Line", "behaviors": ["meatless_meal"], "window_secs": -5})).await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.body);
    let r = refused(json!({"name": "", "behaviors": ["meatless_meal"]})).await;
    assert_eq!(r.body["error"]["field"], "name");

    let created = app
        .post(
            "/stations",
            Some(&w.teacher),
            json!({"name": "Line", "behaviors": ["meatless_meal", "meatless_meal", "clean_plate"], "window_secs": 3600}),
        )
        .await
        .expect(201);
    assert_eq!(
        created["behaviors"],
        json!(["meatless_meal", "clean_plate"]),
        "duplicates are dropped"
    );
    assert_eq!(created["window_secs"], 3600);
    app.post(
        "/stations",
        Some(&w.school_admin),
        json!({"name": "Line", "behaviors": ["waste_sorted"]}),
    )
    .await
    .expect_error(409, "station_exists");
    // The programme office runs no school's canteen.
    app.post(
        "/stations",
        Some(&w.admin),
        json!({"name": "Province", "behaviors": ["waste_sorted"]}),
    )
    .await
    .expect_error(403, "forbidden");
}

#[tokio::test]
async fn clubs_and_stations_are_in_the_openapi_document() {
    let app = spawn_app().await;
    let doc = app.get_root("/api/v1/openapi.json").await.expect(200);
    for path in [
        "/api/v1/clubs",
        "/api/v1/clubs/join",
        "/api/v1/clubs/{club_id}",
        "/api/v1/clubs/{club_id}/members",
        "/api/v1/stations",
        "/api/v1/stations/{station_id}",
        "/api/v1/stations/{station_id}/display-token",
        "/api/v1/stations/{station_id}/code",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    for schema in ["Club", "ClubMember", "Station", "StationCode"] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "{schema} missing"
        );
    }
}

/// Registers a station for `behavior` and issues its display token; returns `(id, token)`.
async fn station_with_display(app: &TestApp, teacher: &str, behavior: &str) -> (String, String) {
    let station = app
        .post(
            "/stations",
            Some(teacher),
            json!({"name": format!("Canteen {behavior}"), "behaviors": [behavior]}),
        )
        .await
        .expect(201);
    let id = station["id"].as_str().unwrap().to_owned();
    let token = app
        .post(
            &format!("/stations/{id}/display-token"),
            Some(teacher),
            json!({}),
        )
        .await
        .expect(201);
    (id, token["token"].as_str().unwrap().to_owned())
}

/// What the station's screen shows now.
async fn shown_code(app: &TestApp, station: &str, display: &str) -> String {
    let code = app
        .get(&format!("/stations/{station}/code"), Some(display))
        .await
        .expect(200);
    code["code"].as_str().unwrap().to_owned()
}

fn with_code(key: &str, code: &str) -> Value {
    json!({"behavior": "meatless_meal", "quantity": 1, "occurred_at": just_now(), "idempotency_key": key, "station_code": code})
}

#[tokio::test]
async fn the_code_on_a_stations_screen_verifies_a_submission_once() {
    let app = spawn_app().await;
    let w = app.world().await;
    app.active_season(&w.admin).await;
    let (station, display) = station_with_display(&app, &w.teacher, "meatless_meal").await;
    let (_, student) = app.join(&w.join_code, "小明").await;
    let (_, classmate) = app.join(&w.join_code, "小红").await;

    let code = shown_code(&app, &station, &display).await;
    let verified = app
        .post("/submissions", Some(&student), with_code("lunch-1", &code))
        .await
        .expect(201);
    assert_eq!(verified["status"], "verified");
    assert_eq!(verified["method"], "station");
    app.post("/submissions", Some(&student), with_code("lunch-2", &code))
        .await
        .expect_error(422, "station_code_used");
    // The code is once per student: a classmate at the same line uses it too.
    let theirs = app
        .post(
            "/submissions",
            Some(&classmate),
            with_code("lunch-1", &code),
        )
        .await
        .expect(201);
    assert_eq!(theirs["status"], "verified");

    // A code the screen does not show (one digit off) is refused.
    let wrong: String = code
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 5 {
                char::from_digit((c.to_digit(10).unwrap() + 1) % 10, 10).unwrap()
            } else {
                c
            }
        })
        .collect();
    app.post(
        "/submissions",
        Some(&classmate),
        with_code("lunch-2", &wrong),
    )
    .await
    .expect_error(422, "invalid_station_code");
}

#[tokio::test]
async fn club_boards_count_the_season_points_of_members_from_before_and_after_they_joined() {
    let app = spawn_app().await;
    let w = app.world().await;
    app.active_season(&w.admin).await;
    let (station, display) = station_with_display(&app, &w.teacher, "meatless_meal").await;
    let (founder_id, founder) = app.join(&w.join_code, "小明").await;
    let (_, other_class_code) = app.class(&w.teacher, 6, "1班").await;
    let (joiner_id, joiner) = app.join(&other_class_code, "阿强").await;

    // Points scored before the club exists count once the student is in it.
    let code = shown_code(&app, &station, &display).await;
    app.post("/submissions", Some(&founder), with_code("a", &code))
        .await
        .expect(201);
    let club = app
        .post("/clubs", Some(&founder), json!({"name": "Green Team"}))
        .await
        .expect(201);
    let club_id = club["id"].as_str().unwrap().to_owned();
    let board = app.board(&founder, &format!("club:{club_id}")).await;
    assert_eq!(board["entries"][0]["id"], founder_id.as_str(), "{board}");
    assert_eq!(board["entries"][0]["points"], 1);

    // A member without points joins; what they score next counts for the club.
    app.post(
        "/clubs/join",
        Some(&joiner),
        json!({"join_code": club["join_code"]}),
    )
    .await
    .expect(200);
    app.post("/submissions", Some(&joiner), with_code("b", &code))
        .await
        .expect(201);
    let board = app.board(&joiner, &format!("club:{club_id}")).await;
    let on_board: BTreeSet<(String, i64)> = board["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_owned(),
                e["points"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        on_board,
        [(founder_id, 1), (joiner_id, 1)].into(),
        "{board}"
    );

    let clubs = app
        .board(&w.school_admin, &format!("school:{}:clubs", w.school))
        .await;
    assert_eq!(clubs["entries"][0]["id"], club_id.as_str(), "{clubs}");
    assert_eq!(clubs["entries"][0]["points"], 2, "{clubs}");
}
