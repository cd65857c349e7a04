//! A private PostgreSQL cluster run from the installed server binaries.

use std::env;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::account::{hand_over, run_as, service_account, Account};
use super::files::{create_private_dir, load_or_create_password, log_tail, open_log};
use super::process::{find_in_path, is_executable, tcp_accepts, ServerProcess};
use super::{free_port, io_error, DevServicesError, Durability, PASSWORD_FILE};

/// The cluster's superuser, which initdb creates: it provisions the service's role and
/// database, and is what tools such as pgbench or the tests' database cloning use.
const USER: &str = "innkeeper";
/// The role innkeeper itself connects as: no superuser, no CREATEDB or CREATEROLE, owner
/// of its database and of everything in it, and of nothing else. A bug or an injection
/// in the service can then reach its own data, not the cluster.
const SERVICE_USER: &str = "innkeeper_service";
const SERVICE_PASSWORD_FILE: &str = "service-password";
const DATABASE: &str = "innkeeper";
const LOG_FILE: &str = "postgres.log";
/// PGDATA sits below the cluster directory so that the password file and the log, which
/// PostgreSQL does not own, stay out of it.
const DATA_DIR: &str = "data";

/// A PostgreSQL server that this process started and controls.
///
/// Dropping it stops the server (fast shutdown). Data in the cluster directory survives, so a
/// later [`PostgresServer::start`] on the same directory finds it again.
pub struct PostgresServer {
    binaries: Binaries,
    dir: PathBuf,
    durability: Durability,
    account: Option<Account>,
    password: String,
    service_password: String,
    port: u16,
    process: ServerProcess,
}

impl fmt::Debug for PostgresServer {
    // Hand-written so that the password can never end up in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresServer")
            .field("dir", &self.dir)
            .field("durability", &self.durability)
            .field("port", &self.port)
            .field("pid", &self.process.pid)
            .finish_non_exhaustive()
    }
}

impl PostgresServer {
    /// Starts a server on a free port for the cluster in `dir` (created with initdb on first
    /// use, reused afterwards), waits until it answers queries and makes sure the `innkeeper`
    /// database exists.
    ///
    /// PGDATA is `dir/data`; the superuser's password is kept in `dir/password`, the
    /// service role's in `dir/service-password`, and the server log in
    /// `dir/postgres.log`. When running as root, the server runs as the `postgres` user (or
    /// a created `innkeeper` system user), because PostgreSQL refuses to run as root.
    pub fn start(dir: &Path, durability: Durability) -> Result<Self, DevServicesError> {
        let binaries = Binaries::find()?;
        let account = service_account()?;
        let dir = create_private_dir(dir)?;
        let password = load_or_create_password(&dir, PASSWORD_FILE)?;
        let service_password = load_or_create_password(&dir, SERVICE_PASSWORD_FILE)?;
        // Created now so that it is handed over with the rest of the directory.
        open_log(&dir.join(LOG_FILE))?;
        hand_over(&dir, account)?;
        let mut server = PostgresServer {
            binaries,
            dir,
            durability,
            account,
            password,
            service_password,
            port: free_port()?,
            process: ServerProcess::not_started("PostgreSQL"),
        };
        if !server.pgdata().join("PG_VERSION").is_file() {
            server.init_cluster()?;
        }
        server.launch()?;
        server.provision()?;
        Ok(server)
    }

