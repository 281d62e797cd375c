//! The demo school: seeded through the API, playable, and harmless to seed twice.

use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_demo_seeds_a_playable_school_and_is_harmless_to_run_twice() {
    let app = spawn_app().await;
    let first = carbon_league::demo::seed(&app.state)
        .await
        .expect("the demo seeds");
    let second = carbon_league::demo::seed(&app.state)
        .await
        .expect("seeding the demo again is harmless");
    assert_eq!(second.to_string(), first.to_string());
    assert_eq!(second.challenge_id, first.challenge_id);

    // The teacher signs in through HTTP and finds both classes, of different sizes.
    let teacher = app
        .login(&first.teacher_username, &first.teacher_password)
        .await;
    let classes = app.get("/classes", Some(&teacher)).await.expect(200);
    let classes = classes["items"].as_array().expect("a page of classes");
    assert_eq!(classes.len(), 2, "no class was created twice: {classes:?}");
    let size = |name: &str| -> i64 {
        classes
            .iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c["student_count"].as_i64())
            .unwrap_or_else(|| panic!("class {name} in {classes:?}"))
    };
    assert_eq!(size("Sunflowers"), 12);
    assert_eq!(size("Maples"), 7);
    for class in &first.classes {
        assert_eq!(size(&class.name), class.students);
    }

    // The printed join codes work for a new student.
    for class in &first.classes {
        let (_, token) = app.join(&class.join_code, "Newcomer").await;
        let me = app.get("/me", Some(&token)).await.expect(200);
        assert_eq!(me["class_id"], class.id.to_string(), "{me}");
    }

    // The challenge's board lists both classes, each with verified points.
    let challenge = app
        .get(
            &format!("/challenges/{}", first.challenge_id),
            Some(&teacher),
        )
        .await
        .expect(200);
    assert_eq!(challenge["kind"], "class_vs_class");
    assert_eq!(challenge["status"], "active", "{challenge}");
    let states: Vec<&Value> = challenge["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .map(|p| &p["state"])
        .collect();
    assert_eq!(states, vec!["accepted", "accepted"], "{challenge}");
    let board = app
        .get(&format!("/leaderboards/{}", first.board), Some(&teacher))
        .await
        .expect(200);
    let entries = board["entries"].as_array().expect("entries");
    let mut listed: Vec<String> = entries
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();
    listed.sort();
    let mut expected: Vec<String> = first.classes.iter().map(|c| c.id.to_string()).collect();
    expected.sort();
    assert_eq!(listed, expected, "{board}");
    assert!(
        entries.iter().all(|e| e["points"].as_i64() > Some(0)),
        "{board}"
    );
}
