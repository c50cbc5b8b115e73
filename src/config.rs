//! The service's configuration, read once from the environment at start-up.
//!
//! Every variable is documented in README.md with its default. A value that does not parse stops
//! start-up with an error naming the variable. Any librdkafka property can be passed through:
//! `RDKAFKA_<NAME>` sets it on every client, `RDKAFKA_PRODUCER_<NAME>` / `RDKAFKA_CONSUMER_<NAME>`
//! on one kind only; `<NAME>` is the property upper-cased with dots as underscores
//! (`RDKAFKA_SASL_MECHANISMS=PLAIN` sets `sasl.mechanisms`).

use std::collections::BTreeMap;
use std::fmt::{self, Display};
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};

/// Everything the service needs to know about its surroundings.
#[derive(Debug, Clone)]
pub struct Config {
    pub http: HttpConfig,
    pub kafka: KafkaConfig,
    pub auth: AuthConfig,
    /// Per-client rate limiting of the publishing routes; `None` when off.
    pub rate_limit: Option<RateLimitConfig>,
    /// `LOG_LEVEL`: a tracing filter such as `info` or `events_service=debug,rdkafka=warn`.
    pub log_level: String,
    /// `LOG_FORMAT`: `text`, the seed's lines (default), or `json`, one object per line.
    pub log_format: LogFormat,
    pub tracing: TracingConfig,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("must be text or json".to_owned()),
        }
    }
}

/// Where spans go. Trace context is propagated whether or not they are exported.
#[derive(Debug, Clone)]
pub struct TracingConfig {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: the OTLP/HTTP endpoint (e.g. `http://collector:4318`)
    /// spans are exported to, at `<endpoint>/v1/traces`; unset, spans are not exported.
    pub otlp_endpoint: Option<String>,
    /// `OTEL_SERVICE_NAME`: the service name spans are exported under (default
    /// `events-service`).
    pub service_name: String,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `HOST`: the address to listen on (default `0.0.0.0`).
    pub host: IpAddr,
    /// `PORT`: the port to listen on (default 8082; 0 picks a free one).
    pub port: u16,
    /// `HTTP_BODY_LIMIT_BYTES`: the largest request body accepted (default 1 MiB).
    pub body_limit_bytes: usize,
    /// `HTTP_REQUEST_TIMEOUT_MS`: the longest a request may take, body included (default 15 s).
    /// Longer than the delivery timeout, so that a Kafka failure is reported as such.
    pub request_timeout: Duration,
    /// `HTTP_HEADER_TIMEOUT_MS`: how long a client may take to send a request's head (request
    /// line and headers) before its connection is closed (default 10 s). Also how long an idle
    /// keep-alive connection stays open.
    pub header_timeout: Duration,
    /// `SHUTDOWN_TIMEOUT_MS`: how long shutdown may take in all (default 20 s).
    pub shutdown_timeout: Duration,
    /// `HTTP_MAX_CONCURRENT_REQUESTS`: event requests served at once; more are answered 503 at
    /// once (default 1024).
    pub max_concurrent_requests: usize,
    /// `BATCH_MAX_EVENTS`: the most events one batch request may hold (default 1000).
    pub batch_max_events: usize,
    /// `STREAM_MAX_CLIENTS`: event streams (`GET /api/events/stream`) open at once at most;
    /// more are answered 503 (default 64).
    pub stream_max_clients: usize,
    /// `IDEMPOTENCY_WINDOW_SECS`: how long the answer to a request with an `Idempotency-Key` is
    /// remembered (default 86400, a day).
    pub idempotency_window: Duration,
    /// `IDEMPOTENCY_MAX_BYTES`: the memory remembered answers may take at most; beyond it the
    /// oldest are forgotten before their window ends (default 64 MiB).
    pub idempotency_max_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `KAFKA_BROKERS`: comma-separated bootstrap servers (default `localhost:9092`).
    pub brokers: String,
    /// `KAFKA_TOPIC_PREFIX`: prepended to the topic names, e.g. `staging.` (default empty).
    pub topic_prefix: String,
    /// `KAFKA_TOPIC_PARTITIONS`: partitions of topics the service creates (default 1).
    pub topic_partitions: i32,
    /// `KAFKA_TOPIC_REPLICATION_FACTOR`: replicas of topics the service creates (default 1).
    pub topic_replication_factor: i32,
    /// `CLOUDEVENTS_SOURCE`: the `ce_source` header of every record, a URI-reference naming this
    /// producer (default [`DEFAULT_CLOUDEVENTS_SOURCE`]).
    pub cloudevents_source: String,
    /// `KAFKA_DELIVERY_TIMEOUT_MS`: how long the producer tries to deliver an event before the
    /// request fails with 500 (librdkafka's `message.timeout.ms`; default 5 s).
    pub delivery_timeout: Duration,
    /// `KAFKA_MAX_QUEUED_EVENTS`: events the producer holds at most while they await the
    /// broker's acknowledgement; beyond it requests are answered 503 (default 100000).
    pub max_queued_events: usize,
    /// `KAFKA_LINGER_MS`: how long the producer waits to fill a batch (default 1 ms). 0 answers
    /// an idle request about 1.5 ms sooner but sends so many small requests under load that the
    /// broker's and librdkafka's CPU turns into tail latency (see BENCHMARKS.md).
    pub linger_ms: u32,
    /// `KAFKA_GROUP_ID`: the built-in consumers' group (default `events-service-group`).
    pub group_id: String,
    /// `KAFKA_AUTO_OFFSET_RESET`: where a new group starts, `earliest` or `latest` (default
    /// `earliest`).
    pub auto_offset_reset: String,
    /// `KAFKA_CONSUMERS_ENABLED`: run the built-in consumers (default true).
    pub consumers_enabled: bool,
    /// `KAFKA_HEALTH_INTERVAL_MS`: how often the broker's reachability is checked (default 1 s).
    pub health_interval: Duration,
    /// `KAFKA_STATISTICS_INTERVAL_MS`: how often every Kafka client reports librdkafka's
    /// statistics, which `/metrics` exports (consumer lag among them); zero turns them off
    /// (default 5 s, at most [`MAX_STATISTICS_INTERVAL`]).
    pub statistics_interval: Duration,
    /// `RDKAFKA_*`: librdkafka properties for every client.
    pub client_options: LibrdkafkaOptions,
    /// `RDKAFKA_PRODUCER_*`: librdkafka properties for the producer only.
    pub producer_options: LibrdkafkaOptions,
    /// `RDKAFKA_CONSUMER_*`: librdkafka properties for the consumers only.
    pub consumer_options: LibrdkafkaOptions,
}

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

