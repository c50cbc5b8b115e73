//! What the consumers have processed so far: counts by type and action, the rate over the last
//! minute, and payment amounts by status.

use std::collections::BTreeMap;
use std::collections::VecDeque;

use serde::Serialize;
use utoipa::ToSchema;

use super::event::OTHER;
use crate::domain::{Amount, EventAction, EventType};

/// The seconds the rate is kept for.
const RATE_WINDOW_SECONDS: usize = 60;

/// The running totals. Kept bounded: types and actions are the domain's, plus [`OTHER`].
#[derive(Debug)]
pub struct Stats {
    started_at: u64,
    processed: u64,
    by_type: BTreeMap<&'static str, TypeCounts>,
    payments: BTreeMap<&'static str, PaymentTotals>,
    /// Events per whole second (Unix time), the last [`RATE_WINDOW_SECONDS`] seconds.
    per_second: VecDeque<(u64, u64)>,
}

#[derive(Debug, Default, Clone, Serialize, ToSchema)]
pub struct TypeCounts {
    pub total: u64,
    #[schema(value_type = BTreeMap<String, u64>)]
    pub by_action: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Default, Clone, Serialize, ToSchema)]
pub struct PaymentTotals {
    pub count: u64,
    /// The sum of the payments' amounts.
    pub amount: f64,
}

/// The answer of `GET /api/events/stats`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatsSnapshot {
    /// Unix time (seconds) the counting began: the service's start.
    pub since: u64,
    pub processed_total: u64,
    /// Per type (`movie`, `user`, `payment`), the total and the count per action (per status
    /// for payments).
    #[schema(value_type = BTreeMap<String, TypeCounts>)]
    pub by_type: BTreeMap<&'static str, TypeCounts>,
    /// Events processed in each of the last 60 seconds, oldest first; the last is the current,
    /// still counting, second.
    pub per_second: Vec<u64>,
    /// The mean rate over the last minute (the 59 complete seconds before the current one).
    pub events_per_second: f64,
    /// Count and sum of amounts per payment status.
    #[schema(value_type = BTreeMap<String, PaymentTotals>)]
    pub payments: BTreeMap<&'static str, PaymentTotals>,
}

impl Stats {
    pub fn new(now: u64) -> Self {
        let mut by_type = BTreeMap::new();
        for event_type in EventType::ALL {
            let by_action = event_type.action_names().iter().map(|a| (*a, 0)).collect();
            by_type.insert(
                event_type.as_str(),
                TypeCounts {
                    total: 0,
                    by_action,
                },
            );
        }
        let payments = EventType::Payment
            .action_names()
            .iter()
            .map(|status| (*status, PaymentTotals::default()))
            .collect();
        Self {
            started_at: now,
            processed: 0,
            by_type,
            payments,
            per_second: VecDeque::with_capacity(RATE_WINDOW_SECONDS + 1),
        }
    }

    /// Counts one event of `event_type` with `action` (either one this version does not know,
    /// as `other`), at Unix second `now`.
    pub fn record(
        &mut self,
        event_type: Option<EventType>,
        action: Option<EventAction>,
        amount: Option<f64>,
        now: u64,
    ) {
        self.processed += 1;
        let type_name = event_type.map_or(OTHER, EventType::as_str);
        // An action counts under its own type only.
        let action = action.filter(|a| Some(a.event_type()) == event_type);
        let counts = self.by_type.entry(type_name).or_default();
        counts.total += 1;
        *counts
            .by_action
            .entry(action.map_or(OTHER, EventAction::as_str))
            .or_default() += 1;
        if event_type == Some(EventType::Payment) {
            let status = match action {
                Some(EventAction::Payment(status)) => status.as_str(),
                _ => OTHER,
            };
            let totals = self.payments.entry(status).or_default();
            totals.count += 1;
            // Records written by other producers may hold any number: only a valid amount is
            // summed, so that the sum stays finite (and JSON, which has no infinity, can say it).
            let amount = amount
                .filter(|a| (0.0..=Amount::MAX).contains(a))
                .unwrap_or(0.0);
            totals.amount = (totals.amount + amount).min(f64::MAX);
        }
        match self.per_second.back_mut() {
            Some((second, count)) if *second == now => *count += 1,
            _ => self.per_second.push_back((now, 1)),
        }
        self.forget_before(now);
    }

    pub fn snapshot(&self, now: u64) -> StatsSnapshot {
        let mut per_second = vec![0; RATE_WINDOW_SECONDS];
        for (second, count) in &self.per_second {
            // The last slot is `now`; seconds before the window (or a clock that went back) are
            // left out.
            if let Some(age) = now
                .checked_sub(*second)
                .filter(|age| *age < per_second.len() as u64)
            {
                per_second[RATE_WINDOW_SECONDS - 1 - age as usize] = *count;
            }
        }
        let complete = &per_second[..RATE_WINDOW_SECONDS - 1];
        StatsSnapshot {
            since: self.started_at,
            processed_total: self.processed,
            by_type: self.by_type.clone(),
            events_per_second: complete.iter().sum::<u64>() as f64 / complete.len() as f64,
            per_second,
            payments: self.payments.clone(),
        }
    }

