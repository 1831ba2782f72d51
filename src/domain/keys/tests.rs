//! Keys are generated at test time with the system `ssh-keygen` and `openssl`, which are
//! also the oracles for every expected output field.

use super::key::{bit_length, pkcs1_der, put_mpint, put_string};
use super::wire::WireReader;
use super::*;
use base64::engine::general_purpose::STANDARD;
use russh::keys::ssh_key::{self, encoding::Decode as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// A comment no error message may ever contain.
const COMMENT: &str = "leak-canary-comment alice@laptop";
/// `authorized_keys` options with quoted spaces, commas and an escaped quote.
const OPTIONS: &str = r#"command="echo hi, there \"friend\"",no-pty,from="10.0.0.1,192.168.0.0/24",environment="A=b c""#;

// ---- running the oracles ---------------------------------------------------------------

fn try_run(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .expect("tool runs");
    output
        .status
        .success()
        .then(|| String::from_utf8(output.stdout).expect("utf-8 output"))
}

fn run(program: &str, args: &[&str]) -> String {
    try_run(program, args).unwrap_or_else(|| panic!("{program} {args:?} failed"))
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write file");
    path
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("read file")
}

/// `ssh-keygen -l -E hash` fingerprint field of a `.pub` file.
fn fingerprint(pub_path: &Path, hash: &str) -> String {
    let output = run("ssh-keygen", &["-l", "-E", hash, "-f", path_str(pub_path)]);
    output
        .split_whitespace()
        .nth(1)
        .expect("fingerprint field")
        .to_owned()
}

/// The SPKI PEM as `openssl pkey -pubin -pubout` prints it.
fn openssl_pem(dir: &Path, pem: &str) -> String {
    let path = write(dir, "to-openssl.pem", pem);
    run(
        "openssl",
        &["pkey", "-pubin", "-in", path_str(&path), "-pubout"],
    )
}

fn first_two_fields_of(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn crlf(text: &str) -> String {
    text.lines().map(|line| format!("{line}\r\n")).collect()
}

// ---- key fixtures ----------------------------------------------------------------------

/// Every text form of one key, and the oracles' description of it.
struct KeyForms {
    dir: TempDir,
    pub_path: PathBuf,
    one_line: String,
    rfc4716: String,
    spki_pem: String,
    pkcs1_pem: Option<String>,
    expected: PublicKeyInfo,
}

fn ssh_keygen_key(kind: &str, bits: Option<&str>) -> KeyForms {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("key");
    let mut args = vec![
        "-q",
        "-t",
        kind,
        "-N",
        "",
        "-C",
        COMMENT,
        "-f",
        path_str(&key),
    ];
    args.extend(bits.map(|bits| ["-b", bits]).into_iter().flatten());
    run("ssh-keygen", &args);
    let pub_path = dir.path().join("key.pub");
    key_forms(dir, pub_path, None)
}

/// The fixed DER prefix of an Ed25519 SPKI (RFC 8410), before the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// An ed25519 key made by OpenSSL. This `ssh-keygen` cannot convert ed25519 PKCS#8
/// (`ssh-keygen -i -m PKCS8` says "unsupported pubkey type"), so the one-line form is
/// assembled from OpenSSL's raw key bytes (RFC 8709) and then checked by `ssh-keygen -l`.
fn openssl_ed25519_key() -> KeyForms {
    let dir = tempfile::tempdir().expect("temp dir");
    let private = dir.path().join("private.pem");
    let der_path = dir.path().join("spki.der");
    let (private_str, der_str) = (path_str(&private), path_str(&der_path));
    run(
        "openssl",
        &["genpkey", "-algorithm", "ed25519", "-out", private_str],
    );
    let spki_pem = run("openssl", &["pkey", "-in", private_str, "-pubout"]);
    run(
        "openssl",
        &[
            "pkey",
            "-in",
            private_str,
            "-pubout",
            "-outform",
            "DER",
            "-out",
            der_str,
        ],
    );

    let der = std::fs::read(&der_path).expect("read DER");
    let raw = der
        .strip_prefix(&ED25519_SPKI_PREFIX[..])
        .expect("Ed25519 SPKI prefix");
    let line = line_of("ssh-ed25519", &blob(&[b"ssh-ed25519", raw]));
    let pub_path = write(dir.path(), "key.pub", &format!("{line}\n"));
    key_forms(dir, pub_path, Some(spki_pem))
}

fn key_forms(dir: TempDir, pub_path: PathBuf, spki_pem: Option<String>) -> KeyForms {
    let one_line = read(&pub_path);
    let export = |format: &str| {
        try_run(
            "ssh-keygen",
            &["-e", "-m", format, "-f", path_str(&pub_path)],
        )
    };
    let rfc4716 = export("RFC4716").expect("RFC 4716 export");
    let algorithm = one_line
        .split_whitespace()
        .next()
        .expect("algorithm")
        .to_owned();
    let pkcs1_pem = (algorithm == "ssh-rsa").then(|| export("PEM").expect("PKCS#1 export"));
    let public_key_ssh = first_two_fields_of(&one_line);

    let spki_pem = spki_pem
        .or_else(|| export("PKCS8"))
        .unwrap_or_else(|| ed25519_spki_via_openssl(dir.path(), &one_line));
    let expected = PublicKeyInfo {
        algorithm,
        public_key_ssh,
        public_key_pem: openssl_pem(dir.path(), &spki_pem),
        md5: fingerprint(&pub_path, "md5"),
        sha256: fingerprint(&pub_path, "sha256"),
    };
    KeyForms {
        dir,
        pub_path,
        one_line,
        rfc4716,
        spki_pem,
        pkcs1_pem,
        expected,
    }
}

/// For ed25519, which this `ssh-keygen` cannot export to PKCS#8: the SPKI assembled from the
/// raw key bytes (RFC 8410), as OpenSSL re-encodes it after accepting it.
fn ed25519_spki_via_openssl(dir: &Path, one_line: &str) -> String {
    let blob = blob_of_line(one_line);
    let raw = blob
        .strip_prefix(&b"\0\0\0\x0bssh-ed25519\0\0\0\x20"[..])
        .expect("ed25519 blob");
    let der = [&ED25519_SPKI_PREFIX[..], raw].concat();
    openssl_pem(dir, &pem_of("PUBLIC KEY", &der))
}

/// RFC 4716 with extra headers, one of them continued over three lines.
fn with_continued_headers(rfc4716: &str) -> String {
    let headers = "Subject: alice\n\
                   x-note: a header value that goes on \\\n\
                   and on: with a colon inside \\\n\
                   to a third line\n\
                   Comment: \"short\"\n";
    let (begin, rest) = rfc4716.split_once('\n').expect("BEGIN line");
    let body: String = rest
        .lines()
        .filter(|line| !line.contains(':'))
        .map(|l| format!("{l}\n"))
        .collect();
    format!("{begin}\n{headers}{body}")
}

/// Every accepted text variant of the key, labelled for assertion messages.
fn input_variants(forms: &KeyForms) -> Vec<(&'static str, String)> {
    let line = forms.one_line.trim();
    let mut variants = vec![
        ("one line with comment", line.to_owned()),
        ("one line without comment", first_two_fields_of(line)),
        (
            "one line with tab separator",
            first_two_fields_of(line).replace(' ', "\t"),
        ),
        (
            "authorized_keys line with options",
            format!("{OPTIONS} {line}"),
        ),
        ("one line with CRLF", format!("{line}\r\n")),
        ("one line with BOM", format!("\u{feff}{line}\n")),
        (
            "one line with surrounding white space",
            format!("\n \t{line}  \n\n"),
        ),
        ("RFC 4716", forms.rfc4716.clone()),
        (
            "RFC 4716 with CRLF and BOM",
            format!("\u{feff}{}", crlf(&forms.rfc4716)),
        ),
        (
            "RFC 4716 with continued headers",
            with_continued_headers(&forms.rfc4716),
        ),
        ("SPKI PEM", forms.spki_pem.clone()),
        (
            "SPKI PEM with CRLF, BOM and white space",
            format!("\u{feff}\r\n{}\r\n", crlf(&forms.spki_pem)),
        ),
    ];
    if let Some(pkcs1) = &forms.pkcs1_pem {
        variants.push(("PKCS#1 PEM", pkcs1.clone()));
        variants.push(("PKCS#1 PEM with CRLF", crlf(pkcs1)));
    }
    variants
}

fn assert_every_form_matches_the_oracles(forms: &KeyForms) {
    let expected = Ok(forms.expected.clone());
    for (label, input) in input_variants(forms) {
        assert_eq!(parse_public_key(&input), expected, "{label}");
    }

    let offered = ssh_key::PublicKey::from_openssh(&forms.one_line).expect("russh parses");
    assert_eq!(
        describe_key_data(offered.key_data()),
        expected,
        "describe_key_data"
    );
}

// ---- crafting blobs --------------------------------------------------------------------

fn blob(fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for field in fields {
        put_string(&mut out, field).expect("field fits");
    }
    out
}

fn line_of(name: &str, blob: &[u8]) -> String {
    format!("{name} {} {COMMENT}", STANDARD.encode(blob))
}

fn blob_of_line(line: &str) -> Vec<u8> {
    let data = line.split_whitespace().nth(1).expect("base64 field");
    STANDARD.decode(data).expect("base64")
}

fn rfc4716_of(blob: &[u8]) -> String {
    let data = STANDARD.encode(blob);
    let body: Vec<&str> = data
        .as_bytes()
        .chunks(70)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!(
        "---- BEGIN SSH2 PUBLIC KEY ----\nComment: \"{COMMENT}\"\n{}\n---- END SSH2 PUBLIC KEY ----\n",
        body.join("\n")
    )
}

fn pem_of(label: &str, der: &[u8]) -> String {
    let data = STANDARD.encode(der);
    let body: Vec<&str> = data
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        body.join("\n")
    )
}

/// An odd modulus of exactly `bits` bits (not a real RSA modulus; the policy only counts).
fn modulus_of_bits(bits: usize) -> Vec<u8> {
    let mut n = vec![0x5a_u8; bits.div_ceil(8)];
    n[0] = 0xff >> ((8 - bits % 8) % 8);
    n[0] |= 1 << ((bits - 1) % 8);
    if let Some(last) = n.last_mut() {
        *last |= 1;
    }
    n
}

/// Pads a magnitude into an `mpint` body.
fn mpint_body(magnitude: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_mpint(&mut out, magnitude).expect("fits");
    out[4..].to_vec()
}

/// Every text form of a crafted SSH blob must be refused with `expected`.
fn assert_blob_refused(name: &str, blob: &[u8], expected: KeyInputError) {
    for input in [line_of(name, blob), rfc4716_of(blob)] {
        assert_refused_without_echo(&input, expected.clone());
    }
}

fn assert_refused_without_echo(input: &str, expected: KeyInputError) {
    let error = parse_public_key(input).expect_err("input is refused");
    assert_eq!(error, expected);
    assert_no_echo(input, &error);
}

/// Neither the message nor the debug form contains any 8-character run of the input.
fn assert_no_echo(input: &str, error: &KeyInputError) {
    let texts = [error.to_string(), format!("{error:?}")];
    let chars: Vec<char> = input.chars().collect();
    for window in chars.windows(8) {
        let window: String = window.iter().collect();
        if window.trim().len() < 8 {
            continue;
        }
        for text in &texts {
            assert!(
                !text.contains(&window),
                "error {text:?} echoes input {window:?}"
            );
        }
    }
}

// ---- every accepted form --------------------------------------------------------------

#[test]
fn ed25519_keys_from_ssh_keygen_match_the_oracles_in_every_form() {
    assert_every_form_matches_the_oracles(&ssh_keygen_key("ed25519", None));
}

#[test]
fn ed25519_keys_from_openssl_match_the_oracles_in_every_form() {
    assert_every_form_matches_the_oracles(&openssl_ed25519_key());
}

fn assert_ecdsa_key_matches_the_oracles(bits: &str) {
    let forms = ssh_keygen_key("ecdsa", Some(bits));
    assert_every_form_matches_the_oracles(&forms);

    let spki_path = write(forms.dir.path(), "spki.pem", &forms.spki_pem);
    let args = [
        "ec",
        "-pubin",
        "-in",
        path_str(&spki_path),
        "-conv_form",
        "compressed",
        "-pubout",
    ];
    let compressed = run("openssl", &args);
    assert_ne!(compressed, forms.spki_pem);
    assert_eq!(
        parse_public_key(&compressed),
        Ok(forms.expected.clone()),
        "compressed point"
    );
}

#[test]
fn ecdsa_nistp256_keys_match_the_oracles_in_every_form_including_compressed_pem() {
    assert_ecdsa_key_matches_the_oracles("256");
}

#[test]
fn ecdsa_nistp384_keys_match_the_oracles_in_every_form_including_compressed_pem() {
    assert_ecdsa_key_matches_the_oracles("384");
}

#[test]
fn ecdsa_nistp521_keys_match_the_oracles_in_every_form_including_compressed_pem() {
    assert_ecdsa_key_matches_the_oracles("521");
}

#[test]
fn rsa_2048_keys_match_the_oracles_in_every_form() {
    assert_every_form_matches_the_oracles(&ssh_keygen_key("rsa", Some("2048")));
}

#[test]
fn rsa_3072_keys_match_the_oracles_in_every_form() {
    assert_every_form_matches_the_oracles(&ssh_keygen_key("rsa", Some("3072")));
}

#[test]
fn rsa_4096_keys_match_the_oracles_in_every_form() {
    assert_every_form_matches_the_oracles(&ssh_keygen_key("rsa", Some("4096")));
}

/// The one slow test: generating an 8192-bit key takes a while.
#[test]
fn rsa_8192_keys_match_the_oracles_in_every_form() {
    assert_every_form_matches_the_oracles(&ssh_keygen_key("rsa", Some("8192")));
}

#[test]
fn non_canonical_rsa_mpint_padding_normalises_to_the_canonical_key() {
    let forms = ssh_keygen_key("rsa", Some("2048"));
    let original = blob_of_line(&forms.one_line);
    let mut reader = WireReader { rest: &original };
    let (_, e, n) = (
        reader.string(),
        reader.mpint().expect("e"),
        reader.mpint().expect("n"),
    );

    let padded_e = [&[0, 0][..], e].concat();
    let padded_n = [&[0, 0][..], &mpint_body(n)[..]].concat();
    let padded = blob(&[b"ssh-rsa", &padded_e, &padded_n]);
    assert_eq!(
        parse_public_key(&line_of("ssh-rsa", &padded)),
        Ok(forms.expected)
    );
}

// ---- refused algorithms and sizes ------------------------------------------------------

#[test]
fn dsa_keys_are_refused_in_every_form() {
    let crafted = blob(&[
        b"ssh-dss",
        &[0x7f; 128],
        &[0x7f; 20],
        &[0x7f; 128],
        &[0x7f; 128],
    ]);
    assert_blob_refused("ssh-dss", &crafted, KeyInputError::Dsa);

    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("dsa");
    let generated = try_run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "dsa",
            "-N",
            "",
            "-C",
            COMMENT,
            "-f",
            path_str(&key),
        ],
    );
    if generated.is_none() {
        return; // this ssh-keygen no longer makes DSA keys; the crafted blob covers it
    }
    let pub_path = dir.path().join("dsa.pub");
    let line = read(&pub_path);
    assert_refused_without_echo(&line, KeyInputError::Dsa);
    for format in ["RFC4716", "PKCS8"] {
        let exported = run(
            "ssh-keygen",
            &["-e", "-m", format, "-f", path_str(&pub_path)],
        );
        assert_refused_without_echo(&exported, KeyInputError::Dsa);
    }
    let offered = ssh_key::PublicKey::from_openssh(&line).expect("russh parses DSA");
    assert_eq!(
        describe_key_data(offered.key_data()),
        Err(KeyInputError::Dsa)
    );
}

