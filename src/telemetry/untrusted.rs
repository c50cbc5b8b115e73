//! Strings from outside, made safe for log lines.

/// A string from outside (a record's key, an envelope's field written by another producer) made
/// safe for a log line: a line break or other control character cannot end the line and forge
/// the next one, nor can invisible formatting characters disguise it. They are written escaped
/// (`\n`, `\u{202e}`), as is a backslash (`\\`), so that escapes cannot be faked either; every
/// other character is written as it is, so ordinary values read word for word. At most
/// [`UNTRUSTED_MAX_CHARS`] characters are written, then how many bytes were left out.
pub fn untrusted(value: &str) -> Untrusted<'_> {
    Untrusted(value)
}

/// The most characters of an untrusted string a log line holds.
pub const UNTRUSTED_MAX_CHARS: usize = 256;

/// See [`untrusted`].
pub struct Untrusted<'a>(&'a str);

impl std::fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        for (written, (i, c)) in self.0.char_indices().enumerate() {
            if written == UNTRUSTED_MAX_CHARS {
                return write!(f, "…({} more bytes)", self.0.len() - i);
            }
            match c {
                '\\' => f.write_str("\\\\")?,
                c if c.is_control() || is_invisible_format(c) => {
                    for escaped in c.escape_debug() {
                        f.write_char(escaped)?;
                    }
                }
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Separators and format characters that change how a line reads without being seen: line and
/// paragraph separators, zero-width characters, bidirectional overrides and isolates, the BOM.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_values_are_written_as_they_are() {
        for value in [
            "42",
            "abc-123",
            "3c0f6a4e-8d1b-4c55-9a7e-2b9f0d4e1a77",
            "Amélie 映画",
            "",
        ] {
            assert_eq!(untrusted(value).to_string(), value);
        }
    }

    #[test]
    fn nothing_untrusted_can_end_a_line_or_fake_an_escape() {
        let forged = "1\n2025-01-01T00:00:00Z INFO [EVENT PROCESSED] Type: movie\r\t\u{1b}[31m\u{2028}\u{202e}\\n";
        let written = untrusted(forged).to_string();
        assert!(
            !written
                .chars()
                .any(|c| c.is_control() || is_invisible_format(c)),
            "{written}"
        );
        assert_eq!(
            written,
            "1\\n2025-01-01T00:00:00Z INFO [EVENT PROCESSED] Type: movie\\r\\t\\u{1b}[31m\\u{2028}\\u{202e}\\\\n"
        );
    }

    #[test]
    fn a_long_value_is_cut_and_says_how_much_is_left_out() {
        let long = "é".repeat(300);
        let written = untrusted(&long).to_string();
        assert!(written.starts_with(&"é".repeat(UNTRUSTED_MAX_CHARS)));
        assert!(written.ends_with("…(88 more bytes)"), "{written}");
    }
}
