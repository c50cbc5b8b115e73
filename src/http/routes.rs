//! The router's paths, written once: the router is built from them and the metrics label
//! requests with them.

pub const MOVIE: &str = "/api/events/movie";
pub const USER: &str = "/api/events/user";
pub const PAYMENT: &str = "/api/events/payment";
pub const BATCH: &str = "/api/events/batch";
pub const STREAM: &str = "/api/events/stream";
pub const STATS: &str = "/api/events/stats";
pub const HEALTH: &str = "/api/events/health";
pub const LIVENESS: &str = "/api/events/health/live";
pub const OPENAPI: &str = "/api/events/openapi.json";
pub const ASYNCAPI: &str = "/api/events/asyncapi.json";
pub const METRICS: &str = "/metrics";
pub const DASHBOARD: &str = "/";
pub const DASHBOARD_SCRIPT: &str = "/dashboard/app.js";
pub const DASHBOARD_STYLE: &str = "/dashboard/style.css";
pub const DASHBOARD_ICON: &str = "/dashboard/favicon.svg";

/// Every route, for the metrics' `route` label.
pub const ALL: &[&str] = &[
    MOVIE,
    USER,
    PAYMENT,
    BATCH,
    STREAM,
    STATS,
    HEALTH,
    LIVENESS,
    OPENAPI,
    ASYNCAPI,
    METRICS,
    DASHBOARD,
    DASHBOARD_SCRIPT,
    DASHBOARD_STYLE,
    DASHBOARD_ICON,
];