    fn forget_before(&mut self, now: u64) {
        while let Some((second, _)) = self.per_second.front() {
            if *second + (RATE_WINDOW_SECONDS as u64) > now {
                break;
            }
            self.per_second.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MovieAction;
    use crate::domain::PaymentStatus::{self, Completed, Refunded};

    const MOVIE: Option<EventType> = Some(EventType::Movie);
    const PAYMENT: Option<EventType> = Some(EventType::Payment);

    fn viewed() -> Option<EventAction> {
        Some(EventAction::Movie(MovieAction::Viewed))
    }

    fn status(status: PaymentStatus) -> Option<EventAction> {
        Some(EventAction::Payment(status))
    }

    #[test]
    fn events_are_counted_by_type_and_action_and_payments_summed_by_status() {
        let mut stats = Stats::new(1000);
        stats.record(MOVIE, viewed(), None, 1000);
        stats.record(MOVIE, viewed(), None, 1000);
        stats.record(PAYMENT, status(Completed), Some(10.5), 1001);
        stats.record(PAYMENT, status(Completed), Some(4.5), 1001);
        stats.record(PAYMENT, status(Refunded), Some(3.0), 1001);
        let snapshot = stats.snapshot(1001);
        assert_eq!(snapshot.processed_total, 5);
        assert_eq!(snapshot.by_type["movie"].total, 2);
        assert_eq!(snapshot.by_type["movie"].by_action["viewed"], 2);
        assert_eq!(snapshot.by_type["movie"].by_action["rated"], 0);
        assert_eq!(snapshot.by_type["user"].total, 0);
        assert_eq!(snapshot.payments["completed"].count, 2);
        assert_eq!(snapshot.payments["completed"].amount, 15.0);
        assert_eq!(snapshot.payments["refunded"].amount, 3.0);
        assert_eq!(snapshot.payments["failed"].count, 0);
    }

    #[test]
    fn amounts_no_valid_payment_has_are_not_summed_so_the_sums_stay_finite() {
        let mut stats = Stats::new(0);
        for amount in [
            f64::MAX,
            f64::MAX,
            1e308,
            f64::INFINITY,
            f64::NAN,
            -5.0,
            2.5,
        ] {
            stats.record(PAYMENT, status(Completed), Some(amount), 0);
        }
        let snapshot = stats.snapshot(0);
        assert_eq!(snapshot.payments["completed"].count, 7);
        assert_eq!(snapshot.payments["completed"].amount, 2.5);
        let json = serde_json::to_value(&snapshot).unwrap();
        assert_eq!(json["payments"]["completed"]["amount"], 2.5);
    }

    #[test]
    fn unknown_types_and_actions_are_counted_as_other_and_keep_the_maps_bounded() {
        let mut stats = Stats::new(0);
        for _ in 0..100 {
            stats.record(None, viewed(), None, 0);
            stats.record(MOVIE, None, None, 0);
            stats.record(MOVIE, status(Completed), None, 0);
        }
        let snapshot = stats.snapshot(0);
        assert_eq!(snapshot.by_type.len(), 4, "{:?}", snapshot.by_type.keys());
        assert_eq!(snapshot.by_type[OTHER].total, 100);
        assert_eq!(snapshot.by_type["movie"].by_action[OTHER], 200);
        assert_eq!(snapshot.by_type["movie"].by_action.len(), 6);
    }

    #[test]
    fn the_rate_covers_the_last_minute_and_forgets_older_seconds() {
        let mut stats = Stats::new(0);
        for second in 0..120 {
            for _ in 0..(second % 3) {
                stats.record(Some(EventType::User), None, None, second);
            }
        }
        let snapshot = stats.snapshot(119);
        assert_eq!(snapshot.per_second.len(), 60);
        assert_eq!(snapshot.per_second[59], 119 % 3);
        assert_eq!(snapshot.per_second[0], 60 % 3);
        // Seconds 60..=118: 59 seconds cycling 0, 1, 2 from 60 % 3 = 0.
        let expected: u64 = (60..119).map(|s| s % 3).sum();
        assert!((snapshot.events_per_second - expected as f64 / 59.0).abs() < 1e-9);
        assert!(stats.per_second.len() <= 60);
        // A quiet minute later, the window is empty.
        assert_eq!(stats.snapshot(300).per_second.iter().sum::<u64>(), 0);
    }
}
