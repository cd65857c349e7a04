//! Liveness, readiness, metrics and the OpenAPI document.

use reqwest::Method;

use crate::helpers::TestApp;

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["postgres"], "up");
    assert_eq!(body["redis"], "up");
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let app = TestApp::spawn().await;
    let response = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
}

/// The routes of API.md this server implements, as (method, OpenAPI path).
const CONTRACT: &[(&str, &str)] = &[
    ("post", "/v1/hotels"),
    ("get", "/v1/hotels"),
    ("get", "/v1/hotels/{hotel_id}"),
    ("put", "/v1/hotels/{hotel_id}"),
    ("delete", "/v1/hotels/{hotel_id}"),
    ("post", "/v1/hotels/{hotel_id}/room-types"),
    ("get", "/v1/hotels/{hotel_id}/room-types"),
    ("get", "/v1/hotels/{hotel_id}/room-types/{room_type_id}"),
    ("put", "/v1/hotels/{hotel_id}/room-types/{room_type_id}"),
    ("delete", "/v1/hotels/{hotel_id}/room-types/{room_type_id}"),
    ("post", "/v1/hotels/{hotel_id}/rooms"),
    ("get", "/v1/hotels/{hotel_id}/rooms"),
    ("get", "/v1/hotels/{hotel_id}/rooms/{room_id}"),
    ("put", "/v1/hotels/{hotel_id}/rooms/{room_id}"),
    ("delete", "/v1/hotels/{hotel_id}/rooms/{room_id}"),
    (
        "put",
        "/v1/hotels/{hotel_id}/room-types/{room_type_id}/inventory",
    ),
    (
        "get",
        "/v1/hotels/{hotel_id}/room-types/{room_type_id}/inventory",
    ),
    ("get", "/v1/hotels/{hotel_id}/availability"),
    ("post", "/v1/reservations"),
    ("get", "/v1/reservations"),
    ("get", "/v1/reservations/{reservation_id}"),
    ("post", "/v1/reservations/{reservation_id}/confirm"),
    ("post", "/v1/reservations/{reservation_id}/cancel"),
    ("post", "/v1/admin/reconcile"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_routes_served() {
    let app = TestApp::spawn().await;
    let (status, document) = app.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    for (method, path) in CONTRACT {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} is not documented"
        );
    }
    // Every documented operation is served: neither the unknown-route fallback nor 405.
    let mut documented = 0;
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            documented += 1;
            let concrete = path
                .replace("{hotel_id}", "1")
                .replace("{room_type_id}", "1")
                .replace("{room_id}", "1")
                .replace("{reservation_id}", "00000000-0000-4000-8000-000000000000");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (status, body) = app.send(method.clone(), &concrete, None, None).await;
            assert_ne!(status, 405, "{method} {path}");
            assert!(
                !(status == 404 && body["detail"] == "route not found"),
                "{method} {path} is documented but not served"
            );
        }
    }
    assert!(documented >= CONTRACT.len());
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());
}

/// The repository's contract, docs/API.md, lists exactly the routes the server has: every
/// table row is a route of `/openapi.json`, and every route there is a row.
#[tokio::test]
async fn the_repository_contract_lists_exactly_the_routes_served() {
    let contract = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/API.md"),
    )
    .expect("docs/API.md");
    let mut documented = std::collections::BTreeSet::new();
    for line in contract.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 3 || !cells[2].starts_with('/') {
            continue;
        }
        for method in cells[1].split('/') {
            documented.insert((method.to_owned(), cells[2].to_owned()));
        }
    }
    let app = TestApp::spawn().await;
    let (status, document) = app.get("/openapi.json").await;
    assert_eq!(status, 200);
    let mut served = std::collections::BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                served.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    assert_eq!(documented, served);
}

/// With `INNKEEPER_METRICS_BIND`, `/metrics` moves to its own listener: the public one
/// answers 404 for it, and its OpenAPI document no longer lists it.
#[tokio::test]
async fn metrics_can_move_to_a_listener_of_their_own() {
    let app = TestApp::spawn_with(crate::helpers::Options {
        env: vec![("INNKEEPER_METRICS_BIND", "127.0.0.1:0".into())],
        ..Default::default()
    })
    .await;
    let private = app.metrics_base.clone().expect("a metrics listener");
    let scraped = reqwest::get(format!("{private}/metrics")).await.unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(scraped
        .text()
        .await
        .unwrap()
        .contains("innkeeper_reservations_total"));
    assert_eq!(app.get("/metrics").await.0, 404);
    let (_, document) = app.get("/openapi.json").await;
    assert!(document["paths"].get("/metrics").is_none());
    assert_eq!(
        reqwest::get(format!("{private}/healthz"))
            .await
            .unwrap()
            .status(),
        404,
        "the metrics listener serves /metrics alone"
    );
}
