//! The records' contract, written once: the JSON Schemas of the events as the service publishes
//! them, derived from the domain types' schema derives. The OpenAPI and AsyncAPI documents take
//! their event schemas from here, and so do the schemas registered in a schema registry, so that
//! the three cannot disagree with each other or with the parsers that validate events.

mod schemas;

pub use schemas::{SCHEMA_DIALECT, components, envelope, envelope_name, value_schema};
