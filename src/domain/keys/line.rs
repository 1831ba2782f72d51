//! One-line forms: an OpenSSH `.pub` line or an `authorized_keys` line with options.

use super::key::Key;
use super::wire::{blob_algorithm, is_known_algorithm, parse_ssh_blob};
use super::{KeyInputError, Result, decode_base64};

/// Parses the single key line among `lines` (blank and `#` lines are ignored).
pub(super) fn parse_key_line(lines: &[&str]) -> Result<Key> {
    let key_lines: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    let line = match key_lines.as_slice() {
        [] => return Err(KeyInputError::Empty),
        [line] => line,
        _ => return Err(KeyInputError::MultipleKeys),
    };

    let (name, data) = locate_key(line)?;
    let blob = decode_base64(data)?;
    if blob_algorithm(&blob)? != name.as_bytes() {
        return Err(KeyInputError::AlgorithmMismatch);
    }
    parse_ssh_blob(&blob)
}

/// Finds the `algorithm base64` pair in a line, skipping `authorized_keys` options if present.
fn locate_key(line: &str) -> Result<(&str, &str)> {
    let candidates: Vec<(&str, &str)> = [Some(line), skip_options(line)]
        .into_iter()
        .flatten()
        .filter_map(first_two_fields)
        .collect();

    let known = candidates.iter().find(|(name, _)| is_known_algorithm(name));
    let decodable = || {
        candidates
            .iter()
            .find(|(_, data)| decode_base64(data).is_ok())
    };
    known
        .or_else(decodable)
        .copied()
        .ok_or(KeyInputError::NotRecognised)
}

fn first_two_fields(text: &str) -> Option<(&str, &str)> {
    let mut fields = text.split_ascii_whitespace();
    Some((fields.next()?, fields.next()?))
}

/// The rest of an `authorized_keys` line after its options, as `sshd` skips them: up to the
/// first space or tab outside double quotes, where `\"` never ends a quote.
fn skip_options(line: &str) -> Option<&str> {
    let mut quoted = false;
    let mut chars = line.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '\\' if line[index + 1..].starts_with('"') => {
                chars.next();
            }
            '"' => quoted = !quoted,
            ' ' | '\t' if !quoted => return Some(line[index..].trim_start()),
            _ => {}
        }
    }
    None
}
