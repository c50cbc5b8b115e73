//! The dashboard at `/`: one page, its script, its style sheet and its icon, compiled into the
//! binary from `assets/dashboard/`. Plain files, no JavaScript build step, nothing fetched at
//! build or run time. The page reads the live routes, `/metrics` and health, and posts to the event routes,
//! all with relative URLs.

use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;

const INDEX_HTML: &str = include_str!("../../assets/dashboard/index.html");
const APP_JS: &str = include_str!("../../assets/dashboard/app.js");
const STYLE_CSS: &str = include_str!("../../assets/dashboard/style.css");
const FAVICON_SVG: &str = include_str!("../../assets/dashboard/favicon.svg");

/// Everything from the service's own origin only, and nothing inline: the page's script and
/// styles are the files below, so injected markup could neither run nor restyle anything.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// A file of the dashboard. `no-cache`: the browser revalidates, so a new binary's page is
/// seen at once.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
}

/// `GET /`: the page.
pub async fn index() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /dashboard/app.js`
pub async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /dashboard/style.css`
pub async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

/// `GET /dashboard/favicon.svg`, so that browsers do not ask for a `/favicon.ico` that is not.
pub async fn icon() -> impl IntoResponse {
    asset("image/svg+xml", FAVICON_SVG)
}
