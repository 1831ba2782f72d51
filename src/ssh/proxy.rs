//! PROXY protocol (versions 1 and 2), spoken by TCP load balancers in front of the SSH port,
//! so that a connection is recorded with the real client's address.
//!
//! The header is read byte-exactly before SSH starts: nothing after it is consumed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// How long a load balancer may take to send the header.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The 12-byte signature that starts a version 2 header.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest version 1 header, CR LF included.
const V1_MAX_LEN: usize = 107;
/// The longest version 2 address block accepted (the spec allows TLVs after the addresses).
const V2_MAX_LEN: usize = 1024;

/// Why a PROXY header was refused. The connection is dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("the connection did not start with a PROXY protocol header")]
    Missing,
    #[error("the PROXY protocol header is malformed: {0}")]
    Malformed(&'static str),
    #[error("no PROXY protocol header arrived in time")]
    Timeout,
    #[error("the connection closed while reading the PROXY protocol header")]
    Closed,
}

/// Reads a PROXY header from `stream` and returns the client address it names, or `peer` when
/// the header says the connection is the proxy's own (v2 `LOCAL`, v1 `UNKNOWN`).
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
) -> Result<SocketAddr, ProxyError> {
    match tokio::time::timeout(HEADER_TIMEOUT, read_any(stream, peer)).await {
        Ok(result) => result,
        Err(_) => Err(ProxyError::Timeout),
    }
}

async fn read_any<S: AsyncRead + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
) -> Result<SocketAddr, ProxyError> {
    let mut start = [0u8; 6];
    read_exact(stream, &mut start).await?;
    if &start == b"PROXY " {
        read_v1(stream, peer).await
    } else if start == V2_SIGNATURE[..6] {
        read_v2(stream, peer).await
    } else {
        Err(ProxyError::Missing)
    }
}

async fn read_exact<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut [u8],
) -> Result<(), ProxyError> {
    stream
        .read_exact(buf)
        .await
        .map(|_| ())
        .map_err(|_| ProxyError::Closed)
}

/// `PROXY TCP4 203.0.113.7 192.0.2.1 4242 2222\r\n` (after the `PROXY ` already read).
async fn read_v1<S: AsyncRead + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
) -> Result<SocketAddr, ProxyError> {
    let mut line = Vec::with_capacity(V1_MAX_LEN);
    loop {
        let mut byte = [0u8; 1];
        read_exact(stream, &mut byte).await?;
        line.push(byte[0]);
        if line.ends_with(b"\r\n") {
            break;
        }
        if line.len() + 6 > V1_MAX_LEN {
            return Err(ProxyError::Malformed("version 1 header too long"));
        }
    }
    let text = std::str::from_utf8(&line[..line.len() - 2])
        .map_err(|_| ProxyError::Malformed("version 1 header is not text"))?;
    parse_v1(text, peer)
}

fn parse_v1(text: &str, peer: SocketAddr) -> Result<SocketAddr, ProxyError> {
    let fields: Vec<&str> = text.split(' ').collect();
    match fields.as_slice() {
        ["UNKNOWN", ..] => Ok(peer),
        [
            family @ ("TCP4" | "TCP6"),
            source,
            _destination,
            source_port,
            _destination_port,
        ] => {
            let ip: IpAddr = source
                .parse()
                .map_err(|_| ProxyError::Malformed("bad source address"))?;
            if (*family == "TCP4") != ip.is_ipv4() {
                return Err(ProxyError::Malformed("address does not match its family"));
            }
            let port: u16 = source_port
                .parse()
                .map_err(|_| ProxyError::Malformed("bad source port"))?;
            Ok(SocketAddr::new(ip, port))
        }
        _ => Err(ProxyError::Malformed(
            "version 1 header has the wrong fields",
        )),
    }
}

