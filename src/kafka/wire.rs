//! The Confluent wire format of a record's value: a zero byte, the schema's id in the registry (4
//! bytes, big-endian), then the serialised data, here the event's JSON. A JSON text never starts
//! with a zero byte, so a reader tells the two forms apart by the first byte alone, whatever the
//! configuration was when the record was written.

/// The first byte of a value in the wire format.
const MAGIC: u8 = 0;
/// The prefix's length: the magic byte and the id.
pub const PREFIX_BYTES: usize = 5;

/// `json` in the wire format, under schema `id`.
pub fn frame(id: u32, json: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(PREFIX_BYTES + json.len());
    value.push(MAGIC);
    value.extend_from_slice(&id.to_be_bytes());
    value.extend_from_slice(json);
    value
}

/// The data of `value`: after the prefix when it is in the wire format, else all of it.
pub fn data(value: &[u8]) -> &[u8] {
    match value {
        [MAGIC, _, _, _, _, data @ ..] => data,
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framed_value_is_the_id_big_endian_then_the_json_and_reads_back() {
        let framed = frame(258, br#"{"id":1}"#);
        assert_eq!(&framed[..5], &[0, 0, 0, 1, 2]);
        assert_eq!(data(&framed), br#"{"id":1}"#);
        assert_eq!(
            data(br#"{"id":1}"#),
            br#"{"id":1}"#,
            "plain JSON stays whole"
        );
        assert_eq!(data(b""), b"");
    }
}
