//! Integration tests against a real Apache Kafka broker (see `helpers::brokers`).

mod batch;
mod consumers;
mod health;
mod helpers;
mod late_broker;
mod process;
mod publish;
mod security;
mod slow_clients;
mod topics;
