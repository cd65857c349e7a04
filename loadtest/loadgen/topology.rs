//! `loadgen topology`: the stores of a service split across machines, started on this one
//! for `loadtest/bench --topology cluster`: a PostgreSQL catalog, shard PostgreSQL
//! servers, and a Redis Cluster of three primaries with a replica each, all from the
//! same `innkeeper::devservices` the tests use. It writes their settings to `env` in the
//! directory (shell syntax; the file holds passwords and the directory is private) once
//! every server answers, and stops them all on SIGTERM or Ctrl-C.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;
use innkeeper::devservices::{Durability, PostgresServer, RedisCluster};

/// Runs until told to stop. Blocking: the servers stop when the thread that started them
/// ends, so they are started here, on the main thread, which waits for the signal.
pub fn run(dir: &Path, shards: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    // Durable, as the embedded default the single-node figures come from.
    let catalog = PostgresServer::start(&dir.join("catalog"), Durability::Durable)
        .context("starting the catalog PostgreSQL")?;
    let mut shard_servers = Vec::new();
    for index in 1..=shards {
        shard_servers.push(
            PostgresServer::start(&dir.join(format!("shard{index}")), Durability::Durable)
                .with_context(|| format!("starting shard PostgreSQL {index}"))?,
        );
    }
    let redis = RedisCluster::start(&dir.join("redis"), Durability::Durable, 3, 1)
        .context("starting the Redis Cluster")?;
    let shard_urls: Vec<String> = shard_servers.iter().map(PostgresServer::url).collect();
    let env = format!(
        "DATABASE_URL='{}'\nINNKEEPER_SHARD_URLS='{}'\nINNKEEPER_REDIS_CLUSTER='{}'\n",
        catalog.url(),
        shard_urls.join(","),
        redis.seeds()
    );
    // Written whole under another name, then renamed: a reader never sees half a file.
    let partial = dir.join("env.partial");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .and_then(|mut file| std::io::Write::write_all(&mut file, env.as_bytes()))?;
    std::fs::rename(&partial, dir.join("env"))?;
    eprintln!("topology: ready; settings in {}", dir.join("env").display());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = terminate.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
            anyhow::Ok(())
        })?;
    eprintln!("topology: stopping");
    drop(redis);
    drop(shard_servers);
    drop(catalog);
    Ok(())
}
