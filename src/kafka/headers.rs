//! Record headers: the names every record of the service carries, and reading the headers of a
//! record any producer may have written.

use std::panic::{AssertUnwindSafe, catch_unwind};

use rdkafka::Message;
use rdkafka::message::Headers;

/// The service's own headers, and the CloudEvents attributes of the Kafka protocol binding's
/// binary mode (`ce_` and the attribute's name; `content-type` is `datacontenttype`).
pub const EVENT_ID: &str = "event-id";
pub const EVENT_TYPE: &str = "event-type";
pub const EVENT_ACTION: &str = "event-action";
pub const CONTENT_TYPE: &str = "content-type";
pub const CE_SPECVERSION: &str = "ce_specversion";
pub const CE_ID: &str = "ce_id";
pub const CE_SOURCE: &str = "ce_source";
pub const CE_TYPE: &str = "ce_type";
pub const CE_TIME: &str = "ce_time";

/// A header name that is not UTF-8, which any producer can write.
#[derive(Debug, thiserror::Error)]
#[error("a header name of the record is not UTF-8")]
pub struct NotUtf8;

/// Reads `record`'s headers with `read`; `None` when it has none. rdkafka's header accessor
/// panics on a name that is not UTF-8, which must not stop a consumer: that is an error here.
pub fn with_headers<M: Message, R>(
    record: &M,
    read: impl FnOnce(&M::Headers) -> R,
) -> Result<Option<R>, NotUtf8> {
    let Some(headers) = record.headers() else {
        return Ok(None);
    };
    catch_unwind(AssertUnwindSafe(|| read(headers)))
        .map(Some)
        .map_err(|_| NotUtf8)
}

/// Headers copied from a record: names, and values (which may be null), in order.
pub type CopiedHeaders = Vec<(String, Option<Vec<u8>>)>;

/// `record`'s headers, in order, names and values as they are.
pub fn copied(record: &impl Message) -> Result<CopiedHeaders, NotUtf8> {
    let copied = with_headers(record, |headers| {
        headers
            .iter()
            .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
            .collect()
    })?;
    Ok(copied.unwrap_or_default())
}
