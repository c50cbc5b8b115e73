//! The CinemaAbyss Events Service: validates movie, user and payment events received over HTTP,
//! publishes them to Apache Kafka, and processes them with its own consumers.
//!
//! A request travels `http` (routes, extractors, errors) → `domain` (typed, validated events) →
//! `kafka` (the publisher trait and its rdkafka producer); `consumer` reads the topics back and
//! reports what it processed to `live`, which the stream and the statistics serve.
//!
//! The modules form layers, and a module uses only the layers below it (`tests/layers.rs` fails
//! when one reaches up):
//!
//! | layer | modules | what it is |
//! |---|---|---|
//! | 0 | `domain`, `contract`, `config`, `support` | typed events; their JSON Schemas, the records' contract; the configuration; periodic work, backoff, locks |
//! | 1 | `telemetry` | logs, trace context, the metrics registry and every metric's name |
//! | 2 | `kafka`, `shared`, `schema_registry` | Kafka: client settings, the publisher and its producer, topics, health, statistics, the wire format; the state instances share, in Redis; the value schemas registered and their ids |
//! | 3 | `live` | what the consumers processed: the kept events, the broadcast, the statistics |
//! | 4 | `consumer` | the built-in consumers, dead letters, held partitions |
//! | 5 | `http` | the server, the router and its layers, the handlers |
//! | 6 | `startup` | the composition root: builds every part from the configuration and runs it |

pub mod config;
pub mod consumer;
pub mod contract;
pub mod domain;
pub mod http;
pub mod kafka;
pub mod live;
pub mod schema_registry;
pub mod shared;
pub mod startup;
pub mod support;
pub mod telemetry;

pub use config::Config;
pub use startup::Application;
