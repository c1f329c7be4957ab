//! The routes: the page and its assets, the JSON a page is drawn from, the live
//! streams, the controls and the policy editor; every one behind the guard.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State as Shared};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Refusal;
use crate::scan::{Found, Kind};
use crate::state::State;
use crate::summary::{Locks, MAX_JSON};
use crate::{assets, control, detail, edit, live, tail};

/// The largest request body (a policy file of 1 MiB, escaped as JSON).
const MAX_BODY: usize = 3 << 20;

/// How long a request's body may take to arrive.
const BODY_TIME: Duration = Duration::from_secs(10);

/// An answer with a status and a one-line reason, as JSON.
fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, axum::Json(json!({"error": message.into()}))).into_response()
}

/// Every route, behind the guard.
pub(crate) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/{name}", get(asset))
        .route("/api/list", get(list))
        .route("/api/live/list", get(live_list))
        .route("/api/run", get(run))
        .route("/api/live/run", get(live_run))
        .route("/api/sweep", get(sweep))
        .route("/api/live/sweep", get(live_sweep))
        .route("/api/file", get(file))
        .route("/api/control", post(control))
        .route("/api/sweep/control", post(sweep_control))
        .route("/api/policy/check", post(check))
        .route("/api/policy/save", post(save))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such page") })
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// The guard: the token and the origin rules, then headers that keep the page to
/// itself (no framing, no sniffing, no referrer carrying the token, scripts and
/// connections only from here).
async fn guard(Shared(state): Shared<Arc<State>>, req: Request, next: Next) -> Response {
    let q: Option<TokenQuery> = Query::try_from_uri(req.uri()).ok().map(|Query(q)| q);
    let token = q.and_then(|q| q.token);
    let verdict = state
        .guard
        .check(req.method(), req.headers(), token.as_deref());
    let mut resp = match verdict {
        Err(Refusal::Token) => error(
            StatusCode::UNAUTHORIZED,
            "the token is missing or wrong: open the URL rudder serve printed",
        ),
        Err(Refusal::Origin) => error(
            StatusCode::FORBIDDEN,
            "a change needs the token in a header, from this server's own page",
        ),
        Ok(()) if token.is_some() && req.uri().path() == "/" => Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, "/")
            .header(header::SET_COOKIE, state.guard.cookie())
            .body(Body::empty())
            .unwrap_or_default(),
        Ok(()) => next.run(req).await,
    };
    let h = resp.headers_mut();
    for (k, v) in [
        (
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    resp
}

async fn index(Shared(state): Shared<Arc<State>>) -> Response {
    let page = assets::INDEX.replace("{{TOKEN}}", state.guard.token());
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    match assets::get(&name) {
        Some((kind, body)) => ([(header::CONTENT_TYPE, kind)], body).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such asset"),
    }
}

async fn list(Shared(state): Shared<Arc<State>>) -> Response {
    let s = state.clone();
    blocking(move || axum::Json(s.list()).into_response()).await
}

async fn live_list(Shared(state): Shared<Arc<State>>) -> live::Stream {
    live::list(state)
}

#[derive(Deserialize)]
struct IdQuery {
    id: String,
}

/// The run or sweep a request names, if it is one now.
fn found(state: &State, id: &str, kind: Kind) -> Result<Found, Response> {
    match state.roots.resolve(id) {
        Some(f) if f.kind == kind => Ok(f),
        _ => Err(error(
            StatusCode::NOT_FOUND,
            "no such run or sweep in the served folders",
        )),
    }
}

/// Work that reads files, off the runtime's threads.
async fn blocking(f: impl FnOnce() -> Response + Send + 'static) -> Response {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "the request failed"))
}

async fn run(Shared(state): Shared<Arc<State>>, Query(q): Query<IdQuery>) -> Response {
    match found(&state, &q.id, Kind::Run) {
        Ok(f) => blocking(move || axum::Json(detail::run(&f)).into_response()).await,
        Err(r) => r,
    }
}

/// A run's stream: the run, and the byte offsets its page was drawn from.
#[derive(Deserialize)]
struct LiveQuery {
    id: String,
    #[serde(default)]
    metrics: u64,
    #[serde(default)]
    events: u64,
    #[serde(default)]
    steps: u64,
}

async fn live_run(Shared(state): Shared<Arc<State>>, Query(q): Query<LiveQuery>) -> Response {
    let from = live::From {
        metrics: q.metrics,
        events: q.events,
        steps: q.steps,
    };
    match found(&state, &q.id, Kind::Run) {
        Ok(f) => live::run(f, from).into_response(),
        Err(r) => r,
    }
}

async fn sweep(Shared(state): Shared<Arc<State>>, Query(q): Query<IdQuery>) -> Response {
    match found(&state, &q.id, Kind::Sweep) {
        Ok(f) => {
            let s = state.clone();
            blocking(move || axum::Json(detail::sweep(&f, &s.roots)).into_response()).await
        }
        Err(r) => r,
    }
}

async fn live_sweep(Shared(state): Shared<Arc<State>>, Query(q): Query<IdQuery>) -> Response {
    match found(&state, &q.id, Kind::Sweep) {
        Ok(f) => live::sweep(state.clone(), f).into_response(),
        Err(r) => r,
    }
}

/// A run's config and events, for the editor's lookups.
fn run_files(f: &Found) -> (Value, Vec<Value>) {
    let config = tail::json_file(&f.dir, "config.json", MAX_JSON).unwrap_or(Value::Null);
    (config, tail::read_all(&f.dir, "events.jsonl").values)
}

#[derive(Deserialize)]
struct FileQuery {
    id: String,
    path: String,
}

async fn file(Shared(state): Shared<Arc<State>>, Query(q): Query<FileQuery>) -> Response {
    let f = match found(&state, &q.id, Kind::Run) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Some(source) = edit::embedded(&q.path) {
        let sha = rudder_policy::checksum::sha256(source.as_bytes());
        return axum::Json(
            json!({"path": q.path, "source": source, "sha256": sha, "readonly": true}),
        )
        .into_response();
    }
    let s = state.clone();
    blocking(move || {
        let (config, events) = run_files(&f);
        match edit::find(&f.dir, &config, &events, &q.path).and_then(|e| edit::open(&e, &s.saved)) {
            Ok((text, sha)) => {
                axum::Json(json!({"path": q.path, "source": text, "sha256": sha})).into_response()
            }
            Err(why) => error(StatusCode::FORBIDDEN, why),
        }
    })
    .await
}

/// A request's body as JSON: bounded in size and in the time it takes.
async fn body_json(req: Request) -> Result<Value, Response> {
    let bytes = tokio::time::timeout(BODY_TIME, axum::body::to_bytes(req.into_body(), MAX_BODY))
        .await
        .map_err(|_| error(StatusCode::REQUEST_TIMEOUT, "the body took too long"))?
        .map_err(|_| error(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large"))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("not JSON: {e}")))
}

/// The run or sweep a control names, and the control (its body).
async fn asked(
    state: &State,
    id: &str,
    kind: Kind,
    req: Request,
) -> Result<(Found, Value), Response> {
    let f = found(state, id, kind)?;
    Ok((f, body_json(req).await?))
}

async fn control(
    Shared(state): Shared<Arc<State>>,
    Query(q): Query<IdQuery>,
    req: Request,
) -> Response {
    let (f, asked) = match asked(&state, &q.id, Kind::Run, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    blocking(move || {
        let running = Locks::now().held(&f.dir);
        refused_or(control::send(&f.dir, &asked, running))
    })
    .await
}

async fn sweep_control(
    Shared(state): Shared<Arc<State>>,
    Query(q): Query<IdQuery>,
    req: Request,
) -> Response {
    let (f, asked) = match asked(&state, &q.id, Kind::Sweep, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    blocking(move || {
        let record = tail::json_file(&f.dir, "sweep.json", MAX_JSON).unwrap_or(Value::Null);
        let trials: Vec<String> = record["trials"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["dir"].as_str().map(String::from))
            .collect();
        let running = record["state"] == "running" && Locks::now().held(&f.dir);
        refused_or(control::send_sweep(&f.dir, &asked, &trials, running))
    })
    .await
}

/// A control's answer: its id, or why it was not sent.
fn refused_or(sent: Result<String, control::Refused>) -> Response {
    match sent {
        Ok(id) => axum::Json(json!({"id": id})).into_response(),
        Err(control::Refused::Invalid(m)) => error(StatusCode::BAD_REQUEST, m),
        Err(control::Refused::NotRunning) => {
            error(StatusCode::CONFLICT, "no rudder is running this now")
        }
        Err(control::Refused::Io(m)) => error(StatusCode::INTERNAL_SERVER_ERROR, m),
    }
}

/// An edit as a page sends it.
#[derive(Deserialize)]
struct Edit {
    path: String,
    source: String,
    #[serde(default)]
    sha256: String,
}

/// The edit checked (and with `save`, written if it passed), on a thread with the
/// policies' stack.
async fn checked(state: Arc<State>, id: String, req: Request, save: bool) -> Response {
    let f = match found(&state, &id, Kind::Run) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let e: Edit = match body_json(req).await.and_then(|v| {
        serde_json::from_value(v).map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))
    }) {
        Ok(e) => e,
        Err(r) => return r,
    };
    if e.source.len() > edit::MAX_SOURCE {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "a policy file is at most 1 MiB",
        );
    }
    let Ok(_permit) = state.checks.acquire().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the server is ending");
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let s = state.clone();
    let work = move || {
        let (config, events) = run_files(&f);
        // A file the editor may not open is neither checked nor saved.
        let opened = edit::find(&f.dir, &config, &events, &e.path)
            .and_then(|t| edit::open(&t, &s.saved).map(|_| t));
        let answer = match opened {
            Err(why) => error(StatusCode::FORBIDDEN, why),
            Ok(target) => answer(
                &target,
                &e,
                &f.dir,
                &config,
                &events,
                save.then_some(&s.saved),
            ),
        };
        let _gone = tx.send(answer);
    };
    let spawned = std::thread::Builder::new()
        .name("policy check".into())
        .stack_size(rudder_policy::limits::POLICY_STACK)
        .spawn(work);
    if spawned.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no thread for the check");
    }
    rx.await
        .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "the check failed"))
}

