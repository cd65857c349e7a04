//! Postgres re-checks what Redis admitted, commits in groups, and stays the judge when Redis is wrong, flushed or the commit path fails.

use futures::future::join_all;
use innkeeper::config::InventoryMode;
use innkeeper::devservices::{Durability, RedisServer};
use uuid::Uuid;

use crate::helpers::{assert_problem, stay, Options, TestApp};

use super::available;

#[tokio::test]
async fn bookings_stay_correct_across_a_flushed_redis() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("flushed-{}", Uuid::new_v4().simple()));
    let private_redis = RedisServer::start(&dir, Durability::Throwaway).unwrap();
    let app = TestApp::spawn_with(Options {
        redis_url: Some(private_redis.url()),
        ..Options::default()
    })
    .await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 3, app.night(1), 2).await;
    let flush = || async {
        let mut connection = app.redis.connection().await.unwrap().handle();
        redis::cmd("FLUSHALL")
            .query_async::<()>(&mut connection)
            .await
            .unwrap();
        redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async::<()>(&mut connection)
            .await
            .unwrap();
    };
    let mut statuses = Vec::new();
    for n in 0..5 {
        flush().await;
        let (status, _) = app
            .reserve(
                &format!("g{n}"),
                &stay(
                    Uuid::new_v4(),
                    hotel,
                    room_type,
                    app.night(1),
                    app.night(3),
                    1,
                ),
            )
            .await;
        statuses.push(status);
    }
    assert_eq!(statuses, vec![201, 201, 201, 409, 409]);
    for day in 1..3 {
        assert_eq!(
            app.reserved_in_postgres(hotel, room_type, app.night(day))
                .await,
            3
        );
    }
    // After one more flush the next read loads the truth back from Postgres.
    flush().await;
    assert_eq!(available(&app, hotel, 1, 3).await["available"], 0);
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, app.night(1)).await,
        Some(3)
    );
    drop(private_redis);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_postgres_recheck_refuses_what_redis_wrongly_allows() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 1, app.night(1), 1).await;
    let (status, _) = app
        .reserve(
            "first",
            &stay(
                Uuid::new_v4(),
                hotel,
                room_type,
                app.night(1),
                app.night(2),
                1,
            ),
        )
        .await;
    assert_eq!(status, 201);
    // Make Redis believe the night is free again.
    app.set_reserved_in_redis(hotel, room_type, app.night(1), 0)
        .await;

    let answer = app
        .reserve(
            "second",
            &stay(
                Uuid::new_v4(),
                hotel,
                room_type,
                app.night(1),
                app.night(2),
                1,
            ),
        )
        .await;
    assert_problem(&answer, 409, "sold_out");
    assert_eq!(app.count("reservations").await, 1);
    assert_eq!(
        app.reserved_in_postgres(hotel, room_type, app.night(1))
            .await,
        1
    );
    // The deduction Redis made for the refused booking was given back.
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, app.night(1)).await,
        Some(0)
    );
}

