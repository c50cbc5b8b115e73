//! The CinemaAbyss Events Service: validates movie, user and payment events received over HTTP,
//! publishes them to Apache Kafka, and processes them with its own consumers.
//!
//! A request travels `http` (routes, extractor, errors) → `domain` (typed, validated events) →
//! `kafka` (the publisher trait and its rdkafka producer); `consumer` reads the topics back.

pub mod config;
pub mod consumer;
pub mod domain;
pub mod http;
pub mod kafka;
pub mod live;
pub mod metrics;
pub mod startup;
pub mod telemetry;
pub mod trace;

pub use config::Config;
pub use startup::Application;
