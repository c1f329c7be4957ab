//! The listener: HTTP/1.1 on tokio (hyper under axum's router), with headers bounded
//! in size and in the time they take, a bounded number of connections, and an end
//! when the process is interrupted.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::api;
use crate::auth::{Guard, new_token};
use crate::scan::Roots;
use crate::state::State;
use crate::{Options, Ready, ServeError};

/// The longest a client may take to send a request's headers.
const HEADER_TIME: Duration = Duration::from_secs(10);

/// The read buffer's bound: a request whose headers do not fit in it (hyper lets the
/// buffer grow to about twice this while it reads) is refused with 431.
const MAX_BUF: usize = 32 << 10;

/// The most connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 1024;

/// Serves `options` until the process is interrupted; `ready` is told the address
/// once the server listens.
pub fn serve(options: Options, ready: impl FnOnce(&Ready)) -> Result<(), ServeError> {
    let roots = Roots::new(&options.dirs)?;
    let token = match options.token.clone() {
        Some(t) if t.len() >= 16 && t.bytes().all(|c| c.is_ascii_alphanumeric()) => t,
        Some(_) => {
            return Err(ServeError::Token(
                "must be at least 16 letters or digits".into(),
            ));
        }
        None => new_token().map_err(ServeError::Token)?,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    rt.block_on(listen(options, roots, token, ready))
}

/// The names a request's `Host` may give for `addr`; none (any) when it listens on
/// every address.
fn hosts(addr: SocketAddr) -> Vec<String> {
    let port = addr.port();
    match addr.ip() {
        ip if ip.is_unspecified() => Vec::new(),
        IpAddr::V4(ip) if ip.is_loopback() => {
            vec![format!("{ip}:{port}"), format!("localhost:{port}")]
        }
        IpAddr::V6(ip) if ip.is_loopback() => {
            vec![format!("[{ip}]:{port}"), format!("localhost:{port}")]
        }
        IpAddr::V4(ip) => vec![format!("{ip}:{port}")],
        IpAddr::V6(ip) => vec![format!("[{ip}]:{port}")],
    }
}

async fn listen(
    options: Options,
    roots: Roots,
    token: String,
    ready: impl FnOnce(&Ready),
) -> Result<(), ServeError> {
    let asked = SocketAddr::new(options.host, options.port);
    let listener = TcpListener::bind(asked)
        .await
        .map_err(|source| ServeError::Bind {
            port: options.port,
            addr: asked,
            source,
        })?;
    let addr = listener.local_addr().map_err(ServeError::Runtime)?;
    let shown = match addr {
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        SocketAddr::V4(a) => a.to_string(),
    };
    let warning = (!addr.ip().is_loopback()).then(|| {
        format!("--host {}: the dashboard can be reached from other machines; anyone with the URL can steer your runs, and the connection is not encrypted", addr.ip())
    });
    let state = Arc::new(State::new(roots, Guard::new(token.clone(), hosts(addr))));
    ready(&Ready {
        addr,
        url: format!("http://{shown}/?token={token}"),
        warning,
    });
    let app = api::router(state);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return Ok(());
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = interrupted() => return Ok(()),
        };
        let Ok((stream, _peer)) = accepted else {
            // Out of descriptors, say: wait a moment rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIME)
                .max_buf_size(MAX_BUF)
                .serve_connection(TokioIo::new(stream), service);
            let _closed = conn.await;
            drop(permit);
        });
    }
}

/// Resolves once the process has been asked to end (Ctrl-C, SIGTERM).
async fn interrupted() {
    while !rudder_core::interrupt::requested() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
