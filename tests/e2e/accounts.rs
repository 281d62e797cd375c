//! Accounts, classes, join codes, rosters and permissions.

use carbon_league::store::query;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_programme_admin_builds_a_school_down_to_a_student_who_joins_their_class() {
    let app = spawn_app().await;
    let w = app.world().await;

    let (student_id, student) = app.join(&w.join_code.to_lowercase(), "小明").await;

    let me = app.get("/me", Some(&student)).await.expect(200);
    assert_eq!(me["kind"], "student");
    assert_eq!(me["id"], student_id.as_str());
    assert_eq!(me["class_id"], w.class.as_str());
    assert_eq!(me["nickname"], "小明");
    assert_eq!(me["has_device"], true);

    let class = app
        .get(&format!("/classes/{}", w.class), Some(&w.teacher))
        .await
        .expect(200);
    assert_eq!(class["student_count"], 1);
    assert_eq!(class["join_code"], w.join_code.as_str());

    // The student sees their class, but not its join code.
    let seen = app
        .get(&format!("/classes/{}", w.class), Some(&student))
        .await
        .expect(200);
    assert!(seen.get("join_code").is_none(), "{seen}");

    let roster = app
        .get(&format!("/classes/{}/students", w.class), Some(&student))
        .await
        .expect(200);
    assert_eq!(roster["items"][0]["nickname"], "小明");

    let teacher_me = app.get("/me", Some(&w.teacher)).await.expect(200);
    assert_eq!(teacher_me["role"], "teacher");
    assert_eq!(teacher_me["school_id"], w.school.as_str());
}

#[tokio::test]
async fn a_wrong_join_code_is_refused_and_a_rotated_code_stops_working_at_once() {
    let app = spawn_app().await;
    let w = app.world().await;

    let wrong = if w.join_code == "ZZZZZZ" {
        "YYYYYY"
    } else {
        "ZZZZZZ"
    };
    app.post("/join", None, json!({"join_code": wrong, "nickname": "A"}))
        .await
        .expect_error(404, "invalid_join_code");
    app.post(
        "/join",
        None,
        json!({"join_code": "O0O0O0", "nickname": "A"}),
    )
    .await
    .expect_error(422, "validation_failed");

    let rotated = app
        .post(
            &format!("/classes/{}/join-code", w.class),
            Some(&w.teacher),
            json!({}),
        )
        .await
        .expect(200);
    let new_code = rotated["join_code"].as_str().unwrap().to_owned();
    assert_ne!(new_code, w.join_code);

    app.post(
        "/join",
        None,
        json!({"join_code": w.join_code, "nickname": "Late"}),
    )
    .await
    .expect_error(404, "invalid_join_code");
    app.join(&new_code, "Late").await;
}

#[tokio::test]
async fn a_nickname_already_used_in_the_class_is_refused_whatever_its_case() {
    let app = spawn_app().await;
    let w = app.world().await;
    app.join(&w.join_code, "Xiao Ming").await;

    app.post(
        "/join",
        None,
        json!({"join_code": w.join_code, "nickname": "xiao  ming"}),
    )
    .await
    .expect_error(409, "nickname_taken");
    app.post(
        &format!("/classes/{}/students", w.class),
        Some(&w.teacher),
        json!({"nickname": "XIAO MING"}),
    )
    .await
    .expect_error(409, "nickname_taken");
    let bad = app
        .post(
            "/join",
            None,
            json!({"join_code": w.join_code, "nickname": "13800138000@qq"}),
        )
        .await;
    bad.expect_error(422, "validation_failed");
    assert_eq!(bad.body["error"]["field"], "nickname");
}

