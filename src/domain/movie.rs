//! Movie events: something happened to a movie, usually at a user's hand.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use strum::{EnumIter, EnumString, IntoStaticStr, VariantNames};
use utoipa::ToSchema;

use super::fields::{Fields, FromJson, ValidationErrors, enum_from_json};
use super::values::{EntityId, List, Text, number_in, number_schema};

/// What happened to the movie.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    ToSchema,
    IntoStaticStr,
    EnumString,
    VariantNames,
    EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum MovieAction {
    Viewed,
    Rated,
    Added,
    Updated,
    Deleted,
}

impl MovieAction {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl FromJson for MovieAction {
    fn from_json(value: &Value) -> Result<Self, String> {
        enum_from_json(value)
    }
}

/// A rating from 0 to 10.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Rating(f64);

impl Rating {
    const MIN: f64 = 0.0;
    const MAX: f64 = 10.0;
}

impl FromJson for Rating {
    fn from_json(value: &Value) -> Result<Self, String> {
        number_in(value, Self::MIN, Self::MAX).map(Self)
    }
}

impl utoipa::PartialSchema for Rating {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        number_schema(Self::MIN, Self::MAX)
    }
}

impl ToSchema for Rating {}

pub type Title = Text<1, 256>;
pub type Genre = Text<1, 64>;
pub type Genres = List<Genre, 32>;
pub type Description = Text<0, 4096>;

/// A movie event as clients send it and as it is published. `rating` is required when `action`
/// is `rated`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "movie_id": 1, "title": "The Matrix", "action": "viewed", "user_id": 123, "rating": 9.5,
    "genres": ["Sci-Fi", "Action"],
    "description": "A computer hacker learns about the true nature of reality"
}))]
pub struct MovieEvent {
    pub movie_id: EntityId,
    #[schema(inline)]
    pub title: Title,
    pub action: MovieAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<EntityId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating: Option<Rating>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(inline)]
    pub genres: Option<Genres>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(inline)]
    pub description: Option<Description>,
}

impl MovieEvent {
    /// The rule that `rating` is required when `action` is `rated`, as JSON Schema (`if`/`then`),
    /// which the schema derive cannot write; the OpenAPI document adds it to `MovieEvent`.
    pub fn conditional_schema() -> (Value, Value) {
        (
            serde_json::json!({"properties": {"action": {"const": "rated"}}, "required": ["action"]}),
            serde_json::json!({"required": ["rating"], "properties": {"rating": {"$ref": "#/components/schemas/Rating"}}}),
        )
    }
}

impl TryFrom<&Map<String, Value>> for MovieEvent {
    type Error = ValidationErrors;

    fn try_from(body: &Map<String, Value>) -> Result<Self, ValidationErrors> {
        let mut f = Fields::new(body);
        let movie_id = f.required("movie_id");
        let title = f.required("title");
        let action = f.required("action");
        let user_id = f.optional("user_id");
        let rating = f.optional("rating");
        let genres = f.optional("genres");
        let description = f.optional("description");
        if action == Some(MovieAction::Rated) && rating.is_none() && !f.has_error("rating") {
            f.error("rating", "is required when action is rated");
        }
        let (Some(movie_id), Some(title), Some(action)) = (movie_id, title, action) else {
            return Err(f.into_errors());
        };
        f.finish()?;
        Ok(Self {
            movie_id,
            title,
            action,
            user_id,
            rating,
            genres,
            description,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value) -> Result<MovieEvent, ValidationErrors> {
        MovieEvent::try_from(body.as_object().expect("test bodies are objects"))
    }

    fn seed_example() -> Value {
        json!({
            "movie_id": 1, "title": "The Matrix", "action": "viewed", "user_id": 123,
            "rating": 9.5, "genres": ["Sci-Fi", "Action"],
            "description": "A computer hacker learns about the true nature of reality"
        })
    }

    #[test]
    fn the_seed_example_is_valid_and_round_trips_unchanged() {
        let event = parse(seed_example()).unwrap();
        assert_eq!(serde_json::to_value(&event).unwrap(), seed_example());
    }

    #[test]
    fn the_minimal_event_has_only_the_required_fields() {
        let body = json!({"movie_id": 1, "title": "Test Movie", "action": "viewed"});
        let event = parse(body.clone()).unwrap();
        assert_eq!(serde_json::to_value(&event).unwrap(), body);
    }

    #[test]
    fn every_missing_required_field_is_named() {
        let errors = parse(json!({})).unwrap_err();
        assert_eq!(errors.fields(), ["movie_id", "title", "action"]);
    }

    #[test]
    fn every_broken_field_is_named() {
        let errors = parse(json!({
            "movie_id": "1", "title": "", "action": "watched", "user_id": 0, "rating": 11,
            "genres": ["ok", ""], "description": 5
        }))
        .unwrap_err();
        assert_eq!(
            errors.fields(),
            [
                "movie_id",
                "title",
                "action",
                "user_id",
                "rating",
                "genres",
                "description"
            ]
        );
        assert!(
            errors.0[2]
                .message
                .contains("viewed, rated, added, updated, deleted")
        );
    }

    #[test]
    fn a_rated_event_needs_a_rating() {
        let errors = parse(json!({"movie_id": 1, "title": "T", "action": "rated"})).unwrap_err();
        assert_eq!(errors.fields(), ["rating"]);
        assert!(
            parse(json!({"movie_id": 1, "title": "T", "action": "rated", "rating": 0})).is_ok()
        );
    }

    #[test]
    fn ratings_cover_zero_to_ten() {
        for (rating, ok) in [
            (json!(0), true),
            (json!(10), true),
            (json!(-0.1), false),
            (json!(10.5), false),
        ] {
            let body = json!({"movie_id": 1, "title": "T", "action": "viewed", "rating": rating});
            assert_eq!(parse(body).is_ok(), ok, "rating {rating}");
        }
    }

    #[test]
    fn unknown_fields_are_ignored_and_not_published() {
        let mut body = seed_example();
        body["extra"] = json!("ignored");
        let event = parse(body).unwrap();
        assert_eq!(serde_json::to_value(&event).unwrap(), seed_example());
    }

    #[test]
    fn action_names_match_their_variants() {
        for &name in MovieAction::VARIANTS {
            assert_eq!(MovieAction::from_json(&json!(name)).unwrap().as_str(), name);
        }
    }
}
