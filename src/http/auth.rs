//! Optional authentication: API keys in `X-API-Key`, or JWT bearer tokens (HS256 with a shared
//! secret, RS256 with a public key). A middleware in front of every route but the open ones
//! answers 401 before any handler runs, so an unauthenticated request never publishes anything.
//! Who the caller is goes into the request's extensions as a [`Principal`], for the rate limiter.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use secrecy::ExposeSecret;

use crate::config::AuthConfig;

/// The header that carries an API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECONDS: u64 = 30;

/// Who made a request, once authenticated. Never secret: it may be logged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// The holder of the n-th key of `AUTH_API_KEYS`, counting from 1.
    ApiKey(usize),
    /// The `sub` of a bearer token.
    Subject(String),
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::ApiKey(n) => write!(f, "key-{n}"),
            Principal::Subject(sub) => write!(f, "sub:{sub}"),
        }
    }
}

/// Checks the credentials of requests, as configured.
pub struct Authenticator {
    /// SHA-256 of each API key: comparing digests takes the same time whatever the lengths.
    api_keys: Vec<[u8; 32]>,
    hs256: Option<TokenVerifier>,
    rs256: Option<TokenVerifier>,
    open_routes: HashSet<String>,
    /// What a request without credentials is told to send.
    missing: &'static str,
}

/// One accepted token algorithm with its key. The key is only ever used with this algorithm, so
/// a token cannot choose how it is verified (an HS256 token signed with the RSA public key as
/// its secret is refused).
struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

/// The claims the service reads; `exp`, `nbf`, `iss` and `aud` are checked by the validation.
#[derive(Deserialize)]
struct Claims {
    sub: String,
}

/// Why a request was refused. The detail is for the debug log; the client gets [`message`].
///
/// [`message`]: Rejection::message
#[derive(Debug, thiserror::Error)]
enum Rejection {
    #[error("no credentials of an accepted kind")]
    Missing,
    #[error("the API key matches none of AUTH_API_KEYS")]
    UnknownApiKey,
    #[error("the Authorization header is not `Bearer <token>`")]
    NotBearer,
    #[error("the token's algorithm {0:?} is not one this service accepts")]
    Algorithm(Algorithm),
    #[error("the token has an empty sub")]
    EmptySubject,
    #[error("the token was refused: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),
}

impl Rejection {
    /// What the client is told: short and stable, never why a signature failed.
    fn message(&self, missing: &'static str) -> &'static str {
        match self {
            Rejection::Missing => missing,
            Rejection::Token(error) => match error.kind() {
                ErrorKind::ExpiredSignature => "invalid credentials: the token has expired",
                ErrorKind::ImmatureSignature => "invalid credentials: the token is not valid yet",
                _ => "invalid credentials",
            },
            _ => "invalid credentials",
        }
    }
}

impl Authenticator {
    /// The authenticator `config` describes, or `None` when authentication is off. Reads the
    /// RS256 public key file; an unreadable or invalid file is an error naming its variable.
    pub fn from_config(config: &AuthConfig) -> anyhow::Result<Option<Self>> {
        if !config.enabled() {
            return Ok(None);
        }
        let hs256 = config.jwt_hs256_secret.as_ref().map(|secret| {
            TokenVerifier::new(
                DecodingKey::from_secret(secret.expose_secret().as_bytes()),
                Algorithm::HS256,
                config,
            )
        });
        let rs256 = match &config.jwt_rs256_public_key_file {
            None => None,
            Some(path) => {
                let pem = std::fs::read(path).with_context(|| {
                    format!(
                        "AUTH_JWT_RS256_PUBLIC_KEY_FILE: could not read {}",
                        path.display()
                    )
                })?;
                let key = DecodingKey::from_rsa_pem(&pem).with_context(|| {
                    format!(
                        "AUTH_JWT_RS256_PUBLIC_KEY_FILE: {} is not a PEM RSA public key",
                        path.display()
                    )
                })?;
                Some(TokenVerifier::new(key, Algorithm::RS256, config))
            }
        };
        let missing = match (!config.api_keys.is_empty(), config.jwt_enabled()) {
            (true, false) => "missing credentials: send an X-API-Key header",
            (false, _) => "missing credentials: send an Authorization: Bearer token",
            (true, true) => {
                "missing credentials: send an X-API-Key header or an Authorization: Bearer token"
            }
        };
        Ok(Some(Self {
            api_keys: config
                .api_keys
                .iter()
                .map(|key| Sha256::digest(key.expose_secret().as_bytes()).into())
                .collect(),
            hs256,
            rs256,
            open_routes: config.open_routes.iter().cloned().collect(),
            missing,
        }))
    }

    /// One line for the start-up log: what is accepted, never the keys.
    pub fn describe(&self) -> String {
        let mut accepted = Vec::new();
        if !self.api_keys.is_empty() {
            accepted.push(format!("{} API key(s)", self.api_keys.len()));
        }
        if self.hs256.is_some() {
            accepted.push("HS256 bearer tokens".to_owned());
        }
        if self.rs256.is_some() {
            accepted.push("RS256 bearer tokens".to_owned());
        }
        let mut open: Vec<&str> = self.open_routes.iter().map(String::as_str).collect();
        open.sort_unstable();
        format!(
            "accepting {}; open routes: {}",
            accepted.join(", "),
            if open.is_empty() {
                "none".to_owned()
            } else {
                open.join(", ")
            }
        )
    }

