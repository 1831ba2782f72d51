//! Reading JSON request bodies field by field, with a located message for every field of the
//! wrong type. What a field's value must be beyond its type is left to the validation the
//! GraphQL API uses; [`Decoder::finish`] merges its errors with the decoder's.
//!
//! Type errors never echo the offending value unless it is a number, a boolean or null: a
//! string in the wrong place may be key material or a secret.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::problem::{Problem, ProblemError};
use crate::graphql::error::FieldError;

/// Collects type errors while decoding. Fields in error get neutral placeholders, so list
/// positions (and so error locations) stay those of the request.
#[derive(Default)]
pub struct Decoder {
    errors: Vec<ProblemError>,
    /// Integers that did not fit and were clamped: location and the value as sent.
    clamped: Vec<(String, Value)>,
    /// Locations the validator reports by position that the request names by key.
    renames: Vec<(String, String)>,
}

impl Decoder {
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    pub fn error(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ProblemError::new(location, message));
    }

    /// Reports the validator's `from` (a list position) as `to` (a key of the request).
    pub fn rename(&mut self, from: String, to: String) {
        self.renames.push((from, to));
    }

    pub fn object<'v>(
        &mut self,
        location: &str,
        value: &'v Value,
    ) -> Option<&'v Map<String, Value>> {
        match value {
            Value::Object(object) => Some(object),
            other => {
                self.type_error(location, "must be a JSON object", other);
                None
            }
        }
    }

    /// Reports every member of `object` that is not in `known`.
    pub fn refuse_unknown(&mut self, location: &str, object: &Map<String, Value>, known: &[&str]) {
        for name in object.keys().filter(|name| !known.contains(&name.as_str())) {
            let shown: String = name.chars().take(64).collect();
            self.error(format!("{location}.{shown}"), "is not a known field");
        }
    }

    /// Reports `name` as required when it is absent or null.
    pub fn require(&mut self, location: &str, object: &Map<String, Value>, name: &str) {
        if object.get(name).is_none_or(Value::is_null) {
            self.error(format!("{location}.{name}"), "is required");
        }
    }

    pub fn string(&mut self, location: &str, value: &Value) -> Option<String> {
        match value {
            Value::Null => None,
            Value::String(text) => Some(text.clone()),
            other => {
                self.type_error(location, "must be a string", other);
                None
            }
        }
    }

    pub fn boolean(&mut self, location: &str, value: &Value) -> Option<bool> {
        match value {
            Value::Null => None,
            Value::Bool(flag) => Some(*flag),
            other => {
                self.type_error(location, "must be true or false", other);
                None
            }
        }
    }

    /// An integer; one outside `i32` is clamped so validation reports its range, and the value
    /// as sent is put back into that error.
    pub fn integer(&mut self, location: &str, value: &Value) -> Option<i32> {
        let wide = match value {
            Value::Null => return None,
            Value::Number(number) => number
                .as_i64()
                .or_else(|| number.as_u64().map(|_| i64::MAX)),
            _ => None,
        };
        let Some(wide) = wide else {
            self.type_error(location, "must be an integer", value);
            return None;
        };
        let narrow = i32::try_from(wide).unwrap_or(if wide < 0 { i32::MIN } else { i32::MAX });
        if i64::from(narrow) != wide {
            self.clamped.push((location.to_owned(), value.clone()));
        }
        Some(narrow)
    }

    pub fn number(&mut self, location: &str, value: &Value) -> Option<f64> {
        match value {
            Value::Null => None,
            Value::Number(number) => number.as_f64(),
            other => {
                self.type_error(location, "must be a number", other);
                None
            }
        }
    }

    pub fn time(&mut self, location: &str, value: &Value) -> Option<DateTime<Utc>> {
        match value {
            Value::Null => None,
            Value::String(text) => match DateTime::parse_from_rfc3339(text) {
                Ok(time) => Some(time.with_timezone(&Utc)),
                Err(_) => {
                    self.error(
                        location,
                        "must be an RFC 3339 date-time such as 2030-01-31T12:00:00Z",
                    );
                    None
                }
            },
            other => {
                self.type_error(location, "must be an RFC 3339 date-time string", other);
                None
            }
        }
    }

    pub fn array<'v>(&mut self, location: &str, value: &'v Value) -> Option<&'v [Value]> {
        match value {
            Value::Null => None,
            Value::Array(items) => Some(items),
            other => {
                self.type_error(location, "must be an array", other);
                None
            }
        }
    }

    /// One of `choices` by name (ASCII case ignored); `what` lists them for the message.
    pub fn choice<T: Copy>(
        &mut self,
        location: &str,
        value: &Value,
        choices: &[(&str, T)],
        what: &str,
    ) -> Option<T> {
        let Value::String(text) = value else {
            if !value.is_null() {
                self.type_error(location, &format!("must be {what}"), value);
            }
            return None;
        };
        let found = choices
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text))
            .map(|(_, choice)| *choice);
        if found.is_none() {
            self.error(location, format!("must be {what}"));
        }
        found
    }

    fn type_error(&mut self, location: &str, message: &str, value: &Value) {
        let error = ProblemError::new(location, message);
        self.errors.push(match value {
            Value::Null | Value::Bool(_) | Value::Number(_) => error.with_value(value.clone()),
            Value::String(_) | Value::Array(_) | Value::Object(_) => error,
        });
    }

    /// The decoder's errors followed by the validator's, leaving out validator errors about a
    /// field that already has a type error (they describe its placeholder, not the request).
    pub fn finish(self, validation: Vec<FieldError>) -> Problem {
        let Self {
            mut errors,
            clamped,
            renames,
        } = self;
        let decoded = errors.len();
        for mut error in validation.into_iter().map(ProblemError::from) {
            error.location = renamed(&error.location, &renames);
            let covered = errors[..decoded]
                .iter()
                .any(|own| is_within(&error.location, &own.location));
            if covered {
                continue;
            }
            let sent = clamped
                .iter()
                .find(|(location, _)| *location == error.location);
            errors.push(match sent {
                Some((_, value)) => error.with_value(value.clone()),
                None => error,
            });
        }
        Problem::bad_input(errors)
    }

    /// Only the decoder's errors, when validation could not run or found nothing.
    pub fn into_problem(self) -> Problem {
        Problem::bad_input(self.errors)
    }
}

