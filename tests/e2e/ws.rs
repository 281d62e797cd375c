//! The WebSocket `/api/v1/ws`: authentication, live boards, permissions, abuse, limits, and
//! fan-out across two server nodes.

use std::time::Duration;

use schema::league::SubmitBehavior;
use schema::ws::{ClientMsg, PROTOCOL_VERSION, ServerMsg, close};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::ws_client::WsClient;
use crate::helpers::{
    Backend, TestApp, World, only_on, spawn_app, spawn_peer, spawn_with, test_settings,
};

/// A meatless meal eaten now, as a student reports it.
fn meatless_meal(key: &str) -> SubmitBehavior {
    SubmitBehavior {
        behavior: "meatless_meal".into(),
        quantity: 1,
        occurred_at: time::OffsetDateTime::now_utc(),
        idempotency_key: key.into(),
        station_code: None,
        station_id: None,
        note: None,
    }
}

/// A world with an active season.
async fn league(app: &TestApp) -> World {
    let world = app.world().await;
    app.active_season(&world.admin).await;
    world
}

/// The student submits a meatless meal over `student`'s socket and the teacher approves it over
/// `teacher`'s; returns the submission.
async fn submit_and_approve(student: &mut WsClient, teacher: &mut WsClient, key: &str) -> Value {
    let id = student.new_id();
    let submission = student
        .request(ClientMsg::Submit {
            id,
            submission: meatless_meal(key),
        })
        .await
        .ok();
    assert_eq!(submission["status"], "pending", "{submission}");
    let id = teacher.new_id();
    let decided = teacher
        .request(ClientMsg::Approve {
            id,
            submission_ids: vec![
                serde_json::from_value(submission["id"].clone()).expect("a submission id"),
            ],
        })
        .await
        .ok();
    assert_eq!(decided["refused"], json!([]), "{decided}");
    assert_eq!(decided["done"][0]["status"], "verified", "{decided}");
    submission
}

/// The points a board's data shows for `member`, if it lists them.
fn points_of(board: &Value, member: &str) -> Option<i64> {
    board["entries"]
        .as_array()?
        .iter()
        .find(|e| e["id"] == member)
        .and_then(|e| e["points"].as_i64())
}

#[tokio::test]
async fn the_server_says_hello_first_and_closes_a_client_that_never_authenticates_with_4001() {
    let (mut settings, db) = test_settings().await;
    settings.ws.auth_deadline_ms = 300;
    let app = spawn_with(settings, db).await;
    let mut client = WsClient::connect(app.addr).await;
    match client.recv().await {
        ServerMsg::Hello {
            protocol,
            auth_deadline_ms,
            max_frame_bytes,
        } => {
            assert_eq!(protocol, PROTOCOL_VERSION);
            assert_eq!(auth_deadline_ms, 300);
            assert_eq!(max_frame_bytes, 16384);
        }
        other => panic!("expected hello, got {other:?}"),
    }
    client.expect_close(close::AUTH_TIMEOUT).await;
}

#[tokio::test]
async fn a_bad_token_gets_an_error_then_close_4002() {
    let app = spawn_app().await;
    let mut client = WsClient::connect(app.addr).await;
    assert!(matches!(client.recv().await, ServerMsg::Hello { .. }));
    let code = client
        .request(ClientMsg::Auth {
            id: "a1".into(),
            token: "not-a-token".into(),
        })
        .await
        .error_code();
    assert_eq!(code, "invalid_token");
    client.expect_close(close::AUTH_FAILED).await;
}

#[tokio::test]
async fn a_first_frame_that_is_not_auth_gets_an_error_then_close_4002() {
    let app = spawn_app().await;
    let mut client = WsClient::connect(app.addr).await;
    assert!(matches!(client.recv().await, ServerMsg::Hello { .. }));
    let code = client
        .request(ClientMsg::Ping { id: "p1".into() })
        .await
        .error_code();
    assert_eq!(code, "unauthenticated");
    client.expect_close(close::AUTH_FAILED).await;
}

