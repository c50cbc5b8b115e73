//! Integration tests against a real Apache Kafka broker (see `helpers::brokers`).

// The check of a record against the AsyncAPI document, shared with the in-process tests.
#[path = "../common/contract.rs"]
mod asyncapi_check;
mod batch;
mod clients;
mod connections;
mod consumers;
mod contract;
mod health;
mod helpers;
mod late_broker;
mod live;
mod metrics;
mod poison;
mod process;
mod publish;
mod scale_out;
mod schema_registry;
mod security;
mod service;
mod shared;
mod slow_clients;
mod topics;
mod trace_context;
