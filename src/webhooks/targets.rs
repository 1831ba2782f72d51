//! Which addresses a webhook may reach.
//!
//! Without `--webhook-allow-private-targets`, keyproof refuses targets that resolve to
//! loopback, private, link-local (cloud metadata lives at 169.254.169.254), multicast,
//! unspecified or otherwise reserved addresses, so that a webhook cannot be used to reach
//! keyproof's own network. IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64,
//! 6to4) are judged by the address they embed.
//!
//! The check runs twice: when the webhook is configured (names are resolved then), and at
//! delivery time inside the HTTP client's resolver ([`GuardedResolver`]), whose answer is the
//! very list of addresses the client connects to. A name that re-resolves to another address
//! between the check and the connection (DNS rebinding) is therefore caught too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// How long a name may take to resolve when a webhook is configured.
pub const INPUT_RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a target is refused. The text is safe to show to the API caller: it never names the
/// address a host name resolved to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetRefusal {
    #[error(
        "refused: the target is a loopback, private, link-local, multicast or otherwise \
         non-public address"
    )]
    NonPublic,
    #[error("refused: the target host name does not resolve")]
    Unresolvable,
    #[error("refused: the URL has no host")]
    NoHost,
}

/// Whether private targets are allowed; cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetPolicy {
    pub allow_private: bool,
}

impl TargetPolicy {
    /// Checks one address.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), TargetRefusal> {
        if self.allow_private || !is_non_public(ip) {
            Ok(())
        } else {
            Err(TargetRefusal::NonPublic)
        }
    }

    /// Checks every address a set of addresses; one non-public address refuses them all, so a
    /// name cannot mix a public address with a private one.
    pub fn check_all(&self, addrs: &[SocketAddr]) -> Result<(), TargetRefusal> {
        if addrs.is_empty() {
            return Err(TargetRefusal::Unresolvable);
        }
        addrs.iter().try_for_each(|addr| self.check_ip(addr.ip()))
    }

    /// Checks the host of `url` when it is an address literal. Returns `Ok(true)` when it was a
    /// literal (no name resolution will happen for it), `Ok(false)` for a host name.
    pub fn check_literal(&self, url: &Url) -> Result<bool, TargetRefusal> {
        match literal_ip(url)? {
            Some(ip) => self.check_ip(ip).map(|()| true),
            None => Ok(false),
        }
    }

    /// The check made when a webhook is configured: address literals are judged directly and
    /// host names are resolved. With private targets allowed nothing is resolved.
    pub async fn check_url(&self, url: &Url) -> Result<(), TargetRefusal> {
        if self.allow_private || self.check_literal(url)? {
            return Ok(());
        }
        let host = url.host_str().ok_or(TargetRefusal::NoHost)?;
        let port = url.port_or_known_default().unwrap_or(0);

        let addrs = tokio::time::timeout(INPUT_RESOLVE_TIMEOUT, resolve(host, port))
            .await
            .map_err(|_| TargetRefusal::Unresolvable)??;
        self.check_all(&addrs)
    }

    /// The resolver the delivery client uses: it refuses non-public answers.
    pub fn resolver(&self) -> GuardedResolver {
        GuardedResolver { policy: *self }
    }
}

/// The host of `url` when it is an address literal. The URL parser has already turned every
/// IPv4 spelling (`2130706433`, `0x7f.1`, …) into dotted decimal, so a host that does not parse
/// as an address here is a name.
fn literal_ip(url: &Url) -> Result<Option<IpAddr>, TargetRefusal> {
    let host = url.host_str().ok_or(TargetRefusal::NoHost)?;
    let bare = host
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(host);
    Ok(bare.parse().ok())
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, TargetRefusal> {
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| TargetRefusal::Unresolvable)?;
    Ok(addrs.collect())
}

/// A DNS resolver for the HTTP client that checks every answer against the policy. The client
/// connects only to the addresses returned here, so the checked address is the one used.
/// (Address literals never reach a resolver; the sender checks them itself before sending.)
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    policy: TargetPolicy,
}

