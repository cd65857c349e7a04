//! The private PostgreSQL and Redis servers (`innkeeper::devservices`) against the real
//! binaries, run as root as CI does: permissions, restarts, kills and pauses.

use std::fs;
use std::net::TcpStream;

use crate::helpers::children_of;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use innkeeper::devservices::{DevServicesError, Durability, PostgresServer, RedisServer};

/// A fresh parent directory shaped like CI's `mktemp -d`: owned by root, mode 0700.
fn private_parent(name: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("devsvc-{name}-{}-{nanos}", std::process::id()));
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

fn password_of(url: &str) -> &str {
    let after_scheme = url.split("://").nth(1).unwrap();
    let credentials = after_scheme.split('@').next().unwrap();
    credentials.split(':').nth(1).unwrap()
}

fn psql(pg: &PostgresServer, sql: &str) -> String {
    psql_at(&pg.url(), sql).unwrap_or_else(|error| panic!("psql {sql:?} failed: {error}"))
}

/// Runs `sql` at `url` with psql: its output, or psql's error.
fn psql_at(url: &str, sql: &str) -> Result<String, String> {
    let password = password_of(url);
    let without_password = url.replace(&format!(":{password}@"), "@");
    let output = Command::new("psql")
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(&without_password)
        .args(["-c", sql])
        .env("PGPASSWORD", password)
        .output()
        .unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(String::from_utf8(output.stdout).unwrap().trim().to_owned())
}

fn redis_cli(redis: &RedisServer, args: &[&str]) -> String {
    let url = redis.url();
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &redis.port().to_string()])
        .args(args)
        .env("REDISCLI_AUTH", password_of(&url))
        .output()
        .unwrap();
    assert!(output.status.success(), "redis-cli {args:?} failed");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn alive(pid: u32) -> bool {
    // A zombie no longer runs: only its /proc entry is left until someone reaps it.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap()
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

fn wait_dead(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
    true
}

fn uid_of(pid: u32) -> u32 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn cmdline_of(pid: u32) -> String {
    String::from_utf8_lossy(&fs::read(format!("/proc/{pid}/cmdline")).unwrap()).into_owned()
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o7777
}

#[test]
fn durable_servers_survive_stop_kill_pause_and_restart() {
    let parent = private_parent("durable");
    let pg_dir = parent.join("pg");
    let redis_dir = parent.join("redis");

    let mut pg = PostgresServer::start(&pg_dir, Durability::Durable).unwrap();
    let mut redis = RedisServer::start(&redis_dir, Durability::Durable).unwrap();
    let (pg_port, redis_port) = (pg.port(), redis.port());
    assert_ne!(pg_port, 5432);
    assert_ne!(redis_port, 6379);

    // Root-owned 0700 parent was opened for traversal only, and secrets are private.
    assert_eq!(mode_of(&parent), 0o701);
    assert_eq!(mode_of(&pg_dir.join("password")), 0o600);
    assert_eq!(mode_of(&redis_dir.join("password")), 0o600);
    assert_eq!(mode_of(&redis_dir.join("redis.conf")), 0o600);
    // Neither server runs as root, and no password shows in a process listing.
    assert_ne!(uid_of(pg.pid()), 0);
    assert_ne!(uid_of(redis.pid()), 0);
    assert!(!cmdline_of(pg.pid()).contains(password_of(&pg.url())));
    assert!(!cmdline_of(redis.pid()).contains(password_of(&redis.url())));
    assert!(!format!("{pg:?}{redis:?}").contains(password_of(&pg.url())));

    assert_eq!(psql(&pg, "select 1"), "1");
    assert_eq!(redis_cli(&redis, &["PING"]), "PONG");
    assert!(pg
        .admin_url("postgres")
        .ends_with(&format!(":{pg_port}/postgres")));

    psql(&pg, "create table bookings (id int primary key)");
    psql(&pg, "insert into bookings values (1)");
    redis_cli(&redis, &["SET", "hold", "room-1"]);

    // Clean stop and restart on the same port keeps the data.
    pg.stop().unwrap();
    redis.stop().unwrap();
    pg.restart().unwrap();
    redis.restart().unwrap();
    assert_eq!((pg.port(), redis.port()), (pg_port, redis_port));
    assert_eq!(psql(&pg, "select count(*) from bookings"), "1");
    assert_eq!(redis_cli(&redis, &["GET", "hold"]), "room-1");

    // kill -9 (whole process group), then restart: committed data survives.
    psql(&pg, "insert into bookings values (2)");
    redis_cli(&redis, &["SET", "hold", "room-2"]);
    thread::sleep(Duration::from_millis(1500)); // appendfsync everysec
    let (old_pg, old_redis) = (pg.pid(), redis.pid());
    pg.kill();
    redis.kill();
    assert!(!alive(old_pg) && !alive(old_redis));
    pg.restart().unwrap();
    redis.restart().unwrap();
    assert_eq!(psql(&pg, "select count(*) from bookings"), "2");
    assert_eq!(redis_cli(&redis, &["GET", "hold"]), "room-2");

    // Immediate shutdown forces crash recovery on the next start.
    pg.stop_immediate().unwrap();
    pg.restart().unwrap();
    assert_eq!(psql(&pg, "select count(*) from bookings"), "2");

    // A paused (SIGSTOP) server still stops promptly.
    unsafe { libc::kill(pg.pid() as i32, libc::SIGSTOP) };
    unsafe { libc::kill(redis.pid() as i32, libc::SIGSTOP) };
    let started = Instant::now();
    pg.stop().unwrap();
    redis.stop().unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));

    // A new start on the same directories reuses cluster and password.
    let pg_password = password_of(&pg.url()).to_owned();
    let (last_pg, last_redis) = (pg.pid(), redis.pid());
    drop(pg);
    drop(redis);
    let pg = PostgresServer::start(&pg_dir, Durability::Durable).unwrap();
    let redis = RedisServer::start(&redis_dir, Durability::Durable).unwrap();
    assert_ne!((pg.pid(), redis.pid()), (last_pg, last_redis));
    assert_eq!(password_of(&pg.url()), pg_password);
    assert_eq!(psql(&pg, "select count(*) from bookings"), "2");
    assert_eq!(redis_cli(&redis, &["GET", "hold"]), "room-2");

    // Dropping stops both servers.
    let (pg_pid, redis_pid) = (pg.pid(), redis.pid());
    drop(pg);
    drop(redis);
    assert!(!alive(pg_pid) && !alive(redis_pid));
    fs::remove_dir_all(&parent).unwrap();
}