#[test]
fn rsa_1024_keys_are_refused_with_their_bit_count_in_every_form() {
    let forms = ssh_keygen_key("rsa", Some("1024"));
    let expected = KeyInputError::RsaTooSmall { bits: 1024 };
    let pkcs1 = forms.pkcs1_pem.clone().expect("PKCS#1 export");
    for input in [&forms.one_line, &forms.rfc4716, &forms.spki_pem, &pkcs1] {
        assert_refused_without_echo(input, expected.clone());
    }
    assert!(expected.to_string().contains("1024"));

    let offered = ssh_key::PublicKey::read_openssh_file(&forms.pub_path).expect("russh parses");
    assert_eq!(describe_key_data(offered.key_data()), Err(expected));
}

#[test]
fn rsa_keys_just_under_or_over_the_limits_are_refused_with_their_bit_count() {
    let cases = [
        (2047, KeyInputError::RsaTooSmall { bits: 2047 }),
        (8193, KeyInputError::RsaTooLarge { bits: 8193 }),
        (8201, KeyInputError::RsaTooLarge { bits: 8201 }),
    ];
    for (bits, expected) in cases {
        let n = modulus_of_bits(bits);
        assert_eq!(bit_length(&n), bits);
        let crafted = blob(&[b"ssh-rsa", &[1, 0, 1], &mpint_body(&n)]);
        assert_blob_refused("ssh-rsa", &crafted, expected.clone());
        let pem = pem_of("RSA PUBLIC KEY", &pkcs1_der(&[1, 0, 1], &n).expect("DER"));
        assert_refused_without_echo(&pem, expected.clone());
        assert!(expected.to_string().contains(&bits.to_string()));
    }
}

