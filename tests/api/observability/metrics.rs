//! The Prometheus series: all there from startup, labelled by route template, outcomes counted apart.

use std::collections::BTreeSet;

use reqwest::Method;
use uuid::Uuid;

use crate::helpers::{hotel_body, stay, TestApp};

use super::{find, scrape, value, Sample};

#[tokio::test]
async fn every_series_exists_from_startup() {
    let app = TestApp::spawn().await;
    let samples = scrape(&app.base).await;
    let mut missing = Vec::new();
    let mut expect = |name: &str, labels: &[(&str, &str)]| {
        if find(&samples, name, labels).is_none() {
            missing.push(format!("{name}{labels:?}"));
        }
    };
    // Each status a route's OpenAPI entry documents, and the 5xx any route may answer.
    for status in ["204", "401", "403", "404", "500", "503"] {
        expect(
            "innkeeper_http_requests_total",
            &[
                ("method", "DELETE"),
                ("route", "/v1/hotels/{hotel_id}/rooms/{room_id}"),
                ("status", status),
            ],
        );
    }
    for le in ["0.0001", "1", "10", "+Inf"] {
        expect(
            "innkeeper_http_request_duration_seconds_bucket",
            &[
                ("method", "PUT"),
                ("route", "/v1/hotels/{hotel_id}/rooms/{room_id}"),
                ("le", le),
            ],
        );
    }
    for outcome in [
        "created",
        "replayed",
        "sold_out",
        "sold_out_db_recheck",
        "idempotency_conflict",
        "in_progress",
        "not_found",
        "invalid",
        "unavailable",
        "error",
    ] {
        expect("innkeeper_reservations_total", &[("outcome", outcome)]);
    }
    for script in ["reserve", "commit", "release", "load_nights", "reconcile"] {
        expect(
            "innkeeper_inventory_script_duration_seconds_bucket",
            &[("script", script), ("le", "0.0005")],
        );
    }
    for operation in [
        "book",
        "end_stay",
        "confirm",
        "put_inventory",
        "expire_holds",
        "archive",
    ] {
        expect(
            "innkeeper_db_transaction_duration_seconds_count",
            &[("operation", operation)],
        );
    }
    for pool in [
        "innkeeper_db_pool_connections",
        "innkeeper_redis_pool_connections",
    ] {
        for state in ["idle", "in_use", "waiting", "max"] {
            expect(pool, &[("state", state)]);
        }
    }
    for backend in ["postgres", "redis"] {
        expect("innkeeper_backend_up", &[("backend", backend)]);
    }
    for name in [
        "innkeeper_reconciler_runs_total",
        "innkeeper_reconciler_drift_nights",
        "innkeeper_reconciler_repairs_total",
        "innkeeper_reconciler_last_success_timestamp_seconds",
        "innkeeper_reconciler_interval_seconds",
        "innkeeper_cache_keys",
        "innkeeper_holds_expired_total",
        "innkeeper_redis_fallbacks_total",
    ] {
        expect(name, &[]);
    }
    for pass in ["changes", "full"] {
        for name in [
            "innkeeper_reconciler_nights_checked",
            "innkeeper_reconciler_pass_duration_seconds",
        ] {
            expect(name, &[("shard", "1"), ("pass", pass)]);
        }
    }
    expect(
        "innkeeper_reconciler_round_progress_ratio",
        &[("shard", "1")],
    );
    for result in ["ok", "failed"] {
        expect("innkeeper_compensations_total", &[("result", result)]);
    }
    for outcome in ["succeeded", "failed"] {
        expect(
            "innkeeper_webhook_deliveries_total",
            &[("outcome", outcome)],
        );
    }
    for result in ["ok", "rejected", "unreachable"] {
        expect("innkeeper_webhook_attempts_total", &[("result", result)]);
    }
    expect(
        "innkeeper_webhook_oldest_undelivered_seconds",
        &[("shard", "1")],
    );
    for outcome in [
        "confirmed",
        "refund_requested",
        "duplicate",
        "bad_signature",
    ] {
        expect("innkeeper_payment_events_total", &[("outcome", outcome)]);
    }
    assert!(missing.is_empty(), "missing at startup: {missing:#?}");
    // Sampled at the scrape: this app's Postgres pool (8 in tests) and both backends.
    assert_eq!(
        value(
            &samples,
            "innkeeper_db_pool_connections",
            &[("state", "max")]
        ),
        8.0
    );
    assert_eq!(
        value(&samples, "innkeeper_backend_up", &[("backend", "postgres")]),
        1.0
    );
}

