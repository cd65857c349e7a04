//! The markdown report: raw limits, every scenario in both modes, the rush in detail, and
//! the ratios the targets are stated in, each with its verdict.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::stats::Row;
use crate::SuiteResult;

/// What `loadtest/bench` measured without innkeeper, as it writes raw.json: every run, and
/// the best rate of each tool, which the ratios divide by.
#[derive(Debug, Deserialize)]
struct Raw {
    figures: Vec<RawFigure>,
    evalsha_rate: f64,
    pgbench_rate: f64,
}

#[derive(Debug, Deserialize)]
struct RawFigure {
    what: String,
    generator: String,
    clients: u64,
    seconds: f64,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

pub fn render(raw: &Path, results: &[PathBuf]) -> anyhow::Result<String> {
    let raw: Raw = read(raw)?;
    let mut rows = Vec::new();
    for path in results {
        rows.extend(read::<SuiteResult>(path)?.rows);
    }
    let mut out = String::new();

    writeln!(out, "### Raw limits of this machine\n")?;
    writeln!(
        out,
        "| measurement | generator | clients | seconds | throughput | p50 ms | p99 ms |"
    )?;
    writeln!(out, "|---|---|---:|---:|---:|---:|---:|")?;
    for figure in &raw.figures {
        writeln!(
            out,
            "| {} | {} | {} | {:.0} | {:.0}/s | {:.2} | {:.2} |",
            figure.what,
            figure.generator,
            figure.clients,
            figure.seconds,
            figure.rate,
            figure.p50_ms,
            figure.p99_ms
        )?;
    }

    writeln!(out, "\n### innkeeper, redis mode and db mode\n")?;
    writeln!(
        out,
        "Latency is that of the responses the throughput counts (for the rush: its 409s). \
         Generator: {}.\n",
        crate::scenarios::GENERATOR
    )?;
    writeln!(
        out,
        "| scenario | mode | throughput | p50 ms | p99 ms | error rate | oversell | \
         PG xacts / attempt | peak RSS MiB |"
    )?;
    writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|")?;
    let (overload, rows): (Vec<Row>, Vec<Row>) = rows
        .into_iter()
        .partition(|row| row.scenario.starts_with("overload"));
    for row in &rows {
        writeln!(
            out,
            "| {} | {} | {:.0} {} | {:.2} | {:.2} | {:.2}% | {} | {:.3} | {:.1} |",
            row.scenario,
            row.mode,
            row.throughput,
            row.unit,
            row.p50_ms,
            row.p99_ms,
            row.error_rate * 100.0,
            row.oversell,
            row.pg_xacts_per_attempt(),
            row.peak_rss_mib
        )?;
    }

    writeln!(out, "\n### The rush in detail\n")?;
    writeln!(
        out,
        "| mode | connections | sellable | 201 | 409 sold_out | sold out after s | \
         all answered after s | 201 p50 / p99 ms | 409 p50 / p99 ms | PG xacts | \
         PG xacts / room sold | peak RSS MiB |"
    )?;
    writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    for row in rows.iter().filter(|r| r.scenario.starts_with("rush")) {
        let x = |key: &str| row.extra.get(key).copied().unwrap_or(0.0);
        writeln!(
            out,
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.3} | {:.3} | {:.1} / {:.1} | {:.1} / {:.1} | {} | {:.2} | {:.1} |",
            row.mode,
            x("connections"),
            x("capacity"),
            x("created"),
            x("rejected"),
            x("sell_out_s"),
            row.elapsed_s,
            x("p50_201_ms"),
            x("p99_201_ms"),
            row.p50_ms,
            row.p99_ms,
            row.pg_xacts,
            x("pg_xacts_per_room_sold"),
            row.peak_rss_mib
        )?;
    }

    if !overload.is_empty() {
        render_overload(&mut out, &overload)?;
    }
    render_topology(&mut out, &rows)?;

