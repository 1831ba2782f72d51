//! Runs the system OpenSSH client against the test server.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use super::WAIT;

pub struct SshRun {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// `ssh` made deterministic: no config file, no agent, no known_hosts, nothing but the
/// identities the test gives.
pub fn command(port: u16) -> Command {
    let mut command = command_without_identities(port);
    command.args(["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"]);
    command
}

/// `ssh` as [`command`] but free to choose identities (from an agent, say). `-o` options are
/// first-wins in OpenSSH, so callers add their identity options to this one.
pub fn command_without_identities(port: u16) -> Command {
    let mut command = Command::new("ssh");
    command
        .args(["-F", "/dev/null", "-T"])
        .args(["-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "GlobalKnownHostsFile=/dev/null"])
        .args(["-o", "PasswordAuthentication=no", "-o", "ConnectTimeout=10"])
        .args(["-p", &port.to_string()])
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// `ssh -i <identity>… user@127.0.0.1`, offering the identities in order.
pub async fn ssh_with(port: u16, user: &str, identities: &[&Path]) -> SshRun {
    let mut command = command(port);
    for identity in identities {
        command.arg("-i").arg(identity);
    }
    command.arg(format!("{user}@127.0.0.1"));
    run(command).await
}

pub async fn run(mut command: Command) -> SshRun {
    let output = tokio::time::timeout(WAIT, command.output())
        .await
        .expect("ssh did not finish in time")
        .expect("run ssh");
    SshRun {
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The installed client's version line, as `ssh -V` prints it (`OpenSSH_9.2p1 …`).
pub fn client_version_prefix() -> String {
    let output = std::process::Command::new("ssh")
        .arg("-V")
        .output()
        .expect("ssh -V");
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    let version = text.split([',', ' ']).next().unwrap_or_default().to_owned();
    format!("SSH-2.0-{version}")
}
