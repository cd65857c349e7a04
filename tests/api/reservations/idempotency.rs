//! The reservation id is the idempotency key: retries book once.

use futures::future::join_all;
use innkeeper::config::InventoryMode;
use uuid::Uuid;

use crate::helpers::{stay, TestApp};

use super::MODES;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_storm_books_once() {
    for mode in MODES {
        let app = TestApp::spawn_with_mode(mode).await;
        let (hotel, room_type) = app.hotel_with_inventory(1.0, 3, app.night(1), 2).await;
        let body = stay(
            Uuid::new_v4(),
            hotel,
            room_type,
            app.night(1),
            app.night(3),
            2,
        );
        let answers = join_all((0..50).map(|_| app.reserve("storm", &body))).await;
        let created = answers.iter().filter(|(status, _)| *status == 201).count();
        assert_eq!(created, 1, "{mode:?}");
        for (status, answer) in &answers {
            match status {
                201 | 200 => assert_eq!(answer["reservation_id"], body["reservation_id"]),
                409 => assert_eq!(answer["code"], "request_in_progress", "{answer}"),
                other => panic!("{mode:?}: unexpected {other}: {answer}"),
            }
        }
        assert_eq!(app.count("reservations").await, 1);
        for day in 1..3 {
            assert_eq!(
                app.reserved_in_postgres(hotel, room_type, app.night(day))
                    .await,
                2
            );
            if mode == InventoryMode::Redis {
                assert_eq!(
                    app.reserved_in_redis(hotel, room_type, app.night(day))
                        .await,
                    Some(2)
                );
            }
        }
    }
}

/// A reservation id belongs to the guest who booked it first. Another guest sending it,
/// with the same body or another, gets 422 `idempotency_conflict` with the very words a
/// changed body gets, never the reservation, and books nothing; reading or canceling it
/// answers 404. (Ids are random UUIDs: only who already holds one can learn it is taken.)
#[tokio::test]
async fn another_guests_reservation_id_gives_nothing_away() {
    for mode in MODES {
        let app = TestApp::spawn_with_mode(mode).await;
        let (hotel, room_type) = app.hotel_with_inventory(1.0, 5, app.night(1), 3).await;
        let id = Uuid::new_v4();
        let body = stay(id, hotel, room_type, app.night(1), app.night(2), 1);
        assert_eq!(app.reserve("ada", &body).await.0, 201);
        let other_body = stay(id, hotel, room_type, app.night(2), app.night(3), 1);
        let same = app.reserve("mallory", &body).await;
        let changed = app.reserve("mallory", &other_body).await;
        let own_changed = app.reserve("ada", &other_body).await;
        for answer in [&same, &changed, &own_changed] {
            assert_eq!(answer.0, 422, "{mode:?}: {answer:?}");
            assert_eq!(answer.1["code"], "idempotency_conflict");
            assert_eq!(answer.1["detail"], own_changed.1["detail"]);
            assert!(!answer.1.to_string().contains("ada"), "{answer:?}");
        }
        let mallory = app.guest("mallory");
        for (method, path) in [
            (reqwest::Method::GET, format!("/v1/reservations/{id}")),
            (
                reqwest::Method::POST,
                format!("/v1/reservations/{id}/cancel"),
            ),
        ] {
            let (status, answer) = app.send(method, &path, Some(&mallory), None).await;
            assert_eq!((status, answer["code"].as_str()), (404, Some("not_found")));
        }
        for night in [app.night(1), app.night(2)] {
            let expected = i64::from(night == app.night(1));
            assert_eq!(
                app.reserved_in_postgres(hotel, room_type, night).await,
                expected
            );
            if mode == InventoryMode::Redis {
                assert_eq!(
                    app.reserved_in_redis(hotel, room_type, night).await,
                    Some(expected),
                    "{mode:?}: a refused request left a deduction"
                );
            }
        }
    }
}
