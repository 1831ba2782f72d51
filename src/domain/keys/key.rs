//! The validated key, and every output field derived from it.

use super::{KeyInputError, PublicKeyInfo, Result};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use p256::elliptic_curve::sec1::ToSec1Point as _;
use pkcs1::RsaPublicKeyRef;
use sha2::{Digest as _, Sha256};
use spki::der::asn1::{AnyRef, BitStringRef, UintRef};
use spki::der::pem::LineEnding;
use spki::der::{Encode as _, EncodePem as _};
use spki::{AlgorithmIdentifierRef, ObjectIdentifier, SubjectPublicKeyInfoRef};

/// Smallest accepted RSA modulus, in bits.
const RSA_MIN_BITS: usize = 2048;
/// Largest accepted RSA modulus, in bits.
const RSA_MAX_BITS: usize = 8192;
/// Largest accepted RSA public exponent bit length (what common RSA libraries verify with).
const RSA_MAX_EXPONENT_BITS: usize = 33;

pub(super) const ED25519_NAME: &str = "ssh-ed25519";
pub(super) const RSA_NAME: &str = "ssh-rsa";

pub(super) static RSA_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
pub(super) static EC_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
pub(super) static ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
static P256_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
static P384_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
static P521_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");

/// A NIST curve accepted for ECDSA keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    const ALL: [Curve; 3] = [Curve::P256, Curve::P384, Curve::P521];

    /// The curve identifier inside the SSH blob, e.g. `nistp256`.
    pub(super) fn identifier(self) -> &'static str {
        match self {
            Curve::P256 => "nistp256",
            Curve::P384 => "nistp384",
            Curve::P521 => "nistp521",
        }
    }

    /// The SSH algorithm name, e.g. `ecdsa-sha2-nistp256`.
    pub(super) fn ssh_name(self) -> &'static str {
        match self {
            Curve::P256 => "ecdsa-sha2-nistp256",
            Curve::P384 => "ecdsa-sha2-nistp384",
            Curve::P521 => "ecdsa-sha2-nistp521",
        }
    }

    /// The named-curve OID used in SPKI parameters.
    fn oid(self) -> &'static ObjectIdentifier {
        match self {
            Curve::P256 => &P256_OID,
            Curve::P384 => &P384_OID,
            Curve::P521 => &P521_OID,
        }
    }

    pub(super) fn from_ssh_name(name: &[u8]) -> Option<Curve> {
        Curve::ALL
            .into_iter()
            .find(|curve| curve.ssh_name().as_bytes() == name)
    }

    pub(super) fn from_oid(oid: &ObjectIdentifier) -> Option<Curve> {
        Curve::ALL.into_iter().find(|curve| curve.oid() == oid)
    }

    /// Checks that `sec1` is a point of this curve and returns it uncompressed.
    fn uncompressed_point(self, sec1: &[u8]) -> Result<Vec<u8>> {
        let point = match self {
            Curve::P256 => p256::PublicKey::from_sec1_bytes(sec1)
                .map(|key| key.to_sec1_point(false).as_bytes().to_vec()),
            Curve::P384 => p384::PublicKey::from_sec1_bytes(sec1)
                .map(|key| key.to_sec1_point(false).as_bytes().to_vec()),
            Curve::P521 => p521::PublicKey::from_sec1_bytes(sec1)
                .map(|key| key.to_sec1_point(false).as_bytes().to_vec()),
        };
        point.map_err(|_| KeyInputError::InvalidEcPoint)
    }
}

/// A public key that passed the policy, reduced to its components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Key {
    Ed25519([u8; 32]),
    /// `point` is the uncompressed SEC1 encoding.
    Ecdsa {
        curve: Curve,
        point: Vec<u8>,
    },
    /// Big-endian magnitudes without leading zero bytes.
    Rsa {
        e: Vec<u8>,
        n: Vec<u8>,
    },
}

