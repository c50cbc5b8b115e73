//! The OpenAPI document, generated from the handlers and the domain types that validate, plus
//! what the derives cannot write: the event schemas come from the records' contract
//! ([`crate::contract`], the movie event's conditional rule with them), and the batch size
//! limits from the configuration.

use serde_json::{Value, json};
use utoipa::OpenApi;

use super::{
    BatchResponse, ErrorBody, PublishResponse, asyncapi, batch, events, health, live, metrics,
};
use crate::contract;
use crate::domain::{
    Event, EventPayload, EventType, FieldError, ItemErrors, MovieEvent, PaymentEvent, UserEvent,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "CinemaAbyss Events Service",
        description = "Validates movie, user and payment events and publishes them to Apache Kafka."
    ),
    paths(
        events::create_movie_event,
        events::create_user_event,
        events::create_payment_event,
        batch::create_batch,
        live::stream_events,
        live::stats,
        health::health,
        health::live,
        metrics::scrape,
        asyncapi::serve,
    ),
    components(schemas(
        ErrorBody,
        crate::live::StatsSnapshot,
        crate::live::TypeCounts,
        crate::live::PaymentTotals,
        FieldError,
        ItemErrors,
        PublishResponse,
        BatchResponse,
        batch::ItemResult,
        batch::FailedItem,
        Event,
        EventPayload,
        EventType,
        MovieEvent,
        UserEvent,
        PaymentEvent,
    )),
    tags(
        (name = "events", description = "Publish events"),
        (name = "live", description = "Watch processed events"),
        (name = "health", description = "Liveness and readiness"),
        (name = "metrics", description = "Prometheus metrics"),
        (name = "documents", description = "What the service's records are"),
    )
)]
pub struct ApiDoc;

/// The document as JSON, for a service that takes at most `batch_max_events` per batch.
pub fn document(batch_max_events: usize) -> String {
    let mut doc = match serde_json::to_value(ApiDoc::openapi()) {
        Ok(doc) => doc,
        Err(error) => {
            return json!({"error": format!("could not render the document: {error}")}).to_string();
        }
    };
    // The event schemas as the AsyncAPI document and the schema registry have them.
    if let Some(Value::Object(schemas)) = doc.pointer_mut("/components/schemas") {
        for (name, schema) in contract::components() {
            if let Some(known) = schemas.get_mut(&name) {
                *known = schema;
            }
        }
    }
    let batch = "/paths/~1api~1events~1batch/post/requestBody/content/application~1json/schema";
    if let Some(Value::Object(items)) = doc.pointer_mut(batch) {
        items.insert("minItems".to_owned(), json!(1));
        items.insert("maxItems".to_owned(), json!(batch_max_events));
    }
    doc.to_string()
}