/// A booking of a hotel that does not exist, or of zero rooms, is the client's mistake:
/// counted as `not_found` and `invalid`, never as `error`, so a dashboard of failures
/// shows failures. (Other tests of this process book at the same time, so the counts are
/// compared as lower bounds, and `error` must not move for these requests alone: no test
/// here provokes one.)
#[tokio::test]
async fn client_mistakes_are_counted_apart_from_failures() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 5, app.night(1), 2).await;
    let before = scrape(&app.base).await;
    let count = |samples: &[Sample], outcome| {
        value(
            samples,
            "innkeeper_reservations_total",
            &[("outcome", outcome)],
        )
    };
    let unknown_hotel = stay(
        Uuid::new_v4(),
        hotel + 1_000_000,
        room_type,
        app.night(1),
        app.night(2),
        1,
    );
    assert_eq!(app.reserve("g", &unknown_hotel).await.0, 404);
    let no_rooms = stay(
        Uuid::new_v4(),
        hotel,
        room_type,
        app.night(1),
        app.night(2),
        0,
    );
    assert_eq!(app.reserve("g", &no_rooms).await.0, 422);
    let after = scrape(&app.base).await;
    assert!(count(&after, "not_found") >= count(&before, "not_found") + 1.0);
    assert!(count(&after, "invalid") >= count(&before, "invalid") + 1.0);
    assert_eq!(count(&after, "error"), count(&before, "error"));
}

#[tokio::test]
async fn requests_are_labelled_by_route_template_never_by_raw_path() {
    let app = TestApp::spawn().await;
    let hotel = app.create_hotel(hotel_body("Harbour Inn", 1.1)).await;
    assert_eq!(app.get(&format!("/v1/hotels/{hotel}")).await.0, 200);
    let stranger = Uuid::new_v4();
    assert_eq!(app.get(&format!("/guest-book/{stranger}")).await.0, 404);
    let brew = Method::from_bytes(b"BREW").unwrap();
    assert_eq!(app.send(brew, "/v1/hotels", None, None).await.0, 405);

    let samples = scrape(&app.base).await;
    let one_hotel = [("method", "GET"), ("route", "/v1/hotels/{hotel_id}")];
    assert!(
        value(
            &samples,
            "innkeeper_http_request_duration_seconds_count",
            &one_hotel
        ) >= 1.0
    );
    assert!(
        value(
            &samples,
            "innkeeper_http_requests_total",
            &[one_hotel[0], one_hotel[1], ("status", "200")]
        ) >= 1.0
    );
    assert!(
        value(
            &samples,
            "innkeeper_http_requests_total",
            &[("method", "GET"), ("route", "unmatched"), ("status", "404")]
        ) >= 1.0
    );
    assert!(
        value(
            &samples,
            "innkeeper_http_requests_total",
            &[
                ("method", "OTHER"),
                ("route", "/v1/hotels"),
                ("status", "405")
            ]
        ) >= 1.0
    );
    // Every route label is a documented template: no ids, no paths made up by clients.
    let (_, document) = app.get("/openapi.json").await;
    let templates: BTreeSet<&str> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .chain(["unmatched"])
        .collect();
    for sample in &samples {
        if let Some(route) = sample.labels.get("route") {
            assert!(templates.contains(route.as_str()), "{sample:?}");
        }
        assert!(
            !sample
                .labels
                .values()
                .any(|value| value.contains(&stranger.to_string())),
            "{sample:?}"
        );
    }
}