    writeln!(out, "\n### Ratios and targets\n")?;
    writeln!(out, "| ratio | value | target | met |")?;
    writeln!(out, "|---|---:|---:|---|")?;
    let find = |prefix: &str, mode: &str| {
        rows.iter()
            .find(|r| r.scenario.starts_with(prefix) && r.mode == mode)
    };
    let mut target = |name: String, value: Option<f64>, goal: &str, met: fn(f64) -> bool| {
        let (value, verdict) = match value {
            Some(v) if v.is_finite() => (format!("{v:.3}"), if met(v) { "yes" } else { "**no**" }),
            _ => ("n/a".to_owned(), "n/a"),
        };
        writeln!(out, "| {name} | {value} | {goal} | {verdict} |")
    };
    for mode in ["redis", "db"] {
        target(
            format!("sold-out rejections/s ({mode} mode) / raw EVALSHA/s"),
            find("sold out", mode).map(|r| r.throughput / raw.evalsha_rate),
            if mode == "redis" {
                ">= 0.35"
            } else {
                "(baseline)"
            },
            if mode == "redis" {
                |v| v >= 0.35
            } else {
                |_| true
            },
        )?;
    }
    target(
        "sold-out rejections/s (redis mode), with stay restrictions / without".into(),
        find("sold out", "redis, restrictions")
            .zip(find("sold out", "redis"))
            .map(|(with, without)| with.throughput / without.throughput),
        ">= 0.9",
        |v| v >= 0.9,
    )?;
    if let Some(floor) = find("floor: GET /healthz at full", "redis") {
        target(
            "sold-out floor: GET /healthz/s (redis mode) / raw EVALSHA/s".into(),
            Some(floor.throughput / raw.evalsha_rate),
            "(bound: the rejection target is out of reach below 0.35)",
            |_| true,
        )?;
        if let Some(sold_out) = find("sold out", "redis") {
            target(
                "sold-out rejections/s / GET /healthz/s (redis mode)".into(),
                Some(sold_out.throughput / floor.throughput),
                "(shown)",
                |_| true,
            )?;
        }
    }
    for mode in ["redis", "db"] {
        target(
            format!("committed bookings/s ({mode} mode, spread) / best raw pgbench TPS"),
            find("spread", mode).map(|r| r.throughput / raw.pgbench_rate),
            if mode == "redis" {
                ">= 0.9"
            } else {
                "(baseline)"
            },
            if mode == "redis" {
                |v| v >= 0.9
            } else {
                |_| true
            },
        )?;
    }
    let redis_rush = find("rush", "redis");
    let db_rush = find("rush", "db");
    let both = |f: fn(&Row) -> f64| match (redis_rush, db_rush) {
        (Some(r), Some(d)) => Some(f(r) / f(d)),
        _ => None,
    };
    target(
        "rush: 409 p99, redis / db".into(),
        both(|r| r.p99_ms),
        "<= 0.1",
        |v| v <= 0.1,
    )?;
    // What any path through HTTP costs in the same burst, and how far each mode is above it.
    if let (Some(db), Some(floor)) = (db_rush, find("floor: the rush", "redis")) {
        target(
            "rush floor: GET /healthz burst p99 / db mode's rush 409 p99".into(),
            Some(floor.p99_ms / db.p99_ms),
            "(bound: the 409 target is out of reach above 0.1)",
            |_| true,
        )?;
    }
    for mode in ["redis", "db"] {
        if let (Some(rush), Some(floor)) = (find("rush", mode), find("floor: the rush", mode)) {
            target(
                format!("rush: 409 p99 / the burst's floor p99 ({mode} mode)"),
                Some(rush.p99_ms / floor.p99_ms),
                "(shown)",
                |_| true,
            )?;
        }
    }
    target(
        "rush: PG transactions per room sold, redis mode".into(),
        redis_rush.map(|r| {
            r.extra
                .get("pg_xacts_per_room_sold")
                .copied()
                .unwrap_or(f64::NAN)
        }),
        "<= 1.1",
        |v| v <= 1.1,
    )?;
    target(
        "rush: PG transactions per attempt, db mode".into(),
        db_rush.map(Row::pg_xacts_per_attempt),
        "(about 1)",
        |_| true,
    )?;
    target(
        "rush: sell-out time, redis / db".into(),
        both(|r| r.extra.get("sell_out_s").copied().unwrap_or(f64::NAN)),
        "<= 1",
        |v| v <= 1.0,
    )?;
    for prefix in ["rush", "sold out", "spread", "availability"] {
        let pair = (find(prefix, "redis"), find(prefix, "db"));
        let (Some(r), Some(d)) = pair else { continue };
        // The cache must not make an ordinary day's bookings slower (issue 16).
        let (goal, met): (&str, fn(f64) -> bool) = if prefix == "spread" {
            (">= 1.0", |v| v >= 1.0)
        } else {
            ("(shown)", |_| true)
        };
        target(
            format!("{prefix}: throughput, redis / db"),
            Some(r.throughput / d.throughput),
            goal,
            met,
        )?;
        target(
            format!("{prefix}: p99, redis / db"),
            Some(r.p99_ms / d.p99_ms),
            "(shown)",
            |_| true,
        )?;
        target(
            format!("{prefix}: PG xacts per attempt, redis / db"),
            Some(r.pg_xacts_per_attempt() / d.pg_xacts_per_attempt()),
            "(shown)",
            |_| true,
        )?;
    }
    for mode in ["redis", "db"] {
        target(
            format!("rush: service peak RSS MiB ({mode} mode)"),
            find("rush", mode).map(|r| r.peak_rss_mib),
            "<= 64",
            |v| v <= 64.0,
        )?;
    }
    for mode in ["redis", "db"] {
        let p99 = |admission: &str| {
            overload
                .iter()
                .find(|r| r.mode == format!("{mode}, {admission}"))
                .map(|r| r.p99_ms)
        };
        let off = p99("admission off");
        target(
            format!("overload: p99 of all answers, admission on / off ({mode} mode)"),
            p99("admission on").zip(off).map(|(on, off)| on / off),
            "<= 0.25",
            |v| v <= 0.25,
        )?;
        target(
            format!("overload: p99 of all answers, admission at 256 / off ({mode} mode)"),
            p99("admission at 256").zip(off).map(|(on, off)| on / off),
            "(shown)",
            |_| true,
        )?;
    }
    for row in &overload {
        target(
            format!("overload: rooms sold / sellable ({})", row.mode),
            Some(
                row.extra.get("sold").copied().unwrap_or(f64::NAN)
                    / row.extra.get("capacity").copied().unwrap_or(f64::NAN),
            ),
            "1",
            |v| v == 1.0,
        )?;
    }
    for prefix in ["rush", "sold out", "spread"] {
        let Some(split) = find(prefix, TOPOLOGY) else {
            continue;
        };
        target(
            format!("cluster topology, {prefix}: throughput / single node"),
            find(prefix, "redis").map(|single| split.throughput / single.throughput),
            "(shown: same two cores)",
            |_| true,
        )?;
        // The catalog must stay off the booking path: it is one database for every shard.
        target(
            format!("cluster topology, {prefix}: catalog PG xacts per attempt"),
            Some(catalog_xacts(split) / split.attempts.max(1) as f64),
            "<= 0.01",
            |v| v <= 0.01,
        )?;
    }
    // A subscribed endpoint must cost the booking path little, and its deliveries keep up.
    for prefix in ["spread", "rush", "sold out"] {
        let Some(with) = find(prefix, WEBHOOK) else {
            continue;
        };
        let (goal, met): (&str, fn(f64) -> bool) = if prefix == "spread" {
            (">= 0.9", |v| v >= 0.9)
        } else {
            ("(shown)", |_| true)
        };
        target(
            format!("{prefix}: throughput, one webhook endpoint / none (redis mode)"),
            find(prefix, "redis").map(|without| with.throughput / without.throughput),
            goal,
            met,
        )?;
    }
    if let (Some(with), Some(without)) = (find("rush", WEBHOOK), find("rush", "redis")) {
        let sell_out = |r: &Row| r.extra.get("sell_out_s").copied().unwrap_or(f64::NAN);
        target(
            "rush: sell-out time, one webhook endpoint / none (redis mode)".into(),
            Some(sell_out(with) / sell_out(without)),
            "(shown)",
            |_| true,
        )?;
    }
    for scenario in ["spread", "rush"] {
        let Some(heard) = find(
            &format!("webhook deliveries during the {scenario}"),
            WEBHOOK,
        ) else {
            continue;
        };
        let x = |key: &str| heard.extra.get(key).copied().unwrap_or(f64::NAN);
        target(
            format!("webhooks, {scenario}: bookings heard of by its end / created"),
            Some(x("heard_by_end") / x("created")),
            "(shown)",
            |_| true,
        )?;
        target(
            format!("webhooks, {scenario}: p99 ms from commit to delivery"),
            Some(heard.p99_ms),
            "(shown: bounded)",
            |_| true,
        )?;
        target(
            format!("webhooks, {scenario}: seconds from its end until every booking was heard of"),
            Some(x("drain_s")),
            "<= 5",
            |v| v <= 5.0,
        )?;
    }
    target(
        "oversell, every scenario and mode".into(),
        Some(
            rows.iter()
                .chain(&overload)
                .map(|r| r.oversell as f64)
                .sum(),
        ),
        "0",
        |v| v == 0.0,
    )?;
    Ok(out)
}