impl GuardedResolver {
    /// Resolves `host` and checks the answer: exactly what the HTTP client does before it
    /// connects.
    pub async fn resolve_checked(&self, host: &str) -> Result<Vec<SocketAddr>, TargetRefusal> {
        let addrs = resolve(host, 0).await?;
        self.policy.check_all(&addrs)?;
        Ok(addrs)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = *self;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolver.resolve_checked(&host).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Whether `ip` is anything but a public unicast address.
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_non_public_v4(ip),
        IpAddr::V6(ip) => is_non_public_v6(ip),
    }
}

fn is_non_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || a == 0 // "this network", 0.0.0.0/8
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a >= 240 // reserved, 240.0.0.0/4
        || (a == 100 && (b & 0xc0) == 64) // shared address space, 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments, 192.0.0.0/24
        || (a == 198 && (b & 0xfe) == 18) // benchmarking, 198.18.0.0/15
}

fn is_non_public_v6(ip: Ipv6Addr) -> bool {
    if ip.is_unspecified() || ip.is_loopback() {
        return true;
    }
    if let Some(v4) = embedded_v4(ip) {
        return is_non_public_v4(v4);
    }

    let segments = ip.segments();
    ip.is_multicast()
        || segments[..6] == [0; 6] // IPv4-compatible ::/96 (deprecated); never a real target
        || (segments[0] & 0xfe00) == 0xfc00 // unique local, fc00::/7
        || (segments[0] & 0xffc0) == 0xfe80 // link-local, fe80::/10
        || (segments[0] & 0xffc0) == 0xfec0 // site-local, fec0::/10 (deprecated)
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || (segments[0] == 0x2001 && segments[1] == 0) // Teredo: hides an IPv4 address
        || (segments[0] == 0x0064 && segments[1] == 0xff9b && segments[2] == 1) // local NAT64
        || (segments[..4] == [0x0100, 0, 0, 0]) // discard-only, 100::/64
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible
/// `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d` and 6to4 `2002:aabb:ccdd::`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(low(hi, lo)),
        [0, 0, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x0064, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: TargetPolicy = TargetPolicy {
        allow_private: false,
    };

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn non_public_addresses_are_refused() {
        for text in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "198.18.0.1",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "2001:0:4136:e378::1",
        ] {
            assert_eq!(
                STRICT.check_ip(ip(text)),
                Err(TargetRefusal::NonPublic),
                "{text}"
            );
        }
    }

    #[test]
    fn public_addresses_pass() {
        for text in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2606:4700:4700::1111",
        ] {
            assert_eq!(STRICT.check_ip(ip(text)), Ok(()), "{text}");
        }
    }

    #[test]
    fn the_flag_allows_everything() {
        let open = TargetPolicy {
            allow_private: true,
        };

        assert_eq!(open.check_ip(ip("127.0.0.1")), Ok(()));
        assert_eq!(open.check_ip(ip("169.254.169.254")), Ok(()));
    }

    #[test]
    fn every_spelling_of_an_address_literal_is_judged_by_its_value() {
        for url in [
            "http://127.0.0.1/",
            "http://[::1]:8080/",
            "http://[::ffff:127.0.0.1]/",
            "http://[0:0:0:0:0:0:0:1]/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://017700000001/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
            "http://0.0.0.0/",
            "http://0/",
        ] {
            let url = Url::parse(url).unwrap();
            assert_eq!(
                STRICT.check_literal(&url),
                Err(TargetRefusal::NonPublic),
                "{url}"
            );
        }
    }

    #[test]
    fn an_empty_answer_is_refused() {
        assert_eq!(STRICT.check_all(&[]), Err(TargetRefusal::Unresolvable));
    }

    #[test]
    fn one_private_answer_refuses_the_whole_name() {
        let addrs: Vec<SocketAddr> = vec![
            "8.8.8.8:443".parse().unwrap(),
            "10.0.0.1:443".parse().unwrap(),
        ];

        assert_eq!(STRICT.check_all(&addrs), Err(TargetRefusal::NonPublic));
    }

    #[tokio::test]
    async fn names_that_resolve_to_loopback_are_refused_at_input_and_by_the_resolver() {
        let url = Url::parse("http://localhost:9/hook").unwrap();

        assert_eq!(STRICT.check_url(&url).await, Err(TargetRefusal::NonPublic));
        assert_eq!(
            STRICT.resolver().resolve_checked("localhost").await,
            Err(TargetRefusal::NonPublic)
        );
    }
}