/// Bookings Redis admitted for one room type commit together: ten queued at once share one
/// transaction (one xmin), and each keeps its own outcome.
#[tokio::test]
async fn admitted_bookings_of_one_room_type_commit_as_a_group() {
    use innkeeper::booking::group_commit::GroupCommitter;
    use innkeeper::domain::NewReservation;
    use innkeeper::store::reservations::Committed;

    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 20, app.night(1), 2).await;
    let committer = std::sync::Arc::new(GroupCommitter::new(
        app.db.clone(),
        std::time::Duration::from_secs(10),
        None,
    ));
    let stay = |guest: usize| app.two_nights(hotel, room_type, &format!("g{guest}"));
    let mut stays: Vec<NewReservation> = (0..10).map(stay).collect();
    // A replay of the first one within the same batch: it must come back as Exists.
    stays.push(stays[0].clone());
    // On this single-threaded runtime every commit is queued before the drainer first runs.
    let outcomes = join_all(stays.iter().cloned().map(|s| committer.commit(s))).await;
    let created = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Committed::Created(_))))
        .count();
    assert_eq!(created, 10, "{outcomes:?}");
    assert!(
        matches!(outcomes[10], Ok(Committed::Exists)),
        "{:?}",
        outcomes[10]
    );
    let client = app.db.get().await.unwrap();
    let transactions: i64 = client
        .query_one("SELECT count(DISTINCT xmin::text) FROM reservations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(transactions, 1);
    assert_eq!(
        app.reserved_in_postgres(hotel, room_type, app.night(1))
            .await,
        10
    );

    // One booking refused under the row locks sends the batch one by one: the others
    // still commit.
    client
        .execute(
            "UPDATE room_type_inventory SET total_reserved = capacity WHERE date = $1",
            &[&app.night(2)],
        )
        .await
        .unwrap();
    let with_dates = |guest, check_in, check_out| {
        let mut booking = stay(guest);
        booking.stay.check_in = check_in;
        booking.stay.check_out = check_out;
        booking
    };
    let mut late = vec![with_dates(99, app.night(2), app.night(3))];
    late.extend((100..103).map(|guest| with_dates(guest, app.night(1), app.night(2))));
    let outcomes = join_all(late.into_iter().map(|s| committer.commit(s))).await;
    assert!(
        matches!(outcomes[0], Ok(Committed::SoldOut)),
        "{outcomes:?}"
    );
    assert!(
        outcomes[1..]
            .iter()
            .all(|o| matches!(o, Ok(Committed::Created(_)))),
        "{outcomes:?}"
    );
    assert_eq!(
        app.reserved_in_postgres(hotel, room_type, app.night(1))
            .await,
        13
    );
    assert_eq!(app.count("reservations").await, 13);
}

