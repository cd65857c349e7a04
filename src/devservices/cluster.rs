//! A private Redis Cluster: primaries with replicas, each a [`RedisServer`] of its own,
//! joined by `redis-cli --cluster create`. Tests and `loadtest/bench --topology cluster`
//! start one; the embedded default stays a single Redis.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::files::{create_private_dir, load_or_create_password, read_or_create_secret};
use super::process::find_in_path;
use super::redis::{Mode, RedisServer};
use super::{io_error, DevServicesError, Durability, PASSWORD_FILE, READY_TIMEOUT};

/// A running Redis Cluster that this process started.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `primaries` primaries with `replicas` replicas each under `dir`, all sharing
    /// one password, creates the cluster over them, and waits until every node serves all
    /// slots and every replica is in sync with its primary.
    pub fn start(
        dir: &Path,
        durability: Durability,
        primaries: usize,
        replicas: usize,
    ) -> Result<Self, DevServicesError> {
        let redis_cli =
            find_in_path("redis-cli").ok_or_else(|| DevServicesError::MissingBinary {
                what: "redis-cli",
                searched: "PATH".into(),
            })?;
        let dir = create_private_dir(dir)?;
        let password = load_or_create_password(&dir, PASSWORD_FILE)?;
        let nodes = (0..primaries * (1 + replicas))
            .map(|index| {
                let node_dir = create_private_dir(&dir.join(format!("node{index}")))?;
                read_or_create_secret(&node_dir.join(PASSWORD_FILE), || password.clone())
                    .map_err(|e| io_error("sharing the cluster password", e))?;
                RedisServer::start_as(&node_dir, durability, Mode::ClusterNode)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cluster = Self { nodes };
        let mut create = Command::new(redis_cli);
        create.arg("--cluster").arg("create");
        for node in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        // The password goes in the environment, never on a command line others can read.
        create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .env("REDISCLI_AUTH", &password)
            .stdin(Stdio::null());
        let output = create
            .output()
            .map_err(|e| io_error("running redis-cli --cluster create", e))?;
        if !output.status.success() {
            return Err(DevServicesError::CommandFailed {
                command: "redis-cli --cluster create".into(),
                status: output.status,
                output: String::from_utf8_lossy(&output.stdout).into_owned(),
            }
            .redacted(&password));
        }
        cluster.wait_until_formed(replicas)?;
        Ok(cluster)
    }

    /// The nodes' URLs, comma-separated, as `INNKEEPER_REDIS_CLUSTER` takes them.
    pub fn seeds(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every node, primaries and replicas, in the order they were started.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// A node, for fault tests to kill, pause or restart.
    pub fn node_mut(&mut self, index: usize) -> &mut RedisServer {
        &mut self.nodes[index]
    }

    fn wait_until_formed(&self, replicas: usize) -> Result<(), DevServicesError> {
        let started = Instant::now();
        let expected_replicas = self.nodes.len() / (1 + replicas) * replicas;
        loop {
            let formed = self.nodes.iter().all(|node| {
                info(node, "CLUSTER", "INFO").is_some_and(|info| {
                    info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
                })
            });
            let synced = self
                .nodes
                .iter()
                .filter(|node| {
                    info(node, "INFO", "replication").is_some_and(|info| {
                        info.contains("role:slave") && info.contains("master_link_status:up")
                    })
                })
                .count();
            if formed && synced == expected_replicas {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(DevServicesError::StartupTimeout {
                    server: "Redis Cluster",
                    waited: READY_TIMEOUT,
                    log: self.nodes[0].dir().join("redis.log"),
                    tail: format!("formed: {formed}, replicas in sync: {synced}"),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A two-word command's text reply from one node, or `None` if it does not answer.
fn info(node: &RedisServer, command: &str, argument: &str) -> Option<String> {
    let client = redis::Client::open(node.url()).ok()?;
    let mut connection = client
        .get_connection_with_timeout(Duration::from_secs(1))
        .ok()?;
    // The connect timeout does not bound the reply: a node that accepts and then hangs
    // must not outlast READY_TIMEOUT.
    connection
        .set_read_timeout(Some(Duration::from_secs(1)))
        .ok()?;
    redis::cmd(command)
        .arg(argument)
        .query::<String>(&mut connection)
        .ok()
}
