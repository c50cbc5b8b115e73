//! Integration tests against a real Apache Kafka broker (see `helpers::brokers`).

mod batch;
mod clients;
mod connections;
mod consumers;
mod health;
mod helpers;
mod late_broker;
mod live;
mod metrics;
mod poison;
mod process;
mod publish;
mod scale_out;
mod security;
mod service;
mod shared;
mod slow_clients;
mod topics;
mod trace_context;