/// A batch books whole, in one statement and one transaction, with its nights summed
/// across the batch; when any booking of it does not fit, each runs on its own and gets
/// its own outcome: a night that filled up within the batch, a restriction, a guest at the
/// most holds allowed, a night not on sale, an id stored before.
#[tokio::test]
async fn a_batch_books_whole_or_each_booking_on_its_own() {
    use innkeeper::booking::group_commit::GroupCommitter;
    use innkeeper::booking::BookingError;
    use innkeeper::domain::{NewReservation, Restriction};
    use innkeeper::store::reservations::Committed;

    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 4, app.night(1), 6).await;
    let committer = std::sync::Arc::new(GroupCommitter::new(
        app.db.clone(),
        std::time::Duration::from_secs(10),
        None,
    ));
    let booking = |guest: &str, first: u64, last: u64| {
        let mut booking = app.two_nights(hotel, room_type, guest);
        booking.stay.check_in = app.night(first);
        booking.stay.check_out = app.night(last);
        booking
    };
    let client = app.db.get().await.unwrap();
    let transactions = || async {
        client
            .query_one("SELECT count(DISTINCT xmin::text) FROM reservations", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    // On this single-threaded runtime every commit of a join_all is queued before the
    // drainer first runs, so each join_all below is one batch.
    let commit_all = |batch: Vec<NewReservation>| {
        join_all(batch.into_iter().map(|booking| committer.commit(booking)))
    };

    let whole = commit_all((0..3).map(|n| booking(&format!("g{n}"), 1, 3)).collect()).await;
    assert!(
        whole.iter().all(|o| matches!(o, Ok(Committed::Created(_)))),
        "{whole:?}"
    );
    assert_eq!(transactions().await, 1);
    for night in 1..3 {
        assert_eq!(
            app.reserved_in_postgres(hotel, room_type, app.night(night))
                .await,
            3
        );
    }

    // One room is left on nights 1 and 2: of two more, the batch cannot book both.
    let both = commit_all(vec![booking("g3", 1, 3), booking("g4", 2, 3)]).await;
    assert!(matches!(both[0], Ok(Committed::Created(_))), "{both:?}");
    assert!(matches!(both[1], Ok(Committed::SoldOut)), "{both:?}");
    assert_eq!(
        app.reserved_in_postgres(hotel, room_type, app.night(2))
            .await,
        4
    );

    client
        .execute(
            "INSERT INTO room_type_restrictions (hotel_id, room_type_id, date, stop_sell) \
             VALUES ($1, $2, $3, true)",
            &[&hotel, &room_type, &app.night(6)],
        )
        .await
        .unwrap();
    let limited = |guest: &str| {
        let mut booking = booking(guest, 3, 4);
        booking.hold_limit = Some(1);
        booking
    };
    let greedy = limited("greedy");
    let held = committer.commit(greedy.clone()).await;
    assert!(matches!(held, Ok(Committed::Created(_))), "{held:?}");
    // Each batch pairs a booking that fits with one that does not: the first is created
    // and the second gets its own outcome, from a transaction of its own.
    type Check<'a> = &'a dyn Fn(&Result<Committed, BookingError>) -> bool;
    let restricted = |outcome: &Result<Committed, BookingError>| {
        matches!(
            outcome,
            Ok(Committed::Restricted { restriction: Restriction::StopSell, night })
                if *night == app.night(6)
        )
    };
    let pairs: [(NewReservation, Check); 3] = [
        (limited("greedy"), &|o| {
            matches!(o, Ok(Committed::HoldLimit))
        }),
        (booking("restricted", 6, 7), &restricted),
        (booking("not on sale", 7, 8), &|o| {
            matches!(o, Ok(Committed::SoldOut))
        }),
    ];
    for (n, (unfit, expected)) in pairs.into_iter().enumerate() {
        let before = transactions().await;
        let pair = commit_all(vec![booking(&format!("fits{n}"), 3, 4), unfit]).await;
        assert!(matches!(pair[0], Ok(Committed::Created(_))), "{pair:?}");
        assert!(expected(&pair[1]), "{pair:?}");
        assert_eq!(transactions().await, before + 1, "{pair:?}");
    }
    // An id stored before does not break the batch: it is found, the other booked, in one
    // transaction.
    let before = transactions().await;
    let pair = commit_all(vec![booking("fits", 4, 5), greedy]).await;
    assert!(matches!(pair[0], Ok(Committed::Created(_))), "{pair:?}");
    assert!(matches!(pair[1], Ok(Committed::Exists)), "{pair:?}");
    assert_eq!(transactions().await, before + 1);
    assert_eq!(
        app.reserved_in_postgres(hotel, room_type, app.night(3))
            .await,
        4
    );
    assert_eq!(app.count("reservations").await, 9);
}

/// `book_stay()` answering an outcome the code does not know (a migration and a binary
/// out of step) is an error: answered 500, nothing booked, and in redis mode the
/// deduction given back. Reading it as sold out would turn a guest away for nothing.
#[tokio::test]
async fn an_unknown_book_stay_outcome_is_an_error_not_sold_out() {
    for mode in [InventoryMode::Redis, InventoryMode::Db] {
        let app = TestApp::spawn_with_mode(mode).await;
        let (hotel, room_type) = app.hotel_with_inventory(1.0, 5, app.night(1), 2).await;
        app.db
            .get()
            .await
            .unwrap()
            .batch_execute(
                "CREATE OR REPLACE FUNCTION book_stay(p_reservation_id uuid, p_hotel_id bigint, \
                 p_room_type_id bigint, p_guest_id text, p_check_in date, p_check_out date, \
                 p_rooms integer, p_now timestamptz, p_hold_expires_at timestamptz, \
                 p_max_holds integer, p_override boolean) \
                 RETURNS TABLE (outcome text, total_cents bigint, currency text, \
                                restriction text, restricted_night date) \
                 LANGUAGE sql AS $$ SELECT 'waitlisted'::text, 0::bigint, ''::text, NULL::text, \
                                           NULL::date $$",
            )
            .await
            .unwrap();
        let booking = stay(
            Uuid::new_v4(),
            hotel,
            room_type,
            app.night(1),
            app.night(3),
            1,
        );
        assert_problem(&app.reserve("g", &booking).await, 500, "internal");
        for night in [app.night(1), app.night(2)] {
            assert_eq!(app.reserved_in_postgres(hotel, room_type, night).await, 0);
            if mode == InventoryMode::Redis {
                assert_eq!(
                    app.reserved_in_redis(hotel, room_type, night).await,
                    Some(0),
                    "the deduction was not given back"
                );
            }
        }
    }
}

/// A group-commit drainer that panics (`INNKEEPER_FAULT=panic_in_group_commit` makes the
/// first one do so) wedges nothing: its booking is answered 503 within its deadline, the
/// deduction given back, and the next bookings of the same shard commit.
#[tokio::test]
async fn a_panicking_group_commit_wedges_nothing() {
    let app = TestApp::spawn_with(crate::helpers::Options {
        env: vec![("INNKEEPER_FAULT", "panic_in_group_commit".into())],
        ..Default::default()
    })
    .await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 5, app.night(1), 1).await;
    let night = app.night(1);
    let first = stay(Uuid::new_v4(), hotel, room_type, night, app.night(2), 1);
    assert_problem(&app.reserve("g1", &first).await, 503, "unavailable");
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, night).await,
        Some(0)
    );
    let answers = join_all((0..3).map(|n| {
        let booking = stay(Uuid::new_v4(), hotel, room_type, night, app.night(2), 1);
        let app = &app;
        async move { app.reserve(&format!("g{n}"), &booking).await.0 }
    }))
    .await;
    assert_eq!(answers, vec![201, 201, 201]);
    assert_eq!(app.reserved_in_postgres(hotel, room_type, night).await, 3);
    // The retry of the first booking commits as well.
    assert_eq!(app.reserve("g1", &first).await.0, 201);
}