#[test]
fn throwaway_servers_start_and_answer() {
    let parent = private_parent("throwaway");
    let pg = PostgresServer::start(&parent.join("pg"), Durability::Throwaway).unwrap();
    let redis = RedisServer::start(&parent.join("redis"), Durability::Throwaway).unwrap();
    assert_eq!(psql(&pg, "show fsync"), "off");
    assert_eq!(psql(&pg, "show max_connections"), "400");
    assert_eq!(
        redis_cli(&redis, &["CONFIG", "GET", "appendonly"]),
        "appendonly\nno"
    );
    assert_eq!(redis_cli(&redis, &["CONFIG", "GET", "save"]), "save");
    drop(pg);
    drop(redis);
    fs::remove_dir_all(&parent).unwrap();
}

/// innkeeper connects as a role that owns its database and everything in it, and can do
/// nothing beyond it; a cluster made before that role existed is handed over on start.
#[test]
fn the_service_role_owns_its_database_and_nothing_more() {
    let parent = private_parent("role");
    let dir = parent.join("pg");
    let pg = PostgresServer::start(&dir, Durability::Throwaway).unwrap();
    assert_eq!(
        psql(
            &pg,
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication FROM pg_roles \
             WHERE rolname = current_user"
        ),
        "f|f|f|f"
    );
    assert_eq!(
        psql(
            &pg,
            "SELECT pg_get_userbyid(datdba) = current_user FROM pg_database \
             WHERE datname = current_database()"
        ),
        "t"
    );
    for beyond in [
        "CREATE DATABASE elsewhere",
        "CREATE ROLE intruder",
        "ALTER SYSTEM SET fsync = on",
        "COPY (SELECT 1) TO PROGRAM 'true'",
    ] {
        let refused = psql_at(&pg.url(), beyond).unwrap_err();
        assert!(
            refused.contains("permission denied") || refused.contains("must be superuser"),
            "{beyond}: {refused}"
        );
    }
    // An older cluster: its tables, sequences and functions belong to the superuser.
    let admin = pg.admin_url("innkeeper");
    psql_at(
        &admin,
        "CREATE TABLE legacy (id bigint GENERATED ALWAYS AS IDENTITY, note text); \
         CREATE SEQUENCE legacy_numbers; \
         CREATE FUNCTION legacy_answer() RETURNS int LANGUAGE sql AS 'SELECT 42'",
    )
    .unwrap();
    assert!(psql_at(&pg.url(), "INSERT INTO legacy (note) VALUES ('x')").is_err());
    drop(pg);
    let pg = PostgresServer::start(&dir, Durability::Throwaway).unwrap();
    psql(&pg, "INSERT INTO legacy (note) VALUES ('x')");
    assert_eq!(
        psql(&pg, "SELECT nextval('legacy_numbers'), legacy_answer()"),
        "1|42"
    );
    assert_eq!(
        psql(
            &pg,
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relowner <> current_user::regrole"
        ),
        "0"
    );
    drop(pg);
    fs::remove_dir_all(&parent).unwrap();
}

