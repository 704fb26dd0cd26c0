//! The mock's token arithmetic: roughly four characters to a token, as OpenAI's rule of thumb.

/// Estimated tokens of a text: `ceil(chars / 4)`, at least one for non-empty text.
pub fn estimate_tokens(text: &str) -> u64 {
    let chars = text.chars().count() as u64;
    chars.div_ceil(4)
}

/// Splits a reply into the pieces a stream sends, one "token" each: words with their
/// trailing whitespace. Concatenating the pieces gives the text back.
pub fn pieces(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_space = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            in_space = true;
        } else if in_space {
            out.push(&text[start..i]);
            start = i;
            in_space = false;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_concatenate_to_the_text() {
        for t in [
            "",
            "a",
            "hello world",
            "  lead",
            "trail  ",
            "multi\nline text é",
        ] {
            assert_eq!(pieces(t).concat(), t);
        }
        assert_eq!(pieces("hello big world"), ["hello ", "big ", "world"]);
    }

    #[test]
    fn estimates() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
    }
}
