//! The OpenAPI document, generated from the handlers and the domain types that validate.

use utoipa::OpenApi;

use super::{events, health};

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
        events::create_batch,
        health::health,
        health::live,
    ),
    tags(
        (name = "events", description = "Publish events"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

/// The document as JSON, rendered once.
pub fn document() -> String {
    ApiDoc::openapi().to_json().unwrap_or_else(|error| {
        format!("{{\"error\": \"could not render the document: {error}\"}}")
    })
}
