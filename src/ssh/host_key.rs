//! The SSH host key: generated once, kept in the data directory in OpenSSH format so that
//! replicas can share it.

use std::path::Path;

use anyhow::Context;
use rand::Rng;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{HashAlg, PrivateKey};

/// File name of the ed25519 host key inside the data directory.
pub const HOST_KEY_FILE: &str = "ssh_host_ed25519_key";

/// A host key as `sshHostKeys` shows it.
#[derive(Debug, Clone)]
pub struct HostKeyInfo {
    pub algorithm: String,
    pub public_key_ssh: String,
    pub fingerprint_sha256: String,
}

/// Loads the host key from `data_dir`, generating and saving it on first start.
pub fn load_or_generate(data_dir: &Path) -> anyhow::Result<PrivateKey> {
    let path = data_dir.join(HOST_KEY_FILE);
    if path.exists() {
        return PrivateKey::read_openssh_file(&path)
            .with_context(|| format!("cannot read the SSH host key {}", path.display()));
    }

    let mut seed = [0u8; 32];
    rand::rng().fill(&mut seed);
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    let pem = key
        .to_openssh(LineEnding::LF)
        .context("cannot encode the new SSH host key")?;
    crate::files::write_private(&path, pem.as_bytes())
        .with_context(|| format!("cannot write the SSH host key {}", path.display()))?;
    let public = key
        .public_key()
        .to_openssh()
        .context("cannot encode the host public key")?;
    std::fs::write(
        data_dir.join(format!("{HOST_KEY_FILE}.pub")),
        format!("{public}\n"),
    )
    .context("cannot write the SSH host public key")?;
    tracing::info!(path = %path.display(), "generated a new SSH host key");

    Ok(key)
}

/// The public description of a host key.
pub fn describe(key: &PrivateKey) -> anyhow::Result<HostKeyInfo> {
    let public = key.public_key();
    let line = public
        .to_openssh()
        .context("cannot encode the host public key")?;
    // `to_openssh` appends the comment, if any; keep `algorithm base64` only.
    let public_key_ssh = line
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");

    Ok(HostKeyInfo {
        algorithm: public.algorithm().as_str().to_owned(),
        public_key_ssh,
        fingerprint_sha256: public.fingerprint(HashAlg::Sha256).to_string(),
    })
}