#[tokio::test]
async fn a_teacher_puts_students_without_a_device_on_the_roster_and_removes_them() {
    let app = spawn_app().await;
    let w = app.world().await;
    let added = app
        .post(
            &format!("/classes/{}/students", w.class),
            Some(&w.teacher),
            json!({"nickname": "王小红"}),
        )
        .await
        .expect(201);
    assert_eq!(added["has_device"], false);
    let (joined_id, joined_token) = app.join(&w.join_code, "Phone Kid").await;

    app.delete(
        &format!("/classes/{}/students/{joined_id}", w.class),
        Some(&w.teacher),
    )
    .await
    .expect(204);
    // Removal signs the device out and frees the nickname.
    app.get("/me", Some(&joined_token))
        .await
        .expect_error(401, "invalid_token");
    app.join(&w.join_code, "Phone Kid").await;

    let roster = app
        .get(&format!("/classes/{}/students", w.class), Some(&w.teacher))
        .await
        .expect(200);
    let names: Vec<&str> = roster["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["nickname"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["王小红", "Phone Kid"]);

    app.delete(
        &format!("/classes/{}/students/{joined_id}", w.class),
        Some(&w.teacher),
    )
    .await
    .expect_error(404, "not_found");
}

#[tokio::test]
async fn a_student_token_on_a_teacher_endpoint_is_forbidden() {
    let app = spawn_app().await;
    let w = app.world().await;
    let (_, student) = app.join(&w.join_code, "Curious").await;

    app.post(
        "/classes",
        Some(&student),
        json!({"grade": 5, "name": "mine"}),
    )
    .await
    .expect_error(403, "forbidden");
    app.post(
        &format!("/classes/{}/join-code", w.class),
        Some(&student),
        json!({}),
    )
    .await
    .expect_error(403, "forbidden");
    app.post(
        &format!("/classes/{}/students", w.class),
        Some(&student),
        json!({"nickname": "Ghost"}),
    )
    .await
    .expect_error(403, "forbidden");
    app.post(
        "/seasons",
        Some(&student),
        json!({"name": "x", "starts_on": "2026-09-01", "ends_on": "2027-01-15"}),
    )
    .await
    .expect_error(403, "forbidden");
    app.get(&format!("/schools/{}/teachers", w.school), Some(&student))
        .await
        .expect_error(403, "forbidden");
}

#[tokio::test]
async fn a_teacher_cannot_read_or_change_another_teachers_class() {
    let app = spawn_app().await;
    let w = app.world().await;
    let other = app
        .staff(&w.school_admin, &w.school, "teachers", "teacher.wang")
        .await;
    let (other_class, _) = app.class(&other, 6, "1班").await;

    app.get(&format!("/classes/{other_class}"), Some(&w.teacher))
        .await
        .expect_error(403, "forbidden");
    app.get(
        &format!("/classes/{other_class}/students"),
        Some(&w.teacher),
    )
    .await
    .expect_error(403, "forbidden");
    app.post(
        &format!("/classes/{other_class}/join-code"),
        Some(&w.teacher),
        json!({}),
    )
    .await
    .expect_error(403, "forbidden");

    // Each teacher lists only their own classes; the school admin sees both.
    let mine = app.get("/classes", Some(&w.teacher)).await.expect(200);
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    let all = app.get("/classes", Some(&w.school_admin)).await.expect(200);
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_school_admin_acts_only_inside_their_own_school() {
    let app = spawn_app().await;
    let w = app.world().await;
    let other_school = app.school(&w.admin, "Jinghong No.3 Middle").await;

    app.post(
        &format!("/schools/{other_school}/teachers"),
        Some(&w.school_admin),
        json!({"username": "intruder", "display_name": "x", "password": "long enough password"}),
    )
    .await
    .expect_error(403, "forbidden");
    app.get(&format!("/schools/{other_school}"), Some(&w.school_admin))
        .await
        .expect_error(403, "forbidden");
    // Only the programme office creates schools and school admins.
    app.post(
        "/schools",
        Some(&w.school_admin),
        json!({"name": "Rogue", "county": "X"}),
    )
    .await
    .expect_error(403, "forbidden");
    let schools = app.get("/schools", Some(&w.school_admin)).await.expect(200);
    assert_eq!(schools["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn expired_and_revoked_tokens_get_401() {
    let app = spawn_app().await;
    let w = app.world().await;
    let (_, student) = app.join(&w.join_code, "Expiring").await;

    query("UPDATE auth_tokens SET expires_at = $1 WHERE student_id IS NOT NULL")
        .bind(time::OffsetDateTime::now_utc() - time::Duration::seconds(1))
        .execute(&app.db)
        .await
        .unwrap();
    app.get("/me", Some(&student))
        .await
        .expect_error(401, "invalid_token");

    app.get("/me", Some(&w.teacher)).await.expect(200);
    app.post("/auth/logout", Some(&w.teacher), json!({}))
        .await
        .expect(204);
    app.get("/me", Some(&w.teacher))
        .await
        .expect_error(401, "invalid_token");

    app.get("/me", None)
        .await
        .expect_error(401, "unauthenticated");
    app.get("/me", Some("not-a-real-token"))
        .await
        .expect_error(401, "invalid_token");
}

#[tokio::test]
async fn tokens_and_passwords_are_stored_only_as_hashes() {
    let app = spawn_app().await;
    let w = app.world().await;
    let (_, student) = app.join(&w.join_code, "Hashed").await;
    let hashes: Vec<(Vec<u8>,)> = query("SELECT token_hash FROM auth_tokens")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert!(
        hashes
            .iter()
            .all(|(h,)| h.len() == 32 && h.as_slice() != student.as_bytes())
    );
    let pw: Vec<(String,)> = query("SELECT password_hash FROM users")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert!(pw.iter().all(|(h,)| h.starts_with("$argon2id$")));
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_repeated_guessing_is_slowed_down() {
    let app = spawn_app().await;
    let w = app.world().await;
    let _ = w;
    let mut codes = Vec::new();
    for _ in 0..12 {
        let r = app
            .post(
                "/auth/login",
                None,
                json!({"username": "teacher.li", "password": "wrong password!"}),
            )
            .await;
        codes.push(r.status.as_u16());
    }
    assert_eq!(codes[0], 401);
    assert!(codes.contains(&429), "{codes:?}");
}

#[tokio::test]
async fn bootstrap_refuses_to_create_a_second_programme_admin() {
    let app = spawn_app().await;
    app.programme_admin().await;
    let second = carbon_league::admin::bootstrap(&app.db, "admin2").await;
    assert!(second.is_err());
}

#[tokio::test]
async fn lists_are_paginated_with_a_cursor() {
    let app = spawn_app().await;
    let w = app.world().await;
    for i in 0..5 {
        app.post(
            &format!("/classes/{}/students", w.class),
            Some(&w.teacher),
            json!({"nickname": format!("kid{i}")}),
        )
        .await
        .expect(201);
    }
    let first = app
        .get(
            &format!("/classes/{}/students?limit=2", w.class),
            Some(&w.teacher),
        )
        .await
        .expect(200);
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let after = first["next_after"].as_str().unwrap();
    let second = app
        .get(
            &format!("/classes/{}/students?limit=2&after={after}", w.class),
            Some(&w.teacher),
        )
        .await
        .expect(200);
    assert_eq!(second["items"][0]["nickname"], "kid2");
    let last = app
        .get(
            &format!(
                "/classes/{}/students?limit=2&after={}",
                w.class,
                second["next_after"].as_str().unwrap()
            ),
            Some(&w.teacher),
        )
        .await
        .expect(200);
    assert_eq!(last["items"].as_array().unwrap().len(), 1);
    assert!(last.get("next_after").is_none());

    app.get(
        &format!("/classes/{}/students?limit=0", w.class),
        Some(&w.teacher),
    )
    .await
    .expect_error(422, "validation_failed");
    app.get(
        &format!("/classes/{}/students?limit=lots", w.class),
        Some(&w.teacher),
    )
    .await
    .expect_error(422, "validation_failed");
}