/// The binary version 2 header (after the first 6 signature bytes already read).
async fn read_v2<S: AsyncRead + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
) -> Result<SocketAddr, ProxyError> {
    let mut rest = [0u8; 10];
    read_exact(stream, &mut rest).await?;
    if rest[..6] != V2_SIGNATURE[6..] {
        return Err(ProxyError::Missing);
    }
    let (version_command, family) = (rest[6], rest[7]);
    let len = usize::from(u16::from_be_bytes([rest[8], rest[9]]));
    if version_command >> 4 != 2 {
        return Err(ProxyError::Malformed("unsupported version"));
    }
    if len > V2_MAX_LEN {
        return Err(ProxyError::Malformed("version 2 header too long"));
    }
    let mut body = vec![0u8; len];
    read_exact(stream, &mut body).await?;

    parse_v2(version_command & 0x0f, family, &body, peer)
}

fn parse_v2(
    command: u8,
    family: u8,
    body: &[u8],
    peer: SocketAddr,
) -> Result<SocketAddr, ProxyError> {
    match command {
        // LOCAL: the proxy's own connection (a health check); keep the peer address.
        0x0 => return Ok(peer),
        0x1 => {}
        _ => return Err(ProxyError::Malformed("unknown command")),
    }

    match family >> 4 {
        // AF_INET: source address, destination address, source port, destination port.
        0x1 if body.len() >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            let port = u16::from_be_bytes([body[8], body[9]]);
            Ok(SocketAddr::new(IpAddr::V4(ip), port))
        }
        0x2 if body.len() >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&body[..16]);
            let port = u16::from_be_bytes([body[32], body[33]]);
            Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
        }
        0x1 | 0x2 => Err(ProxyError::Malformed("address block too short")),
        // AF_UNSPEC (or AF_UNIX): no usable client address.
        _ => Ok(peer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "127.0.0.1:5000".parse().unwrap()
    }

    /// A version 2 PROXY header for `source` (used by the integration tests too).
    fn v2(source: SocketAddr) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        let (family, mut body) = match source.ip() {
            IpAddr::V4(ip) => (0x11, [ip.octets().to_vec(), vec![192, 0, 2, 1]].concat()),
            IpAddr::V6(ip) => (0x21, [ip.octets().to_vec(), [0u8; 16].to_vec()].concat()),
        };
        body.extend_from_slice(&source.port().to_be_bytes());
        body.extend_from_slice(&2222u16.to_be_bytes());
        header.extend_from_slice(&[0x21, family]);
        header.extend_from_slice(&(body.len() as u16).to_be_bytes());
        header.extend_from_slice(&body);
        header
    }

    #[tokio::test]
    async fn version_1_names_the_client_and_nothing_more_is_read() {
        let mut input: &[u8] = b"PROXY TCP4 203.0.113.7 192.0.2.1 4242 2222\r\nSSH-2.0-x\r\n";

        let source = read_header(&mut input, peer()).await;

        assert_eq!(source, Ok("203.0.113.7:4242".parse().unwrap()));
        assert_eq!(input, b"SSH-2.0-x\r\n");
    }

    #[tokio::test]
    async fn version_2_names_ipv4_and_ipv6_clients() {
        for source in ["203.0.113.7:4242", "[2001:db8::7]:4242"] {
            let source: SocketAddr = source.parse().unwrap();
            let header = [v2(source), b"SSH-2.0-x\r\n".to_vec()].concat();
            let mut input = header.as_slice();

            assert_eq!(read_header(&mut input, peer()).await, Ok(source));
            assert_eq!(input, b"SSH-2.0-x\r\n");
        }
    }

    #[tokio::test]
    async fn local_and_unknown_keep_the_peer_address() {
        let mut v1: &[u8] = b"PROXY UNKNOWN\r\n";
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);

        assert_eq!(read_header(&mut v1, peer()).await, Ok(peer()));
        assert_eq!(read_header(&mut local.as_slice(), peer()).await, Ok(peer()));
    }

    #[tokio::test]
    async fn a_connection_without_a_valid_header_is_refused() {
        let cases: [&[u8]; 4] = [
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"PROXY TCP4 203.0.113.7 192.0.2.1 4242\r\n",
            b"PROXY TCP6 203.0.113.7 192.0.2.1 4242 2222\r\n",
            b"PROXY TCP4 1.2.3.4",
        ];

        for case in cases {
            let mut input = case;
            assert!(read_header(&mut input, peer()).await.is_err(), "{case:?}");
        }
    }
}
