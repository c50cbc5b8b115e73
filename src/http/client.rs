//! Who a request comes from, as the limits that are kept per client see it: the authenticated
//! [`Principal`] when there is one, else the peer's address (IPv6 by its /64, the block one host
//! usually holds). `X-Forwarded-For` is not trusted: behind a proxy, turn authentication on.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::Extensions;
use axum::http::request::Parts;

use super::auth::Principal;

/// Who a request is counted against: its rate limit, its idempotency keys, its streams.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    Principal(Principal),
    Address(IpAddr),
    /// No principal and no peer address (a request handed to the router in-process).
    Unknown,
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientKey::Principal(principal) => principal.fmt(f),
            ClientKey::Address(ip) => ip.fmt(f),
            ClientKey::Unknown => f.write_str("an unknown client"),
        }
    }
}

impl ClientKey {
    /// The authenticated caller, else the peer's address.
    pub fn of(request: &Request) -> Self {
        Self::from_extensions(request.extensions())
    }

    fn from_extensions(extensions: &Extensions) -> Self {
        if let Some(principal) = extensions.get::<Principal>() {
            return ClientKey::Principal(principal.clone());
        }
        match extensions.get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(peer)) => ClientKey::Address(client_address(peer.ip())),
            None => ClientKey::Unknown,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientKey {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_extensions(&parts.extensions))
    }
}

/// The address a client is counted by: IPv4 as it is (also when mapped into IPv6), IPv6 by its
/// /64, since one host commonly holds a whole /64 and could otherwise take a new bucket per
/// request.
fn client_address(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_and_a_mapped_ipv4_as_ipv4() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            client_address(ip("2001:db8:1:2:aaaa::1")),
            client_address(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            client_address(ip("2001:db8:1:2::1")),
            client_address(ip("2001:db8:1:3::1"))
        );
        assert_eq!(client_address(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_address(ip("192.0.2.7")), ip("192.0.2.7"));
    }
}
