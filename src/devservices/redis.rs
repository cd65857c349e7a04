//! A private Redis server run from the installed `redis-server` binary.

use std::fmt;
use std::fs::{OpenOptions, Permissions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::account::{hand_over, service_account, Account};
use super::files::{create_private_dir, load_or_create_password, open_log};
use super::process::{find_in_path, is_executable, ServerProcess};
use super::{free_port, io_error, DevServicesError, Durability, PASSWORD_FILE};

/// A free port for a cluster node: its cluster bus listens on the port plus 10000, so both
/// must be free and the port below 55536. Both are taken below the range the kernel hands
/// out to outgoing connections when it can: a bus port inside that range can be taken by
/// any connection between this check and Redis' bind.
fn free_cluster_port() -> Result<u16, DevServicesError> {
    let bindable = |port: u16| std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok();
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let below_ephemeral = 10_000..ephemeral_from.min(55_536).saturating_sub(10_000);
    let candidates = if below_ephemeral.len() >= 1_000 {
        below_ephemeral
    } else {
        20_000..55_500
    };
    for _ in 0..2_000 {
        let candidate = rand::Rng::gen_range(&mut rand::thread_rng(), candidates.clone());
        if bindable(candidate) && bindable(candidate + 10_000) {
            return Ok(candidate);
        }
    }
    Err(io_error(
        "finding a free port below 55536 whose cluster bus port is free too",
        std::io::Error::from(std::io::ErrorKind::AddrInUse),
    ))
}

/// Attempts at starting a cluster node when another process takes its port first.
const CLUSTER_NODE_ATTEMPTS: usize = 5;

const CONFIG_FILE: &str = "redis.conf";
const LOG_FILE: &str = "redis.log";

/// A Redis server that this process started and controls.
///
/// Dropping it stops the server (SIGTERM, which persists the data when durable).
pub struct RedisServer {
    binary: PathBuf,
    dir: PathBuf,
    durability: Durability,
    account: Option<Account>,
    password: String,
    port: u16,
    process: ServerProcess,
}

impl fmt::Debug for RedisServer {
    // Hand-written so that the password can never end up in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("dir", &self.dir)
            .field("durability", &self.durability)
            .field("port", &self.port)
            .field("pid", &self.process.pid)
            .finish_non_exhaustive()
    }
}

impl RedisServer {
    /// Starts a server on a free port with its data, password, `redis.conf` and log in `dir`,
    /// and waits until it answers an authenticated PING.
    ///
    /// The settings, password included, go to `redis.conf` (mode 0600) rather than the command
    /// line, where any local user could read them.
    pub fn start(dir: &Path, durability: Durability) -> Result<Self, DevServicesError> {
        Self::start_as(dir, durability, Mode::Standalone)
    }

