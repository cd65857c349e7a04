//! A deliberately thin HTTP/1.1 client: one keep-alive connection per worker, requests
//! written by hand, no pool, no redirects, no TLS. On a 2-core machine the generator shares
//! the CPU with the server, so every cycle it does not spend is one the server can use.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where the servers listen, parsed once from `--base-url`: one instance, or several
/// (comma-separated) that connections are spread over in turn, as behind a load balancer.
#[derive(Debug, Clone)]
pub struct Target {
    instances: Arc<[Instance]>,
    next: Arc<AtomicUsize>,
}

/// One server's address and `Host` header.
#[derive(Debug, Clone)]
struct Instance {
    addr: SocketAddr,
    host: String,
}

impl Target {
    /// `http://HOST:PORT` only: the bench never leaves the machine, so neither TLS nor a
    /// path prefix is supported.
    pub async fn parse(base_urls: &str) -> anyhow::Result<Self> {
        let mut instances = Vec::new();
        for base_url in base_urls.split(',').map(str::trim) {
            let host = base_url
                .strip_prefix("http://")
                .context("--base-url must start with http://")?
                .trim_end_matches('/')
                .to_owned();
            let addr = tokio::net::lookup_host(&host)
                .await
                .with_context(|| format!("resolving {host}"))?
                .next()
                .with_context(|| format!("{host} has no address"))?;
            instances.push(Instance { addr, host });
        }
        Ok(Self {
            instances: instances.into(),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The instance the next connection goes to.
    fn pick(&self) -> Instance {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        self.instances[turn % self.instances.len()].clone()
    }
}

/// One keep-alive connection. It reconnects by itself when the server closed it.
pub struct Conn {
    instance: Instance,
    sender: SendRequest<Full<Bytes>>,
}

/// What came back: the status, the body, and how long the request took on the wire
/// (from writing the request to reading the whole body).
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
    pub latency: Duration,
}

impl Conn {
    pub async fn open(target: &Target) -> anyhow::Result<Self> {
        let instance = target.pick();
        let sender = handshake(&instance).await?;
        Ok(Self { instance, sender })
    }

    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> anyhow::Result<Answer> {
        if self.sender.ready().await.is_err() {
            self.sender = handshake(&self.instance).await?;
        }
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.instance.host);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                request = request.header("content-type", "application/json");
                Full::new(Bytes::from(json))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request.body(body)?;
        let started = Instant::now();
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            body,
            latency: started.elapsed(),
        })
    }

    /// A call that must succeed with `expected`, for setup; its JSON answer.
    pub async fn expect(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
        expected: u16,
    ) -> anyhow::Result<serde_json::Value> {
        let answer = self.call(method.clone(), path, token, body).await?;
        if answer.status != expected {
            anyhow::bail!(
                "{method} {path} answered {} (expected {expected}): {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
        }
        if answer.body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&answer.body)
            .with_context(|| format!("{method} {path} answered something other than JSON"))
    }
}

async fn handshake(instance: &Instance) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(instance.addr)
        .await
        .with_context(|| format!("connecting to {}", instance.addr))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the server or this side closes the connection; `ready()` notices.
        let _ = connection.await;
    });
    Ok(sender)
}