#[test]
fn rsa_keys_with_an_even_modulus_bad_exponent_or_negative_mpint_are_refused() {
    let n = modulus_of_bits(2048);
    let mut even_n = n.clone();
    even_n[255] &= 0xfe;
    for (e, n) in [
        (&[1, 0, 1][..], &even_n),
        (&[2][..], &n),
        (&[1][..], &n),
        (&[1, 0, 0, 0, 0, 1][..], &n),
    ] {
        let crafted = blob(&[b"ssh-rsa", e, &mpint_body(n)]);
        assert_blob_refused("ssh-rsa", &crafted, KeyInputError::InvalidRsa);
    }

    let negative = blob(&[b"ssh-rsa", &[1, 0, 1], &n]);
    assert_blob_refused("ssh-rsa", &negative, KeyInputError::InvalidRsa);
}

#[test]
fn certificates_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in ["ca", "user"] {
        let key = dir.path().join(name);
        run(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                COMMENT,
                "-f",
                path_str(&key),
            ],
        );
    }
    let ca = dir.path().join("ca");
    let user_pub = dir.path().join("user.pub");
    run(
        "ssh-keygen",
        &[
            "-q",
            "-s",
            path_str(&ca),
            "-I",
            "id",
            "-n",
            "alice",
            path_str(&user_pub),
        ],
    );

    let certificate = read(&dir.path().join("user-cert.pub"));
    assert_refused_without_echo(&certificate, KeyInputError::Certificate);
    assert_blob_refused(
        "ssh-ed25519-cert-v01@openssh.com",
        &blob_of_line(&certificate),
        KeyInputError::Certificate,
    );

    let parsed = ssh_key::Certificate::from_openssh(&certificate).expect("russh parses");
    let offered = KeyData::Certificate(Box::new(parsed));
    assert_eq!(describe_key_data(&offered), Err(KeyInputError::Certificate));
}

