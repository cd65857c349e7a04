//! Private PostgreSQL and Redis servers started from the binaries installed on the machine.
//!
//! They exist so that innkeeper's embedded default and its integration tests never depend on,
//! or disturb, whatever servers the machine already runs, and so that fault tests can kill,
//! pause and restart a server: that is only possible when the server is our own child process,
//! which is why the server binaries are spawned directly rather than through `pg_ctl` or a
//! service manager.
//!
//! # Lifetime of the servers
//!
//! Each server is spawned with `PR_SET_PDEATHSIG`, so the kernel signals it when innkeeper dies,
//! even by `kill -9`, and no orphaned server keeps a port or a data directory locked. The kernel
//! sends that signal when the *thread* that forked the server exits, not the process. To keep a
//! server alive as long as the process rather than as long as the thread that happened to call
//! `start` or `restart` (a test thread, a short-lived worker), every server is forked from one
//! dedicated spawner thread that lives until the process exits.
//!
//! Each server also gets its own session (`setsid`), so a Ctrl-C in the terminal reaches only
//! innkeeper, which then shuts the servers down in order, and so a whole server (postmaster and
//! backends, or Redis and its fork for snapshots) can be signalled as one process group.

mod account;
mod cluster;
mod files;
pub mod postgres;
mod process;
pub mod redis;

pub use cluster::RedisCluster;
pub use files::read_or_create_secret;
pub use postgres::PostgresServer;
pub use redis::RedisServer;

use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// How much crash safety a server trades for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The service's embedded default: committed data must survive crashes and restarts.
    Durable,
    /// Integration tests: the data is disposable, so every fsync is skipped for speed.
    Throwaway,
}

/// Everything that can go wrong while running a private server.
#[derive(Debug, thiserror::Error)]
pub enum DevServicesError {
    /// Kept to one line because it is what a developer on a fresh machine sees first.
    #[error("{what} not found in {searched}: install with `apt-get install postgresql redis-server` (Debian/Ubuntu)")]
    MissingBinary {
        what: &'static str,
        searched: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{command} failed ({status}):\n{output}")]
    CommandFailed {
        command: String,
        status: ExitStatus,
        output: String,
    },
    #[error("{server} did not accept connections within {}s; last lines of `{}`:\n{tail}", waited.as_secs(), log.display())]
    StartupTimeout {
        server: &'static str,
        waited: Duration,
        log: PathBuf,
        tail: String,
    },
    #[error("{server} exited during startup ({status}); last lines of `{}`:\n{tail}", log.display())]
    ExitedDuringStartup {
        server: &'static str,
        status: ExitStatus,
        log: PathBuf,
        tail: String,
    },
    #[error("another PostgreSQL server (pid {pid}) is already using `{}`: stop it or use another directory", dir.display())]
    DirInUse { dir: PathBuf, pid: i32 },
}

fn io_error(context: impl Into<String>, source: io::Error) -> DevServicesError {
    DevServicesError::Io {
        context: context.into(),
        source,
    }
}

impl DevServicesError {
    /// The same error with every occurrence of `secret` in a failed command's text
    /// replaced, for commands whose input carries one.
    pub fn redacted(self, secret: &str) -> Self {
        match self {
            DevServicesError::CommandFailed {
                command,
                status,
                output,
            } => DevServicesError::CommandFailed {
                command: command.replace(secret, "<redacted>"),
                status,
                output: output.replace(secret, "<redacted>"),
            },
            other => other,
        }
    }
}

/// Picks a port that is free right now. Another process may take it before the server binds
/// it; the window is small, and a server that fails to bind exits with a clear log line.
pub fn free_port() -> Result<u16, DevServicesError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| io_error("binding 127.0.0.1:0 to find a free port", e))?;
    let address = listener
        .local_addr()
        .map_err(|e| io_error("reading the address bound to 127.0.0.1:0", e))?;
    Ok(address.port())
}

const PASSWORD_FILE: &str = "password";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
