//! Client-sent text inside error messages: escaped (control characters stay visible) and
//! cut to a readable length, so a message echoing a megabyte-long id still says what is
//! wrong in its first line instead of drowning it.

/// Characters of a value shown before it is cut.
const SHOWN_CHARS: usize = 64;

/// `value`, escaped, with at most 64 characters shown.
pub fn shown(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(SHOWN_CHARS).collect();
    let escaped = head.escape_debug().to_string();
    if chars.next().is_none() {
        escaped
    } else {
        format!("{escaped}… ({} bytes)", value.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_and_control_characters_escaped() {
        assert_eq!(shown("a\nb"), "a\\nb");
        let long = shown(&"x".repeat(1000));
        assert!(long.ends_with("… (1000 bytes)"), "{long}");
        assert_eq!(long.chars().filter(|&c| c == 'x').count(), 64);
    }
}
