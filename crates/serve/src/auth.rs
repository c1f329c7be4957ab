//! Who may ask: every request carries the token (the printed URL's `?token=` once,
//! then the cookie it sets, or `Authorization: Bearer`, or `X-Rudder-Token`), compared
//! in constant time; a request that changes anything carries it in a header and comes
//! from the page's own origin; every request names this server as its `Host`, so a
//! page on another name that resolves here (DNS rebinding) gets nothing.

use axum::http::{HeaderMap, Method, header};
use subtle::ConstantTimeEq;

/// The cookie the token is kept in after the first visit.
pub(crate) const COOKIE: &str = "rudder_token";

/// The header a page (or a script) sends the token in.
pub(crate) const HEADER: &str = "x-rudder-token";

/// The server's secret and the names it answers to.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    token: String,
    /// `host:port` values a request's `Host` may take (any, when empty: a server that
    /// listens on every address).
    hosts: Vec<String>,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No token, or a wrong one (401).
    Token,
    /// A change without the token in a header, from another origin, or to another
    /// host name (403).
    Origin,
}

impl Guard {
    /// A guard for `token`, answering to `hosts` (`127.0.0.1:8686`, `localhost:8686`).
    pub(crate) fn new(token: String, hosts: Vec<String>) -> Guard {
        Guard { token, hosts }
    }

    /// The token, for the page that must send it in a header.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// Whether `given` is the token, in time that does not depend on where it differs.
    pub(crate) fn matches(&self, given: &str) -> bool {
        let (a, b) = (given.as_bytes(), self.token.as_bytes());
        a.len() == b.len() && bool::from(a.ct_eq(b))
    }

    /// Checks a request: its `Host`, its token (query, header, cookie), and for a
    /// change the header token and a same-origin `Origin`.
    pub(crate) fn check(
        &self,
        method: &Method,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<(), Refusal> {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let known_host =
            self.hosts.is_empty() || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host));
        let in_header = header_token(headers).is_some_and(|t| self.matches(t));
        let anywhere = in_header
            || query_token.is_some_and(|t| self.matches(t))
            || cookie_token(headers).is_some_and(|t| self.matches(t));
        if !anywhere {
            return Err(Refusal::Token);
        }
        if !known_host {
            return Err(Refusal::Origin);
        }
        let reads = matches!(*method, Method::GET | Method::HEAD);
        if !reads {
            let origin = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok());
            let same = origin.is_some_and(|o| o.eq_ignore_ascii_case(&format!("http://{host}")));
            if !in_header || !same {
                return Err(Refusal::Origin);
            }
        }
        Ok(())
    }

    /// The cookie that keeps the token after the first visit: not readable by
    /// scripts, never sent by another site's page.
    pub(crate) fn cookie(&self) -> String {
        format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", self.token)
    }
}

/// The token in `Authorization: Bearer` or `X-Rudder-Token`.
fn header_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(t) = headers.get(HEADER).and_then(|h| h.to_str().ok()) {
        return Some(t.trim());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    auth.strip_prefix("Bearer ").map(str::trim)
}

/// The token in the `rudder_token` cookie.
fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// A new token: 128 bits from the operating system, as 32 hex digits.
pub(crate) fn new_token() -> Result<String, String> {
    use rand::TryRngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| format!("no randomness from the operating system: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn guard() -> Guard {
        Guard::new("a".repeat(32), vec!["127.0.0.1:9".into()])
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn reads_take_the_token_anywhere_changes_only_in_a_header_from_the_origin() {
        let g = guard();
        let t = "a".repeat(32);
        let host = ("host", "127.0.0.1:9");
        let ok = |m: Method, h: HeaderMap, q: Option<&str>| g.check(&m, &h, q);
        assert_eq!(ok(Method::GET, headers(&[host]), None), Err(Refusal::Token));
        assert_eq!(ok(Method::GET, headers(&[host]), Some(&t)), Ok(()));
        let wrong = format!("{}b", &t[..31]);
        assert_eq!(
            ok(Method::GET, headers(&[host]), Some(&wrong)),
            Err(Refusal::Token)
        );
        let cookie = format!("x=1; rudder_token={t}");
        assert_eq!(
            ok(Method::GET, headers(&[host, ("cookie", &cookie)]), None),
            Ok(())
        );
        let bearer = format!("Bearer {t}");
        assert_eq!(
            ok(
                Method::GET,
                headers(&[host, ("authorization", &bearer)]),
                None
            ),
            Ok(())
        );
        // A change: the cookie alone is not enough, nor another origin.
        let post = |extra: &[(&'static str, &str)]| {
            let mut all = vec![host];
            all.extend_from_slice(extra);
            ok(Method::POST, headers(&all), None)
        };
        assert_eq!(
            post(&[("cookie", &cookie), ("origin", "http://127.0.0.1:9")]),
            Err(Refusal::Origin)
        );
        assert_eq!(
            post(&[(HEADER, &t), ("origin", "http://evil.example")]),
            Err(Refusal::Origin)
        );
        assert_eq!(post(&[(HEADER, &t)]), Err(Refusal::Origin));
        assert_eq!(
            post(&[(HEADER, &t), ("origin", "http://127.0.0.1:9")]),
            Ok(())
        );
        // Another host name (a rebinding page) is refused even with the token.
        let rebound = headers(&[("host", "evil.example:9"), (HEADER, &t)]);
        assert_eq!(ok(Method::GET, rebound, None), Err(Refusal::Origin));
    }

    #[test]
    fn a_new_token_is_32_hex_digits_and_new_each_time() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
