//! The web UI's files, embedded in the binary: plain HTML, JavaScript and CSS, no build step.

/// The application page (after login).
pub const INDEX_HTML: &str = include_str!("ui/index.html");
/// The login form; `<!--ERROR-->` is replaced by the error line.
pub const LOGIN_HTML: &str = include_str!("ui/login.html");
/// The application.
pub const APP_JS: &str = include_str!("ui/app.js");
/// The stylesheet.
pub const STYLE_CSS: &str = include_str!("ui/style.css");
