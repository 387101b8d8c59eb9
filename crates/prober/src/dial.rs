//! TCP connections for probes and hooks, with failures worded as Go's dialer words them ("dial tcp 10.0.0.5:80: connect: connection refused").

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::go_text;

/// Connects to `host:port`, trying each address the name resolves to in
/// turn; by `deadline` when there is one.
pub async fn dial(host: &str, port: u16, deadline: Option<Instant>) -> Result<TcpStream, String> {
    let addresses = resolve(host, port, deadline).await?;
    let mut first_error = None;
    for address in addresses {
        let shown = shown_address(host, address);
        let attempt = TcpStream::connect(address);
        let connected = match deadline {
            Some(deadline) => match timeout_at(deadline, attempt).await {
                Ok(connected) => connected,
                Err(_) => return Err(format!("dial tcp {shown}: i/o timeout")),
            },
            None => attempt.await,
        };
        match connected {
            Ok(stream) => {
                // Probes are one request each: no reason to wait for more
                // data before sending it.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(error) => {
                first_error.get_or_insert_with(|| {
                    format!("dial tcp {shown}: connect: {}", go_text::errno_text(&error))
                });
            }
        }
    }
    Err(first_error.unwrap_or_else(|| format!("dial tcp: lookup {host}: no such host")))
}

async fn resolve(
    host: &str,
    port: u16,
    deadline: Option<Instant>,
) -> Result<Vec<SocketAddr>, String> {
    if host.is_empty() {
        // Go dials the local system for an empty host.
        return Ok(vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)]);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let lookup = tokio::net::lookup_host((host, port));
    let resolved = match deadline {
        Some(deadline) => timeout_at(deadline, lookup)
            .await
            .map_err(|_| format!("dial tcp: lookup {host}: i/o timeout"))?,
        None => lookup.await,
    };
    let addresses: Vec<SocketAddr> = resolved
        .map_err(|_| format!("dial tcp: lookup {host}: no such host"))?
        .collect();
    if addresses.is_empty() {
        return Err(format!("dial tcp: lookup {host}: no such host"));
    }
    Ok(addresses)
}

/// The remote address as Go's errors show it; ":80" for the empty host.
fn shown_address(host: &str, address: SocketAddr) -> String {
    if host.is_empty() {
        format!(":{}", address.port())
    } else {
        address.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refused_connections_read_like_go() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert_eq!(
            dial("127.0.0.1", closed, None).await.unwrap_err(),
            format!("dial tcp 127.0.0.1:{closed}: connect: connection refused")
        );
        assert_eq!(
            dial("", closed, None).await.unwrap_err(),
            format!("dial tcp :{closed}: connect: connection refused")
        );
        assert_eq!(
            dial("::1", closed, None)
                .await
                .unwrap_err()
                .split(": connect:")
                .next(),
            Some(format!("dial tcp [::1]:{closed}").as_str())
        );
    }

    #[tokio::test]
    async fn unknown_names_are_lookup_failures() {
        assert_eq!(
            dial("no-such-host.invalid", 80, None).await.unwrap_err(),
            "dial tcp: lookup no-such-host.invalid: no such host"
        );
    }
}
