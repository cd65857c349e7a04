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

pub mod postgres;
pub mod redis;

pub use postgres::PostgresServer;
pub use redis::RedisServer;

use std::env;
use std::ffi::CStr;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use rand::distributions::Alphanumeric;
use rand::Rng;

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

/// The unprivileged account the servers run as when innkeeper runs as root, because PostgreSQL
/// refuses to run as root and a root-owned Redis could be told (`CONFIG SET dir`) to write
/// anywhere.
#[derive(Debug, Clone, Copy)]
struct Account {
    name: &'static str,
    uid: libc::uid_t,
    gid: libc::gid_t,
}

fn service_account() -> Result<Option<Account>, DevServicesError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    // Debian's server package creates `postgres`, which already owns PostgreSQL's runtime files.
    if let Some(account) = lookup_account(c"postgres", "postgres")? {
        return Ok(Some(account));
    }
    if let Some(account) = lookup_account(c"innkeeper", "innkeeper")? {
        return Ok(Some(account));
    }
    let args = [
        "--system",
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
        "innkeeper",
    ];
    let output = Command::new("useradd")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io_error("running useradd to create the system user `innkeeper`", e))?;
    // A concurrent start may have created the user first, so trust the lookup, not the status.
    match lookup_account(c"innkeeper", "innkeeper")? {
        Some(account) => {
            tracing::info!(
                "created system user `innkeeper` to run the private servers as non-root"
            );
            Ok(Some(account))
        }
        None => Err(DevServicesError::CommandFailed {
            command: format!("useradd {}", args.join(" ")),
            status: output.status,
            output: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        }),
    }
}

fn lookup_account(
    name: &'static CStr,
    label: &'static str,
) -> Result<Option<Account>, DevServicesError> {
    // SAFETY: passwd is plain old data; an all-zero value is valid and is overwritten below.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call, and the buffer length is the real one.
    // getpwnam_r rather than getpwnam because the latter returns a static buffer that other
    // threads may overwrite.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if rc != 0 {
        return Err(io_error(
            format!("looking up the user `{label}`"),
            io::Error::from_raw_os_error(rc),
        ));
    }
    Ok((!found.is_null()).then_some(Account {
        name: label,
        uid: entry.pw_uid,
        gid: entry.pw_gid,
    }))
}

/// Switches the forked child to `account` before it execs.
///
/// # Safety
/// Only for use between fork and exec: it makes async-signal-safe system calls only.
unsafe fn become_account(account: Account) -> io::Result<()> {
    // Supplementary groups first (root's would otherwise survive the switch), then the group
    // while we still may, then the user.
    if libc::setgroups(0, std::ptr::null()) == -1
        || libc::setgid(account.gid) == -1
        || libc::setuid(account.uid) == -1
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the child run as `account` (when there is one) for one-shot tools such as initdb.
fn run_as(command: &mut Command, account: Option<Account>) {
    if let Some(account) = account {
        // SAFETY: become_account is async-signal-safe and allocates nothing.
        unsafe {
            command.pre_exec(move || become_account(account));
        }
    }
}

/// Creates `dir` for a server and returns its canonical path. Mode 0700 because it holds the
/// password file and the data.
fn create_private_dir(dir: &Path) -> Result<PathBuf, DevServicesError> {
    fs::create_dir_all(dir).map_err(|e| io_error(format!("creating `{}`", dir.display()), e))?;
    let dir =
        fs::canonicalize(dir).map_err(|e| io_error(format!("resolving `{}`", dir.display()), e))?;
    fs::set_permissions(&dir, Permissions::from_mode(0o700))
        .map_err(|e| io_error(format!("restricting `{}` to mode 0700", dir.display()), e))?;
    Ok(dir)
}

/// Reads the password kept in `dir`, or creates one, so that data that survives a restart stays
/// reachable with the same URL. Mode 0600 because it is a credential.
fn load_or_create_password(dir: &Path) -> Result<String, DevServicesError> {
    let path = dir.join(PASSWORD_FILE);
    match fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(format!("reading `{}`", path.display()), e)),
    }
    let password: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    let context = || format!("writing `{}`", path.display());
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| io_error(context(), e))?;
    // An empty file left behind may have had a looser mode; `mode` only applies on creation.
    file.set_permissions(Permissions::from_mode(0o600))
        .and_then(|()| file.write_all(password.as_bytes()))
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(context(), e))?;
    Ok(password)
}

fn open_log(path: &Path) -> Result<File, DevServicesError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| io_error(format!("opening the log `{}`", path.display()), e))
}

