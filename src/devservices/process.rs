//! Server processes: found on the PATH, forked from one long-lived thread, signalled as a
//! group, and waited for.

use std::env;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::account::{become_account, Account};
use super::files::{log_tail, open_log};
use super::{io_error, DevServicesError, POLL_INTERVAL, READY_TIMEOUT, STOP_TIMEOUT};

pub(super) fn find_in_path(name: &str) -> Option<PathBuf> {
    let paths = env::var_os("PATH")?;
    env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|path| is_executable(path))
}

pub(super) fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}

pub(super) fn tcp_accepts(port: u16) -> bool {
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
pub(super) struct ServerProcess {
    pub(super) name: &'static str,
    pub(super) child: Option<Child>,
    pub(super) pid: u32,
}

impl ServerProcess {
    pub(super) fn not_started(name: &'static str) -> Self {
        ServerProcess {
            name,
            child: None,
            pid: 0,
        }
    }

    /// Spawns a server with its output appended to `log`, as `account`, in a session of its
    /// own, set to receive `death_signal` when innkeeper dies.
    pub(super) fn spawn(
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
    pub(super) fn wait_until_ready(
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
    pub(super) fn exit_status(&mut self) -> Result<Option<ExitStatus>, DevServicesError> {
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
    pub(super) fn shutdown(&mut self, signal: libc::c_int) -> Result<(), DevServicesError> {
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
    pub(super) fn kill(&mut self) {
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
