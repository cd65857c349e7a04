//! Fair holds: a guest holds at most `INNKEEPER_MAX_LIVE_HOLDS` pending reservations, so
//! one guest (or one bot) cannot hold every room; staff are exempt. Postgres enforces it,
//! so it holds across server processes too.

use futures::future::join_all;
use innkeeper::config::InventoryMode;
use uuid::Uuid;

use crate::helpers::{assert_problem, fresh_database, stay, Options, TestApp};

use super::MODES;

fn with_holds(limit: &str) -> Vec<(&'static str, String)> {
    vec![("INNKEEPER_MAX_LIVE_HOLDS", limit.to_owned())]
}

#[tokio::test]
async fn a_fourth_pending_hold_is_refused_until_one_ends() {
    for mode in MODES {
        let app = TestApp::spawn_with(Options {
            mode,
            env: with_holds("3"),
            ..Options::default()
        })
        .await;
        let (hotel, room_type) = app.hotel_with_inventory(1.0, 10, app.night(1), 2).await;
        let night = app.night(1);
        let book = |id| stay(id, hotel, room_type, night, app.night(2), 1);
        let mut held = Vec::new();
        for _ in 0..3 {
            let id = Uuid::new_v4();
            assert_eq!(app.reserve("hoarder", &book(id)).await.0, 201, "{mode:?}");
            held.push(id);
        }
        let fourth = Uuid::new_v4();
        let refused = app.reserve("hoarder", &book(fourth)).await;
        assert_problem(&refused, 409, "hold_limit");
        assert_eq!(app.reserved_in_postgres(hotel, room_type, night).await, 3);
        if mode == InventoryMode::Redis {
            assert_eq!(
                app.reserved_in_redis(hotel, room_type, night).await,
                Some(3),
                "the refused hold's deduction was not given back"
            );
        }
        // A replay of a held reservation is still a replay, not a refusal.
        assert_eq!(app.reserve("hoarder", &book(held[0])).await.0, 200);
        // Another guest is not affected, and staff are exempt.
        assert_eq!(
            app.reserve("someone-else", &book(Uuid::new_v4())).await.0,
            201
        );
        for _ in 0..4 {
            let (status, body) = app
                .post("/v1/reservations", &app.staff(), &book(Uuid::new_v4()))
                .await;
            assert_eq!(status, 201, "{body}");
        }
        // A confirmed reservation holds no more: the guest may book again.
        let (status, _) = app
            .post(
                &format!("/v1/reservations/{}/confirm", held[0]),
                &app.staff(),
                &serde_json::json!({}),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(app.reserve("hoarder", &book(fourth)).await.0, 201);
    }
}

/// Two server processes on the same database: a guest racing four bookings through both
/// at once gets exactly three.
#[tokio::test]
async fn the_limit_holds_across_two_servers() {
    let database_url = fresh_database().await;
    let first = TestApp::spawn_with(Options {
        database_url: Some(database_url.clone()),
        env: with_holds("3"),
        ..Options::default()
    })
    .await;
    let second = TestApp::spawn_with(Options {
        database_url: Some(database_url),
        env: with_holds("3"),
        ..Options::default()
    })
    .await;
    let (hotel, room_type) = first.hotel_with_inventory(1.0, 10, first.night(1), 2).await;
    for round in 0..3 {
        let guest = format!("racer-{round}");
        let answers = join_all((0..4).map(|n| {
            let app = if n % 2 == 0 { &first } else { &second };
            let booking = stay(
                Uuid::new_v4(),
                hotel,
                room_type,
                app.night(1),
                app.night(2),
                1,
            );
            let guest = guest.clone();
            async move { app.reserve(&guest, &booking).await }
        }))
        .await;
        let mut statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, vec![201, 201, 201, 409], "{answers:?}");
        assert!(answers
            .iter()
            .any(|(status, body)| *status == 409 && body["code"] == "hold_limit"));
    }
    assert_eq!(
        first
            .reserved_in_postgres(hotel, room_type, first.night(1))
            .await,
        9
    );
}