/// The last lines of a server log, because a startup error without the server's own words is
/// rarely actionable.
fn log_tail(path: &Path) -> String {
    const MAX_BYTES: u64 = 16 * 1024;
    const MAX_LINES: usize = 20;
    let read = || -> io::Result<Vec<u8>> {
        let mut file = File::open(path)?;
        let length = file.metadata()?.len();
        file.seek(SeekFrom::Start(length.saturating_sub(MAX_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(bytes)
    };
    match read() {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(MAX_LINES)..].join("\n")
        }
        Err(e) => format!("(could not read the log: {e})"),
    }
}

/// Gives the server directory to `account` and makes sure that account can reach it.
fn hand_over(dir: &Path, account: Option<Account>) -> Result<(), DevServicesError> {
    let Some(account) = account else {
        return Ok(());
    };
    chown_tree(dir, account)?;
    open_ancestors(dir, account)
}

fn chown_tree(path: &Path, account: Account) -> Result<(), DevServicesError> {
    let context = || format!("giving `{}` to user `{}`", path.display(), account.name);
    std::os::unix::fs::lchown(path, Some(account.uid), Some(account.gid))
        .map_err(|e| io_error(context(), e))?;
    let metadata = fs::symlink_metadata(path).map_err(|e| io_error(context(), e))?;
    if metadata.is_dir() {
        for entry in fs::read_dir(path).map_err(|e| io_error(context(), e))? {
            chown_tree(&entry.map_err(|e| io_error(context(), e))?.path(), account)?;
        }
    }
    Ok(())
}

/// CI clones into `mktemp -d` (mode 0700, owned by root), where the unprivileged server user
/// could not reach its own directory. Only the search bit of the permission class that applies
/// to that user is added: never read or write, so nobody can list or change those directories.
fn open_ancestors(dir: &Path, account: Account) -> Result<(), DevServicesError> {
    for ancestor in dir.ancestors().skip(1) {
        let metadata = fs::metadata(ancestor)
            .map_err(|e| io_error(format!("inspecting `{}`", ancestor.display()), e))?;
        let search_bit = if metadata.uid() == account.uid {
            0o100
        } else if metadata.gid() == account.gid {
            0o010
        } else {
            0o001
        };
        let mode = metadata.mode() & 0o7777;
        if mode & search_bit == 0 {
            fs::set_permissions(ancestor, Permissions::from_mode(mode | search_bit)).map_err(
                |e| {
                    io_error(
                        format!("adding search permission to `{}`", ancestor.display()),
                        e,
                    )
                },
            )?;
            tracing::info!(
                directory = %ancestor.display(),
                user = account.name,
                "added search-only (x) permission so the unprivileged server user can reach {}",
                dir.display()
            );
        }
    }
    Ok(())
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let paths = env::var_os("PATH")?;
    env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|path| is_executable(path))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}

fn tcp_accepts(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

static SPAWNER: Mutex<Option<mpsc::Sender<SpawnRequest>>> = Mutex::new(None);

/// Forks `command` from the process-lifetime spawner thread; see the module docs for why.
fn spawn_from_spawner_thread(command: Command) -> io::Result<Child> {
    let gone = || io::Error::other("the devservices spawner thread is gone");
    let sender = {
        let mut slot = SPAWNER.lock().unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            Some(sender) => sender.clone(),
            None => {
                let (sender, requests) = mpsc::channel::<SpawnRequest>();
                thread::Builder::new()
                    .name("devservices-spawner".into())
                    .spawn(move || {
                        for (mut command, reply) in requests {
                            // The requester waits on the reply, so it cannot have gone away.
                            let _ = reply.send(command.spawn());
                        }
                    })?;
                *slot = Some(sender.clone());
                sender
            }
        }
    };
    let (reply, response) = mpsc::channel();
    sender.send((command, reply)).map_err(|_| gone())?;
    response.recv().map_err(|_| gone())?
}

/// A running server process that we forked, and the process group it leads.
#[derive(Debug)]
struct ServerProcess {
    name: &'static str,
    child: Option<Child>,
    pid: u32,
}

impl ServerProcess {
    fn not_started(name: &'static str) -> Self {
        ServerProcess {
            name,
            child: None,
            pid: 0,
        }
    }

