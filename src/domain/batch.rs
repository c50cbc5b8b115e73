//! Batches: several typed events in one request, all valid or none published.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::fields::{FieldError, Fields, ValidationErrors};
use super::{EventPayload, EventType, MovieEvent, PaymentEvent, Timestamp, UserEvent};

/// One item of a batch as clients send it: the event's fields plus its `type`.
/// (Documentation only: items are parsed by [`parse_batch`].)
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BatchItem {
    Movie(MovieEvent),
    User(UserEvent),
    Payment(PaymentEvent),
}

/// The broken fields of one batch item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ItemErrors {
    /// The item's position in the batch, from 0.
    pub index: usize,
    pub fields: Vec<FieldError>,
}

/// Every broken item of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchErrors(pub Vec<ItemErrors>);

impl std::fmt::Display for BatchErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(
                f,
                "item {}: {}",
                item.index,
                ValidationErrors(item.fields.clone())
            )?;
        }
        Ok(())
    }
}

/// Validates every item of a batch received at `received_at`; any broken item fails the batch.
pub fn parse_batch(
    items: &[Value],
    received_at: Timestamp,
) -> Result<Vec<EventPayload>, BatchErrors> {
    let mut events = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match parse_item(item, received_at) {
            Ok(event) => events.push(event),
            Err(ValidationErrors(fields)) => errors.push(ItemErrors { index, fields }),
        }
    }
    if errors.is_empty() {
        Ok(events)
    } else {
        Err(BatchErrors(errors))
    }
}

fn parse_item(item: &Value, received_at: Timestamp) -> Result<EventPayload, ValidationErrors> {
    let Some(object) = item.as_object() else {
        return Err(ValidationErrors(vec![FieldError {
            field: "item".to_owned(),
            message: "must be a JSON object".to_owned(),
        }]));
    };
    let mut fields = Fields::new(object);
    let Some(event_type) = fields.required::<EventType>("type") else {
        return Err(fields.into_errors());
    };
    EventPayload::parse(event_type, object, received_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_valid_batch_keeps_its_order_and_types() {
        let items = json!([
            {"type": "payment", "payment_id": 1, "user_id": 2, "amount": 3, "status": "pending"},
            {"type": "movie", "movie_id": 1, "title": "T", "action": "viewed"},
            {"type": "user", "user_id": 5, "action": "deleted"},
        ]);
        let events = parse_batch(items.as_array().unwrap(), Timestamp::now()).unwrap();
        let types: Vec<_> = events.iter().map(EventPayload::event_type).collect();
        assert_eq!(
            types,
            [EventType::Payment, EventType::Movie, EventType::User]
        );
    }

    #[test]
    fn every_bad_item_is_named_by_index_and_field() {
        let items = json!([
            {"type": "movie", "movie_id": 1, "title": "T", "action": "viewed"},
            {"type": "movie", "movie_id": 0, "action": "viewed"},
            {"type": "film"},
            {"movie_id": 1},
            [1, 2],
        ]);
        let errors = parse_batch(items.as_array().unwrap(), Timestamp::now()).unwrap_err();
        let named: Vec<(usize, Vec<&str>)> = errors
            .0
            .iter()
            .map(|item| {
                (
                    item.index,
                    item.fields.iter().map(|f| f.field.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            named,
            [
                (1, vec!["movie_id", "title"]),
                (2, vec!["type"]),
                (3, vec!["type"]),
                (4, vec!["item"])
            ]
        );
        assert!(
            errors.0[1].fields[0]
                .message
                .contains("movie, user, payment")
        );
        assert!(errors.to_string().starts_with("item 1: movie_id: "));
    }
}