    /// Starts a server as [`start`](Self::start) does, alone or as a node of a cluster.
    pub(super) fn start_as(
        dir: &Path,
        durability: Durability,
        mode: Mode,
    ) -> Result<Self, DevServicesError> {
        let binary = ["/usr/bin/redis-server", "/usr/sbin/redis-server"]
            .into_iter()
            .map(PathBuf::from)
            .fold(find_in_path("redis-server"), |found, candidate| {
                found.or_else(|| is_executable(&candidate).then_some(candidate))
            })
            .ok_or_else(|| DevServicesError::MissingBinary {
                what: "redis-server",
                searched: "PATH, /usr/bin or /usr/sbin".into(),
            })?;
        let account = service_account()?;
        let dir = create_private_dir(dir)?;
        let password = load_or_create_password(&dir, PASSWORD_FILE)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = match mode {
                Mode::Standalone => free_port()?,
                Mode::ClusterNode => free_cluster_port()?,
            };
            write_config(&dir, port, &password, durability, mode)?;
            open_log(&dir.join(LOG_FILE))?;
            hand_over(&dir, account)?;
            let mut server = RedisServer {
                binary: binary.clone(),
                dir: dir.clone(),
                durability,
                account,
                password: password.clone(),
                port,
                process: ServerProcess::not_started("Redis"),
            };
            match server.launch() {
                Ok(()) => return Ok(server),
                // Another process bound the port (or the bus port) between the check and
                // Redis' own bind: try other ports.
                Err(DevServicesError::ExitedDuringStartup { ref tail, .. })
                    if tail.contains("Address already in use")
                        && attempt < CLUSTER_NODE_ATTEMPTS =>
                {
                    tracing::warn!(port, "a Redis port was taken meanwhile; trying another");
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// `redis://:<password>@127.0.0.1:<port>/`, as the `redis` crate expects it.
    pub fn url(&self) -> String {
        format!("redis://:{}@127.0.0.1:{}/", self.password, self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's pid (the latest one after a restart), e.g. for SIGSTOP in fault tests.
    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    /// The server directory: data, password, configuration and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// SIGTERM: Redis flushes the append-only file (and snapshots when durable) before exiting.
    pub fn stop(&mut self) -> Result<(), DevServicesError> {
        self.process.shutdown(libc::SIGTERM)
    }

    /// SIGKILL to the server and any snapshot child it forked: nothing is flushed.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts the server again on the same port and directory (stopping it first if it still
    /// runs) and waits until it answers.
    pub fn restart(&mut self) -> Result<(), DevServicesError> {
        self.stop()?;
        self.launch()
    }

    fn launch(&mut self) -> Result<(), DevServicesError> {
        let log_path = self.dir.join(LOG_FILE);
        let mut command = Command::new(&self.binary);
        command
            .arg(self.dir.join(CONFIG_FILE))
            .current_dir(&self.dir);
        // SIGTERM on innkeeper's death: Redis's own clean shutdown.
        self.process
            .spawn(command, self.account, libc::SIGTERM, &log_path)?;
        let (port, password) = (self.port, &self.password);
        self.process
            .wait_until_ready(&log_path, || answers_ping(port, password))?;
        tracing::info!(port, pid = self.process.pid, dir = %self.dir.display(), "Redis is ready");
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "could not stop Redis cleanly");
        }
    }
}

/// Whether a server stands alone or is a node of a Redis Cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Standalone,
    /// Replicas authenticate to their primary with the same password as clients, a node
    /// that stops answering for a second is failed over, and a replica is promoted however
    /// far behind it is (fault tests make it lag on purpose).
    ClusterNode,
}

fn write_config(
    dir: &Path,
    port: u16,
    password: &str,
    durability: Durability,
    mode: Mode,
) -> Result<(), DevServicesError> {
    let persistence = match durability {
        Durability::Durable => "appendonly yes\nappendfsync everysec\n",
        Durability::Throwaway => "save \"\"\nappendonly no\n",
    };
    let cluster = match mode {
        Mode::Standalone => String::new(),
        Mode::ClusterNode => format!(
            "cluster-enabled yes\n\
             cluster-config-file nodes.conf\n\
             cluster-node-timeout 1000\n\
             cluster-replica-validity-factor 0\n\
             masterauth {password}\n"
        ),
    };
    let config = format!(
        "# Written by innkeeper on every start; edits are lost.\n\
         bind 127.0.0.1\n\
         port {port}\n\
         protected-mode yes\n\
         requirepass {password}\n\
         daemonize no\n\
         logfile \"\"\n\
         dir {}\n\
         {persistence}{cluster}",
        quote(&dir.to_string_lossy())
    );
    let path = dir.join(CONFIG_FILE);
    let context = || format!("writing `{}`", path.display());
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| io_error(context(), e))?;
    // Tightened before the password is written, since `mode` only applies on creation.
    file.set_permissions(Permissions::from_mode(0o600))
        .and_then(|()| file.write_all(config.as_bytes()))
        .map_err(|e| io_error(context(), e))
}

/// Quotes a value for redis.conf, whose parser splits on spaces and honours `\` escapes.
fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Whether the server accepts our password and answers PING: a listening socket alone is not
/// enough, because Redis answers `-LOADING` while it replays its data.
fn answers_ping(port: u16, password: &str) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(1)) else {
        return false;
    };
    let request = format!(
        "*2\r\n$4\r\nAUTH\r\n${}\r\n{password}\r\n*1\r\n$4\r\nPING\r\n",
        password.len()
    );
    const EXPECTED: &[u8] = b"+OK\r\n+PONG\r\n";
    let mut reply = Vec::new();
    let mut chunk = [0u8; 256];
    if stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .is_err()
        || stream.write_all(request.as_bytes()).is_err()
    {
        return false;
    }
    while reply.len() < EXPECTED.len() && EXPECTED.starts_with(&reply) {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(read) => reply.extend_from_slice(&chunk[..read]),
        }
    }
    reply == EXPECTED
}