    /// What innkeeper connects with:
    /// `postgres://innkeeper_service:<password>@127.0.0.1:<port>/innkeeper`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{SERVICE_USER}:{}@127.0.0.1:{}/{DATABASE}",
            self.service_password, self.port
        )
    }

    /// The superuser's URL for a database, e.g. `postgres` to create or drop databases.
    pub fn admin_url(&self, database: &str) -> String {
        format!(
            "postgres://{USER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's pid (the latest one after a restart), e.g. for SIGSTOP in fault tests.
    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    /// The cluster directory: PGDATA, password file and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Fast shutdown (SIGINT): open transactions are rolled back, committed data is kept.
    pub fn stop(&mut self) -> Result<(), DevServicesError> {
        self.process.shutdown(libc::SIGINT)
    }

    /// Immediate shutdown (SIGQUIT, like `pg_ctl -m immediate`): no checkpoint, so the next
    /// start runs crash recovery.
    pub fn stop_immediate(&mut self) -> Result<(), DevServicesError> {
        self.process.shutdown(libc::SIGQUIT)
    }

    /// SIGKILL to the postmaster and all its backends at once, like a machine losing power as
    /// far as the clients can tell.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts the server again on the same port and directory (stopping it first if it still
    /// runs) and waits until it answers queries.
    pub fn restart(&mut self) -> Result<(), DevServicesError> {
        self.stop()?;
        self.launch()
    }

    fn pgdata(&self) -> PathBuf {
        self.dir.join(DATA_DIR)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    fn init_cluster(&self) -> Result<(), DevServicesError> {
        tracing::info!(dir = %self.dir.display(), "initialising a PostgreSQL cluster");
        let log_path = self.log_path();
        let log = open_log(&log_path)?;
        let errors = log
            .try_clone()
            .map_err(|e| io_error(format!("duplicating the log `{}`", log_path.display()), e))?;
        let mut password_file = OsString::from("--pwfile=");
        password_file.push(self.dir.join(PASSWORD_FILE));
        let mut command = postgres_command(&self.binaries.initdb);
        command
            .arg("-D")
            .arg(self.pgdata())
            .args([
                "-U",
                USER,
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .arg(password_file)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(errors);
        if self.durability == Durability::Throwaway {
            command.arg("--no-sync");
        }
        run_as(&mut command, self.account);
        let status = command
            .status()
            .map_err(|e| io_error(format!("running `{}`", self.binaries.initdb.display()), e))?;
        if !status.success() {
            return Err(DevServicesError::CommandFailed {
                command: format!("initdb -D {}", self.pgdata().display()),
                status,
                output: log_tail(&log_path),
            });
        }
        Ok(())
    }

    fn launch(&mut self) -> Result<(), DevServicesError> {
        self.check_lock_file()?;
        let max_connections = match self.durability {
            // innkeeper opens its whole pool at start-up (up to 64 in the benchmarks), and
            // pgbench, psql or a second innkeeper may run beside it.
            Durability::Durable => 200,
            // Tests open a pool per test and run many tests in parallel.
            Durability::Throwaway => 400,
        };
        let mut command = postgres_command(&self.binaries.postgres);
        command
            .arg("-D")
            .arg(self.pgdata())
            .arg("-p")
            .arg(self.port.to_string())
            // No Unix socket: the TCP port is the only way in, so nothing collides with the
            // machine's own server in /var/run/postgresql.
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "unix_socket_directories="])
            .arg("-c")
            .arg(format!("max_connections={max_connections}"))
            .current_dir(&self.dir);
        if self.durability == Durability::Throwaway {
            command.args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]);
        }
        let log_path = self.log_path();
        // SIGINT on innkeeper's death: a fast shutdown, which keeps committed data.
        self.process
            .spawn(command, self.account, libc::SIGINT, &log_path)?;
        let (psql, port, password) = (&self.binaries.psql, self.port, &self.password);
        self.process.wait_until_ready(&log_path, || {
            tcp_accepts(port) && query(psql, port, password, "postgres", "select 1").is_ok()
        })?;
        tracing::info!(port, pid = self.process.pid, dir = %self.dir.display(), "PostgreSQL is ready");
        Ok(())
    }

    /// PostgreSQL removes a lock file whose pid is dead by itself. It refuses to start when the
    /// pid is alive, which after a crash may be an unrelated process that reused the pid: that
    /// case is recognised and the stale file removed; a live postgres gets a clear error.
    fn check_lock_file(&self) -> Result<(), DevServicesError> {
        let lock = self.pgdata().join("postmaster.pid");
        let contents = match fs::read_to_string(&lock) {
            Ok(contents) => contents,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error(format!("reading `{}`", lock.display()), e)),
        };
        let Some(pid) = contents
            .lines()
            .next()
            .and_then(|line| line.trim().parse::<i32>().ok())
            .filter(|pid| *pid > 0)
        else {
            return Ok(());
        };
        // SAFETY: signal 0 only checks for existence.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            return Ok(());
        }
        let command = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if command.trim() == "postgres" {
            return Err(DevServicesError::DirInUse {
                dir: self.pgdata(),
                pid,
            });
        }
        tracing::warn!(
            pid,
            lock = %lock.display(),
            "removing a stale PostgreSQL lock file whose pid now belongs to another program"
        );
        fs::remove_file(&lock).map_err(|e| io_error(format!("removing `{}`", lock.display()), e))
    }

    /// Makes sure the service role exists with this directory's password and no special
    /// rights, that the `innkeeper` database exists, and that the role owns it and every
    /// object in it. A cluster made before the role existed, whose objects the superuser
    /// owns, is handed over here, once.
    fn provision(&self) -> Result<(), DevServicesError> {
        // psql's errors quote the statement, which may hold the role's password.
        let admin = |database: &str, sql: &str| {
            query(
                &self.binaries.psql,
                self.port,
                &self.password,
                database,
                sql,
            )
            .map_err(|error| error.redacted(&self.service_password))
        };
        admin(
            "postgres",
            &format!(
                "DO $$ BEGIN \
                   IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{SERVICE_USER}') THEN \
                     CREATE ROLE {SERVICE_USER}; \
                   END IF; \
                 END $$;\n\
                 ALTER ROLE {SERVICE_USER} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE \
                   NOREPLICATION NOBYPASSRLS PASSWORD '{}';",
                self.service_password
            ),
        )?;
        let exists = admin(
            "postgres",
            &format!("SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"),
        )?;
        if exists.trim() == "1" {
            admin(
                "postgres",
                &format!("ALTER DATABASE {DATABASE} OWNER TO {SERVICE_USER}"),
            )?;
        } else {
            admin(
                "postgres",
                &format!("CREATE DATABASE {DATABASE} OWNER {SERVICE_USER}"),
            )?;
            tracing::info!(port = self.port, "created database `{DATABASE}`");
        }
        // Tables first: a table takes its identity sequences with it, and those cannot be
        // handed over on their own. The sequences query runs after the tables' loop.
        admin(
            DATABASE,
            &format!(
                "DO $$ DECLARE object record; BEGIN \
                   FOR object IN SELECT c.oid::regclass AS name, c.relkind FROM pg_class c \
                       JOIN pg_namespace n ON n.oid = c.relnamespace \
                       WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') \
                         AND c.relowner <> '{SERVICE_USER}'::regrole LOOP \
                     EXECUTE format('ALTER %s %s OWNER TO {SERVICE_USER}', \
                       CASE object.relkind WHEN 'v' THEN 'VIEW' \
                         WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END, object.name); \
                   END LOOP; \
                   FOR object IN SELECT c.oid::regclass AS name FROM pg_class c \
                       JOIN pg_namespace n ON n.oid = c.relnamespace \
                       WHERE n.nspname = 'public' AND c.relkind = 'S' \
                         AND c.relowner <> '{SERVICE_USER}'::regrole LOOP \
                     EXECUTE format('ALTER SEQUENCE %s OWNER TO {SERVICE_USER}', object.name); \
                   END LOOP; \
                   FOR object IN SELECT p.oid::regprocedure AS name FROM pg_proc p \
                       JOIN pg_namespace n ON n.oid = p.pronamespace \
                       WHERE n.nspname = 'public' \
                         AND p.proowner <> '{SERVICE_USER}'::regrole LOOP \
                     EXECUTE format('ALTER ROUTINE %s OWNER TO {SERVICE_USER}', object.name); \
                   END LOOP; \
                 END $$;"
            ),
        )?;
        Ok(())
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "could not stop PostgreSQL cleanly");
        }
    }
}

