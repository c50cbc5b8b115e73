//! Who may call the service and how often: API keys, bearer tokens, open routes and the
//! per-client rate limit.

use std::num::NonZeroU32;
use std::path::PathBuf;

use anyhow::bail;
use secrecy::ExposeSecret;

use super::env::Env;

/// Who may call the service. Authentication is on when API keys or a JWT key are configured.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// `AUTH_API_KEYS`: comma-separated API keys accepted in the `X-API-Key` header (default
    /// none). Each is at least [`MIN_API_KEY_LEN`] characters: a key is a password that is never
    /// rate limited.
    pub api_keys: Vec<Secret>,
    /// `AUTH_JWT_HS256_SECRET`: the shared secret of HS256 bearer tokens (default none), at least
    /// [`MIN_HS256_SECRET_LEN`] bytes as RFC 7518 asks of a key for HMAC-SHA-256.
    pub jwt_hs256_secret: Option<Secret>,
    /// `AUTH_JWT_RS256_PUBLIC_KEY_FILE`: a PEM file with the RSA public key of RS256 bearer
    /// tokens (default none). Read at start-up.
    pub jwt_rs256_public_key_file: Option<PathBuf>,
    /// `AUTH_JWT_ISSUER`: when set, a token's `iss` must be this.
    pub jwt_issuer: Option<String>,
    /// `AUTH_JWT_AUDIENCE`: when set, a token's `aud` must be (or contain) this; when not, `aud`
    /// is not checked.
    pub jwt_audience: Option<String>,
    /// `AUTH_OPEN_ROUTES`: comma-separated exact paths served without credentials (default
    /// [`DEFAULT_OPEN_ROUTES`]; set but empty, none).
    pub open_routes: Vec<String>,
}

impl AuthConfig {
    /// Whether requests need credentials at all.
    pub fn enabled(&self) -> bool {
        !self.api_keys.is_empty() || self.jwt_enabled()
    }

    /// Whether bearer tokens are accepted.
    pub fn jwt_enabled(&self) -> bool {
        self.jwt_hs256_secret.is_some() || self.jwt_rs256_public_key_file.is_some()
    }
}

/// Routes open without credentials unless `AUTH_OPEN_ROUTES` says otherwise: what orchestrators,
/// scrapers and API tools fetch.
pub const DEFAULT_OPEN_ROUTES: &[&str] = &[
    "/api/events/health",
    "/api/events/health/live",
    "/api/events/openapi.json",
    "/api/events/asyncapi.json",
    "/metrics",
];

/// The shortest API key accepted.
pub const MIN_API_KEY_LEN: usize = 16;

/// The shortest HS256 secret accepted, in bytes: the size of the hash (RFC 7518, 3.2).
pub const MIN_HS256_SECRET_LEN: usize = 32;

/// A per-client token bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitConfig {
    /// `RATE_LIMIT_PER_SECOND`: requests a client regains per second (0 or unset: no limit). May
    /// be fractional: `0.5` is one request every two seconds.
    pub per_second: f64,
    /// `RATE_LIMIT_BURST`: requests a client may make at once, the size of its bucket (default
    /// `RATE_LIMIT_PER_SECOND` rounded up).
    pub burst: NonZeroU32,
}

/// The largest `RATE_LIMIT_PER_SECOND`: one request per nanosecond.
const MAX_RATE_PER_SECOND: f64 = 1e9;

/// A value that must not reach the logs (`secrecy`: its `Debug` says only that it is there, and
/// it is zeroed when dropped); `expose_secret()` for the code that checks credentials.
pub type Secret = secrecy::SecretString;

