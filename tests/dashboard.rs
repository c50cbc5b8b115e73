//! In-process tests of the dashboard's files: served at `/` and `/dashboard/*` with their types,
//! the content security policy and no caching; the page refers to its script and style sheet
//! and has nothing inline; authentication covers it unless its routes are open. The page in a
//! browser is tested by `scripts/browser-test.sh`.

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use common::{Outcome, TestRouter, app, app_from_vars};
use http_body_util::BodyExt;
use tower::ServiceExt;

const KEY: &str = "dashboard-test-key-0123456789";

async fn get(app: &TestRouter, path: &str) -> (StatusCode, HeaderMap, String) {
    let response = app
        .router
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

fn header(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(&name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn the_root_serves_the_page_which_refers_to_its_script_and_style_sheet() {
    let app = app(Outcome::Stored);
    let (status, headers, page) = get(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    assert!(page.starts_with("<!doctype html>"), "{page}");
    assert!(page.contains(r#"<script src="dashboard/app.js" defer></script>"#));
    assert!(page.contains(r#"<link rel="stylesheet" href="dashboard/style.css">"#));
    assert!(page.contains(r#"<link rel="icon" href="dashboard/favicon.svg""#));
}

#[tokio::test]
async fn the_script_and_style_sheet_are_served_with_their_types() {
    let app = app(Outcome::Stored);
    for (path, content_type, starts_with) in [
        (
            "/dashboard/app.js",
            "text/javascript; charset=utf-8",
            "// The dashboard's script",
        ),
        ("/dashboard/style.css", "text/css; charset=utf-8", ":root {"),
        ("/dashboard/favicon.svg", "image/svg+xml", "<svg "),
    ] {
        let (status, headers, body) = get(&app, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(
            header(&headers, header::CONTENT_TYPE),
            content_type,
            "{path}"
        );
        assert!(body.starts_with(starts_with), "{path}: {body}");
    }
}

#[tokio::test]
async fn every_file_allows_only_its_own_origin_and_is_revalidated() {
    let app = app(Outcome::Stored);
    for path in [
        "/",
        "/dashboard/app.js",
        "/dashboard/style.css",
        "/dashboard/favicon.svg",
    ] {
        let (_, headers, _) = get(&app, path).await;
        let policy = header(&headers, header::CONTENT_SECURITY_POLICY);
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe-inline"), "{path}: {policy}");
        assert!(
            !policy.contains("http"),
            "{path} allows another origin: {policy}"
        );
        assert_eq!(
            header(&headers, header::CACHE_CONTROL),
            "no-cache",
            "{path}"
        );
        assert_eq!(header(&headers, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    }
}

#[tokio::test]
async fn the_page_has_no_inline_script_or_style_that_the_policy_would_block() {
    let (_, _, page) = get(&app(Outcome::Stored), "/").await;
    assert_eq!(page.matches("<script").count(), 1, "one script, the file");
    assert!(!page.contains("<style"));
    assert!(!page.contains(" style="));
    assert!(!page.contains(" onclick=") && !page.contains(" onsubmit="));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing from elsewhere"
    );
}

#[tokio::test]
async fn every_element_the_script_looks_up_is_in_the_page() {
    let app = app(Outcome::Stored);
    let (_, _, page) = get(&app, "/").await;
    let (_, _, script) = get(&app, "/dashboard/app.js").await;
    let ids: Vec<&str> = script
        .split("$('")
        .skip(1)
        .filter_map(|rest| rest.split_once("')").map(|(id, _)| id))
        .filter(|id| !id.contains('$'))
        .collect();
    assert!(ids.len() > 10, "{ids:?}");
    for id in ids {
        assert!(page.contains(&format!(r#"id="{id}""#)), "no element #{id}");
    }
    // Built from the types: count-<type> and actions-<type>.
    for kind in ["movie", "user", "payment"] {
        assert!(page.contains(&format!(r#"id="count-{kind}""#)));
        assert!(page.contains(&format!(r#"id="actions-{kind}""#)));
    }
}

#[tokio::test]
async fn with_authentication_on_the_dashboard_needs_credentials_unless_its_routes_are_open() {
    let secured = |open: &str| {
        app_from_vars(
            &[("AUTH_API_KEYS", KEY), ("AUTH_OPEN_ROUTES", open)],
            Outcome::Stored,
        )
    };
    let closed = secured("/api/events/health");
    assert_eq!(get(&closed, "/").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(&closed, "/dashboard/app.js").await.0,
        StatusCode::UNAUTHORIZED
    );
    let open = secured("/,/dashboard/app.js,/dashboard/style.css");
    for path in ["/", "/dashboard/app.js", "/dashboard/style.css"] {
        assert_eq!(get(&open, path).await.0, StatusCode::OK, "{path}");
    }
}
