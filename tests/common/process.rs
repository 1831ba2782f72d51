//! The real `keyproof` binary as a child process, for what an in-process server cannot show:
//! its log output, its command line, and surviving a SIGKILL.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::WAIT;

pub struct KeyproofProcess {
    child: Child,
    pub http_addr: SocketAddr,
    pub ssh_addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl KeyproofProcess {
    /// Starts `keyproof serve` on port 0 with `data_dir`, `api_key` bootstrapped and `extra`
    /// arguments, and waits until it prints its addresses.
    pub async fn start(data_dir: &Path, api_key: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keyproof"))
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args([
                "--http-listen",
                "127.0.0.1:0",
                "--ssh-listen",
                "127.0.0.1:0",
            ])
            .args(["--bootstrap-api-key", api_key])
            .args(extra)
            .env_remove("KEYPROOF_DATABASE_URL")
            .env("RUST_LOG", "keyproof=debug,info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start keyproof");

        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut err_lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let sink = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = err_lines.next_line().await {
                sink.lock().expect("stderr lines").push(line);
            }
        });

        let mut out_lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let (mut http_addr, mut ssh_addr) = (None, None);
        while http_addr.is_none() || ssh_addr.is_none() {
            let line = tokio::time::timeout(WAIT, out_lines.next_line())
                .await
                .expect("keyproof printed its addresses in time")
                .expect("read stdout")
                .unwrap_or_else(|| panic!("keyproof exited: {:?}", stderr.lock().unwrap()));
            if let Some(url) = line.strip_prefix("GraphQL:") {
                let addr = url
                    .trim()
                    .trim_start_matches("http://")
                    .trim_end_matches("/graphql");
                http_addr = addr.parse().ok();
            } else if let Some(addr) = line.strip_prefix("SSH:") {
                ssh_addr = addr.trim().parse().ok();
            }
        }
        tokio::spawn(async move { while let Ok(Some(_)) = out_lines.next_line().await {} });

        Self {
            child,
            http_addr: http_addr.expect("http address"),
            ssh_addr: ssh_addr.expect("ssh address"),
            stderr,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// Everything the process wrote to standard error so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().expect("stderr lines").clone()
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL keyproof");
        let _ = self.child.wait().await;
    }

    /// Sends SIGTERM without waiting.
    pub fn signal_terminate(&self) {
        let pid = self.child.id().expect("running keyproof");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("send SIGTERM");
        assert!(status.success());
    }

    /// Waits for the process to exit; returns its exit code.
    pub async fn wait(mut self) -> Option<i32> {
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("keyproof stopped in time")
            .expect("wait for keyproof");
        status.code()
    }

    /// Stops the process with SIGTERM and waits for it to exit; returns its exit code.
    pub async fn terminate(self) -> Option<i32> {
        self.signal_terminate();
        self.wait().await
    }
}
