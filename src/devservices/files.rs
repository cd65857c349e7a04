//! Files the servers and innkeeper keep: private directories, secrets, logs.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::distributions::Alphanumeric;
use rand::Rng;

use super::{io_error, DevServicesError};

/// Creates `dir` for a server and returns its canonical path. Mode 0700 because it holds the
/// password file and the data.
pub(super) fn create_private_dir(dir: &Path) -> Result<PathBuf, DevServicesError> {
    fs::create_dir_all(dir).map_err(|e| io_error(format!("creating `{}`", dir.display()), e))?;
    let dir =
        fs::canonicalize(dir).map_err(|e| io_error(format!("resolving `{}`", dir.display()), e))?;
    fs::set_permissions(&dir, Permissions::from_mode(0o700))
        .map_err(|e| io_error(format!("restricting `{}` to mode 0700", dir.display()), e))?;
    Ok(dir)
}

/// Reads the password kept in `dir/<file>`, or creates one, so that data that survives a
/// restart stays reachable with the same URL.
pub(super) fn load_or_create_password(dir: &Path, file: &str) -> Result<String, DevServicesError> {
    let path = dir.join(file);
    read_or_create_secret(&path, || {
        rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(32)
            .map(char::from)
            .collect()
    })
    .map_err(|e| io_error(format!("keeping the password in `{}`", path.display()), e))
}

/// The secret kept in the private file `path`, or a new one from `make`, written there.
///
/// The file is only ever created whole: the secret goes into a temporary file of mode
/// 0600 first, which is then linked into place, and linking fails if `path` exists. So two
/// processes starting together on a fresh directory (`serve` and `token`, say) end up
/// with one secret, the first to link, and neither ever reads a half-written file.
///
/// A file that exists must be private: one that its group or others may read, or that is
/// empty, is refused rather than used or silently rewritten, since its secret may already
/// have leaked or it is not one this code wrote.
pub fn read_or_create_secret(path: &Path, make: impl FnOnce() -> String) -> io::Result<String> {
    if let Some(secret) = read_private(path)? {
        return Ok(secret);
    }
    let secret = make();
    let dir = path.parent().unwrap_or(Path::new("."));
    let temporary = dir.join(format!(
        ".{}.{}.{}",
        path.file_name()
            .map_or("secret".into(), |name| name.to_string_lossy()),
        std::process::id(),
        rand::thread_rng().gen::<u64>()
    ));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(secret.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| fs::hard_link(&temporary, path));
    let _ = fs::remove_file(&temporary);
    match written {
        Ok(()) => Ok(secret),
        // Another process linked its own first: the one on disk is the secret.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_private(path)?
            .ok_or_else(|| io::Error::other("the secret file vanished while it was created")),
        Err(e) => Err(e),
    }
}

/// The secret in `path`, `None` if there is no such file.
fn read_private(path: &Path) -> io::Result<Option<String>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mode = file.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "`{}` may be read by others (mode {:o}); make it private with `chmod 600` \
                 if its secret has not leaked, or delete it to have a new one made",
                path.display(),
                mode & 0o777
            ),
        ));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "`{}` is empty; delete it to have a new secret made",
                path.display()
            ),
        ));
    }
    Ok(Some(secret.to_owned()))
}

pub(super) fn open_log(path: &Path) -> Result<File, DevServicesError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| io_error(format!("opening the log `{}`", path.display()), e))
}

/// The last lines of a server log, because a startup error without the server's own words is
/// rarely actionable.
pub(super) fn log_tail(path: &Path) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "innkeeper-files-{}-{}",
            std::process::id(),
            rand::thread_rng().gen::<u64>()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_new_secret_is_private_and_kept() {
        let path = scratch().join("secret");
        let made = read_or_create_secret(&path, || "s3cret".into()).unwrap();
        assert_eq!(made, "s3cret");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = read_or_create_secret(&path, || "other".into()).unwrap();
        assert_eq!(again, "s3cret");
    }

    #[test]
    fn a_readable_or_empty_file_is_refused_and_left_alone() {
        let dir = scratch();
        let readable = dir.join("readable");
        fs::write(&readable, "").unwrap();
        fs::set_permissions(&readable, Permissions::from_mode(0o644)).unwrap();
        let error = read_or_create_secret(&readable, || "new".into()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(
            fs::read_to_string(&readable).unwrap(),
            "",
            "nothing written"
        );
        assert_eq!(
            fs::metadata(&readable).unwrap().permissions().mode() & 0o777,
            0o644
        );

        let empty = dir.join("empty");
        fs::write(&empty, "").unwrap();
        fs::set_permissions(&empty, Permissions::from_mode(0o600)).unwrap();
        let error = read_or_create_secret(&empty, || "new".into()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn processes_starting_together_agree_on_one_secret() {
        for _ in 0..20 {
            let path = scratch().join("secret");
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let secrets: Vec<String> = (0..8)
                .map(|n| {
                    let path = path.clone();
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        barrier.wait();
                        read_or_create_secret(&path, || format!("secret-{n}")).unwrap()
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|thread| thread.join().unwrap())
                .collect();
            assert!(
                secrets.iter().all(|secret| *secret == secrets[0]),
                "{secrets:?}"
            );
            assert_eq!(fs::read_to_string(&path).unwrap(), secrets[0]);
        }
    }
}
