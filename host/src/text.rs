//! Rules for the free text the doors accept (names, needs), shared so that
//! every door and the OpenAPI document agree on what "blank" means.

/// True when `text` has nothing a reader would see: only whitespace, control
/// characters or byte-order marks. This is the widest reading of a schema's
/// `\S` pattern across regex engines (Python counts `\x1c`–`\x1f` as space,
/// ECMAScript counts U+FEFF), so text the document calls blank is refused here.
pub fn is_blank(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_whitespace() || c.is_control() || c == '\u{feff}')
}

/// Length in Unicode scalar values, the unit of JSON Schema's `maxLength`.
pub fn chars(text: &str) -> usize {
    text.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_is_whitespace_controls_and_byte_order_marks() {
        for blank in [
            "",
            " ",
            "\t\n",
            "\u{1c}\u{1f}",
            "\u{9a}\u{1b}",
            "\u{feff}",
            "\u{3000}",
        ] {
            assert!(is_blank(blank), "{blank:?}");
        }
        for seen in ["a", " a ", "\u{1b}U", "é", "\u{feff}x"] {
            assert!(!is_blank(seen), "{seen:?}");
        }
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert_eq!(chars("é日本"), 3);
        assert_eq!(chars("\t\u{9a}U"), 3);
    }
}
