//! Keys generated at test time by `ssh-keygen`, which is also the oracle for fingerprints.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestKey {
    pub private: PathBuf,
    pub public: PathBuf,
}

impl TestKey {
    /// Generates a key with `ssh-keygen -t kind [-b bits]` in `dir`.
    pub fn generate(dir: &Path, name: &str, kind: &str, bits: Option<u32>) -> Self {
        let private = dir.join(name);
        let mut command = Command::new("ssh-keygen");
        command.args([
            "-q",
            "-N",
            "",
            "-C",
            &format!("{name}@test"),
            "-t",
            kind,
            "-f",
        ]);
        command.arg(&private);
        if let Some(bits) = bits {
            command.args(["-b", &bits.to_string()]);
        }
        let status = command.status().expect("run ssh-keygen");
        assert!(status.success(), "ssh-keygen failed");
        let public = private.with_extension("pub");
        Self { private, public }
    }

    pub fn ed25519(dir: &Path, name: &str) -> Self {
        Self::generate(dir, name, "ed25519", None)
    }

    /// The `.pub` file's text, comment included.
    pub fn public_line(&self) -> String {
        std::fs::read_to_string(&self.public)
            .expect("read public key")
            .trim()
            .to_owned()
    }

    /// `algorithm base64`, without the comment.
    pub fn public_ssh(&self) -> String {
        self.public_line()
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The fingerprint `ssh-keygen -l -E <hash>` prints.
    pub fn fingerprint(&self, hash: &str) -> String {
        fingerprint_of(&self.public, hash)
    }

    /// A copy holding only the public half, as a client that cannot sign would have.
    pub fn public_only(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(format!("{name}.pub"));
        std::fs::copy(&self.public, &path).expect("copy public key");
        path
    }
}

pub fn fingerprint_of(public: &Path, hash: &str) -> String {
    let output = Command::new("ssh-keygen")
        .args(["-l", "-E", hash, "-f"])
        .arg(public)
        .output()
        .expect("run ssh-keygen -l");
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .expect("utf8")
        .split_whitespace()
        .nth(1)
        .expect("fingerprint field")
        .to_owned()
}
