//! What every route's OpenAPI entry must also say about errors, written once here rather
//! than in each route's annotation, so the document describes what the server really
//! answers (a fuzzer checks each answer against it):
//! - error bodies are `application/problem+json`, not `application/json`;
//! - a path or query value that does not parse answers 400, a body over 1 MiB 413;
//! - the guarded routes may answer 429 `rate_limited` and 503 `overloaded` or
//!   `unavailable` (admission control and the request deadline stand before each).

use utoipa::openapi::path::Operation;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder};

/// The schema every error body has.
const PROBLEM: &str = "Problem";
const PROBLEM_JSON: &str = "application/problem+json";

/// Completes the error answers of every operation of `document`; `guarded` says whether
/// admission control stands before them.
pub fn complete(document: &mut OpenApi, guarded: bool) {
    for item in document.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            complete_operation(operation, guarded);
        }
    }
}

fn complete_operation(operation: &mut Operation, guarded: bool) {
    for response in operation.responses.responses.values_mut() {
        if let RefOr::T(response) = response {
            as_problem_json(response);
        }
    }
    let has_parameters = operation
        .parameters
        .as_ref()
        .is_some_and(|parameters| !parameters.is_empty());
    if has_parameters {
        add(operation, "400", "A path or query value does not parse");
    }
    if operation.request_body.is_some() {
        add(operation, "400", "Malformed JSON");
        add(operation, "413", "Body over 1 MiB");
    }
    if guarded {
        add(
            operation,
            "429",
            "Over this caller's rate (with Retry-After)",
        );
        add(
            operation,
            "503",
            "Too many requests in flight, or a store unavailable (with Retry-After)",
        );
    }
}

/// A problem body documented as `application/json` is served as problem+json.
fn as_problem_json(response: &mut Response) {
    let is_problem = response.content.get("application/json").is_some_and(|content| {
        matches!(&content.schema, Some(RefOr::Ref(reference)) if reference.ref_location.ends_with(PROBLEM))
    });
    if is_problem {
        if let Some(content) = response.content.shift_remove("application/json") {
            response.content.insert(PROBLEM_JSON.to_owned(), content);
        }
    }
}

/// Adds a problem answer with `status`, unless the operation documents one already.
fn add(operation: &mut Operation, status: &str, description: &str) {
    operation
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        PROBLEM_JSON,
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name(PROBLEM)))
                            .build(),
                    )
                    .build(),
            )
        });
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_error_answer_is_problem_json_and_the_guarded_ones_say_they_may_shed() {
        let (_, _, document) = super::super::routes(false);
        let json = serde_json::to_value(&document).unwrap();
        let paths = json["paths"].as_object().unwrap();
        let mut checked = 0;
        for (path, item) in paths {
            for (method, operation) in item.as_object().unwrap() {
                let Some(responses) = operation["responses"].as_object() else {
                    continue;
                };
                for (status, response) in responses {
                    let problem_as_json = response["content"]["application/json"]["schema"]["$ref"]
                        .as_str()
                        .is_some_and(|reference| reference.ends_with("/Problem"));
                    assert!(
                        !problem_as_json,
                        "{method} {path} {status}: a problem documented as application/json"
                    );
                    if response["content"]
                        .get("application/problem+json")
                        .is_some()
                    {
                        checked += 1;
                    }
                }
                let operations = ["/healthz", "/readyz", "/metrics", "/openapi.json"];
                if !operations.contains(&path.as_str()) {
                    assert!(responses.contains_key("429"), "{method} {path}");
                    assert!(responses.contains_key("503"), "{method} {path}");
                }
            }
        }
        assert!(checked > 50, "{checked}");
    }
}
