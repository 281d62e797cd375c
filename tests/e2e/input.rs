//! Bad input gets the documented error shape, never a 500.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn malformed_json_gets_400_in_the_error_shape() {
    let app = spawn_app().await;
    let w = app.world().await;
    let r = app
        .post_raw(
            "/classes",
            Some(&w.teacher),
            "application/json",
            b"{\"grade\": 5,".to_vec(),
        )
        .await;
    r.expect_error(400, "malformed_json");
    let r = app
        .post_raw(
            "/classes",
            Some(&w.teacher),
            "application/json",
            b"{} trailing".to_vec(),
        )
        .await;
    r.expect_error(400, "malformed_json");
}

#[tokio::test]
async fn unknown_fields_and_wrong_types_get_422_naming_the_field() {
    let app = spawn_app().await;
    let w = app.world().await;
    let r = app
        .post(
            "/classes",
            Some(&w.teacher),
            json!({"grade": 5, "name": "3班", "colour": "red"}),
        )
        .await;
    r.expect_error(422, "validation_failed");
    assert_eq!(r.body["error"]["field"], "colour");
    let r = app
        .post(
            "/classes",
            Some(&w.teacher),
            json!({"grade": "five", "name": "3班"}),
        )
        .await;
    r.expect_error(422, "validation_failed");
    assert_eq!(r.body["error"]["field"], "grade");
    let r = app
        .post("/classes", Some(&w.teacher), json!({"grade": 5}))
        .await;
    assert_eq!(r.body["error"]["field"], "name");
    let r = app
        .post(
            "/classes",
            Some(&w.teacher),
            json!({"grade": 13, "name": "x"}),
        )
        .await;
    assert_eq!(r.body["error"]["field"], "grade");
    let r = app.post("/classes", Some(&w.teacher), json!([1, 2])).await;
    r.expect_error(422, "validation_failed");
}

#[tokio::test]
async fn an_oversized_or_non_json_body_is_refused_without_a_500() {
    let app = spawn_app().await;
    let w = app.world().await;
    let huge = format!("{{\"grade\": 5, \"name\": \"{}\"}}", "x".repeat(200_000));
    app.post_raw(
        "/classes",
        Some(&w.teacher),
        "application/json",
        huge.into_bytes(),
    )
    .await
    .expect_error(413, "payload_too_large");
    app.post_raw(
        "/classes",
        Some(&w.teacher),
        "text/plain",
        b"grade=5".to_vec(),
    )
    .await
    .expect_error(415, "unsupported_media_type");
    app.post_raw("/join", None, "application/json", vec![0xff, 0xfe, 0x00])
        .await
        .expect_error(400, "malformed_json");
}

#[tokio::test]
async fn unknown_addresses_and_methods_answer_in_the_error_shape() {
    let app = spawn_app().await;
    app.get("/nowhere", None)
        .await
        .expect_error(404, "not_found");
    app.delete("/seasons", None)
        .await
        .expect_error(405, "method_not_allowed");
    app.get("/classes/not-a-uuid", None)
        .await
        .expect_error(401, "unauthenticated");
    let admin = app.programme_admin().await;
    app.get("/classes/not-a-uuid", Some(&admin))
        .await
        .expect_error(404, "not_found");
}
