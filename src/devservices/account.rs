//! The operating-system account the servers run as.

use std::ffi::CStr;
use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{io_error, DevServicesError};

/// The unprivileged account the servers run as when innkeeper runs as root, because PostgreSQL
/// refuses to run as root and a root-owned Redis could be told (`CONFIG SET dir`) to write
/// anywhere.
#[derive(Debug, Clone, Copy)]
pub(super) struct Account {
    name: &'static str,
    uid: libc::uid_t,
    gid: libc::gid_t,
}

pub(super) fn service_account() -> Result<Option<Account>, DevServicesError> {
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
pub(super) unsafe fn become_account(account: Account) -> io::Result<()> {
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
pub(super) fn run_as(command: &mut Command, account: Option<Account>) {
    if let Some(account) = account {
        // SAFETY: become_account is async-signal-safe and allocates nothing.
        unsafe {
            command.pre_exec(move || become_account(account));
        }
    }
}

/// Gives the server directory to `account` and makes sure that account can reach it.
pub(super) fn hand_over(dir: &Path, account: Option<Account>) -> Result<(), DevServicesError> {
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
