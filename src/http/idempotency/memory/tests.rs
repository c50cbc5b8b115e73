//! The in-memory store's bounds: expiry, the fair share of its bytes, claims in flight.

use super::*;
use axum::body::Bytes;
use axum::http::StatusCode;

fn answer(body: &'static str) -> Remembered {
    Remembered {
        status: StatusCode::CREATED,
        content_type: None,
        body: Bytes::from_static(body.as_bytes()),
    }
}

/// What one key of one letter with a five-byte answer costs.
const ONE: usize = 1 + ENTRY_OVERHEAD_BYTES + 5 + 1;

fn caller(n: u8) -> ClientKey {
    ClientKey::Address([192, 0, 2, n].into())
}

fn claim(store: &MemoryStore, who: u8, key: &str, now: Instant) -> Claim {
    match store.begin_at(&caller(who), key, [1; 32], now) {
        Begin::Fresh(claim) => claim,
        _ => panic!("{key} was not fresh for caller {who}"),
    }
}

fn answered(store: &MemoryStore, who: u8, key: &str, now: Instant) {
    let claim = claim(store, who, key, now);
    store.finish_at(&claim, Some(answer("12345")), now);
}

fn is(store: &MemoryStore, who: u8, key: &str, now: Instant) -> &'static str {
    match store.begin_at(&caller(who), key, [1; 32], now) {
        Begin::Fresh(_) => "fresh",
        Begin::Replay(_) => "replay",
        Begin::InProgress => "in progress",
        Begin::Mismatch => "mismatch",
    }
}

#[test]
fn a_remembered_answer_is_replayed_for_the_same_fingerprint_only() {
    let (store, now) = (
        MemoryStore::new(Duration::from_secs(60), 10 * ONE),
        Instant::now(),
    );
    let first = claim(&store, 1, "k", now);
    assert_eq!(is(&store, 1, "k", now), "in progress");
    store.finish_at(&first, Some(answer("first")), now);
    match store.begin_at(&caller(1), "k", [1; 32], now) {
        Begin::Replay(remembered) => assert_eq!(remembered.body, "first"),
        _ => panic!("expected a replay"),
    }
    assert!(matches!(
        store.begin_at(&caller(1), "k", [2; 32], now),
        Begin::Mismatch
    ));
}

#[test]
fn a_failed_request_frees_its_key_and_costs_nothing() {
    let (store, now) = (
        MemoryStore::new(Duration::from_secs(60), 10 * ONE),
        Instant::now(),
    );
    let first = claim(&store, 1, "k", now);
    assert!(store.usage(&caller(1)).1 > 0, "a claim is counted");
    store.finish_at(&first, None, now);
    assert_eq!(store.usage(&caller(1)), (0, 0));
    assert_eq!(is(&store, 1, "k", now), "fresh");
}

#[test]
fn answers_are_forgotten_after_the_window() {
    let (store, now) = (
        MemoryStore::new(Duration::from_secs(60), 10 * ONE),
        Instant::now(),
    );
    answered(&store, 1, "k", now);
    assert_eq!(is(&store, 1, "k", now + Duration::from_secs(59)), "replay");
    store.expire_at(now + Duration::from_secs(61));
    assert_eq!(
        store.usage(&caller(1)),
        (0, 0),
        "the caller is forgotten too"
    );
    assert_eq!(is(&store, 1, "k", now + Duration::from_secs(61)), "fresh");
}

#[test]
fn a_flooding_caller_gives_up_its_own_answers_not_anothers() {
    let (store, now) = (
        MemoryStore::new(Duration::from_secs(60), 10 * ONE),
        Instant::now(),
    );
    answered(&store, 1, "a", now);
    answered(&store, 1, "b", now);
    for n in 0..1000 {
        answered(&store, 2, &format!("{n}"), now);
    }
    assert_eq!(is(&store, 1, "a", now), "replay");
    assert_eq!(is(&store, 1, "b", now), "replay");
    assert_eq!(is(&store, 2, "999", now), "replay", "its newest stay");
    assert_eq!(is(&store, 2, "0", now), "fresh", "its oldest went");
    let (total, flooder) = store.usage(&caller(2));
    assert!(total <= 10 * ONE + ONE, "{total}");
    assert!(flooder <= 8 * ONE + ONE, "{flooder}");
}

#[test]
fn requests_in_flight_are_never_forgotten_to_make_room() {
    let (store, now) = (
        MemoryStore::new(Duration::from_secs(60), 3 * ONE),
        Instant::now(),
    );
    let pending = claim(&store, 1, "pending", now);
    for n in 0..100 {
        answered(&store, 1, &format!("{n}"), now);
    }
    assert_eq!(is(&store, 1, "pending", now), "in progress");
    store.finish_at(&pending, Some(answer("later")), now);
    assert_eq!(is(&store, 1, "pending", now), "replay");
}

#[test]
fn a_request_whose_key_was_forgotten_does_not_end_its_successor() {
    let (store, now) = (
        MemoryStore::new(Duration::from_secs(60), 10 * ONE),
        Instant::now(),
    );
    let first = claim(&store, 1, "k", now);
    store.finish_at(&first, Some(answer("first")), now);
    store.expire_at(now + Duration::from_secs(61));
    let second = claim(&store, 1, "k", now + Duration::from_secs(61));
    store.finish_at(&first, None, now + Duration::from_secs(61));
    assert_eq!(
        is(&store, 1, "k", now + Duration::from_secs(61)),
        "in progress"
    );
    store.finish_at(&second, None, now + Duration::from_secs(61));
}

#[test]
fn callers_keys_never_meet() {
    let (store, now) = (
        MemoryStore::new(Duration::from_secs(60), 10 * ONE),
        Instant::now(),
    );
    answered(&store, 1, "shared", now);
    assert_eq!(is(&store, 2, "shared", now), "fresh");
}
