//! Seasons: creation, activation, closing.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_second_active_season_is_refused_and_closing_twice_is_harmless() {
    let app = spawn_app().await;
    let admin = app.programme_admin().await;
    let autumn = app
        .post(
            "/seasons",
            Some(&admin),
            json!({"name": "2026 autumn", "starts_on": "2026-09-01", "ends_on": "2027-01-15"}),
        )
        .await
        .expect(201);
    assert_eq!(autumn["status"], "draft");
    assert_eq!(autumn["timezone"], "Asia/Shanghai");
    let spring = app
        .post(
            "/seasons",
            Some(&admin),
            json!({"name": "2027 spring", "starts_on": "2027-02-20", "ends_on": "2027-07-10"}),
        )
        .await
        .expect(201);
    let (a, s) = (
        autumn["id"].as_str().unwrap(),
        spring["id"].as_str().unwrap(),
    );

    let active = app
        .post(&format!("/seasons/{a}/activate"), Some(&admin), json!({}))
        .await
        .expect(200);
    assert_eq!(active["status"], "active");
    app.post(&format!("/seasons/{s}/activate"), Some(&admin), json!({}))
        .await
        .expect_error(409, "season_already_active");

    let closed = app
        .post(&format!("/seasons/{a}/close"), Some(&admin), json!({}))
        .await
        .expect(200);
    assert_eq!(closed["status"], "closed");
    let again = app
        .post(&format!("/seasons/{a}/close"), Some(&admin), json!({}))
        .await
        .expect(200);
    assert_eq!(again["closed_at"], closed["closed_at"]);
    app.post(&format!("/seasons/{a}/activate"), Some(&admin), json!({}))
        .await
        .expect_error(409, "season_closed");

    app.post(&format!("/seasons/{s}/activate"), Some(&admin), json!({}))
        .await
        .expect(200);
    let listed = app.get("/seasons", Some(&admin)).await.expect(200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_season_with_bad_days_or_time_zone_is_refused_naming_the_field() {
    let app = spawn_app().await;
    let admin = app.programme_admin().await;
    let r = app
        .post(
            "/seasons",
            Some(&admin),
            json!({"name": "x", "starts_on": "2026-09-01", "ends_on": "2026-08-01"}),
        )
        .await;
    r.expect_error(422, "validation_failed");
    assert_eq!(r.body["error"]["field"], "ends_on");
    let r = app
        .post("/seasons", Some(&admin), json!({"name": "x", "starts_on": "2026-09-01", "ends_on": "2026-10-01", "timezone": "Mars/Olympus"}))
        .await;
    assert_eq!(r.body["error"]["field"], "timezone");
    let r = app
        .post(
            "/seasons",
            Some(&admin),
            json!({"name": "x", "starts_on": "2026-13-01", "ends_on": "2026-10-01"}),
        )
        .await;
    r.expect_error(422, "validation_failed");
    assert_eq!(r.body["error"]["field"], "starts_on");
}