#[test]
fn second_server_on_the_same_cluster_is_refused() {
    let parent = private_parent("in-use");
    let dir = parent.join("pg");
    let _pg = PostgresServer::start(&dir, Durability::Throwaway).unwrap();
    let error = PostgresServer::start(&dir, Durability::Throwaway).unwrap_err();
    assert!(
        matches!(error, DevServicesError::DirInUse { .. }),
        "{error}"
    );
    drop(_pg);
    fs::remove_dir_all(&parent).unwrap();
}

#[test]
fn missing_binary_message_is_one_line() {
    let error = DevServicesError::MissingBinary {
        what: "redis-server",
        searched: "PATH, /usr/bin or /usr/sbin".into(),
    };
    let message = error.to_string();
    assert!(!message.contains('\n'));
    assert!(message.contains("apt-get install postgresql redis-server"));
}

#[test]
fn startup_failure_reports_the_server_log() {
    let parent = private_parent("port-taken");
    let mut pg = PostgresServer::start(&parent.join("pg"), Durability::Throwaway).unwrap();
    pg.stop().unwrap();
    let squatter = std::net::TcpListener::bind(("127.0.0.1", pg.port())).unwrap();
    let error = pg.restart().unwrap_err();
    assert!(
        matches!(error, DevServicesError::ExitedDuringStartup { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("could not"), "{error}");
    drop(squatter);
    pg.restart().unwrap();
    assert_eq!(psql(&pg, "select 1"), "1");
    drop(pg);
    fs::remove_dir_all(&parent).unwrap();
}

#[test]
fn stale_lock_file_whose_pid_was_reused_is_removed() {
    let parent = private_parent("stale-lock");
    let mut pg = PostgresServer::start(&parent.join("pg"), Durability::Throwaway).unwrap();
    pg.kill();
    let lock = parent.join("pg/data/postmaster.pid");
    let mut stranger = Command::new("sleep").arg("60").spawn().unwrap();
    let contents = fs::read_to_string(&lock).unwrap();
    let rest = contents.split_once('\n').unwrap().1;
    fs::write(&lock, format!("{}\n{rest}", stranger.id())).unwrap();
    pg.restart().unwrap();
    assert_eq!(psql(&pg, "select 1"), "1");
    stranger.kill().unwrap();
    stranger.wait().unwrap();
    drop(pg);
    fs::remove_dir_all(&parent).unwrap();
}

#[test]
fn restart_after_the_postmaster_alone_was_killed_from_outside() {
    let parent = private_parent("outside-kill");
    let mut pg = PostgresServer::start(&parent.join("pg"), Durability::Throwaway).unwrap();
    for _ in 0..3 {
        // Only the postmaster: its backends and auxiliary processes are left behind.
        unsafe { libc::kill(pg.pid() as i32, libc::SIGKILL) };
        pg.restart().unwrap();
        assert_eq!(psql(&pg, "select 1"), "1");
    }
    drop(pg);
    fs::remove_dir_all(&parent).unwrap();
}

#[test]
fn servers_die_when_innkeeper_is_killed() {
    let parent = private_parent("killed");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut innkeeper = Command::new(env!("CARGO_BIN_EXE_innkeeper"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env("INNKEEPER_DATA_DIR", parent.join("data"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "innkeeper never listened"
        );
        assert!(
            innkeeper.try_wait().unwrap().is_none(),
            "innkeeper exited early"
        );
        thread::sleep(Duration::from_millis(100));
    }
    let servers = children_of(innkeeper.id());
    assert_eq!(
        servers.len(),
        2,
        "expected PostgreSQL and Redis, found {servers:?}"
    );

    innkeeper.kill().unwrap(); // SIGKILL: no destructor, no shutdown code runs
    innkeeper.wait().unwrap();
    for pid in &servers {
        assert!(
            wait_dead(*pid, Duration::from_secs(30)),
            "server {pid} outlived innkeeper"
        );
    }
    fs::remove_dir_all(&parent).unwrap();
}
