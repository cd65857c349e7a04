//! Observability: the series innkeeper exports, request ids in responses and log lines, and
//! grafana/'s dashboards and alert rules, evaluated by a real Prometheus that scrapes a
//! real innkeeper under a booking load.
//!
//! Every app of this test binary renders the same metrics registry (the `metrics` facade has
//! one global recorder), so counts read here include other tests' traffic: they are
//! compared with at least what a test did, never exactly.

mod dashboards;
mod logs;
mod metrics;

use std::collections::BTreeMap;

/// One sample of the Prometheus text format.
#[derive(Debug)]
pub(crate) struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the samples of a Prometheus text exposition. Label values may hold braces (route
/// templates do), so they are read as quoted strings.
pub(crate) fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).expect("a sample has a value");
        let name = line[..name_end].to_owned();
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(inside) = rest.strip_prefix('{') {
            let mut chars = inside.char_indices().peekable();
            let mut key = String::new();
            let end = loop {
                let (index, c) = chars.next().expect("labels end with }");
                match c {
                    '}' => break index,
                    ',' | ' ' => {}
                    '=' => {
                        assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                        let mut value = String::new();
                        while let Some((_, c)) = chars.next() {
                            match c {
                                '\\' => match chars.next().map(|(_, c)| c) {
                                    Some('n') => value.push('\n'),
                                    Some(escaped) => value.push(escaped),
                                    None => panic!("a dangling escape in {line}"),
                                },
                                '"' => break,
                                c => value.push(c),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), value);
                    }
                    c => key.push(c),
                }
            };
            rest = &inside[end + 1..];
        }
        let value = rest
            .split_whitespace()
            .next()
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no value in {line}"));
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

pub(crate) async fn scrape(base: &str) -> Vec<Sample> {
    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    parse_exposition(&response.text().await.unwrap())
}

/// The sample named `name` whose labels include `labels`, if any.
pub(crate) fn find<'a>(
    samples: &'a [Sample],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'a Sample> {
    samples.iter().find(|sample| {
        sample.name == name
            && labels
                .iter()
                .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(*value))
    })
}

#[track_caller]
pub(crate) fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    find(samples, name, labels)
        .unwrap_or_else(|| panic!("no series {name}{labels:?}"))
        .value
}