#[tokio::test]
async fn students_subscribed_to_their_class_board_see_it_change_within_a_second_of_their_teachers_approval()
 {
    let app = spawn_app().await;
    let world = league(&app).await;
    let (panda, panda_token) = app.join(&world.join_code, "Panda").await;
    let (_, tiger_token) = app.join(&world.join_code, "Tiger").await;
    let topic = format!("board:class:{}", world.class);

    let mut panda_ws = WsClient::signed_in(app.addr, &panda_token).await;
    let mut tiger_ws = WsClient::signed_in(app.addr, &tiger_token).await;
    let mut teacher_ws = WsClient::signed_in(app.addr, &world.teacher).await;
    let mut watchers = Vec::new();
    for ws in [&mut panda_ws, &mut tiger_ws] {
        // The snapshot comes first: nothing of the class's board is ever sent before it.
        let (seq, data) = ws.subscribe(&topic).await;
        assert_eq!(data["board"], format!("class:{}", world.class));
        assert_eq!(points_of(&data, &panda), None, "no points yet: {data}");
        watchers.push(seq);
    }

    let approved_at = tokio::time::Instant::now();
    submit_and_approve(&mut panda_ws, &mut teacher_ws, "meal-1").await;
    for (ws, snapshot_seq) in [&mut panda_ws, &mut tiger_ws].into_iter().zip(watchers) {
        let (seq, data) = ws
            .event_within(&topic, Duration::from_secs(1))
            .await
            .expect("the board changes within 1 s of the approval");
        assert!(approved_at.elapsed() < Duration::from_secs(2));
        assert_eq!(seq, snapshot_seq + 1, "events number on from the snapshot");
        assert_eq!(points_of(&data, &panda), Some(1), "{data}");
    }

    // Reading the board over the socket answers the same body.
    let id = tiger_ws.new_id();
    let board = tiger_ws
        .request(ClientMsg::Board {
            id,
            board: format!("class:{}", world.class),
            limit: Some(5),
            around: None,
            k: None,
        })
        .await
        .ok();
    assert_eq!(points_of(&board, &panda), Some(1), "{board}");
}

#[tokio::test]
async fn a_second_event_on_a_board_carries_the_next_sequence_number() {
    let app = spawn_app().await;
    let world = league(&app).await;
    let (panda, panda_token) = app.join(&world.join_code, "Panda").await;
    let topic = format!("board:class:{}", world.class);
    let mut panda_ws = WsClient::signed_in(app.addr, &panda_token).await;
    let mut teacher_ws = WsClient::signed_in(app.addr, &world.teacher).await;
    let (snapshot_seq, _) = teacher_ws.subscribe(&topic).await;

    submit_and_approve(&mut panda_ws, &mut teacher_ws, "meal-1").await;
    let (first, data) = teacher_ws
        .event_within(&topic, Duration::from_secs(1))
        .await
        .expect("the first change");
    assert_eq!(first, snapshot_seq + 1);
    assert_eq!(points_of(&data, &panda), Some(1));

    submit_and_approve(&mut panda_ws, &mut teacher_ws, "meal-2").await;
    let (second, data) = teacher_ws
        .event_within(&topic, Duration::from_secs(1))
        .await
        .expect("the second change");
    assert_eq!(second, first + 1);
    assert_eq!(points_of(&data, &panda), Some(2));

    // A late subscriber starts from the latest board, numbered as the last event.
    let mut late = WsClient::signed_in(app.addr, &panda_token).await;
    let (seq, data) = late.subscribe(&topic).await;
    assert_eq!(seq, second);
    assert_eq!(points_of(&data, &panda), Some(2));
}

#[tokio::test]
async fn a_student_is_refused_the_moderation_queue_and_another_schools_board_and_stays_connected() {
    let app = spawn_app().await;
    let world = league(&app).await;
    let other_school = app.school(&world.admin, "Jinghong No.3 Middle").await;
    let other_head = app
        .staff(&world.admin, &other_school, "admins", "head.jinghong")
        .await;
    let other_teacher = app
        .staff(&other_head, &other_school, "teachers", "teacher.wang")
        .await;
    let (other_class, _) = app.class(&other_teacher, 7, "1班").await;
    let (_, token) = app.join(&world.join_code, "Panda").await;
    let mut ws = WsClient::signed_in(app.addr, &token).await;

    for topic in [
        format!("moderation:{}", world.class),
        format!("board:class:{other_class}"),
    ] {
        let id = ws.new_id();
        let code = ws
            .request(ClientMsg::Subscribe { id, topic })
            .await
            .error_code();
        assert_eq!(code, "forbidden");
    }
    let id = ws.new_id();
    let code = ws
        .request(ClientMsg::Subscribe {
            id,
            topic: "weather:tomorrow".into(),
        })
        .await
        .error_code();
    assert_eq!(code, "unknown_topic");
    ws.ping().await;
    // Their own class board is theirs to follow.
    ws.subscribe(&format!("board:class:{}", world.class)).await;
}