async fn check(
    Shared(state): Shared<Arc<State>>,
    Query(q): Query<IdQuery>,
    req: Request,
) -> Response {
    checked(state, q.id, req, false).await
}

async fn save(
    Shared(state): Shared<Arc<State>>,
    Query(q): Query<IdQuery>,
    req: Request,
) -> Response {
    checked(state, q.id, req, true).await
}

/// The check's answer; with `save`, the edit written if it passed and the file still
/// holds what the page opened.
fn answer(
    target: &edit::Editable,
    e: &Edit,
    dir: &std::path::Path,
    config: &Value,
    events: &[Value],
    save: Option<&edit::Saved>,
) -> Response {
    let base = edit::workdir(events);
    let problems = edit::check(target, &e.source, dir, config, base.as_deref());
    if !problems.is_empty() {
        let code = if save.is_some() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        };
        return (code, axum::Json(json!({"ok": false, "problems": problems}))).into_response();
    }
    let Some(saved) = save else {
        return axum::Json(json!({"ok": true, "problems": []})).into_response();
    };
    match edit::save(target, &e.source, &e.sha256, saved) {
        Ok(sha) => axum::Json(json!({"ok": true, "saved": true, "sha256": sha})).into_response(),
        Err(why) => error(StatusCode::CONFLICT, why),
    }
}
