//! Public key input: every accepted text form, normalised to one canonical description.
//!
//! Keys are compared by their canonical wire blob (via `public_key_ssh`), never by the pasted
//! text, so comments and formatting never matter. Nothing here ever echoes the input back: a
//! pasted private key must not reach an error message, a log line or the database.
//!
//! Every form is first reduced to a validated `Key` (the key's components, in [`key`]), and
//! every output field is then derived from that one value, so two forms of the same key cannot
//! disagree. The forms are read by [`line`] (OpenSSH and `authorized_keys` lines) and
//! [`armour`] (RFC 4716 and PEM blocks); SSH wire blobs by [`wire`].

mod armour;
mod key;
mod line;
mod wire;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use russh::keys::ssh_key::encoding::Encode as _;
use russh::keys::ssh_key::public::KeyData;

/// The canonical description of one public key, as `ssh-keygen` and `openssl` print it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyInfo {
    /// The SSH algorithm name: `ssh-ed25519`, `ecdsa-sha2-nistp256|384|521` or `ssh-rsa`.
    pub algorithm: String,
    /// One line, `algorithm base64`, without comment.
    pub public_key_ssh: String,
    /// SPKI PEM (`-----BEGIN PUBLIC KEY-----`), exactly as `openssl pkey -pubout` prints it.
    pub public_key_pem: String,
    /// `MD5:` then colon-separated hex pairs, as `ssh-keygen -l -E md5` prints it.
    pub md5: String,
    /// `SHA256:` then unpadded base64, as `ssh-keygen -l -E sha256` prints it.
    pub sha256: String,
}

/// Why a key input was refused. The text never contains the input itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyInputError {
    /// Nothing but white space was given.
    #[error("no public key was given")]
    Empty,
    /// The input is (or contains) a private key.
    #[error("this is a private key; paste the public key (the .pub file) instead")]
    PrivateKey,
    /// More than one key (line or block) was given.
    #[error("more than one key was given; paste exactly one public key")]
    MultipleKeys,
    /// The input matches none of the accepted public key forms.
    #[error(
        "the input is not a recognised public key format; expected an OpenSSH public key line, \
         an RFC 4716 block or a PEM public key"
    )]
    NotRecognised,
    /// A key block is surrounded by other text.
    #[error("there is unexpected text before or after the key block")]
    UnexpectedText,
    /// A `BEGIN` line has no matching `END` line.
    #[error("the key block has no matching END line")]
    UnterminatedBlock,
    /// A key block contains header lines where none are allowed, or an unfinished header.
    #[error("the key block contains malformed or unexpected header lines")]
    MalformedBlock,
    /// An armoured block of a kind that is not a public key this service accepts.
    #[error("unsupported key block; expected SSH2 PUBLIC KEY, PUBLIC KEY or RSA PUBLIC KEY")]
    UnsupportedBlock,
    /// The key data is not valid base64.
    #[error("the key data is not valid base64")]
    InvalidBase64,
    /// The DER structure of a PEM key could not be decoded.
    #[error("the key data is not a valid DER-encoded public key")]
    InvalidDer,
    /// The SSH key blob ends before all of its fields.
    #[error("the key data is truncated")]
    Truncated,
    /// The SSH key blob has bytes after its last field.
    #[error("the key data has unexpected bytes after the key")]
    TrailingBytes,
    /// The algorithm name in front of the key data differs from the one inside it.
    #[error("the algorithm name before the key data does not match the algorithm inside it")]
    AlgorithmMismatch,
    /// A DSA key.
    #[error("DSA (ssh-dss) keys are refused; use an ed25519, ECDSA or RSA key")]
    Dsa,
    /// An RSA key below the minimum size.
    #[error("RSA keys must have at least 2048 bits; this one has {bits}")]
    RsaTooSmall {
        /// The modulus size in bits.
        bits: usize,
    },
    /// An RSA key above the maximum size.
    #[error("RSA keys may have at most 8192 bits; this one has {bits}")]
    RsaTooLarge {
        /// The modulus size in bits.
        bits: usize,
    },
    /// An RSA key with a negative or even modulus or an unusable exponent.
    #[error("the RSA key is malformed (invalid modulus or public exponent)")]
    InvalidRsa,
    /// An OpenSSH certificate instead of a plain key.
    #[error("SSH certificates are refused; paste the plain public key instead")]
    Certificate,
    /// A FIDO security-key (`sk-`) key.
    #[error("security-key (sk-) keys are refused until user presence can be checked")]
    SecurityKey,
    /// An algorithm this service does not know or accept.
    #[error("the key algorithm is not supported; use ed25519, ECDSA (P-256, P-384, P-521) or RSA")]
    UnknownAlgorithm,
    /// An EC key on a curve other than P-256, P-384 or P-521, or with explicit curve parameters.
    #[error("only the named elliptic curves P-256, P-384 and P-521 are accepted")]
    UnsupportedCurve,
    /// The curve named inside an ECDSA key differs from its algorithm name.
    #[error("the ECDSA key names a different curve than its algorithm")]
    CurveMismatch,
    /// A compressed EC point inside SSH key data, which OpenSSH does not allow.
    #[error("the ECDSA point in SSH key data must be uncompressed")]
    CompressedPoint,
    /// The EC point is not a valid point of the key's curve.
    #[error("the ECDSA public key is not a valid point on its curve")]
    InvalidEcPoint,
    /// An ed25519 key of the wrong length.
    #[error("an ed25519 public key must be exactly 32 bytes")]
    Ed25519Length,
    /// 32 bytes that are not a usable ed25519 point.
    #[error("the ed25519 public key is not a valid curve point")]
    InvalidEd25519,
    /// The validated key could not be encoded again (should not happen).
    #[error("the key could not be re-encoded")]
    Unencodable,
}

