//! `--ssh-proxy-protocol`: a TCP load balancer's PROXY header names the real client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use common::TestApp;
use common::keys::TestKey;
use common::ssh::ssh_with;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// A version 2 PROXY header for an IPv4 client `source` talking to port 2222.
fn v2_header(source: SocketAddr) -> Vec<u8> {
    let SocketAddr::V4(source) = source else {
        panic!("IPv4 only")
    };
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0, 12]);
    header.extend_from_slice(&source.ip().octets());
    header.extend_from_slice(&[192, 0, 2, 1]);
    header.extend_from_slice(&source.port().to_be_bytes());
    header.extend_from_slice(&2222u16.to_be_bytes());
    header
}

/// A one-connection load balancer on 127.0.0.1 that prefixes `header` and relays bytes.
async fn load_balancer(target: u16, header: Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut client, _) = listener.accept().await.unwrap();
        let mut server = TcpStream::connect(("127.0.0.1", target)).await.unwrap();
        server.write_all(&header).await.unwrap();
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    });
    port
}

#[tokio::test]
async fn proxy_header_address_is_recorded_and_headerless_connections_are_refused() {
    let app = TestApp::spawn_with(|settings| settings.ssh_proxy_protocol = true).await;
    let key = TestKey::ed25519(app.dir.path(), "k");
    let created = app.create_session(&[&key.public_line()]).await;
    let balancer =
        load_balancer(app.ssh_port, v2_header("203.0.113.7:4242".parse().unwrap())).await;

    let direct = ssh_with(
        app.ssh_port,
        &created.connection_identifier,
        &[&key.private],
    )
    .await;
    let proxied = ssh_with(balancer, &created.connection_identifier, &[&key.private]).await;

    assert_eq!(
        direct.status, 255,
        "a connection without a header is refused"
    );
    assert_eq!(proxied.status, 0, "{}{}", proxied.stdout, proxied.stderr);
    let session = app.session(&created.id).await;
    assert_eq!(session["status"], "VERIFIED");
    let connections = session["connections"].as_array().unwrap();
    assert_eq!(connections.len(), 1);
    assert_eq!(connections[0]["ipAddress"], "203.0.113.7");
    app.shutdown().await;
}
