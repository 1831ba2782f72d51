//! A PostgreSQL server of a test's own, for tests that stop and start it. It needs the server
//! binaries (`.ci/run` installs them) and root, to run them as user `postgres`.

use std::path::PathBuf;
use std::process::Command;

pub struct TestPostgres {
    bin: PathBuf,
    data: PathBuf,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl TestPostgres {
    /// Starts a fresh server on a free port of 127.0.0.1, or `None` when this machine cannot
    /// (no server binaries or no `KEYPROOF_TEST_DATABASE_URL` to say PostgreSQL is wanted).
    pub fn start() -> Option<Self> {
        std::env::var("KEYPROOF_TEST_DATABASE_URL").ok()?;
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| entry.ok().map(|entry| entry.path().join("bin")))
            .filter(|bin| bin.join("pg_ctl").exists())
            .max()?;
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        run_as_postgres(&format!("chown postgres {}", dir.path().display()), true);
        let initdb = format!(
            "{}/initdb -D {} -A trust -U postgres",
            bin.display(),
            data.display()
        );
        run_as_postgres(&initdb, false);

        let server = Self {
            bin,
            data,
            port,
            _dir: dir,
        };
        server.pg_ctl("start");
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn stop(&self) {
        self.pg_ctl("stop");
    }

    pub fn start_again(&self) {
        self.pg_ctl("start");
    }

    fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c fsync=off -k {}",
            self.port,
            self.data.parent().expect("data dir parent").display()
        );
        let command = format!(
            "{}/pg_ctl -D {} -l {}/log -w -m fast -o '{options}' {action}",
            self.bin.display(),
            self.data.display(),
            self.data.parent().expect("data dir parent").display(),
        );
        run_as_postgres(&command, false);
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let command = format!(
            "{}/pg_ctl -D {} -w -m immediate stop",
            self.bin.display(),
            self.data.display()
        );
        let _ = Command::new("su")
            .args(["postgres", "-s", "/bin/sh", "-c", &command])
            .output();
    }
}

fn run_as_postgres(command: &str, as_root: bool) {
    let output = if as_root {
        Command::new("sh").args(["-c", command]).output()
    } else {
        Command::new("su")
            .args(["postgres", "-s", "/bin/sh", "-c", command])
            .output()
    }
    .expect("run a PostgreSQL command");
    assert!(
        output.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