#[tokio::test]
async fn a_two_megabyte_frame_and_a_thousand_garbage_frames_leave_the_server_and_other_clients_unharmed()
 {
    let app = spawn_app().await;
    let world = league(&app).await;
    let (panda, panda_token) = app.join(&world.join_code, "Panda").await;
    let (_, vandal_token) = app.join(&world.join_code, "Vandal").await;
    let topic = format!("board:class:{}", world.class);
    let mut good = WsClient::signed_in(app.addr, &panda_token).await;
    let mut teacher = WsClient::signed_in(app.addr, &world.teacher).await;
    let (snapshot_seq, _) = good.subscribe(&topic).await;

    // 2 MB is far above the transport limit: closed with 1009 (or cut off while still sending).
    let mut huge = WsClient::connect(app.addr).await;
    let _ = huge.send_text("x".repeat(2 * 1024 * 1024)).await;
    match huge.close_code().await {
        Ok(code) => assert_eq!(code, Some(close::MESSAGE_TOO_BIG)),
        // The server stops reading at the frame's header; the rest of it may reset the socket
        // before the close frame is read.
        Err(_reset) => {}
    }

    // Garbage: an error reply for each bad frame up to the limit, then 4004.
    let mut vandal = WsClient::signed_in(app.addr, &vandal_token).await;
    for i in 0..1000 {
        if vandal.send_text(format!("{{garbage {i}")).await.is_err() {
            break;
        }
    }
    let mut errors = 0;
    while let Some(msg) = vandal.recv_within(Duration::from_millis(500)).await {
        match msg {
            ServerMsg::Error { code, id, .. } => {
                assert_eq!(code, "malformed_message");
                assert_eq!(id, None);
                errors += 1;
            }
            other => panic!("expected errors, got {other:?}"),
        }
        if errors == 20 {
            break;
        }
    }
    assert_eq!(
        errors, 20,
        "one error per bad frame up to ws.max_bad_frames"
    );
    vandal.expect_close(close::ABUSE).await;

    // The well-behaved client still gets answers and board events; the server is alive.
    good.ping().await;
    submit_and_approve(&mut good, &mut teacher, "meal-1").await;
    let (seq, data) = good
        .event_within(&topic, Duration::from_secs(1))
        .await
        .expect("a board event");
    assert_eq!(seq, snapshot_seq + 1);
    assert_eq!(points_of(&data, &panda), Some(1));
    app.get_root("/healthz").await.expect(200);
}