/// A value that must not reach the logs: its `Debug` says only that it is there.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the code that checks credentials.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// librdkafka properties by name, from `RDKAFKA_*` variables. Their `Debug` hides the values of
/// credentials (`sasl.password` and the like), as librdkafka's own configuration dump does.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct LibrdkafkaOptions(BTreeMap<String, String>);

impl LibrdkafkaOptions {
    /// Whether `property` holds a credential.
    fn is_secret(property: &str) -> bool {
        property.contains("password")
            || property.contains("secret")
            || ["sasl.username", "ssl.key.pem", "sasl.oauthbearer.config"].contains(&property)
    }
}

impl std::ops::Deref for LibrdkafkaOptions {
    type Target = BTreeMap<String, String>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl IntoIterator for LibrdkafkaOptions {
    type Item = (String, String);
    type IntoIter = std::collections::btree_map::IntoIter<String, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Debug for LibrdkafkaOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.0.iter().map(|(property, value)| {
            let value = if Self::is_secret(property) {
                "[redacted]"
            } else {
                value.as_str()
            };
            (property, value)
        });
        f.debug_map().entries(shown).finish()
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_vars(std::env::vars())
    }

    /// Reads the given variables; tests use it instead of mutating the process environment.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<Self> {
        let env = Env(vars.into_iter().collect());
        let delivery_timeout = env.millis("KAFKA_DELIVERY_TIMEOUT_MS", 5_000)?;
        let request_timeout = env.millis("HTTP_REQUEST_TIMEOUT_MS", 15_000)?;
        let shutdown_timeout = env.millis("SHUTDOWN_TIMEOUT_MS", 20_000)?;
        let linger_ms: u32 = env.get("KAFKA_LINGER_MS", 1)?;
        // A Kafka failure must be reported as such (500), not as a request timeout (408), and a
        // graceful shutdown must be able to finish the requests in flight.
        if request_timeout <= delivery_timeout + DELIVERY_REPORT_GRACE {
            bail!(
                "HTTP_REQUEST_TIMEOUT_MS ({} ms) must exceed KAFKA_DELIVERY_TIMEOUT_MS ({} ms) by more than {} ms",
                request_timeout.as_millis(),
                delivery_timeout.as_millis(),
                DELIVERY_REPORT_GRACE.as_millis()
            );
        }
        if shutdown_timeout <= request_timeout {
            bail!(
                "SHUTDOWN_TIMEOUT_MS ({} ms) must be longer than HTTP_REQUEST_TIMEOUT_MS ({} ms)",
                shutdown_timeout.as_millis(),
                request_timeout.as_millis()
            );
        }
        if u128::from(linger_ms) >= delivery_timeout.as_millis() {
            bail!(
                "KAFKA_LINGER_MS ({linger_ms}) must be shorter than KAFKA_DELIVERY_TIMEOUT_MS ({} ms)",
                delivery_timeout.as_millis()
            );
        }
        let auto_offset_reset = env.get("KAFKA_AUTO_OFFSET_RESET", "earliest".to_owned())?;
        if !["earliest", "latest"].contains(&auto_offset_reset.as_str()) {
            bail!("KAFKA_AUTO_OFFSET_RESET must be earliest or latest, not {auto_offset_reset:?}");
        }
        let brokers = env.get("KAFKA_BROKERS", "localhost:9092".to_owned())?;
        if brokers.split(',').any(|b| b.trim().is_empty()) {
            bail!("KAFKA_BROKERS must be a comma-separated list of host:port, not {brokers:?}");
        }
        Ok(Self {
            http: HttpConfig {
                host: env.get("HOST", IpAddr::V4(Ipv4Addr::UNSPECIFIED))?,
                port: env.get("PORT", 8082)?,
                body_limit_bytes: env.positive("HTTP_BODY_LIMIT_BYTES", 1024 * 1024)?,
                request_timeout,
                header_timeout: env.millis("HTTP_HEADER_TIMEOUT_MS", 10_000)?,
                shutdown_timeout,
                max_concurrent_requests: env.positive("HTTP_MAX_CONCURRENT_REQUESTS", 1024)?,
                batch_max_events: env.positive("BATCH_MAX_EVENTS", 1000)?,
                stream_max_clients: env.positive("STREAM_MAX_CLIENTS", 64)?,
                idempotency_window: Duration::from_secs(
                    env.positive("IDEMPOTENCY_WINDOW_SECS", 86_400)?,
                ),
                idempotency_max_bytes: env.positive("IDEMPOTENCY_MAX_BYTES", 64 * 1024 * 1024)?,
            },
            kafka: KafkaConfig {
                brokers,
                topic_prefix: env.get("KAFKA_TOPIC_PREFIX", String::new())?,
                topic_partitions: env.positive("KAFKA_TOPIC_PARTITIONS", 1)?,
                topic_replication_factor: env.positive("KAFKA_TOPIC_REPLICATION_FACTOR", 1)?,
                cloudevents_source: cloudevents_source(&env)?,
                delivery_timeout,
                max_queued_events: env.positive("KAFKA_MAX_QUEUED_EVENTS", 100_000)?,
                linger_ms,
                group_id: env.get("KAFKA_GROUP_ID", "events-service-group".to_owned())?,
                auto_offset_reset,
                consumers_enabled: env.get("KAFKA_CONSUMERS_ENABLED", true)?,
                health_interval: env.millis("KAFKA_HEALTH_INTERVAL_MS", 1_000)?,
                statistics_interval: statistics_interval(&env)?,
                client_options: env.rdkafka_options("RDKAFKA_", &["PRODUCER_", "CONSUMER_"])?,
                producer_options: env.rdkafka_options("RDKAFKA_PRODUCER_", &[])?,
                consumer_options: env.rdkafka_options("RDKAFKA_CONSUMER_", &[])?,
            },
            auth: auth_config(&env)?,
            rate_limit: rate_limit_config(&env)?,
            log_level: env.get("LOG_LEVEL", "info".to_owned())?,
            log_format: env.get("LOG_FORMAT", LogFormat::Text)?,
            tracing: TracingConfig {
                otlp_endpoint: otlp_endpoint(&env)?,
                service_name: env.get("OTEL_SERVICE_NAME", "events-service".to_owned())?,
            },
        })
    }
}

