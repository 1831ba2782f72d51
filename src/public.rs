//! How people reach keyproof's SSH server from outside.

/// The public host and port of the SSH server, used to build `sshCommand`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicSsh {
    pub host: String,
    pub port: u16,
}

impl PublicSsh {
    /// The ready-to-copy command for a session.
    pub fn ssh_command(&self, connection_identifier: &str) -> String {
        if self.port == 22 {
            format!("ssh {connection_identifier}@{}", self.host)
        } else {
            format!("ssh -p {} {connection_identifier}@{}", self.port, self.host)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_port_is_left_out_of_the_command() {
        let public = PublicSsh {
            host: "keys.example.com".into(),
            port: 22,
        };

        assert_eq!(public.ssh_command("abc"), "ssh abc@keys.example.com");
        let public = PublicSsh {
            port: 2222,
            ..public
        };
        assert_eq!(
            public.ssh_command("abc"),
            "ssh -p 2222 abc@keys.example.com"
        );
    }
}