    fn is_open(&self, path: &str) -> bool {
        self.open_routes.contains(path)
    }

    /// The principal behind the request's credentials. An API key is checked when keys are
    /// configured and the header is present; otherwise a bearer token when tokens are accepted.
    /// Credentials of a kind the service does not accept count as none.
    fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Rejection> {
        if !self.api_keys.is_empty()
            && let Some(key) = headers.get(API_KEY_HEADER)
        {
            return self.check_api_key(key.as_bytes());
        }
        if (self.hs256.is_some() || self.rs256.is_some())
            && let Some(value) = headers.get(header::AUTHORIZATION)
        {
            let token = value
                .to_str()
                .ok()
                .and_then(|value| value.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim())
                .filter(|token| !token.is_empty())
                .ok_or(Rejection::NotBearer)?;
            return self.check_token(token);
        }
        Err(Rejection::Missing)
    }

    fn check_api_key(&self, presented: &[u8]) -> Result<Principal, Rejection> {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        // Every key is compared, so the time taken does not say which one came close.
        let mut found = None;
        for (index, key) in self.api_keys.iter().enumerate() {
            if bool::from(key[..].ct_eq(&digest[..])) && found.is_none() {
                found = Some(index + 1);
            }
        }
        found.map(Principal::ApiKey).ok_or(Rejection::UnknownApiKey)
    }

    fn check_token(&self, token: &str) -> Result<Principal, Rejection> {
        let alg = jsonwebtoken::decode_header(token)?.alg;
        // The header only picks among the configured keys; each key then admits its own
        // algorithm alone.
        let verifier = match alg {
            Algorithm::HS256 => self.hs256.as_ref(),
            Algorithm::RS256 => self.rs256.as_ref(),
            _ => None,
        }
        .ok_or(Rejection::Algorithm(alg))?;
        let claims =
            jsonwebtoken::decode::<Claims>(token, &verifier.key, &verifier.validation)?.claims;
        if claims.sub.is_empty() {
            return Err(Rejection::EmptySubject);
        }
        Ok(Principal::Subject(claims.sub))
    }
}

impl TokenVerifier {
    fn new(key: DecodingKey, algorithm: Algorithm, config: &AuthConfig) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &config.jwt_issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &config.jwt_audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // Unset means "do not check": jsonwebtoken would otherwise refuse every token that
            // names an audience.
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Self { key, validation }
    }
}

/// The middleware: open routes pass; any other request needs credentials, or is answered 401.
pub async fn require_credentials(
    State(auth): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    if auth.is_open(request.uri().path()) {
        return next.run(request).await;
    }
    match auth.authenticate(request.headers()) {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(rejection) => {
            tracing::debug!(
                "Unauthenticated {} {}: {rejection}",
                request.method(),
                request.uri().path()
            );
            ApiError::Unauthorized(rejection.message(auth.missing)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use axum::http::HeaderValue;

    fn keys_only() -> Authenticator {
        let config = AuthConfig {
            api_keys: vec![
                Secret::from("first-key-0123456789"),
                Secret::from("second-key-0123456789"),
            ],
            ..AuthConfig::default()
        };
        Authenticator::from_config(&config).unwrap().unwrap()
    }

    fn headers(name: &'static str, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn no_credentials_configured_means_no_authenticator() {
        assert!(
            Authenticator::from_config(&AuthConfig::default())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn an_api_key_is_known_by_its_position_and_never_by_its_value() {
        let auth = keys_only();
        let principal = auth
            .authenticate(&headers(API_KEY_HEADER, "second-key-0123456789"))
            .unwrap();
        assert_eq!(principal, Principal::ApiKey(2));
        assert_eq!(principal.to_string(), "key-2");
        for wrong in ["second-key-012345678", "second-key-01234567890", ""] {
            let mut h = HeaderMap::new();
            h.insert(API_KEY_HEADER, HeaderValue::from_str(wrong).unwrap());
            assert!(
                matches!(auth.authenticate(&h), Err(Rejection::UnknownApiKey)),
                "{wrong:?}"
            );
        }
        assert!(!auth.describe().contains("key-0123456789"));
    }

    #[test]
    fn credentials_of_a_kind_not_accepted_count_as_none() {
        let auth = keys_only();
        let rejection = auth
            .authenticate(&headers("authorization", "Bearer a.b.c"))
            .unwrap_err();
        assert!(matches!(rejection, Rejection::Missing));
        assert_eq!(
            rejection.message(auth.missing),
            "missing credentials: send an X-API-Key header"
        );
    }

    #[test]
    fn an_unreadable_or_invalid_public_key_file_names_its_variable() {
        let not_a_key = std::env::temp_dir().join(format!("not-a-key-{}.pem", std::process::id()));
        std::fs::write(&not_a_key, "not a key").unwrap();
        for path in [not_a_key.clone(), "/nonexistent/key.pem".into()] {
            let config = AuthConfig {
                jwt_rs256_public_key_file: Some(path.clone()),
                ..AuthConfig::default()
            };
            let error = Authenticator::from_config(&config).err().unwrap();
            let message = format!("{error:#}");
            assert!(
                message.starts_with("AUTH_JWT_RS256_PUBLIC_KEY_FILE"),
                "{path:?}: {message}"
            );
        }
        std::fs::remove_file(not_a_key).unwrap();
    }
}
