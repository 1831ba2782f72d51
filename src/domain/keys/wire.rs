//! SSH wire-format public key blobs (RFC 4251 §5, RFC 4253 §6.6, RFC 5656 §3.1, RFC 8709 §4).

use super::key::{Curve, ED25519_NAME, Key, RSA_NAME, strip_leading_zeros};
use super::{KeyInputError, Result};

const DSA_NAME: &str = "ssh-dss";
const CERT_SUFFIX: &str = "-cert-v01@openssh.com";
const SK_NAMES: [&str; 2] = [
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Reads SSH wire-format fields (RFC 4251 §5) from a blob.
pub(super) struct WireReader<'a> {
    pub(super) rest: &'a [u8],
}

impl<'a> WireReader<'a> {
    pub(super) fn string(&mut self) -> Result<&'a [u8]> {
        let (length, rest) = self
            .rest
            .split_first_chunk::<4>()
            .ok_or(KeyInputError::Truncated)?;
        let length =
            usize::try_from(u32::from_be_bytes(*length)).map_err(|_| KeyInputError::Truncated)?;
        if rest.len() < length {
            return Err(KeyInputError::Truncated);
        }
        let (value, rest) = rest.split_at(length);
        self.rest = rest;
        Ok(value)
    }

    /// A non-negative `mpint`, returned without leading zero bytes.
    pub(super) fn mpint(&mut self) -> Result<&'a [u8]> {
        let bytes = self.string()?;
        if bytes.first().is_some_and(|byte| byte & 0x80 != 0) {
            return Err(KeyInputError::InvalidRsa);
        }
        Ok(strip_leading_zeros(bytes))
    }

    fn finish(&self) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(KeyInputError::TrailingBytes)
        }
    }
}

/// The algorithm name a blob starts with.
pub(super) fn blob_algorithm(blob: &[u8]) -> Result<&[u8]> {
    WireReader { rest: blob }.string()
}

/// Parses and validates an SSH public key blob.
pub(super) fn parse_ssh_blob(blob: &[u8]) -> Result<Key> {
    let mut reader = WireReader { rest: blob };
    let name = reader.string()?;

    if name == ED25519_NAME.as_bytes() {
        let bytes = reader.string()?;
        reader.finish()?;
        Key::ed25519(bytes)
    } else if name == RSA_NAME.as_bytes() {
        let e = reader.mpint()?;
        let n = reader.mpint()?;
        reader.finish()?;
        Key::rsa(e, n)
    } else if let Some(curve) = Curve::from_ssh_name(name) {
        let identifier = reader.string()?;
        let point = reader.string()?;
        reader.finish()?;
        parse_ssh_ec_point(curve, identifier, point)
    } else {
        Err(refusal_for_algorithm(name))
    }
}

fn parse_ssh_ec_point(curve: Curve, identifier: &[u8], point: &[u8]) -> Result<Key> {
    if identifier != curve.identifier().as_bytes() {
        return Err(KeyInputError::CurveMismatch);
    }
    match point.first() {
        Some(0x04) => Key::ecdsa(curve, point),
        Some(0x02 | 0x03) => Err(KeyInputError::CompressedPoint),
        _ => Err(KeyInputError::InvalidEcPoint),
    }
}

/// The specific refusal for an algorithm this module does not accept.
fn refusal_for_algorithm(name: &[u8]) -> KeyInputError {
    let Ok(name) = std::str::from_utf8(name) else {
        return KeyInputError::UnknownAlgorithm;
    };
    if name == DSA_NAME {
        KeyInputError::Dsa
    } else if name.ends_with(CERT_SUFFIX) {
        KeyInputError::Certificate
    } else if SK_NAMES.contains(&name) {
        KeyInputError::SecurityKey
    } else {
        KeyInputError::UnknownAlgorithm
    }
}

/// Whether `name` is an algorithm name this module gives a specific answer for.
pub(super) fn is_known_algorithm(name: &str) -> bool {
    name == ED25519_NAME
        || name == RSA_NAME
        || Curve::from_ssh_name(name.as_bytes()).is_some()
        || refusal_for_algorithm(name.as_bytes()) != KeyInputError::UnknownAlgorithm
}
