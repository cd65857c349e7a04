//! The embedded default, end to end: the real `innkeeper` binary with no database URLs
//! starts its own PostgreSQL and Redis under its data directory, serves, keeps its data and
//! its token secret across restarts, and stops its servers on SIGTERM.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::free_port;

const BINARY: &str = env!("CARGO_BIN_EXE_innkeeper");

fn command(data_dir: &Path) -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("INNKEEPER_JWT_SECRET")
        .env("INNKEEPER_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn");
    command
}

fn token(data_dir: &Path, role: &str) -> String {
    let output = command(data_dir)
        .args(["token", "--role", role, "--sub", "e2e", "--ttl", "10m"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned()
}

/// A running `innkeeper serve`, killed if a test panics before stopping it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve(data_dir: &Path, port: u16) -> Server {
    let server = Server(
        command(data_dir)
            .args([
                "serve",
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--seed-demo",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    let client = reqwest::Client::new();
    loop {
        if let Ok(response) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            if response.status() == 200 {
                return server;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the embedded default did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn terminate(server: &mut Server) {
    let child = &mut server.0;
    // SAFETY: kill(2) with a pid we own and a valid signal number has no memory effects.
    let sent = unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(sent, 0);
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "innkeeper exited with {status}");
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "innkeeper did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn postmaster_running(data_dir: &Path) -> bool {
    std::fs::read_dir(data_dir.join("postgres"))
        .map(|entries| {
            entries.flatten().any(|entry| {
                entry.path().join("postmaster.pid").exists()
                    || entry.file_name() == "postmaster.pid"
            })
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_embedded_default_serves_keeps_its_data_and_stops_cleanly() {
    let data_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("embedded-{}", uuid::Uuid::new_v4().simple()));
    let port = free_port();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");

    let mut server = serve(&data_dir, port).await;
    let staff = token(&data_dir, "staff");
    let created: Value = client
        .post(format!("{base}/v1/hotels"))
        .bearer_auth(&staff)
        .json(&serde_json::json!({"name": "Kept", "address": "a", "city": "Oslo", "country": "NO"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"]
        .as_i64()
        .expect("the hotel was created with a token from `innkeeper token`");
    terminate(&mut server);
    assert!(
        !postmaster_running(&data_dir),
        "PostgreSQL kept running after innkeeper stopped"
    );

    // Restarted on the same data directory: the hotel, the demo hotel and the secret remain.
    let mut server = serve(&data_dir, port).await;
    let hotels: Value = client
        .get(format!("{base}/v1/hotels"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<_> = hotels["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names.iter().filter(|n| *n == "The Demo Inn").count(),
        1,
        "{names:?}"
    );
    assert!(names.contains(&"Kept".to_owned()));
    let status = client
        .put(format!("{base}/v1/hotels/{id}"))
        .bearer_auth(&staff)
        .json(&serde_json::json!({"name": "Kept", "address": "b", "city": "Oslo", "country": "NO"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        status, 200,
        "a token made before the restart still verifies"
    );
    terminate(&mut server);
    let _ = std::fs::remove_dir_all(&data_dir);
}
