//! Armoured forms: RFC 4716 (`---- BEGIN SSH2 PUBLIC KEY ----`) and PEM (SPKI, PKCS#1).

use super::key::{Curve, EC_OID, ED25519_OID, Key, RSA_OID};
use super::wire::parse_ssh_blob;
use super::{KeyInputError, Result, decode_base64};
use pkcs1::RsaPublicKeyRef;
use spki::der::Decode as _;
use spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};

static DSA_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10040.4.1");

/// The label of a `-----BEGIN X-----` (PEM) or `---- BEGIN X ----` (RFC 4716) line.
pub(super) fn armour_label<'a>(line: &'a str, keyword: &str) -> Option<&'a str> {
    if !line.starts_with("----") {
        return None;
    }
    let inner = line.trim_matches('-').trim();
    Some(inner.strip_prefix(keyword)?.strip_prefix(' ')?.trim())
}

/// Parses the one armoured block among `lines` (already trimmed).
pub(super) fn parse_armoured(lines: &[&str]) -> Result<Key> {
    let (label, body) = single_block(lines)?;
    match label {
        "SSH2 PUBLIC KEY" => parse_ssh_blob(&decode_base64(&rfc4716_data(&body)?)?),
        "PUBLIC KEY" => parse_spki(&decode_base64(&pem_data(&body)?)?),
        "RSA PUBLIC KEY" => parse_pkcs1(&decode_base64(&pem_data(&body)?)?),
        _ => Err(KeyInputError::UnsupportedBlock),
    }
}

/// Finds the only `BEGIN`…`END` block and returns its label and non-blank body lines.
fn single_block<'a>(lines: &[&'a str]) -> Result<(&'a str, Vec<&'a str>)> {
    let mut begins = lines
        .iter()
        .enumerate()
        .filter_map(|(index, line)| Some((index, armour_label(line, "BEGIN")?)));
    let Some((start, label)) = begins.next() else {
        return Err(KeyInputError::NotRecognised);
    };
    if begins.next().is_some() {
        return Err(KeyInputError::MultipleKeys);
    }

    let after_begin = &lines[start + 1..];
    let end_offset = after_begin
        .iter()
        .position(|line| armour_label(line, "END").is_some())
        .ok_or(KeyInputError::UnterminatedBlock)?;
    if armour_label(after_begin[end_offset], "END") != Some(label) {
        return Err(KeyInputError::UnterminatedBlock);
    }

    let outside = lines[..start].iter().chain(&after_begin[end_offset + 1..]);
    if outside.into_iter().any(|line| !line.is_empty()) {
        return Err(KeyInputError::UnexpectedText);
    }
    let body = after_begin[..end_offset]
        .iter()
        .copied()
        .filter(|line| !line.is_empty());
    Ok((label, body.collect()))
}

/// The base64 of an RFC 4716 body: `Tag: value` headers first (a trailing `\` continues a
/// header onto the next line), then the data lines.
fn rfc4716_data(body: &[&str]) -> Result<String> {
    let mut data = String::new();
    let mut in_headers = true;
    let mut continued = false;
    for line in body {
        if continued || (in_headers && line.contains(':')) {
            continued = line.ends_with('\\');
            continue;
        }
        in_headers = false;
        if line.contains(':') {
            return Err(KeyInputError::MalformedBlock);
        }
        data.push_str(line);
    }

    if continued {
        return Err(KeyInputError::MalformedBlock);
    }
    Ok(data)
}

/// The base64 of a PEM body; public key PEM has no headers.
fn pem_data(body: &[&str]) -> Result<String> {
    if body.iter().any(|line| line.contains(':')) {
        return Err(KeyInputError::MalformedBlock);
    }
    Ok(body.concat())
}

/// Parses a DER `SubjectPublicKeyInfo` (RFC 5280 §4.1.2.7).
fn parse_spki(der: &[u8]) -> Result<Key> {
    let spki = SubjectPublicKeyInfoRef::from_der(der).map_err(|_| KeyInputError::InvalidDer)?;
    let key_bytes = spki
        .subject_public_key
        .as_bytes()
        .ok_or(KeyInputError::InvalidDer)?;
    let algorithm = &spki.algorithm;

    if algorithm.oid == RSA_OID {
        if !algorithm
            .parameters
            .is_none_or(|parameters| parameters.is_null())
        {
            return Err(KeyInputError::InvalidDer);
        }
        parse_pkcs1(key_bytes)
    } else if algorithm.oid == EC_OID {
        let curve_oid = algorithm
            .parameters_oid()
            .map_err(|_| KeyInputError::UnsupportedCurve)?;
        let curve = Curve::from_oid(&curve_oid).ok_or(KeyInputError::UnsupportedCurve)?;
        Key::ecdsa(curve, key_bytes)
    } else if algorithm.oid == ED25519_OID {
        if algorithm.parameters.is_some() {
            return Err(KeyInputError::InvalidDer);
        }
        Key::ed25519(key_bytes)
    } else if algorithm.oid == DSA_OID {
        Err(KeyInputError::Dsa)
    } else {
        Err(KeyInputError::UnknownAlgorithm)
    }
}

/// Parses a DER PKCS#1 `RSAPublicKey` (RFC 8017 §A.1.1).
fn parse_pkcs1(der: &[u8]) -> Result<Key> {
    let rsa = RsaPublicKeyRef::from_der(der).map_err(|_| KeyInputError::InvalidDer)?;
    Key::rsa(rsa.public_exponent.as_bytes(), rsa.modulus.as_bytes())
}
