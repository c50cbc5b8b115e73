//! Property tests of the parsers: whatever JSON arrives, parsing never panics, and an event that
//! parses publishes exactly the fields that were valid.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::{EventPayload, EventType, Timestamp, parse_batch};

/// Any JSON value, nested a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,300}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object whose known fields hold anything at all.
fn object_with_known_fields() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec(
        (
            prop::sample::select(super::FIELD_NAMES.to_vec()),
            any_json(),
        ),
        0..12,
    )
    .prop_map(|pairs| pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn event_type() -> impl Strategy<Value = EventType> {
    prop::sample::select(EventType::ALL.to_vec())
}

/// A valid movie event, built from valid parts.
fn valid_movie() -> impl Strategy<Value = Value> {
    (
        1..=i64::MAX,
        "[^\\s][^\\u{0}]{0,100}",
        prop::sample::select(vec!["viewed", "rated", "added", "updated", "deleted"]),
        prop::option::of(1..=i64::MAX),
        0.0..=10.0f64,
        prop::collection::vec("[a-zA-Z-]{1,20}", 0..5),
    )
        .prop_map(|(movie_id, title, action, user_id, rating, genres)| {
            let mut event = json!({
                "movie_id": movie_id, "title": title, "action": action,
                "rating": rating, "genres": genres,
            });
            if let Some(user_id) = user_id {
                event["user_id"] = json!(user_id);
            }
            event
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsing_any_object_never_panics_and_rejections_name_a_field(
        event_type in event_type(),
        body in object_with_known_fields(),
    ) {
        if let Err(errors) = EventPayload::parse(event_type, &body, Timestamp::now()) {
            prop_assert!(!errors.0.is_empty());
            prop_assert!(errors.0.iter().all(|e| !e.field.is_empty() && !e.message.is_empty()));
        }
    }

    #[test]
    fn parsing_any_batch_never_panics(items in prop::collection::vec(any_json(), 0..16)) {
        match parse_batch(&items, Timestamp::now()) {
            Ok(events) => prop_assert_eq!(events.len(), items.len()),
            Err(errors) => prop_assert!(errors.0.iter().all(|item| item.index < items.len())),
        }
    }

    #[test]
    fn a_valid_movie_event_is_published_exactly_as_sent(body in valid_movie()) {
        let object = body.as_object().expect("an object");
        let event = EventPayload::parse(EventType::Movie, object, Timestamp::now());
        prop_assert!(event.is_ok(), "{body} was rejected: {:?}", event.err());
        prop_assert_eq!(serde_json::to_value(event.unwrap()).unwrap(), body);
    }

    #[test]
    fn unknown_fields_change_nothing(
        body in valid_movie(),
        extra in prop::collection::btree_map("x_[a-z]{1,8}", any_json(), 0..4),
    ) {
        let mut with_extra = body.as_object().expect("an object").clone();
        with_extra.extend(extra);
        let event = EventPayload::parse(EventType::Movie, &with_extra, Timestamp::now()).unwrap();
        prop_assert_eq!(serde_json::to_value(event).unwrap(), body);
    }
}
