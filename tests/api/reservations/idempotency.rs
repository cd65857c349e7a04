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
