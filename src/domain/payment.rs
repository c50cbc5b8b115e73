//! Payment events: a payment changed status.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use strum::{EnumIter, EnumString, IntoStaticStr, VariantNames};
use utoipa::ToSchema;

use super::fields::{Fields, FromJson, ValidationErrors, enum_from_json};
use super::values::{EntityId, Text, Timestamp, number_in, number_schema};

/// The payment's new status.
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
pub enum PaymentStatus {
    Completed,
    Failed,
    Pending,
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl FromJson for PaymentStatus {
    fn from_json(value: &Value) -> Result<Self, String> {
        enum_from_json(value)
    }
}

/// An amount of money: a number from 0 to [`Amount::MAX`]. The bound keeps every sum of amounts
/// a consumer may keep (the statistics' among them) finite for as long as anyone will count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Amount(f64);

impl Amount {
    /// A trillion: more than any one payment, in any currency.
    pub const MAX: f64 = 1e12;

    pub fn get(self) -> f64 {
        self.0
    }
}

impl FromJson for Amount {
    fn from_json(value: &Value) -> Result<Self, String> {
        number_in(value, 0.0, Self::MAX).map(Self)
    }
}

impl utoipa::PartialSchema for Amount {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        number_schema(0.0, Self::MAX)
    }
}

impl ToSchema for Amount {}

pub type MethodType = Text<1, 64>;

/// A payment event as clients send it and as it is published. A missing `timestamp` is filled
/// with the time the service received the event.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "payment_id": 456, "user_id": 123, "amount": 99.99, "status": "completed",
    "timestamp": "2025-01-01T00:00:00Z", "method_type": "credit_card"
}))]
pub struct PaymentEvent {
    pub payment_id: EntityId,
    pub user_id: EntityId,
    pub amount: Amount,
    pub status: PaymentStatus,
    /// When the client says it happened; the time of receipt when absent or null. Always
    /// present in the published event.
    #[schema(value_type = Option<Timestamp>, required = false)]
    pub timestamp: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(inline)]
    pub method_type: Option<MethodType>,
}

impl PaymentEvent {
    /// Validates a request body received at `received_at`.
    pub fn parse(
        body: &Map<String, Value>,
        received_at: Timestamp,
    ) -> Result<Self, ValidationErrors> {
        let mut f = Fields::new(body);
        let payment_id = f.required("payment_id");
        let user_id = f.required("user_id");
        let amount = f.required("amount");
        let status = f.required("status");
        let timestamp = f.optional("timestamp");
        let method_type = f.optional("method_type");
        let (Some(payment_id), Some(user_id), Some(amount), Some(status)) =
            (payment_id, user_id, amount, status)
        else {
            return Err(f.into_errors());
        };
        f.finish()?;
        Ok(Self {
            payment_id,
            user_id,
            amount,
            status,
            timestamp: timestamp.unwrap_or(received_at),
            method_type,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value) -> Result<PaymentEvent, ValidationErrors> {
        PaymentEvent::parse(
            body.as_object().expect("test bodies are objects"),
            Timestamp::now(),
        )
    }

    #[test]
    fn the_seed_example_is_valid_and_round_trips_unchanged() {
        let body = json!({
            "payment_id": 456, "user_id": 123, "amount": 99.99, "status": "completed",
            "timestamp": "2025-01-01T00:00:00Z", "method_type": "credit_card"
        });
        let event = parse(body.clone()).unwrap();
        assert_eq!(serde_json::to_value(&event).unwrap(), body);
    }

    #[test]
    fn every_missing_required_field_is_named() {
        assert_eq!(
            parse(json!({})).unwrap_err().fields(),
            ["payment_id", "user_id", "amount", "status"]
        );
    }

    #[test]
    fn every_broken_field_is_named() {
        let errors = parse(json!({
            "payment_id": 0, "user_id": "7", "amount": -1, "status": "paid",
            "timestamp": 12, "method_type": ""
        }))
        .unwrap_err();
        assert_eq!(
            errors.fields(),
            [
                "payment_id",
                "user_id",
                "amount",
                "status",
                "timestamp",
                "method_type"
            ]
        );
    }

    #[test]
    fn amounts_run_from_zero_to_a_trillion() {
        for (amount, ok) in [
            (json!(1e12), true),
            (json!(1_000_000_000_001_u64), false),
            (json!(1e308), false),
            (json!(f64::MAX), false),
        ] {
            let body = json!({"payment_id": 1, "user_id": 1, "amount": amount, "status": "failed"});
            assert_eq!(parse(body).is_ok(), ok, "amount {amount}");
        }
    }

    #[test]
    fn a_zero_amount_is_valid() {
        let body = json!({"payment_id": 1, "user_id": 1, "amount": 0, "status": "failed"});
        assert_eq!(parse(body).unwrap().amount.get(), 0.0);
    }

    #[test]
    fn status_names_match_their_variants() {
        for &name in PaymentStatus::VARIANTS {
            assert_eq!(
                PaymentStatus::from_json(&json!(name)).unwrap().as_str(),
                name
            );
        }
    }
}
