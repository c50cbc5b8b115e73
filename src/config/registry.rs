//! The schema registry: where the value schema of each event topic is registered, and whether
//! record values carry its id (the Confluent wire format).

use std::time::Duration;

use anyhow::bail;
use secrecy::ExposeSecret;

use super::env::Env;
use super::security::Secret;

#[derive(Debug, Clone)]
pub struct SchemaRegistryConfig {
    /// `SCHEMA_REGISTRY_URL`: the base URL of a registry's Confluent-compatible API, such as
    /// `http://registry:8080/apis/ccompat/v7` (Apicurio) or `https://user:password@host`
    /// (Confluent). It may hold credentials (used as HTTP basic authentication), so it is kept
    /// as a secret and never written out whole.
    pub url: Secret,
    /// `SCHEMA_REGISTRY_WIRE_FORMAT`: write each record's value in the Confluent wire format, a
    /// zero byte and the schema's id (4 bytes, big-endian) before the JSON (default false).
    /// Start-up registers the schemas before it serves, so every record has its id.
    pub wire_format: bool,
    /// `SCHEMA_REGISTRY_TIMEOUT_MS`: the longest one call to the registry may take, connecting
    /// included (default 5000 ms): a registry that hangs must not hang start-up or the checks.
    pub timeout: Duration,
    /// `SCHEMA_REGISTRY_STARTUP_TIMEOUT_MS`: how long start-up keeps trying, with backoff, a
    /// registry that does not answer (or answers 5xx) before it gives up and the service exits
    /// (default 30000 ms). A registry that refuses a schema stops start-up at once.
    pub startup_timeout: Duration,
}

pub(super) fn schema_registry_config(env: &Env) -> anyhow::Result<Option<SchemaRegistryConfig>> {
    let wire_format = env.get("SCHEMA_REGISTRY_WIRE_FORMAT", false)?;
    let Some(url) = env.optional("SCHEMA_REGISTRY_URL") else {
        if wire_format {
            bail!(
                "SCHEMA_REGISTRY_WIRE_FORMAT=true needs SCHEMA_REGISTRY_URL: the ids the records \
                 carry are the registry's"
            );
        }
        return Ok(None);
    };
    let url = Secret::from(url);
    // The URL may hold a password: what is wrong with it is said without repeating it.
    match reqwest::Url::parse(url.expose_secret()) {
        Ok(parsed) if ["http", "https"].contains(&parsed.scheme()) && parsed.has_host() => {}
        Ok(_) => bail!("SCHEMA_REGISTRY_URL must be an http:// or https:// URL with a host"),
        Err(error) => bail!("SCHEMA_REGISTRY_URL is not a URL: {error}"),
    }
    Ok(Some(SchemaRegistryConfig {
        url,
        wire_format,
        timeout: env.millis("SCHEMA_REGISTRY_TIMEOUT_MS", 5000)?,
        startup_timeout: env.millis("SCHEMA_REGISTRY_STARTUP_TIMEOUT_MS", 30_000)?,
    }))
}

#[cfg(test)]
mod tests {
    use crate::config::tests::config;
    use secrecy::ExposeSecret;

    #[test]
    fn without_a_url_no_registry_is_used_and_the_wire_format_is_refused() {
        assert!(config(&[]).unwrap().schema_registry.is_none());
        let err = config(&[("SCHEMA_REGISTRY_WIRE_FORMAT", "true")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("SCHEMA_REGISTRY_WIRE_FORMAT"), "{err}");
        let err = format!(
            "{:#}",
            config(&[("SCHEMA_REGISTRY_WIRE_FORMAT", "yes")]).unwrap_err()
        );
        assert!(err.contains("SCHEMA_REGISTRY_WIRE_FORMAT"), "{err}");
    }

    #[test]
    fn a_url_turns_the_registry_on_and_its_password_stays_out_of_messages() {
        let url = "https://events:hunter2@registry.example/apis/ccompat/v7";
        let c = config(&[("SCHEMA_REGISTRY_URL", url)]).unwrap();
        let registry = c.schema_registry.unwrap();
        assert_eq!(registry.url.expose_secret(), url);
        assert!(!registry.wire_format);
        assert_eq!(registry.timeout.as_millis(), 5000);
        assert_eq!(registry.startup_timeout.as_millis(), 30_000);
        assert!(!format!("{registry:?}").contains("hunter2"));
        for bad in [
            "ftp://events:hunter2@registry",
            "events:hunter2@registry",
            "http://",
        ] {
            let err = config(&[("SCHEMA_REGISTRY_URL", bad)])
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("SCHEMA_REGISTRY_URL") && !err.contains("hunter2"),
                "{bad}: {err}"
            );
        }
        let c = config(&[
            (
                "SCHEMA_REGISTRY_URL",
                "http://registry:8080/apis/ccompat/v7",
            ),
            ("SCHEMA_REGISTRY_WIRE_FORMAT", "true"),
            ("SCHEMA_REGISTRY_TIMEOUT_MS", "750"),
            ("SCHEMA_REGISTRY_STARTUP_TIMEOUT_MS", "2000"),
        ])
        .unwrap();
        let registry = c.schema_registry.unwrap();
        assert!(registry.wire_format);
        assert_eq!(registry.timeout.as_millis(), 750);
        assert_eq!(registry.startup_timeout.as_millis(), 2000);
    }
}