/// Whether `location` is `outer` or a part of it (`body.keys[0].public_key` is within
/// `body.keys[0]` and `body.keys`).
fn is_within(location: &str, outer: &str) -> bool {
    location == outer
        || location
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// `location` with a list position replaced by the key the request used, dropping the
/// `name`/`values` parts that only the list form has: `….headers[1].values[0]` →
/// `….headers.X-Token[0]`.
fn renamed(location: &str, renames: &[(String, String)]) -> String {
    for (from, to) in renames {
        let Some(rest) = location.strip_prefix(from.as_str()) else {
            continue;
        };
        let rest = match rest {
            "" | ".name" | ".values" => "",
            rest if rest.starts_with(".values[") => &rest[".values".len()..],
            rest if rest.starts_with(['.', '[']) => rest,
            _ => continue,
        };
        return format!("{to}{rest}");
    }
    location.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_means_the_same_field_or_a_part_of_it() {
        assert!(is_within("body.keys[0].public_key", "body.keys[0]"));
        assert!(is_within("body.keys[0].public_key", "body.keys"));
        assert!(is_within("body.keys", "body.keys"));
        assert!(!is_within("body.keys_extra", "body.keys"));
    }

    #[test]
    fn header_positions_become_header_names() {
        let renames = vec![(
            "body.webhooks[0].headers[1]".to_owned(),
            "body.webhooks[0].headers.X-Token".to_owned(),
        )];

        let name = renamed("body.webhooks[0].headers[1].name", &renames);
        let value = renamed("body.webhooks[0].headers[1].values[2]", &renames);
        let other = renamed("body.webhooks[0].headers[10].name", &renames);

        assert_eq!(name, "body.webhooks[0].headers.X-Token");
        assert_eq!(value, "body.webhooks[0].headers.X-Token[2]");
        assert_eq!(other, "body.webhooks[0].headers[10].name");
    }
}