/// The mode label of the suite `loadtest/bench --topology cluster` runs on a catalog, two
/// shards, a Redis Cluster and two instances.
const TOPOLOGY: &str = "redis, cluster topology";

/// The mode label of the suite `loadtest/bench` runs with a webhook receiver subscribed.
const WEBHOOK: &str = "redis, one webhook endpoint";

/// Transactions the catalog took during a split run.
fn catalog_xacts(row: &Row) -> f64 {
    row.extra
        .get("pg_xacts_catalog")
        .copied()
        .unwrap_or(f64::NAN)
}

/// The split topology beside the single node, scenario by scenario: what the same work
/// costs when it crosses more processes, and where its Postgres transactions go.
fn render_topology(out: &mut String, rows: &[Row]) -> anyhow::Result<()> {
    let split: Vec<&Row> = rows.iter().filter(|row| row.mode == TOPOLOGY).collect();
    if split.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\n### Cluster topology: a catalog, two shards, a Redis Cluster, two instances\n"
    )?;
    writeln!(
        out,
        "Everything on the same cores as the single-node run, so a ratio below 1 is CPU time \
         each request costs more, not what more machines would give (see SCALING.md).\n"
    )?;
    writeln!(
        out,
        "| scenario | unit | single node | topology | topology / single | topology p99 ms | \
         catalog PG xacts / attempt | shard PG xacts / attempt | oversell |"
    )?;
    writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|")?;
    for row in split {
        let single = rows
            .iter()
            .find(|r| r.mode == "redis" && r.scenario == row.scenario);
        let attempts = row.attempts.max(1) as f64;
        // Scenarios that reach no database (the floors) count no transactions.
        let (catalog, shards) = match row.extra.get("pg_xacts_catalog") {
            Some(catalog) => (
                format!("{:.4}", catalog / attempts),
                format!("{:.3}", (row.pg_xacts as f64 - catalog) / attempts),
            ),
            None => ("n/a".into(), "n/a".into()),
        };
        let ratio = single.map_or("n/a".into(), |r| {
            format!("{:.2}", row.throughput / r.throughput)
        });
        writeln!(
            out,
            "| {} | {} | {} | {:.0} | {ratio} | {:.2} | {catalog} | {shards} | {} |",
            row.scenario,
            row.unit,
            single.map_or("n/a".into(), |r| format!("{:.0}", r.throughput)),
            row.throughput,
            row.p99_ms,
            row.oversell
        )?;
    }
    Ok(())
}