pub(super) fn auth_config(env: &Env) -> anyhow::Result<AuthConfig> {
    let api_keys = env
        .list("AUTH_API_KEYS")?
        .unwrap_or_default()
        .into_iter()
        .map(Secret::from)
        .collect::<Vec<_>>();
    // The keys themselves never appear in a message, not even a bad one.
    if let Some(position) = api_keys
        .iter()
        .position(|key| key.expose_secret().chars().count() < MIN_API_KEY_LEN)
    {
        bail!(
            "AUTH_API_KEYS: key {} is shorter than {MIN_API_KEY_LEN} characters",
            position + 1
        );
    }
    let jwt_hs256_secret = env.optional("AUTH_JWT_HS256_SECRET").map(Secret::from);
    if let Some(secret) = &jwt_hs256_secret
        && secret.expose_secret().len() < MIN_HS256_SECRET_LEN
    {
        bail!("AUTH_JWT_HS256_SECRET must be at least {MIN_HS256_SECRET_LEN} bytes long");
    }
    let auth = AuthConfig {
        api_keys,
        jwt_hs256_secret,
        jwt_rs256_public_key_file: env
            .optional("AUTH_JWT_RS256_PUBLIC_KEY_FILE")
            .map(PathBuf::from),
        jwt_issuer: env.optional("AUTH_JWT_ISSUER"),
        jwt_audience: env.optional("AUTH_JWT_AUDIENCE"),
        open_routes: env.list("AUTH_OPEN_ROUTES")?.unwrap_or_else(|| {
            DEFAULT_OPEN_ROUTES
                .iter()
                .map(|route| route.to_string())
                .collect()
        }),
    };
    if let Some(route) = auth.open_routes.iter().find(|r| !r.starts_with('/')) {
        bail!("AUTH_OPEN_ROUTES: {route:?} is not a path (it must start with /)");
    }
    // Without a key these would check nothing, and the service would be open while its operator
    // believes tokens are required.
    for name in ["AUTH_JWT_ISSUER", "AUTH_JWT_AUDIENCE"] {
        if env.optional(name).is_some() && !auth.jwt_enabled() {
            bail!(
                "{name} is set but no bearer tokens are accepted: set AUTH_JWT_HS256_SECRET or AUTH_JWT_RS256_PUBLIC_KEY_FILE"
            );
        }
    }
    Ok(auth)
}

