//! Authentication: HTTP Basic (as Kopia's server) for scripts, and for the web UI a login form
//! that sets a random session cookie (`HttpOnly`, `SameSite=Strict`). Passwords are compared in
//! constant time (SHA-256 of both sides compared with `subtle`, so neither the contents nor the
//! length of the password leak through timing). A request authenticated by the cookie that
//! changes anything must carry `X-Requested-With` (which a cross-site form cannot set).

use std::sync::Mutex;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::{api_error, AppState};

/// The session cookie's name.
pub const COOKIE: &str = "kopr_session";

/// The most sessions kept at once (the oldest are forgotten first).
const MAX_SESSIONS: usize = 1000;

/// The credentials the server accepts and the sessions it handed out.
pub struct Auth {
    username: String,
    password_hash: Option<[u8; 32]>,
    sessions: Mutex<Vec<String>>,
    secure_cookie: bool,
}

fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Whether `a` and `b` are equal, in time independent of their contents and lengths.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    sha256(a).ct_eq(&sha256(b)).into()
}

impl Auth {
    /// `password` `None`: no authentication (loopback with `--insecure` only).
    pub fn new(username: &str, password: Option<&str>, secure_cookie: bool) -> Auth {
        Auth {
            username: username.to_string(),
            password_hash: password.map(sha256),
            sessions: Mutex::new(Vec::new()),
            secure_cookie,
        }
    }

    /// Whether no authentication is required.
    pub fn is_open(&self) -> bool {
        self.password_hash.is_none()
    }

    /// Whether the user name and password are right.
    pub fn check(&self, user: &str, password: &str) -> bool {
        let Some(want) = &self.password_hash else {
            return true;
        };
        let user_ok: bool = sha256(user).ct_eq(&sha256(&self.username)).into();
        let pass_ok: bool = sha256(password).ct_eq(want).into();
        user_ok & pass_ok
    }

    /// A new session token.
    pub fn new_session(&self) -> String {
        let token = hex::encode(rand::random::<[u8; 32]>());
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if s.len() >= MAX_SESSIONS {
            s.remove(0);
        }
        s.push(token.clone());
        token
    }

    /// Forgets a session.
    pub fn end_session(&self, token: &str) {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.retain(|t| !constant_time_eq(t, token));
    }

    fn has_session(&self, token: &str) -> bool {
        let s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        // Every stored token is compared, so the time does not tell which one matched.
        s.iter()
            .fold(false, |found, t| found | constant_time_eq(t, token))
    }

    /// The `Set-Cookie` value for `token` (empty: delete the cookie).
    pub fn cookie(&self, token: &str) -> String {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        let age = if token.is_empty() { "; Max-Age=0" } else { "" };
        format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}{age}")
    }
}

/// The session token of the request's cookie.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

enum How {
    Basic,
    Cookie,
}

fn authenticated(auth: &Auth, headers: &HeaderMap) -> Option<How> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(b64) = v.strip_prefix("Basic ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok());
            if let Some((u, p)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
                if auth.check(u, p) {
                    return Some(How::Basic);
                }
            }
        }
    }
    session_token(headers)
        .filter(|t| auth.has_session(t))
        .map(|_| How::Cookie)
}

/// Paths served without authentication: the login form and its stylesheet.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/login" | "/ui/style.css")
}

/// The middleware in front of every route.
pub async fn require(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.auth.is_open() || is_public(req.uri().path()) {
        return next.run(req).await;
    }
    match authenticated(&state.auth, req.headers()) {
        Some(How::Basic) => next.run(req).await,
        Some(How::Cookie) => {
            // Logging out is the one change a cross-site form may make.
            let safe = matches!(*req.method(), Method::GET | Method::HEAD)
                || req.uri().path() == "/logout";
            if !safe && !req.headers().contains_key("x-requested-with") {
                return api_error(
                    StatusCode::FORBIDDEN,
                    "ACCESS_DENIED",
                    "missing X-Requested-With header",
                );
            }
            next.run(req).await
        }
        None if req.uri().path().starts_with("/api/") => {
            let mut r = api_error(
                StatusCode::UNAUTHORIZED,
                "ACCESS_DENIED",
                "authentication required",
            );
            // The UI's own requests (which say so) get no Basic challenge, so that the browser
            // shows no password prompt of its own: the page goes to the login form instead.
            if !req.headers().contains_key("x-requested-with") {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Basic realm=\"Kopia\""),
                );
            }
            r
        }
        None => Redirect::to("/login").into_response(),
    }
}

/// The login page, with an error line when `error` is set.
pub fn login_page(error: &str) -> Response {
    let err = if error.is_empty() {
        String::new()
    } else {
        format!(
            "<p class=\"error\" id=\"login-error\">{}</p>",
            html_escape(error)
        )
    };
    let html = crate::assets::LOGIN_HTML.replace("<!--ERROR-->", &err);
    let status = if error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(html))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Escapes text for HTML.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_user_and_password_pass() {
        let a = Auth::new("kopia", Some("s3cret"), false);
        assert!(a.check("kopia", "s3cret"));
        assert!(!a.check("kopia", "s3cre"));
        assert!(!a.check("kopia", "s3cret "));
        assert!(!a.check("other", "s3cret"));
        assert!(!a.check("", ""));
        assert!(Auth::new("kopia", None, false).check("x", "y"));
    }

    #[test]
    fn sessions_are_random_and_can_end() {
        let a = Auth::new("kopia", Some("p"), true);
        let t1 = a.new_session();
        let t2 = a.new_session();
        assert_ne!(t1, t2);
        assert_eq!(t1.len(), 64);
        assert!(a.has_session(&t1) && a.has_session(&t2));
        assert!(!a.has_session("0000"));
        a.end_session(&t1);
        assert!(!a.has_session(&t1) && a.has_session(&t2));
        assert!(a.cookie(&t2).contains("HttpOnly; SameSite=Strict; Secure"));
    }

    #[test]
    fn the_session_is_read_from_the_cookie_header() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=b; kopr_session=abc; c=d".parse().unwrap(),
        );
        assert_eq!(session_token(&h).as_deref(), Some("abc"));
    }
}
