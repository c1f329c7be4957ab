//! `rudder serve`: every run and sweep under the folders it is given, live in a
//! browser, with controls for running runs and a policy editor.
//!
//! The server only reads run folders, appends lines to a running run's
//! `control.jsonl` (the channel `rudder ctl` writes, so the run validates and records
//! each as it does any decision), and writes a run's own `.rhai` policy files, whole
//! and atomically, after the edit passed the check a reload makes. A server that stops,
//! crashes or is attacked cannot end or slow a run beyond the reads it makes.
//!
//! Every request needs the token printed in the URL ([`Ready::url`]); see the book's
//! "The dashboard" chapter for the rules.
//!
//! ```no_run
//! let options = rudder_serve::Options::new(vec!["runs".into()]);
//! rudder_serve::serve(options, |ready| println!("{}", ready.url)).unwrap();
//! ```

mod api;
mod assets;
mod auth;
mod control;
mod detail;
mod edit;
mod http;
mod live;
mod scan;
mod state;
mod summary;
mod tail;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

pub use http::serve;

/// The port `rudder serve` listens on unless `--port` says otherwise.
pub const DEFAULT_PORT: u16 = 8686;

/// What to serve, and where.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The folders whose runs and sweeps are shown (each searched a few levels deep).
    pub dirs: Vec<PathBuf>,
    /// The address to bind (`127.0.0.1` unless told otherwise).
    pub host: IpAddr,
    /// The port; 0 picks a free one.
    pub port: u16,
    /// The token; `None` draws 128 random bits.
    pub token: Option<String>,
}

impl Options {
    /// `dirs` on 127.0.0.1, port [`DEFAULT_PORT`], a new random token.
    pub fn new(dirs: Vec<PathBuf>) -> Options {
        Options {
            dirs,
            host: IpAddr::from([127, 0, 0, 1]),
            port: DEFAULT_PORT,
            token: None,
        }
    }
}

/// The server, listening: what to tell the person who started it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Ready {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The page's address with the token (`http://127.0.0.1:8686/?token=...`).
    pub url: String,
    /// A warning to show: the server listens beyond this machine.
    pub warning: Option<String>,
}

/// Why the server could not start or had to end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A folder to serve is missing or not a folder.
    #[error("{dir}: {message}")]
    Dir {
        /// The folder as given.
        dir: String,
        /// What is wrong with it.
        message: String,
    },
    /// The address cannot be listened on.
    #[error("--port {port}: cannot listen on {addr}: {source}")]
    Bind {
        /// The port asked for.
        port: u16,
        /// The address.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The token given is not usable.
    #[error("token: {0}")]
    Token(String),
    /// The runtime could not start.
    #[error("the server's runtime: {0}")]
    Runtime(std::io::Error),
}

impl ServeError {
    /// Whether the error is in what the server was given (exit 2), not a failure.
    pub fn is_input(&self) -> bool {
        !matches!(self, ServeError::Runtime(_))
    }
}