#[test]
fn security_keys_are_refused_until_user_presence_can_be_checked() {
    let p256 = ssh_keygen_key("ecdsa", Some("256"));
    let mut reader = WireReader {
        rest: &blob_of_line(&p256.one_line),
    };
    let (_, _, point) = (
        reader.string(),
        reader.string(),
        reader.string().expect("point"),
    );
    let ed25519_point = blob_of_line(&ssh_keygen_key("ed25519", None).one_line)[19..].to_vec();

    let sk_ecdsa = blob(&[
        b"sk-ecdsa-sha2-nistp256@openssh.com",
        b"nistp256",
        point,
        b"ssh:",
    ]);
    let sk_ed25519 = blob(&[b"sk-ssh-ed25519@openssh.com", &ed25519_point, b"ssh:"]);
    for (name, crafted) in [
        ("sk-ecdsa-sha2-nistp256@openssh.com", &sk_ecdsa),
        ("sk-ssh-ed25519@openssh.com", &sk_ed25519),
    ] {
        assert_blob_refused(name, crafted, KeyInputError::SecurityKey);
        let offered = KeyData::decode(&mut crafted.as_slice()).expect("russh parses");
        assert_eq!(describe_key_data(&offered), Err(KeyInputError::SecurityKey));
    }
    assert!(
        KeyInputError::SecurityKey
            .to_string()
            .contains("refused until user presence can be checked")
    );
}