#[derive(Debug)]
struct Binaries {
    initdb: PathBuf,
    postgres: PathBuf,
    psql: PathBuf,
}

impl Binaries {
    fn find() -> Result<Self, DevServicesError> {
        let bin_dir = pg_config_bin_dir()
            .filter(|dir| has_server(dir))
            .or_else(newest_debian_bin_dir)
            .ok_or_else(|| DevServicesError::MissingBinary {
                what: "PostgreSQL server binaries (initdb, postgres)",
                searched: "`pg_config --bindir` or /usr/lib/postgresql/*/bin".into(),
            })?;
        let psql = Some(bin_dir.join("psql"))
            .filter(|path| is_executable(path))
            .or_else(|| find_in_path("psql"))
            .ok_or_else(|| DevServicesError::MissingBinary {
                what: "PostgreSQL client (psql)",
                searched: format!("{} or PATH", bin_dir.display()),
            })?;
        Ok(Binaries {
            initdb: bin_dir.join("initdb"),
            postgres: bin_dir.join("postgres"),
            psql,
        })
    }
}

fn pg_config_bin_dir() -> Option<PathBuf> {
    let output = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())?;
    let text = String::from_utf8(output.stdout).ok()?;
    Some(PathBuf::from(text.trim()))
}

/// Debian installs each major version side by side; the newest is what a fresh install gets.
fn newest_debian_bin_dir() -> Option<PathBuf> {
    fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            let bin_dir = entry.path().join("bin");
            has_server(&bin_dir).then_some((version, bin_dir))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin_dir)| bin_dir)
}

fn has_server(bin_dir: &Path) -> bool {
    is_executable(&bin_dir.join("initdb")) && is_executable(&bin_dir.join("postgres"))
}

/// A command for a PostgreSQL program without the caller's PG* variables: an inherited
/// PGDATA, PGHOST, PGSSLMODE or PGOPTIONS would silently point it elsewhere or change it.
fn postgres_command(program: &Path) -> Command {
    let mut command = Command::new(program);
    for (key, _) in env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            command.env_remove(key);
        }
    }
    command
}

/// Runs SQL with psql as the superuser and returns its unaligned output. The password
/// goes through PGPASSWORD and the SQL, which may carry the service role's password,
/// through stdin: never argv, where any local user could read them.
fn query(
    psql: &Path,
    port: u16,
    password: &str,
    database: &str,
    sql: &str,
) -> Result<String, DevServicesError> {
    let output = postgres_command(psql)
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
        ])
        .arg("-p")
        .arg(port.to_string())
        .args(["-U", USER, "-d", database])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "5")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            let mut stdin = child.stdin.take().expect("stdin is piped");
            stdin.write_all(sql.as_bytes())?;
            drop(stdin);
            child.wait_with_output()
        })
        .map_err(|e| io_error(format!("running `{}`", psql.display()), e))?;
    if !output.status.success() {
        return Err(DevServicesError::CommandFailed {
            command: format!("psql -d {database} <<< {sql:?}"),
            status: output.status,
            output: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