impl Key {
    pub(super) fn ed25519(bytes: &[u8]) -> Result<Key> {
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| KeyInputError::Ed25519Length)?;
        let point = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| KeyInputError::InvalidEd25519)?;
        if point.is_weak() {
            return Err(KeyInputError::InvalidEd25519);
        }
        Ok(Key::Ed25519(bytes))
    }

    pub(super) fn ecdsa(curve: Curve, sec1: &[u8]) -> Result<Key> {
        let point = curve.uncompressed_point(sec1)?;
        Ok(Key::Ecdsa { curve, point })
    }

    pub(super) fn rsa(e: &[u8], n: &[u8]) -> Result<Key> {
        let (e, n) = (strip_leading_zeros(e), strip_leading_zeros(n));
        let bits = bit_length(n);
        if bits < RSA_MIN_BITS {
            return Err(KeyInputError::RsaTooSmall { bits });
        }
        if bits > RSA_MAX_BITS {
            return Err(KeyInputError::RsaTooLarge { bits });
        }

        let modulus_odd = n.last().is_some_and(|byte| byte & 1 == 1);
        let exponent_odd = e.last().is_some_and(|byte| byte & 1 == 1);
        let exponent_sized = (2..=RSA_MAX_EXPONENT_BITS).contains(&bit_length(e));
        if !(modulus_odd && exponent_odd && exponent_sized) {
            return Err(KeyInputError::InvalidRsa);
        }
        Ok(Key::Rsa {
            e: e.to_vec(),
            n: n.to_vec(),
        })
    }

    fn algorithm(&self) -> &'static str {
        match self {
            Key::Ed25519(_) => ED25519_NAME,
            Key::Ecdsa { curve, .. } => curve.ssh_name(),
            Key::Rsa { .. } => RSA_NAME,
        }
    }

    /// Derives every output field from the key.
    pub(super) fn describe(&self) -> Result<PublicKeyInfo> {
        let blob = self.ssh_blob()?;
        let public_key_pem = self.spki_pem().map_err(|_| KeyInputError::Unencodable)?;

        let md5_hex: Vec<String> = md5::compute(&blob)
            .0
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        Ok(PublicKeyInfo {
            algorithm: self.algorithm().to_owned(),
            public_key_ssh: format!("{} {}", self.algorithm(), STANDARD.encode(&blob)),
            public_key_pem,
            md5: format!("MD5:{}", md5_hex.join(":")),
            sha256: format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(&blob))),
        })
    }

    /// The canonical SSH wire encoding (RFC 4253 §6.6, RFC 5656 §3.1, RFC 8709 §4).
    fn ssh_blob(&self) -> Result<Vec<u8>> {
        let mut blob = Vec::new();
        put_string(&mut blob, self.algorithm().as_bytes())?;
        match self {
            Key::Ed25519(bytes) => put_string(&mut blob, bytes)?,
            Key::Ecdsa { curve, point } => {
                put_string(&mut blob, curve.identifier().as_bytes())?;
                put_string(&mut blob, point)?;
            }
            Key::Rsa { e, n } => {
                put_mpint(&mut blob, e)?;
                put_mpint(&mut blob, n)?;
            }
        }
        Ok(blob)
    }

    /// The SPKI PEM (RFC 5280, RFC 5480, RFC 8410), laid out as OpenSSL writes it.
    fn spki_pem(&self) -> spki::der::Result<String> {
        let (oid, parameters, subject_public_key) = match self {
            Key::Ed25519(bytes) => (ED25519_OID, None, bytes.to_vec()),
            Key::Ecdsa { curve, point } => (EC_OID, Some(AnyRef::from(curve.oid())), point.clone()),
            Key::Rsa { e, n } => (RSA_OID, Some(AnyRef::NULL), pkcs1_der(e, n)?),
        };

        let spki = SubjectPublicKeyInfoRef {
            algorithm: AlgorithmIdentifierRef { oid, parameters },
            subject_public_key: BitStringRef::from_bytes(&subject_public_key)?,
        };
        spki.to_pem(LineEnding::LF)
    }
}

/// The DER PKCS#1 `RSAPublicKey` of big-endian magnitudes `e` and `n`.
pub(super) fn pkcs1_der(e: &[u8], n: &[u8]) -> spki::der::Result<Vec<u8>> {
    let key = RsaPublicKeyRef {
        modulus: UintRef::new(n)?,
        public_exponent: UintRef::new(e)?,
    };
    key.to_der()
}

pub(super) fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&byte| byte != 0)
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// Bit length of a big-endian magnitude without leading zero bytes.
pub(super) fn bit_length(bytes: &[u8]) -> usize {
    match bytes.first() {
        Some(first) => bytes.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

pub(super) fn put_string(out: &mut Vec<u8>, bytes: &[u8]) -> Result<()> {
    let length = u32::try_from(bytes.len()).map_err(|_| KeyInputError::Unencodable)?;
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Writes a non-negative integer as an SSH `mpint` (a zero byte in front if the top bit is set).
pub(super) fn put_mpint(out: &mut Vec<u8>, magnitude: &[u8]) -> Result<()> {
    if magnitude.first().is_some_and(|byte| byte & 0x80 != 0) {
        let mut padded = Vec::with_capacity(magnitude.len() + 1);
        padded.push(0);
        padded.extend_from_slice(magnitude);
        put_string(out, &padded)
    } else {
        put_string(out, magnitude)
    }
}