/// The overload runs side by side: every answer's latency (from when it was due), and the
/// share of each status.
fn render_overload(out: &mut String, rows: &[Row]) -> anyhow::Result<()> {
    writeln!(
        out,
        "\n### Overload: the rush at ten times its demand, open loop\n"
    )?;
    writeln!(
        out,
        "Latency is that of every answer, from when its attempt was due. Generator: {}.\n",
        crate::scenarios::OPEN_LOOP
    )?;
    let statuses: std::collections::BTreeSet<&str> = rows
        .iter()
        .flat_map(|row| row.extra.keys())
        .filter_map(|key| key.strip_prefix("share "))
        .collect();
    write!(
        out,
        "| run | attempts | offered/s | answered/s | p50 ms | p99 ms | sold / sellable | oversell |"
    )?;
    for status in &statuses {
        write!(out, " {status} |")?;
    }
    write!(out, "\n|---|---:|---:|---:|---:|---:|---:|---:|")?;
    writeln!(out, "{}", "---:|".repeat(statuses.len()))?;
    for row in rows {
        let x = |key: &str| row.extra.get(key).copied().unwrap_or(0.0);
        write!(
            out,
            "| {} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.0} / {:.0} | {} |",
            row.mode,
            row.attempts,
            x("offered_rate"),
            row.throughput,
            row.p50_ms,
            row.p99_ms,
            x("sold"),
            x("capacity"),
            row.oversell
        )?;
        for status in &statuses {
            write!(out, " {:.1}% |", x(&format!("share {status}")) * 100.0)?;
        }
        writeln!(out)?;
    }
    Ok(())
}
