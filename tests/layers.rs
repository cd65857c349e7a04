//! The layers of `src/lib.rs` point down only:
//!
//! ```text
//! app ─► http ─► jobs ─► booking ─► inventory, store ─► telemetry, config ─► domain, clock
//! ```
//!
//! A module may use a module of a lower layer, never one of its own layer or above (so
//! `inventory` and `store`, side by side, know nothing of each other). And only `booking`
//! and `jobs` (with `app`, which builds everything) may hold both a Postgres and a Redis
//! handle: that is where the cache and the source of truth meet.
//!
//! This reads the sources as text, so it runs in `cargo test` with nothing to install.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// Each top-level module of the crate and its layer: higher numbers sit higher.
const LAYERS: &[(&str, u8)] = &[
    ("domain", 0),
    ("clock", 0),
    ("config", 1),
    ("devservices", 1),
    ("telemetry", 2),
    ("inventory", 3),
    ("store", 3),
    ("booking", 4),
    ("jobs", 5),
    ("demo", 5),
    ("http", 6),
    ("app", 7),
];

/// Modules that may hold both stores' handles.
const WHERE_STORES_MEET: &[&str] = &["booking", "jobs", "app"];

fn layer(module: &str) -> Option<u8> {
    LAYERS
        .iter()
        .find(|(name, _)| *name == module)
        .map(|(_, layer)| *layer)
}

/// The top-level modules a source text refers to through `crate::`, including those
/// named inside a `use crate::{a, b::c}` group. Comments are skipped.
fn referenced_modules(source: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        found.insert(name);
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.insert(name);
            }
        }
    }
    found
}

/// Every breach in the given files: (module the file belongs to, file name, text).
fn violations(files: &[(String, String, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (module, file, source) in files {
        let Some(own) = layer(module) else {
            found.push(format!(
                "{file}: module `{module}` has no layer in tests/layers.rs"
            ));
            continue;
        };
        for used in referenced_modules(source) {
            if used == *module {
                continue;
            }
            match layer(&used) {
                Some(other) if other < own => {}
                Some(_) => found.push(format!(
                    "{file}: `{module}` uses `{used}`, which is not below it"
                )),
                None => found.push(format!(
                    "{file}: `crate::{used}` is no module with a layer in tests/layers.rs"
                )),
            }
        }
        let postgres = source.contains("deadpool_postgres");
        let redis = source.contains("RedisLink") || source.contains("NightCache");
        if postgres && redis && !WHERE_STORES_MEET.contains(&module.as_str()) {
            found.push(format!(
                "{file}: `{module}` holds both a Postgres and a Redis handle"
            ));
        }
        if module == "http" && (postgres || redis) {
            found.push(format!(
                "{file}: a handler reaches a store directly instead of through a service"
            ));
        }
    }
    found
}

/// Every `.rs` file under `src/` but `main.rs` and `lib.rs`, with its top-level module.
fn crate_sources() -> Vec<(String, String, String)> {
    fn walk(dir: &Path, module: Option<&str>, out: &mut Vec<(String, String, String)>) {
        for entry in fs::read_dir(dir).expect("reading src/") {
            let path = entry.expect("a directory entry").path();
            let name = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .unwrap_or_default()
                .to_owned();
            let owner = module.map_or(name.clone(), str::to_owned);
            if path.is_dir() {
                walk(&path, Some(&owner), out);
            } else if path.extension().is_some_and(|ext| ext == "rs")
                && !(module.is_none() && (name == "main" || name == "lib"))
            {
                let text = fs::read_to_string(&path).expect("reading a source file");
                out.push((owner, path.display().to_string(), text));
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        None,
        &mut files,
    );
    files
}

#[test]
fn no_module_uses_one_at_or_above_its_layer() {
    let files = crate_sources();
    assert!(files.len() > 30, "found only {} source files", files.len());
    let found = violations(&files);
    assert!(found.is_empty(), "layer breaches:\n{}", found.join("\n"));
}

#[test]
fn every_module_of_lib_rs_has_a_layer() {
    let lib = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("reading src/lib.rs");
    for line in lib.lines() {
        if let Some(module) = line
            .strip_prefix("pub mod ")
            .and_then(|rest| rest.strip_suffix(';'))
        {
            assert!(layer(module).is_some(), "`{module}` has no layer");
            assert!(
                lib.contains(&format!("[`{module}`]")),
                "the module map of lib.rs does not name `{module}`"
            );
        }
    }
}

/// The check itself can fail: each kind of breach it exists for is caught.
#[test]
fn the_check_catches_each_kind_of_breach() {
    let file = |module: &str, text: &str| (module.to_owned(), format!("{module}.rs"), text.into());
    let upward = file("booking", "use crate::http::error::ApiError;");
    let grouped = file(
        "domain",
        "use crate::{config::BookingLimits, domain::Stay};",
    );
    let sideways = file(
        "inventory",
        "use crate::store::inventory::Night; // a night",
    );
    let both = file(
        "telemetry",
        "fn f(_: &deadpool_postgres::Pool, _: &RedisLink) {}",
    );
    let handler = file("http", "let db: deadpool_postgres::Pool = todo!();");
    let unknown = file("secrets", "");
    for case in [upward, grouped, sideways, both, handler, unknown] {
        assert_eq!(
            violations(std::slice::from_ref(&case)).len(),
            1,
            "{}",
            case.2
        );
    }
    let fine = file(
        "booking",
        "use crate::store::reservations; // crate::http is mentioned only here\nuse crate::{domain::Stay, inventory::NightCache};\nfn f(_: deadpool_postgres::Pool) {}",
    );
    assert_eq!(violations(&[fine]), Vec::<String>::new());
}
