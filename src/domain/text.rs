//! Text that reaches a person's terminal.

/// Removes control characters other than newline and tab, so that text supplied through the
/// API cannot move the cursor, change colours or rewrite what the terminal shows.
pub fn strip_control(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

/// Prepares text for a terminal: control characters stripped, and line ends as CR LF because
/// a terminal in raw mode does not return the cursor on a bare LF.
pub fn for_terminal(text: &str) -> String {
    strip_control(text).replace('\n', "\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_lose_their_escape() {
        assert_eq!(
            strip_control("a\u{1b}[2Jb\tc\nd\r\u{7f}\u{9b}"),
            "a[2Jb\tc\nd"
        );
    }

    #[test]
    fn terminal_lines_end_with_crlf() {
        assert_eq!(for_terminal("one\ntwo"), "one\r\ntwo");
    }
}