/// The `ce_source` of records when `CLOUDEVENTS_SOURCE` is not set.
pub const DEFAULT_CLOUDEVENTS_SOURCE: &str = "/cinemaabyss/events-service";

/// `CLOUDEVENTS_SOURCE`, checked to be a URI-reference as far as its characters go: RFC 3986
/// leaves out spaces, controls, non-ASCII (percent-encode it) and `"<>\^`{|}`. Blank means the
/// default, as for every variable, so the source is never empty.
fn cloudevents_source(env: &Env) -> anyhow::Result<String> {
    let source = env.get("CLOUDEVENTS_SOURCE", DEFAULT_CLOUDEVENTS_SOURCE.to_owned())?;
    if !source
        .chars()
        .all(|c| c.is_ascii_graphic() && !"\"<>\\^`{|}".contains(c))
    {
        bail!(
            "CLOUDEVENTS_SOURCE must be a URI-reference such as {DEFAULT_CLOUDEVENTS_SOURCE} or \
             https://cinemaabyss.example/events (no spaces, percent-encoded non-ASCII), not {source:?}"
        );
    }
    Ok(source)
}

fn otlp_endpoint(env: &Env) -> anyhow::Result<Option<String>> {
    let endpoint = env.optional("OTEL_EXPORTER_OTLP_ENDPOINT");
    if let Some(endpoint) = &endpoint
        && !endpoint.starts_with("http://")
    {
        bail!(
            "OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// URL (OTLP over HTTP, no TLS: use a \
             collector beside the service), not {endpoint:?}"
        );
    }
    Ok(endpoint.map(|e| e.trim_end_matches('/').to_owned()))
}

