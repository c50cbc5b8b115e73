//! The registry's Confluent-compatible HTTP API, the one call the service makes: register a
//! schema under a subject (`POST /subjects/{subject}/versions`), which answers the schema's id,
//! the same id again for a schema the subject has already.

use percent_encoding::percent_decode_str;
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::config::SchemaRegistryConfig;

/// The most of a registry's error message that is kept.
const MAX_MESSAGE_CHARS: usize = 512;
/// The media type of the Confluent API.
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Why a schema is not registered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RegistryError {
    /// The registry keeps a schema under the subject that this one is not compatible with (its
    /// compatibility rule): the service's events and the subject's contract disagree.
    #[error(
        "the schema registry refused the schema of {subject} as incompatible with the one registered under it: {message}"
    )]
    Incompatible { subject: String, message: String },
    /// The registry answered with another error (credentials, path, the schema, itself).
    #[error("the schema registry refused the schema of {subject} ({status}): {message}")]
    Refused {
        subject: String,
        status: u16,
        message: String,
    },
    /// No answer: the registry is down, unreachable, or too slow.
    #[error("the schema registry at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
}

impl RegistryError {
    /// Whether trying again may succeed: the registry did not answer, or failed itself (5xx,
    /// while it starts, say). A refusal (409, 422, 401, ...) stays a refusal.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. } => true,
            RegistryError::Refused { status, .. } => *status >= 500,
            RegistryError::Incompatible { .. } => false,
        }
    }
}

/// The registry's API, at the configured base URL.
pub struct Client {
    http: reqwest::Client,
    /// The base URL without its credentials: it may be written out.
    base: Url,
    /// The URL's user and password, for HTTP basic authentication.
    credentials: Option<(String, SecretString)>,
}

#[derive(Deserialize)]
struct Registered {
    id: u32,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    message: Option<String>,
}

impl Client {
    pub fn new(config: &SchemaRegistryConfig) -> anyhow::Result<Self> {
        // The configuration checked the URL; its credentials leave it here.
        let mut base = Url::parse(config.url.expose_secret())
            .map_err(|error| anyhow::anyhow!("SCHEMA_REGISTRY_URL is not a URL: {error}"))?;
        let decode = |text: &str| percent_decode_str(text).decode_utf8_lossy().into_owned();
        let credentials = (!base.username().is_empty() || base.password().is_some()).then(|| {
            let user = decode(base.username());
            let password = SecretString::from(decode(base.password().unwrap_or_default()));
            (user, password)
        });
        let _ = base.set_username("");
        let _ = base.set_password(None);
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()?;
        Ok(Self {
            http,
            base,
            credentials,
        })
    }

    /// The base URL, without credentials.
    pub fn url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// Registers `schema` (JSON Schema text) under `subject`; its id.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        // Kafka's topic names, and so the subjects, hold only characters a path may.
        let url = format!("{}/subjects/{subject}/versions", self.url());
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(json!({"schemaType": "JSON", "schema": schema}).to_string());
        if let Some((user, password)) = &self.credentials {
            request = request.basic_auth(user, Some(password.expose_secret()));
        }
        let unreachable = |error: reqwest::Error| RegistryError::Unreachable {
            url: self.url().to_owned(),
            reason: error.without_url().to_string(),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        if status.is_success() {
            return serde_json::from_slice::<Registered>(&body)
                .map(|registered| registered.id)
                .map_err(|error| RegistryError::Refused {
                    subject: subject.to_owned(),
                    status: status.as_u16(),
                    message: format!("the answer holds no schema id: {error}"),
                });
        }
        let message = serde_json::from_slice::<ErrorAnswer>(&body)
            .ok()
            .and_then(|answer| answer.message)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        let message: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
        let subject = subject.to_owned();
        Err(match status {
            StatusCode::CONFLICT => RegistryError::Incompatible { subject, message },
            _ => RegistryError::Refused {
                subject,
                status: status.as_u16(),
                message,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn client(url: &str) -> Client {
        let config = Config::from_vars([("SCHEMA_REGISTRY_URL".to_owned(), url.to_owned())])
            .unwrap()
            .schema_registry
            .unwrap();
        Client::new(&config).unwrap()
    }

    #[test]
    fn the_credentials_leave_the_url_decoded() {
        let c = client("https://events:p%40ss@registry.example/apis/ccompat/v7/");
        assert_eq!(c.url(), "https://registry.example/apis/ccompat/v7");
        let (user, password) = c.credentials.as_ref().unwrap();
        assert_eq!(
            (user.as_str(), password.expose_secret()),
            ("events", "p@ss")
        );
        assert!(client("http://registry:8080").credentials.is_none());
    }

    #[tokio::test]
    async fn a_registry_that_does_not_answer_is_unreachable_and_its_password_is_not_said() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = client(&format!("http://events:hunter2@127.0.0.1:{port}"));
        let error = c.register("movie-events-value", "{}").await.unwrap_err();
        assert!(
            matches!(error, RegistryError::Unreachable { .. }),
            "{error}"
        );
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