    /// Spawns a server with its output appended to `log`, as `account`, in a session of its
    /// own, set to receive `death_signal` when innkeeper dies.
    fn spawn(
        &mut self,
        mut command: Command,
        account: Option<Account>,
        death_signal: libc::c_int,
        log: &Path,
    ) -> Result<(), DevServicesError> {
        let output = open_log(log)?;
        let errors = output
            .try_clone()
            .map_err(|e| io_error(format!("duplicating the log `{}`", log.display()), e))?;
        command.stdin(Stdio::null()).stdout(output).stderr(errors);
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs between fork and exec, so it only makes async-signal-safe
        // system calls and allocates nothing.
        unsafe {
            command.pre_exec(move || {
                if libc::setsid() == -1 {
                    return Err(io::Error::last_os_error());
                }
                if let Some(account) = account {
                    become_account(account)?;
                }
                // After the switch of user, because changing credentials clears the setting.
                if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal as libc::c_ulong) == -1 {
                    return Err(io::Error::last_os_error());
                }
                // innkeeper may have died before the prctl, and then no signal would ever come.
                if libc::getppid() != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let child = spawn_from_spawner_thread(command)
            .map_err(|e| io_error(format!("starting {}", self.name), e))?;
        self.pid = child.id();
        self.child = Some(child);
        Ok(())
    }

    /// Polls `ready` until it holds; on failure the server is killed, so a half-started server
    /// never lingers.
    fn wait_until_ready(
        &mut self,
        log: &Path,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), DevServicesError> {
        let started = Instant::now();
        let outcome = loop {
            match self.exit_status() {
                Ok(Some(status)) => {
                    break Err(DevServicesError::ExitedDuringStartup {
                        server: self.name,
                        status,
                        log: log.to_owned(),
                        tail: log_tail(log),
                    })
                }
                Ok(None) => {}
                Err(e) => break Err(e),
            }
            if ready() {
                break Ok(());
            }
            if started.elapsed() >= READY_TIMEOUT {
                break Err(DevServicesError::StartupTimeout {
                    server: self.name,
                    waited: READY_TIMEOUT,
                    log: log.to_owned(),
                    tail: log_tail(log),
                });
            }
            thread::sleep(POLL_INTERVAL);
        };
        if outcome.is_err() {
            self.kill();
        }
        outcome
    }

    /// The exit status once the server has exited (reaping it), `None` while it runs.
    fn exit_status(&mut self) -> Result<Option<ExitStatus>, DevServicesError> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        let context = || format!("checking on {} (pid {})", self.name, self.pid);
        // SAFETY: siginfo_t is plain old data, and waitid only writes to it. WNOWAIT leaves the
        // exited server unreaped, so its pid and group id cannot be reused yet.
        let exited = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
            if libc::waitid(libc::P_PID, self.pid as libc::id_t, &mut info, flags) == -1 {
                return Err(io_error(context(), io::Error::last_os_error()));
            }
            info.si_pid() != 0
        };
        if !exited {
            return Ok(None);
        }
        // A postmaster killed from outside leaves backends behind that still hold its shared
        // memory, and a new postmaster refuses to start beside them.
        signal_group(self.pid, libc::SIGKILL);
        let status = child.wait().map_err(|e| io_error(context(), e))?;
        self.child = None;
        wait_for_group_exit(self.pid);
        Ok(Some(status))
    }

    /// Asks the server to exit with `signal`, waits up to [`STOP_TIMEOUT`], then kills it.
    fn shutdown(&mut self, signal: libc::c_int) -> Result<(), DevServicesError> {
        if self.child.is_none() || self.exit_status()?.is_some() {
            return Ok(());
        }
        // SAFETY: the child is not reaped yet, so its pid cannot belong to another process.
        unsafe {
            libc::kill(self.pid as libc::pid_t, signal);
        }
        // A server paused by a fault test (SIGSTOP) cannot act on the signal until resumed.
        signal_group(self.pid, libc::SIGCONT);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if self.exit_status()?.is_some() {
                tracing::info!(pid = self.pid, "{} stopped", self.name);
                return Ok(());
            }
            thread::sleep(POLL_INTERVAL);
        }
        tracing::warn!(
            pid = self.pid,
            "{} did not stop within {}s; killing it",
            self.name,
            STOP_TIMEOUT.as_secs()
        );
        self.kill();
        Ok(())
    }

    /// Kills the whole process group, so no orphaned worker keeps the port or the data (for
    /// PostgreSQL: the shared memory a new postmaster refuses to start beside).
    fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal_group(self.pid, libc::SIGKILL);
        if let Err(e) = child.wait() {
            tracing::warn!(pid = self.pid, error = %e, "could not reap {}", self.name);
        }
        wait_for_group_exit(self.pid);
    }
}

/// Signals every process of the server's group, whose id is the server's pid thanks to setsid.
/// Only called while the server is unreaped or just after, so the id is still the server's.
fn signal_group(pid: u32, signal: libc::c_int) {
    // SAFETY: plain system call.
    unsafe {
        libc::kill(-(pid as libc::pid_t), signal);
    }
}

/// Waits briefly for the members of a killed group to exit.
fn wait_for_group_exit(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while group_has_live_member(pid) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a process of the group still runs. Zombies do not count: they hold neither port nor
/// shared memory, and reaping orphans is up to init, which may take its time.
fn group_has_live_member(pgid: u32) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    let pgid = pgid.to_string();
    entries.filter_map(Result::ok).any(|entry| {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // After the parenthesised command name come the state, the parent and the group.
        let Some((_, fields)) = stat.rsplit_once(')') else {
            return false;
        };
        let mut fields = fields.split_whitespace();
        let state = fields.next();
        let group = fields.nth(1);
        state != Some("Z") && group == Some(pgid.as_str())
    })
}