/// The longest `KAFKA_STATISTICS_INTERVAL_MS`: a gauge not refreshed for
/// [`STALE_GAUGES_AFTER`](crate::metrics::STALE_GAUGES_AFTER) is dropped, so at least two reports
/// must fit in that time.
pub const MAX_STATISTICS_INTERVAL: Duration = Duration::from_secs(30);

fn statistics_interval(env: &Env) -> anyhow::Result<Duration> {
    let interval = Duration::from_millis(env.get("KAFKA_STATISTICS_INTERVAL_MS", 5_000)?);
    if interval > MAX_STATISTICS_INTERVAL {
        bail!(
            "KAFKA_STATISTICS_INTERVAL_MS must be at most {} (0 turns statistics off), not {}",
            MAX_STATISTICS_INTERVAL.as_millis(),
            interval.as_millis()
        );
    }
    Ok(interval)
}

fn auth_config(env: &Env) -> anyhow::Result<AuthConfig> {
    let api_keys = env
        .list("AUTH_API_KEYS")?
        .unwrap_or_default()
        .into_iter()
        .map(Secret)
        .collect::<Vec<_>>();
    // The keys themselves never appear in a message, not even a bad one.
    if let Some(position) = api_keys
        .iter()
        .position(|key| key.0.chars().count() < MIN_API_KEY_LEN)
    {
        bail!(
            "AUTH_API_KEYS: key {} is shorter than {MIN_API_KEY_LEN} characters",
            position + 1
        );
    }
    let jwt_hs256_secret = env.optional("AUTH_JWT_HS256_SECRET").map(Secret);
    if let Some(secret) = &jwt_hs256_secret {
        if secret.0.len() < MIN_HS256_SECRET_LEN {
            bail!("AUTH_JWT_HS256_SECRET must be at least {MIN_HS256_SECRET_LEN} bytes long");
        }
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

fn rate_limit_config(env: &Env) -> anyhow::Result<Option<RateLimitConfig>> {
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

/// How much longer than the delivery timeout a request waits for the delivery report.
pub const DELIVERY_REPORT_GRACE: Duration = Duration::from_secs(1);

/// librdkafka properties that pass-through variables may not set, and why.
const RESERVED_OPTIONS: &[(&str, &str)] = &[
    ("bootstrap.servers", "set by KAFKA_BROKERS"),
    ("group.id", "set by KAFKA_GROUP_ID"),
    ("auto.offset.reset", "set by KAFKA_AUTO_OFFSET_RESET"),
    ("message.timeout.ms", "set by KAFKA_DELIVERY_TIMEOUT_MS"),
    ("delivery.timeout.ms", "set by KAFKA_DELIVERY_TIMEOUT_MS"),
    ("linger.ms", "set by KAFKA_LINGER_MS"),
    ("queue.buffering.max.ms", "set by KAFKA_LINGER_MS"),
    (
        "queue.buffering.max.messages",
        "set by KAFKA_MAX_QUEUED_EVENTS",
    ),
    (
        "acks",
        "fixed to all: a 201 promises the event is replicated",
    ),
    (
        "request.required.acks",
        "fixed to all: a 201 promises the event is replicated",
    ),
    (
        "enable.idempotence",
        "fixed to true: retries must not duplicate or reorder",
    ),
    (
        "enable.auto.offset.store",
        "fixed to false: the consumers are at least once",
    ),
    (
        "statistics.interval.ms",
        "set by KAFKA_STATISTICS_INTERVAL_MS",
    ),
];

struct Env(BTreeMap<String, String>);

impl Env {
    fn get<T>(&self, name: &str, default: T) -> anyhow::Result<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.0.get(name).map(|v| v.trim()) {
            None | Some("") => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("invalid value {raw:?} for {name}")),
        }
    }

    fn positive<T>(&self, name: &str, default: T) -> anyhow::Result<T>
    where
        T: FromStr + PartialOrd + Default + Display,
        T::Err: Display,
    {
        let value = self.get(name, default)?;
        if value <= T::default() {
            bail!("{name} must be greater than zero, not {value}");
        }
        Ok(value)
    }

    /// The trimmed value of `name`, or `None` when it is unset or blank.
    fn optional(&self, name: &str) -> Option<String> {
        self.0
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// A comma-separated list: `None` when `name` is unset, empty when it is set but blank. An
    /// empty item (`a,,b`) is an error.
    fn list(&self, name: &str) -> anyhow::Result<Option<Vec<String>>> {
        let Some(raw) = self.0.get(name).map(|v| v.trim()) else {
            return Ok(None);
        };
        if raw.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let items: Vec<String> = raw.split(',').map(|item| item.trim().to_owned()).collect();
        if items.iter().any(String::is_empty) {
            bail!("{name} must be a comma-separated list without empty items");
        }
        Ok(Some(items))
    }

    fn millis(&self, name: &str, default: u64) -> anyhow::Result<Duration> {
        self.positive(name, default).map(Duration::from_millis)
    }

    /// librdkafka properties from variables starting with `prefix` (but not with `prefix`
    /// followed by one of `excluded`, which belong to a narrower scope). Properties the service
    /// sets from its own variables, or relies on for its guarantees, are refused.
    fn rdkafka_options(
        &self,
        prefix: &str,
        excluded: &[&str],
    ) -> anyhow::Result<LibrdkafkaOptions> {
        let mut options = BTreeMap::new();
        for (name, value) in &self.0 {
            let Some(rest) = name.strip_prefix(prefix) else {
                continue;
            };
            if rest.is_empty() || excluded.iter().any(|e| rest.starts_with(e)) {
                continue;
            }
            let property = rest.to_ascii_lowercase().replace('_', ".");
            if let Some((_, instead)) = RESERVED_OPTIONS.iter().find(|(p, _)| *p == property) {
                bail!("{name} cannot be set: {property} is {instead}");
            }
            options.insert(property, value.clone());
        }
        Ok(LibrdkafkaOptions(options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        Config::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn defaults_match_the_seed() {
        let c = config(&[]).unwrap();
        assert_eq!(c.http.port, 8082);
        assert_eq!(c.kafka.brokers, "localhost:9092");
        assert_eq!(c.kafka.topic_partitions, 1);
        assert_eq!(c.kafka.topic_replication_factor, 1);
        assert_eq!(c.kafka.group_id, "events-service-group");
        assert_eq!(c.kafka.auto_offset_reset, "earliest");
        assert_eq!(c.http.body_limit_bytes, 1024 * 1024);
        assert!(c.kafka.delivery_timeout <= Duration::from_secs(10));
    }

    #[test]
    fn the_cloudevents_source_is_a_uri_reference() {
        let source = |value: &str| config(&[("CLOUDEVENTS_SOURCE", value)]);
        assert_eq!(
            config(&[]).unwrap().kafka.cloudevents_source,
            "/cinemaabyss/events-service"
        );
        assert_eq!(
            source("  ").unwrap().kafka.cloudevents_source,
            DEFAULT_CLOUDEVENTS_SOURCE
        );
        for good in [
            "https://cinemaabyss.example/events?region=eu#1",
            "urn:cinemaabyss:events",
            "/caf%C3%A9",
        ] {
            assert_eq!(source(good).unwrap().kafka.cloudevents_source, good);
        }
        for bad in ["events service", "/café", "<events>", "/a\tb"] {
            let err = source(bad).unwrap_err().to_string();
            assert!(err.starts_with("CLOUDEVENTS_SOURCE"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn statistics_are_reported_every_five_seconds_unless_turned_off() {
        let c = config(&[]).unwrap();
        assert_eq!(c.kafka.statistics_interval, Duration::from_secs(5));
        let off = config(&[("KAFKA_STATISTICS_INTERVAL_MS", "0")]).unwrap();
        assert_eq!(off.kafka.statistics_interval, Duration::ZERO);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (name, value) in [
            ("PORT", "eighty"),
            ("PORT", "70000"),
            ("KAFKA_TOPIC_PARTITIONS", "0"),
            ("KAFKA_DELIVERY_TIMEOUT_MS", "-5"),
            ("KAFKA_CONSUMERS_ENABLED", "maybe"),
            ("KAFKA_AUTO_OFFSET_RESET", "middle"),
            ("KAFKA_BROKERS", "a:1,,b:2"),
            ("HOST", "not an ip"),
            ("BATCH_MAX_EVENTS", "0"),
            ("HTTP_MAX_CONCURRENT_REQUESTS", "many"),
            ("KAFKA_MAX_QUEUED_EVENTS", "-1"),
            ("KAFKA_STATISTICS_INTERVAL_MS", "-1"),
            ("KAFKA_STATISTICS_INTERVAL_MS", "60000"),
        ] {
            let err = format!("{:#}", config(&[(name, value)]).unwrap_err());
            assert!(err.contains(name), "error for {name}={value} was {err:?}");
        }
    }

    #[test]
    fn timeouts_must_nest() {
        for (vars, named) in [
            (
                &[("KAFKA_DELIVERY_TIMEOUT_MS", "14500")][..],
                "HTTP_REQUEST_TIMEOUT_MS",
            ),
            (
                &[("SHUTDOWN_TIMEOUT_MS", "15000")][..],
                "SHUTDOWN_TIMEOUT_MS",
            ),
            (&[("KAFKA_LINGER_MS", "5000")][..], "KAFKA_LINGER_MS"),
        ] {
            let err = config(vars).unwrap_err().to_string();
            assert!(err.starts_with(named), "{vars:?}: {err}");
        }
    }

    #[test]
    fn pass_through_cannot_undo_the_guarantees_or_shadow_a_variable() {
        for name in [
            "RDKAFKA_PRODUCER_ACKS",
            "RDKAFKA_ENABLE_IDEMPOTENCE",
            "RDKAFKA_CONSUMER_ENABLE_AUTO_OFFSET_STORE",
            "RDKAFKA_BOOTSTRAP_SERVERS",
            "RDKAFKA_PRODUCER_LINGER_MS",
        ] {
            let err = config(&[(name, "1")]).unwrap_err().to_string();
            assert!(err.starts_with(name), "{name}: {err}");
        }
    }

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
        let keys: Vec<&str> = c.auth.api_keys.iter().map(Secret::expose).collect();
        assert_eq!(keys, ["first-key-0123456789", "second-key-0123456789"]);
        assert_eq!(
            c.auth.jwt_hs256_secret.as_ref().map(Secret::expose),
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

    #[test]
    fn librdkafka_options_pass_through_by_scope() {
        let c = config(&[
            ("RDKAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
            ("RDKAFKA_PRODUCER_BATCH_SIZE", "7"),
            ("RDKAFKA_CONSUMER_FETCH_WAIT_MAX_MS", "50"),
        ])
        .unwrap();
        assert_eq!(
            c.kafka.client_options.into_iter().collect::<Vec<_>>(),
            [(
                "security.protocol".to_string(),
                "SASL_PLAINTEXT".to_string()
            )]
        );
        assert_eq!(c.kafka.producer_options["batch.size"], "7");
        assert_eq!(c.kafka.consumer_options["fetch.wait.max.ms"], "50");
    }

    #[test]
    fn the_debug_output_hides_kafka_credentials() {
        let c = config(&[
            ("RDKAFKA_SASL_USERNAME", "events"),
            ("RDKAFKA_SASL_PASSWORD", "hunter2-sasl"),
            ("RDKAFKA_CONSUMER_SSL_KEY_PASSWORD", "hunter2-key"),
            ("RDKAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
        ])
        .unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(
            debug.contains(r#""sasl.password": "[redacted]""#),
            "{debug}"
        );
        assert!(
            debug.contains(r#""security.protocol": "SASL_SSL""#),
            "{debug}"
        );
        assert_eq!(c.kafka.client_options["sasl.password"], "hunter2-sasl");
    }
}