#[test]
fn unknown_algorithms_and_curves_are_refused() {
    let crafted = blob(&[b"ssh-foo", &[7; 32]]);
    assert_blob_refused("ssh-foo", &crafted, KeyInputError::UnknownAlgorithm);
    assert_refused_without_echo(
        &format!("{OPTIONS} {}", line_of("ssh-foo", &crafted)),
        KeyInputError::UnknownAlgorithm,
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let x25519 = dir.path().join("x25519.pem");
    run(
        "openssl",
        &["genpkey", "-algorithm", "x25519", "-out", path_str(&x25519)],
    );
    let x25519_public = run("openssl", &["pkey", "-in", path_str(&x25519), "-pubout"]);
    assert_refused_without_echo(&x25519_public, KeyInputError::UnknownAlgorithm);

    let k1 = dir.path().join("k1.pem");
    run(
        "openssl",
        &[
            "ecparam",
            "-name",
            "secp256k1",
            "-genkey",
            "-noout",
            "-out",
            path_str(&k1),
        ],
    );
    let k1_public = run("openssl", &["ec", "-in", path_str(&k1), "-pubout"]);
    assert_refused_without_echo(&k1_public, KeyInputError::UnsupportedCurve);
}

// ---- inconsistent or broken key data --------------------------------------------------

#[test]
fn blobs_whose_inner_algorithm_differs_from_the_leading_name_are_refused() {
    let ed25519 = ssh_keygen_key("ed25519", None);
    let blob = blob_of_line(&ed25519.one_line);
    assert_refused_without_echo(&line_of("ssh-rsa", &blob), KeyInputError::AlgorithmMismatch);
    assert_refused_without_echo(
        &line_of("ecdsa-sha2-nistp256", &blob),
        KeyInputError::AlgorithmMismatch,
    );
}

#[test]
fn truncated_blobs_and_trailing_bytes_are_refused() {
    let forms = ssh_keygen_key("ecdsa", Some("384"));
    let blob = blob_of_line(&forms.one_line);
    for cut in [3, 10, 30, blob.len() - 1] {
        assert_blob_refused(
            "ecdsa-sha2-nistp384",
            &blob[..cut],
            KeyInputError::Truncated,
        );
    }
    let trailing = [&blob[..], &[0]].concat();
    assert_blob_refused(
        "ecdsa-sha2-nistp384",
        &trailing,
        KeyInputError::TrailingBytes,
    );
}

#[test]
fn ed25519_keys_not_32_bytes_or_not_a_usable_point_are_refused() {
    for length in [0, 31, 33, 64] {
        let crafted = blob(&[b"ssh-ed25519", &vec![9; length]]);
        assert_blob_refused("ssh-ed25519", &crafted, KeyInputError::Ed25519Length);
    }
    let mut identity = [0_u8; 32];
    identity[0] = 1;
    let weak = blob(&[b"ssh-ed25519", &identity]);
    assert_blob_refused("ssh-ed25519", &weak, KeyInputError::InvalidEd25519);
}

#[test]
fn ec_points_off_the_curve_compressed_or_for_the_wrong_curve_are_refused() {
    let p256 = blob_of_line(&ssh_keygen_key("ecdsa", Some("256")).one_line);
    let p384 = blob_of_line(&ssh_keygen_key("ecdsa", Some("384")).one_line);
    let point_of = |blob: &[u8]| {
        let mut reader = WireReader { rest: blob };
        let (_, _) = (reader.string(), reader.string());
        reader.string().expect("point").to_vec()
    };
    let (point256, point384) = (point_of(&p256), point_of(&p384));
    let name = "ecdsa-sha2-nistp256";

    let mut off_curve = point256.clone();
    off_curve[64] ^= 1;
    assert_blob_refused(
        name,
        &blob(&[name.as_bytes(), b"nistp256", &off_curve]),
        KeyInputError::InvalidEcPoint,
    );
    assert_blob_refused(
        name,
        &blob(&[name.as_bytes(), b"nistp256", &point384]),
        KeyInputError::InvalidEcPoint,
    );
    assert_blob_refused(
        name,
        &blob(&[name.as_bytes(), b"nistp384", &point256]),
        KeyInputError::CurveMismatch,
    );

    let mut compressed = point256[..33].to_vec();
    compressed[0] = 2 + (point256[64] & 1);
    assert_blob_refused(
        name,
        &blob(&[name.as_bytes(), b"nistp256", &compressed]),
        KeyInputError::CompressedPoint,
    );
}

#[test]
fn invalid_base64_is_refused() {
    let input = format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5!!!!AAAAIB {COMMENT}");
    assert_refused_without_echo(&input, KeyInputError::InvalidBase64);
    let rfc4716 =
        "---- BEGIN SSH2 PUBLIC KEY ----\nAAAA*not-base64*\n---- END SSH2 PUBLIC KEY ----\n";
    assert_refused_without_echo(rfc4716, KeyInputError::InvalidBase64);
}

#[test]
fn malformed_pem_and_rfc4716_blocks_are_refused() {
    let forms = ssh_keygen_key("ed25519", None);
    let rfc = &forms.rfc4716;
    let spki = &forms.spki_pem;

    let unterminated = rfc.replace("---- END SSH2 PUBLIC KEY ----", "");
    assert_refused_without_echo(&unterminated, KeyInputError::UnterminatedBlock);
    let mismatched_end = spki.replace("END PUBLIC KEY", "END RSA PUBLIC KEY");
    assert_refused_without_echo(&mismatched_end, KeyInputError::UnterminatedBlock);
    assert_refused_without_echo(
        &format!("{spki}leak-canary trailing text\n"),
        KeyInputError::UnexpectedText,
    );
    let headed = spki.replacen('\n', "\nProc-Type: 4,ENCRYPTED\n", 1);
    assert_refused_without_echo(&headed, KeyInputError::MalformedBlock);
    let dangling =
        "---- BEGIN SSH2 PUBLIC KEY ----\nComment: leak-canary \\\n---- END SSH2 PUBLIC KEY ----\n";
    assert_refused_without_echo(dangling, KeyInputError::MalformedBlock);
    let certificate = spki.replace("PUBLIC KEY", "CERTIFICATE");
    assert_refused_without_echo(&certificate, KeyInputError::UnsupportedBlock);
    let not_der = pem_of("PUBLIC KEY", b"leak-canary, not DER at all");
    assert_refused_without_echo(&not_der, KeyInputError::InvalidDer);
}

// ---- whole-input refusals --------------------------------------------------------------

#[test]
fn private_keys_in_any_form_are_refused_without_echoing_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |name: &str| dir.path().join(name);
    let keygen = |kind: &str, format: &str, name: &str| {
        let key = path(name);
        let args = [
            "-q",
            "-t",
            kind,
            "-m",
            format,
            "-N",
            "",
            "-C",
            COMMENT,
            "-f",
            path_str(&key),
        ];
        run("ssh-keygen", &args);
        read(&key)
    };
    let openssh = keygen("ed25519", "RFC4716", "openssh");
    let rsa_pem = keygen("rsa", "PEM", "rsa");
    let ec_pem = keygen("ecdsa", "PEM", "ec");
    run(
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "ed25519",
            "-out",
            path_str(&path("pkcs8")),
        ],
    );
    let pkcs8 = read(&path("pkcs8"));
    let encrypted = run(
        "openssl",
        &[
            "pkey",
            "-in",
            path_str(&path("pkcs8")),
            "-aes256",
            "-passout",
            "pass:secret",
        ],
    );
    let putty = format!(
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: {COMMENT}\nPublic-Lines: 2\n\
         AAAAC3NzaC1lZDI1NTE5AAAAIFBqCxyWNUYEWhv1Fmr8HmPZQd1EPbhGnqD3YYWB\nWPcz\n\
         Private-Lines: 1\nAAAAIMm5PQkgAK4MzmVqaPMvFXLkHgZSsP5i8wzV2bdkyFnK\n\
         Private-MAC: 0ba0b1b8b2ad2c6c1c06bcf0937f1a8d1c47c0e8a5c5ab9c6a2a6d5d68c7d1f0\n"
    );
    let openssh_body: String = openssh
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let public_then_private = format!("{}\n{openssh}", read(&path("openssh.pub")));

    assert!(rsa_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert!(ec_pem.starts_with("-----BEGIN EC PRIVATE KEY-----"));
    assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(encrypted.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    let inputs = [
        openssh.clone(),
        format!("\u{feff}{}", crlf(&openssh)),
        rsa_pem,
        ec_pem,
        pkcs8,
        encrypted,
        putty,
        openssh_body,
        public_then_private,
    ];
    for input in inputs {
        assert_refused_without_echo(&input, KeyInputError::PrivateKey);
        assert!(
            KeyInputError::PrivateKey
                .to_string()
                .contains("paste the public key (the .pub file)")
        );
    }
}

#[test]
fn multiple_keys_in_one_input_are_refused() {
    let forms = ssh_keygen_key("ed25519", None);
    let other = ssh_keygen_key("ecdsa", Some("256"));
    let inputs = [
        format!("{}{}", forms.one_line, other.one_line),
        format!("{}\n\n{}", forms.one_line, forms.one_line),
        format!("{}{}", forms.spki_pem, other.spki_pem),
        format!("{}{}", forms.rfc4716, other.spki_pem),
    ];
    for input in inputs {
        assert_refused_without_echo(&input, KeyInputError::MultipleKeys);
    }
}

#[test]
fn empty_or_blank_input_is_refused() {
    for input in [
        "",
        "   ",
        "\n\t \r\n",
        "\u{feff}",
        "\u{feff}  \r\n",
        "# only a comment line\n",
    ] {
        assert_eq!(
            parse_public_key(input),
            Err(KeyInputError::Empty),
            "{input:?}"
        );
    }
}

#[test]
fn text_that_is_no_key_at_all_is_refused() {
    for input in [
        "leak-canary hello world",
        "ssh-ed25519",
        "AAAAC3NzaC1lZDI1NTE5AAAAIFBq",
    ] {
        assert_refused_without_echo(input, KeyInputError::NotRecognised);
    }
}
