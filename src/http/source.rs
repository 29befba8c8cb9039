//! The source address of a request ([`SourceAddr`]): the peer, or, when the peer is a trusted proxy (`TESSERA_TRUSTED_PROXIES`), the right-most `X-Forwarded-For` entry that is not one. It keys the login throttle and is recorded on audit events. Uses: domain.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap};
use ipnet::IpNet;

use super::AppState;

/// The networks whose `X-Forwarded-For` is believed (CONTRACT: settings); none by default.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }
}

impl AppState {
    /// Believes `X-Forwarded-For` from these networks.
    pub fn with_trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        Arc::make_mut(&mut self.0).trusted_proxies = Arc::new(proxies);
        self
    }
}

/// Where a request comes from; `None` only when the server was not given peer addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceAddr(pub Option<IpAddr>);

impl SourceAddr {
    /// As audit events record it.
    pub fn text(self) -> Option<String> {
        self.0.map(|ip| ip.to_string())
    }
}

impl FromRequestParts<AppState> for SourceAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Infallible> {
        Ok(Self::of(&parts.headers, &parts.extensions, app))
    }
}

impl SourceAddr {
    /// For extractors that hold the whole request.
    pub(super) fn of(headers: &HeaderMap, extensions: &Extensions, app: &AppState) -> Self {
        let peer = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip());
        Self(peer.map(|peer| source_addr(peer, headers, &app.trusted_proxies)))
    }
}

/// The peer, unless it is a trusted proxy: then, walking `X-Forwarded-For` from the right (the
/// entry the proxy itself appended), the first address that is not a trusted proxy. Entries a
/// client wrote further left are never believed over it. An entry that is no address stops the
/// walk at the last trusted hop; all trusted, the left-most.
fn source_addr(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let mut source = peer.to_canonical();
    if !trusted.contains(source) {
        return source;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|value| match value.to_str() {
            Ok(text) => text.split(',').map(str::trim).collect::<Vec<_>>(),
            // An unreadable value stops the walk where it stands.
            Err(_) => vec![""],
        })
        .collect();
    for entry in entries.iter().rev() {
        let Some(hop) = parse_hop(entry) else {
            return source;
        };
        source = hop;
        if !trusted.contains(hop) {
            return hop;
        }
    }
    source
}

/// `192.0.2.1`, `2001:db8::1`, or either with a port (`192.0.2.1:443`, `[2001:db8::1]:443`).
fn parse_hop(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|n| n.parse().unwrap()).collect())
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peers_forwarded_for_is_ignored() {
        let headers = forwarded(&["203.0.113.7"]);
        assert_eq!(
            source_addr(ip("192.0.2.1"), &headers, &TrustedProxies::default()),
            ip("192.0.2.1")
        );
        assert_eq!(
            source_addr(ip("192.0.2.1"), &headers, &trusted(&["10.0.0.0/8"])),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn a_trusted_peer_names_the_right_most_untrusted_entry() {
        let proxies = trusted(&["10.0.0.0/8", "fd00::/8"]);
        let peer = ip("10.0.0.2");
        // What the client wrote itself (left) is never believed over what the proxies added.
        let headers = forwarded(&["198.51.100.1, 203.0.113.7, 10.0.0.9"]);
        assert_eq!(source_addr(peer, &headers, &proxies), ip("203.0.113.7"));
        // Several header lines are one list, in order.
        let headers = forwarded(&["198.51.100.1", "203.0.113.7", "10.0.0.9"]);
        assert_eq!(source_addr(peer, &headers, &proxies), ip("203.0.113.7"));
        // Ports and IPv4-mapped IPv6 are read as the address.
        let headers = forwarded(&["[2001:db8::5]:443"]);
        assert_eq!(source_addr(peer, &headers, &proxies), ip("2001:db8::5"));
        let headers = forwarded(&["203.0.113.7:5000"]);
        assert_eq!(source_addr(peer, &headers, &proxies), ip("203.0.113.7"));
        let headers = forwarded(&["::ffff:203.0.113.7"]);
        assert_eq!(source_addr(peer, &headers, &proxies), ip("203.0.113.7"));
        // No header: the proxy itself.
        assert_eq!(source_addr(peer, &HeaderMap::new(), &proxies), peer);
        // All trusted: the left-most.
        let headers = forwarded(&["10.0.0.7, fd00::1"]);
        assert_eq!(source_addr(peer, &headers, &proxies), ip("10.0.0.7"));
        // Garbage stops the walk at the last trusted hop.
        let headers = forwarded(&["203.0.113.7, nonsense, 10.0.0.9"]);
        assert_eq!(source_addr(peer, &headers, &proxies), ip("10.0.0.9"));
        let headers = forwarded(&["203.0.113.7, unknown"]);
        assert_eq!(source_addr(peer, &headers, &proxies), peer);
    }
}
