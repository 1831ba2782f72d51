//! REST names for what the GraphQL validation reports: `input.keys[1].publicKey` becomes
//! `body.keys[1].public_key`, and camelCase field names in messages become snake_case.

/// A GraphQL input location in REST terms: `input.keys[1].publicKey` → `body.keys[1].public_key`.
pub fn rest_location(location: &str) -> String {
    let rest = match location.strip_prefix("input") {
        Some(rest) if rest.is_empty() || rest.starts_with(['.', '[']) => format!("body{rest}"),
        _ => location.to_owned(),
    };
    snake_identifiers(&rest)
}

/// A message in REST terms: GraphQL locations and camelCase field names become snake_case.
pub fn rest_text(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut token = String::new();
    for c in message.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '[' || c == ']' {
            token.push(c);
            continue;
        }
        if token.starts_with("input.") || token.starts_with("input[") {
            out.push_str(&rest_location(&token));
        } else {
            out.push_str(&snake_identifiers(&token));
        }
        token.clear();
        out.push(c);
    }
    out.pop();
    out
}

/// Converts every camelCase identifier in `text` to snake_case; other text is kept.
fn snake_identifiers(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut word = String::new();
    for c in text.chars().chain(std::iter::once('\0')) {
        if c.is_ascii_alphanumeric() {
            word.push(c);
            continue;
        }
        out.push_str(&snake_case(&word));
        word.clear();
        if c != '\0' {
            out.push(c);
        }
    }
    out
}

/// `publicKey` → `public_key`; words that do not start lowercase are left alone.
fn snake_case(word: &str) -> String {
    if !word.starts_with(|c: char| c.is_ascii_lowercase()) {
        return word.to_owned();
    }
    let mut out = String::with_capacity(word.len() + 4);
    for c in word.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphql_locations_become_body_locations() {
        assert_eq!(
            rest_location("input.keys[1].publicKey"),
            "body.keys[1].public_key"
        );
        assert_eq!(rest_location("input.expiredAt"), "body.expired_at");
        assert_eq!(rest_location("input.keys"), "body.keys");
        assert_eq!(rest_location("input"), "body");
    }

    #[test]
    fn messages_name_rest_fields() {
        assert_eq!(
            rest_text("give either expiredAt or timeout, not both"),
            "give either expired_at or timeout, not both"
        );
        assert_eq!(
            rest_text("is the same key as input.keys[0].publicKey"),
            "is the same key as body.keys[0].public_key"
        );
        assert_eq!(
            rest_text("RSA keys must have at least 2048 bits; this one has 1024"),
            "RSA keys must have at least 2048 bits; this one has 1024"
        );
    }
}