#[tokio::test]
async fn an_oversized_frame_under_the_transport_limit_gets_message_too_large_and_the_connection_lives_on()
 {
    let app = spawn_app().await;
    let world = app.world().await;
    let mut ws = WsClient::signed_in(app.addr, &world.teacher).await;
    let padded = json!({"type": "ping", "id": "big", "pad": "x".repeat(20 * 1024)}).to_string();
    ws.send_text(padded).await.expect("sent");
    match ws.recv().await {
        ServerMsg::Error { code, .. } => assert_eq!(code, "message_too_large"),
        other => panic!("expected an error, got {other:?}"),
    }
    // Binary frames and unknown types are refused the same way.
    ws.send_frame(Message::binary(vec![1u8, 2, 3]))
        .await
        .expect("sent");
    match ws.recv().await {
        ServerMsg::Error { code, .. } => assert_eq!(code, "binary_not_supported"),
        other => panic!("expected an error, got {other:?}"),
    }
    ws.send_text(r#"{"type":"dance","id":"d1"}"#)
        .await
        .expect("sent");
    match ws.recv().await {
        ServerMsg::Error { code, id, .. } => {
            assert_eq!(code, "unknown_type");
            assert_eq!(id.as_deref(), Some("d1"));
        }
        other => panic!("expected an error, got {other:?}"),
    }
    ws.ping().await;
}

#[tokio::test]
async fn an_approval_made_through_one_server_reaches_a_subscriber_connected_to_another() {
    if !only_on(Backend::Postgres, "two server nodes sharing Redis") {
        return;
    }
    let app = spawn_app().await;
    let world = league(&app).await;
    let peer = spawn_peer(&app).await;
    let (panda, panda_token) = app.join(&world.join_code, "Panda").await;
    let (_, tiger_token) = app.join(&world.join_code, "Tiger").await;
    let topic = format!("board:class:{}", world.class);

    let mut watcher = WsClient::signed_in(peer.addr, &tiger_token).await;
    let (snapshot_seq, _) = watcher.subscribe(&topic).await;
    let mut panda_ws = WsClient::signed_in(app.addr, &panda_token).await;
    let mut teacher_ws = WsClient::signed_in(app.addr, &world.teacher).await;
    submit_and_approve(&mut panda_ws, &mut teacher_ws, "meal-1").await;

    let (seq, data) = watcher
        .event_within(&topic, Duration::from_secs(2))
        .await
        .expect("the other node pushes the change");
    assert_eq!(seq, snapshot_seq + 1);
    assert_eq!(points_of(&data, &panda), Some(1), "{data}");
}

#[tokio::test]
async fn a_teacher_following_the_moderation_queue_sees_a_new_submission() {
    let app = spawn_app().await;
    let world = league(&app).await;
    let (panda, panda_token) = app.join(&world.join_code, "Panda").await;
    let topic = format!("moderation:{}", world.class);
    let mut teacher = WsClient::signed_in(app.addr, &world.teacher).await;
    let (seq, queue) = teacher.subscribe(&topic).await;
    assert_eq!(queue["items"], json!([]));

    let mut panda_ws = WsClient::signed_in(app.addr, &panda_token).await;
    let id = panda_ws.new_id();
    let submission = panda_ws
        .request(ClientMsg::Submit {
            id,
            submission: meatless_meal("meal-1"),
        })
        .await
        .ok();
    let (event_seq, data) = teacher
        .event_within(&topic, Duration::from_secs(2))
        .await
        .expect("the queue's event");
    assert_eq!(event_seq, seq + 1);
    assert_eq!(data["kind"], "submitted");
    assert_eq!(data["submission"]["id"], submission["id"]);
    assert_eq!(data["submission"]["student_id"], panda.as_str());
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_closed_with_4006() {
    let (mut settings, db) = test_settings().await;
    settings.ws.ping_interval_ms = 100;
    settings.ws.pong_timeout_ms = 200;
    let app = spawn_with(settings, db).await;
    let world = app.world().await;
    let mut ws = WsClient::signed_in(app.addr, &world.teacher).await;
    // Not reading means not answering the server's pings.
    tokio::time::sleep(Duration::from_millis(600)).await;
    ws.expect_close(close::PING_TIMEOUT).await;
}

#[tokio::test]
async fn a_connection_over_the_cap_is_closed_with_4005() {
    let (mut settings, db) = test_settings().await;
    settings.ws.max_connections = 1;
    let app = spawn_with(settings, db).await;
    let world = app.world().await;
    let mut first = WsClient::signed_in(app.addr, &world.teacher).await;
    let mut second = WsClient::connect(app.addr).await;
    second.expect_close(close::SERVER_FULL).await;
    first.ping().await;
    drop(first);
    // The place is given back when the first one leaves.
    let mut admitted = false;
    for _ in 0..50 {
        let mut ws = WsClient::connect(app.addr).await;
        if let Some(Ok(Message::Text(text))) = ws.next_frame(Duration::from_secs(1)).await {
            assert!(text.as_str().contains("\"hello\""), "{text}");
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted, "a place opens again");
}

#[tokio::test]
async fn a_server_shutting_down_closes_its_sockets_with_1001() {
    let mut app = spawn_app().await;
    let world = app.world().await;
    let mut ws = WsClient::signed_in(app.addr, &world.teacher).await;
    app.begin_shutdown();
    ws.expect_close(close::GOING_AWAY).await;
}
