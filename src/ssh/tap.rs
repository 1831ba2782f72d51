//! Captures the client's SSH identification line (`SSH-2.0-OpenSSH_9.6 …`) as it passes
//! through, so the connection can be recorded with the version the client announced.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest identification line kept (RFC 4253 allows 255 bytes including CR LF).
pub const MAX_VERSION_LEN: usize = 255;

/// The client's identification line, once it has been read.
pub type ClientVersion = Arc<OnceLock<String>>;

/// A stream that records the first line the client sends.
pub struct VersionTap<S> {
    inner: S,
    line: Vec<u8>,
    version: ClientVersion,
}

impl<S> VersionTap<S> {
    pub fn new(inner: S) -> (Self, ClientVersion) {
        let version = ClientVersion::default();
        let tap = Self {
            inner,
            line: Vec::new(),
            version: version.clone(),
        };
        (tap, version)
    }

    fn observe(&mut self, bytes: &[u8]) {
        if self.version.get().is_some() {
            return;
        }
        for &byte in bytes {
            if byte == b'\n' || self.line.len() >= MAX_VERSION_LEN {
                let text = String::from_utf8_lossy(&self.line);
                let _ = self.version.set(text.trim_end_matches('\r').to_owned());
                return;
            }
            self.line.push(byte);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for VersionTap<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && self.version.get().is_none() {
            let fresh = buf.filled()[before..].to_vec();
            self.observe(&fresh);
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for VersionTap<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn records_the_first_line_without_its_line_end() {
        let data: &[u8] = b"SSH-2.0-OpenSSH_9.6\r\nbinary";
        let (mut tap, version) = VersionTap::new(data);

        let mut out = Vec::new();
        tap.read_to_end(&mut out).await.unwrap();

        assert_eq!(out, data);
        assert_eq!(
            version.get().map(String::as_str),
            Some("SSH-2.0-OpenSSH_9.6")
        );
    }
}