pub(super) fn rate_limit_config(env: &Env) -> anyhow::Result<Option<RateLimitConfig>> {
    let per_second: f64 = env.get("RATE_LIMIT_PER_SECOND", 0.0)?;
    if !(0.0..=MAX_RATE_PER_SECOND).contains(&per_second) {
        bail!(
            "RATE_LIMIT_PER_SECOND must be between 0 and {MAX_RATE_PER_SECOND}, not {per_second}"
        );
    }
    if per_second == 0.0 {
        return Ok(None);
    }
    // At most 1e9, so the cast cannot saturate; a bucket holds at least one request.
    let default_burst = NonZeroU32::new(per_second.ceil() as u32).unwrap_or(NonZeroU32::MIN);
    let burst = env.get("RATE_LIMIT_BURST", default_burst)?;
    Ok(Some(RateLimitConfig { per_second, burst }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;

    #[test]
    fn authentication_and_rate_limiting_are_off_by_default() {
        let c = config(&[]).unwrap();
        assert!(!c.auth.enabled());
        assert_eq!(c.auth.open_routes, DEFAULT_OPEN_ROUTES);
        assert_eq!(c.rate_limit, None);
        let c = config(&[("RATE_LIMIT_PER_SECOND", "0"), ("RATE_LIMIT_BURST", "5")]).unwrap();
        assert_eq!(c.rate_limit, None);
    }

    #[test]
    fn authentication_is_read_from_its_variables() {
        let c = config(&[
            (
                "AUTH_API_KEYS",
                " first-key-0123456789 , second-key-0123456789",
            ),
            (
                "AUTH_JWT_HS256_SECRET",
                "a shared secret of at least 32 bytes",
            ),
            ("AUTH_JWT_RS256_PUBLIC_KEY_FILE", "/etc/events/jwt.pem"),
            ("AUTH_JWT_ISSUER", "https://issuer.example"),
            ("AUTH_JWT_AUDIENCE", "events-service"),
            ("AUTH_OPEN_ROUTES", "/api/events/health/live"),
        ])
        .unwrap();
        assert!(c.auth.enabled() && c.auth.jwt_enabled());
        let keys: Vec<&str> = c
            .auth
            .api_keys
            .iter()
            .map(ExposeSecret::expose_secret)
            .collect();
        assert_eq!(keys, ["first-key-0123456789", "second-key-0123456789"]);
        assert_eq!(
            c.auth
                .jwt_hs256_secret
                .as_ref()
                .map(ExposeSecret::expose_secret),
            Some("a shared secret of at least 32 bytes")
        );
        assert_eq!(
            c.auth.jwt_rs256_public_key_file,
            Some(PathBuf::from("/etc/events/jwt.pem"))
        );
        assert_eq!(c.auth.jwt_issuer.as_deref(), Some("https://issuer.example"));
        assert_eq!(c.auth.jwt_audience.as_deref(), Some("events-service"));
        assert_eq!(c.auth.open_routes, ["/api/events/health/live"]);
    }

    #[test]
    fn an_empty_open_routes_variable_opens_nothing() {
        let c = config(&[
            ("AUTH_API_KEYS", "first-key-0123456789"),
            ("AUTH_OPEN_ROUTES", ""),
        ])
        .unwrap();
        assert!(c.auth.enabled() && !c.auth.jwt_enabled());
        assert!(c.auth.open_routes.is_empty());
    }

    #[test]
    fn secrets_never_reach_debug_output_or_errors() {
        let c = config(&[
            ("AUTH_API_KEYS", "first-key-0123456789"),
            (
                "AUTH_JWT_HS256_SECRET",
                "a shared secret of at least 32 bytes",
            ),
        ])
        .unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("first-key") && !debug.contains("shared secret"));
        let err = format!(
            "{:#}",
            config(&[("AUTH_API_KEYS", "first-key-0123456789,tiny")]).unwrap_err()
        );
        assert!(
            err.contains("key 2") && !err.contains("tiny"),
            "error was {err:?}"
        );
    }

    #[test]
    fn a_bad_security_value_names_its_variable() {
        for (vars, name) in [
            (&[("AUTH_API_KEYS", "too-short")][..], "AUTH_API_KEYS"),
            (
                &[("AUTH_API_KEYS", "first-key-0123456789,,x")][..],
                "AUTH_API_KEYS",
            ),
            (
                &[("AUTH_JWT_HS256_SECRET", "0123456789012345678901234567890")][..],
                "AUTH_JWT_HS256_SECRET",
            ),
            (&[("AUTH_JWT_ISSUER", "someone")][..], "AUTH_JWT_ISSUER"),
            (
                &[
                    ("AUTH_API_KEYS", "first-key-0123456789"),
                    ("AUTH_JWT_AUDIENCE", "us"),
                ][..],
                "AUTH_JWT_AUDIENCE",
            ),
            (&[("AUTH_OPEN_ROUTES", "health")][..], "AUTH_OPEN_ROUTES"),
            (
                &[("RATE_LIMIT_PER_SECOND", "-1")][..],
                "RATE_LIMIT_PER_SECOND",
            ),
            (
                &[("RATE_LIMIT_PER_SECOND", "NaN")][..],
                "RATE_LIMIT_PER_SECOND",
            ),
            (
                &[("RATE_LIMIT_PER_SECOND", "fast")][..],
                "RATE_LIMIT_PER_SECOND",
            ),
            (
                &[("RATE_LIMIT_PER_SECOND", "10"), ("RATE_LIMIT_BURST", "0")][..],
                "RATE_LIMIT_BURST",
            ),
        ] {
            let err = format!("{:#}", config(vars).unwrap_err());
            assert!(err.contains(name), "error for {vars:?} was {err:?}");
        }
    }

    #[test]
    fn the_burst_defaults_to_the_rate_rounded_up_and_at_least_one() {
        let burst = |vars: &[(&str, &str)]| config(vars).unwrap().rate_limit.unwrap().burst.get();
        assert_eq!(burst(&[("RATE_LIMIT_PER_SECOND", "10")]), 10);
        assert_eq!(burst(&[("RATE_LIMIT_PER_SECOND", "2.5")]), 3);
        assert_eq!(burst(&[("RATE_LIMIT_PER_SECOND", "0.1")]), 1);
        assert_eq!(
            burst(&[("RATE_LIMIT_PER_SECOND", "10"), ("RATE_LIMIT_BURST", "50")]),
            50
        );
        let c = config(&[("RATE_LIMIT_PER_SECOND", "0.5")]).unwrap();
        assert_eq!(c.rate_limit.map(|r| r.per_second), Some(0.5));
    }
}
