//! Console sessions: the admin submits `admin.token` once and gets a session cookie
//! (HttpOnly, SameSite=Strict, Secure behind TLS) that expires after `admin.session_idle_seconds`
//! without a request, `admin.session_max_hours` after sign-in, and at once when `admin.token`
//! changes (a leaked token is revoked by changing it, and that must sign its holder out). Each session has its own CSRF token, which every state-changing form
//! carries; a request without a session goes to the sign-in page.
//!
//! Sessions live in memory: a restart signs everyone out, which is what an admin expects of
//! a daemon restart, and keeps the database free of login state.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use prometheus::{IntCounterVec, Opts, Registry};

/// The cookie's name; its path is `/ui`, so the API never sees it.
pub const COOKIE: &str = "teamsgw_console";

/// What a page knows of the admin's session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub csrf: String,
}

struct Entry {
    csrf: String,
    signed_in: Instant,
    last_seen: Instant,
    /// A keyed hash of the admin token signed in with (never the token itself).
    token: u64,
}

/// How long sessions live, and the token they must have been opened with.
pub struct Lifetime<'a> {
    pub idle: Duration,
    pub max: Duration,
    pub token: &'a str,
}

pub struct Sessions {
    map: Mutex<HashMap<String, Entry>>,
    rejected: IntCounterVec,
    keys: RandomState,
}

impl Sessions {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let rejected = IntCounterVec::new(
            Opts::new(
                "teamsgw_console_rejected_total",
                "Console requests refused: a wrong admin token at sign-in (sign_in), a form without its session's CSRF token (csrf).",
            ),
            &["reason"],
        )?;
        for reason in ["sign_in", "csrf"] {
            rejected.with_label_values(&[reason]);
        }
        registry.register(Box::new(rejected.clone()))?;
        Ok(Self {
            map: Mutex::new(HashMap::new()),
            rejected,
            keys: RandomState::new(),
        })
    }

    /// A new session for whoever signed in with `token`; `None` when the system has no
    /// randomness to give.
    pub fn open(&self, admin_token: &str, now: Instant) -> Option<Session> {
        let session = Session {
            id: token()?,
            csrf: token()?,
        };
        let mut map = self.map.lock().ok()?;
        map.insert(
            session.id.clone(),
            Entry {
                csrf: session.csrf.clone(),
                signed_in: now,
                last_seen: now,
                token: self.keys.hash_one(admin_token),
            },
        );
        Some(session)
    }

    /// The live session `id` names, its idle time restarted; expired ones, and those opened
    /// with another token than `life.token`, are dropped.
    pub fn find(&self, id: &str, life: &Lifetime<'_>, now: Instant) -> Option<Session> {
        let token = self.keys.hash_one(life.token);
        let mut map = self.map.lock().ok()?;
        map.retain(|_, e| {
            now.duration_since(e.last_seen) < life.idle
                && now.duration_since(e.signed_in) < life.max
                && e.token == token
        });
        let entry = map.get_mut(id)?;
        entry.last_seen = now;
        Some(Session {
            id: id.to_owned(),
            csrf: entry.csrf.clone(),
        })
    }

    pub fn close(&self, id: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(id);
        }
    }

    /// Counts a refusal (`sign_in` or `csrf`).
    pub fn reject(&self, reason: &'static str) {
        self.rejected.with_label_values(&[reason]).inc();
    }
}

/// 32 random bytes as hex.
fn token() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The session id the request's cookie carries.
pub fn cookie_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then(|| value.to_owned())
        })
}

/// The `Set-Cookie` value for a new session. `Secure` when the admin reached us over TLS
/// (a reverse proxy in front says so with `X-Forwarded-Proto: https`).
pub fn set_cookie(id: &str, idle: Duration, headers: &HeaderMap) -> String {
    let tls = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let secure = if tls { "; Secure" } else { "" };
    format!(
        "{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        idle.as_secs()
    )
}

/// The `Set-Cookie` value that ends the session in the browser.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_session_expires_after_its_idle_time_and_each_request_restarts_it() {
        let sessions = Sessions::new(&Registry::new()).unwrap();
        let t0 = Instant::now();
        let idle = &Lifetime {
            idle: Duration::from_secs(60),
            max: Duration::from_secs(12 * 3600),
            token: "admin-token",
        };
        let s = sessions.open("admin-token", t0).unwrap();
        assert_eq!(s.id.len(), 64);
        assert_ne!(s.id, s.csrf);
        let found = sessions
            .find(&s.id, idle, t0 + Duration::from_secs(50))
            .unwrap();
        assert_eq!(found.csrf, s.csrf);
        assert!(
            sessions
                .find(&s.id, idle, t0 + Duration::from_secs(100))
                .is_some()
        );
        assert!(
            sessions
                .find(&s.id, idle, t0 + Duration::from_secs(161))
                .is_none()
        );
        assert!(sessions.find("nope", idle, t0).is_none());
    }

    #[test]
    fn a_session_ends_at_its_maximum_age_and_when_the_token_changes_issue_31_7() {
        let sessions = Sessions::new(&Registry::new()).unwrap();
        let t0 = Instant::now();
        let life = |token| Lifetime {
            idle: Duration::from_secs(60),
            max: Duration::from_secs(3600),
            token,
        };
        let s = sessions.open("old-token", t0).unwrap();
        // Busy all along: every 50 s a request, yet it ends an hour after sign-in.
        let mut t = t0;
        while t < t0 + Duration::from_secs(3550) {
            t += Duration::from_secs(50);
            assert!(sessions.find(&s.id, &life("old-token"), t).is_some());
        }
        assert!(
            sessions
                .find(&s.id, &life("old-token"), t0 + Duration::from_secs(3601))
                .is_none()
        );
        let s = sessions.open("old-token", t0).unwrap();
        assert!(sessions.find(&s.id, &life("new-token"), t0).is_none());
        assert!(
            sessions.find(&s.id, &life("old-token"), t0).is_none(),
            "gone for good"
        );
    }

    #[test]
    fn the_cookie_is_httponly_strict_and_secure_only_behind_tls() {
        let mut h = HeaderMap::new();
        let plain = set_cookie("abc", Duration::from_secs(900), &h);
        assert_eq!(
            plain,
            "teamsgw_console=abc; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=900"
        );
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(set_cookie("abc", Duration::from_secs(900), &h).ends_with("; Secure"));
        h.insert(
            header::COOKIE,
            "a=1; teamsgw_console=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie_of(&h).as_deref(), Some("xyz"));
    }
}