/// Every committed deduction is marked in Redis by its group: the marker becomes 'c' for a
/// day and the id's in-flight entry is settled, for batches spanning several hotels (one
/// commit.lua call per hotel).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_committed_group_marks_every_deduction_of_every_hotel() {
    let app = TestApp::spawn().await;
    let night = app.night(1);
    let hotels = [
        app.hotel_with_inventory(1.0, 20, night, 1).await,
        app.hotel_with_inventory(1.0, 20, night, 1).await,
        app.hotel_with_inventory(1.0, 20, night, 1).await,
    ];
    let bookings: Vec<(i64, Uuid)> = (0..24).map(|n| (hotels[n % 3].0, Uuid::new_v4())).collect();
    let answers = join_all(bookings.iter().enumerate().map(|(n, (hotel, id))| {
        let room_type = hotels.iter().find(|(h, _)| h == hotel).unwrap().1;
        let body = stay(*id, *hotel, room_type, night, app.night(2), 1);
        let app = &app;
        async move { app.reserve(&format!("g{n}"), &body).await.0 }
    }))
    .await;
    assert!(answers.iter().all(|status| *status == 201), "{answers:?}");

    let keys = innkeeper::inventory::keys::KeyLayout::new(&app.prefix);
    let mut connection = app.redis_connection().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut unmarked = Vec::new();
        for (hotel, id) in &bookings {
            let marker: Option<String> = redis::cmd("GET")
                .arg(keys.deduction(*hotel, (*id).into()))
                .query_async(&mut connection)
                .await
                .unwrap();
            if marker.as_deref() != Some("c") {
                unmarked.push(id);
            }
        }
        // A committed deduction's entry stays, settled ('='), until a reconciler pass.
        let mut in_flight = 0;
        for (hotel, _) in &hotels {
            let entries = app.cache.in_flight(*hotel).await.unwrap();
            in_flight += entries
                .iter()
                .filter(|(_, entry)| !entry.starts_with('='))
                .count();
        }
        if unmarked.is_empty() && in_flight == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "unmarked: {unmarked:?}; still in flight: {in_flight}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let ttl: i64 = redis::cmd("TTL")
        .arg(keys.deduction(bookings[0].0, bookings[0].1.into()))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!((23 * 3600..=24 * 3600).contains(&ttl), "{ttl}");
}