type Result<T, E = KeyInputError> = std::result::Result<T, E>;

/// Standard alphabet, padding optional (some tools strip it), no stray trailing bits.
const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Parses a public key in any accepted text form and applies the key policy.
pub fn parse_public_key(input: &str) -> Result<PublicKeyInfo, KeyInputError> {
    if looks_like_private_key(input) {
        return Err(KeyInputError::PrivateKey);
    }

    let text = input.trim_start().trim_start_matches('\u{feff}').trim();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    if lines.iter().all(|line| line.is_empty()) {
        return Err(KeyInputError::Empty);
    }

    let key = if lines
        .iter()
        .any(|line| armour::armour_label(line, "BEGIN").is_some())
    {
        armour::parse_armoured(&lines)?
    } else {
        line::parse_key_line(&lines)?
    };
    key.describe()
}

/// Describes a key offered over SSH (already parsed by the SSH layer) and applies the policy.
pub fn describe_key_data(key: &KeyData) -> Result<PublicKeyInfo, KeyInputError> {
    let blob = key.encode_vec().map_err(|_| KeyInputError::Unencodable)?;
    wire::parse_ssh_blob(&blob)?.describe()
}

/// Whether the input holds a private key in any common form. Runs before any other parsing.
fn looks_like_private_key(input: &str) -> bool {
    /// Base64 of `openssh-key-v1\0`, the start of an OpenSSH private key body.
    const OPENSSH_PRIVATE_MAGIC: &str = "b3BlbnNzaC1rZXktdjE";

    input.contains(OPENSSH_PRIVATE_MAGIC)
        || input
            .lines()
            .map(|line| line.trim().trim_start_matches('\u{feff}'))
            .any(|line| {
                line.starts_with("PuTTY-User-Key-File-")
                    || (line.starts_with("---")
                        && line.to_ascii_uppercase().contains("PRIVATE KEY"))
            })
}

/// Decodes standard base64, with or without padding.
fn decode_base64(data: &str) -> Result<Vec<u8>> {
    BASE64_LENIENT
        .decode(data)
        .map_err(|_| KeyInputError::InvalidBase64)
}

#[cfg(test)]
mod tests;
