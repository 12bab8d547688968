//! Name resolution with the address check built in. reqwest connects to whatever its
//! resolver returns, so checking here (and returning exactly the checked addresses)
//! means a delivery only ever connects to an address that passed: a name cannot pass
//! a check and then resolve elsewhere for the connection (DNS rebinding).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::address::is_public;

/// Why a name gave no address to connect to.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResolveError {
    /// A resolved address is not allowed: the destination is refused as a whole.
    #[error("{host} resolves to {address}, which is not a public address")]
    NotPublic { host: String, address: IpAddr },
    #[error("{0} does not resolve")]
    NoAddress(String),
    #[error("{host} does not resolve: {source}")]
    Failed {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("resolving {host} took more than {} s", .after.as_secs())]
    TimedOut { host: String, after: Duration },
}

/// Resolves `host` and checks every address (all of them: a name with one private
/// address among public ones is refused, as the connection may use any). With
/// `allow_private_networks` the addresses are returned unchecked.
pub(crate) async fn resolve_checked(
    host: &str,
    allow_private_networks: bool,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let addresses = match tokio::time::timeout(timeout, tokio::net::lookup_host((host, 0))).await {
        Err(_) => {
            return Err(ResolveError::TimedOut {
                host: host.to_owned(),
                after: timeout,
            });
        }
        Ok(Err(source)) => {
            return Err(ResolveError::Failed {
                host: host.to_owned(),
                source,
            });
        }
        Ok(Ok(addresses)) => addresses.collect::<Vec<_>>(),
    };
    if addresses.is_empty() {
        return Err(ResolveError::NoAddress(host.to_owned()));
    }
    if !allow_private_networks && let Some(bad) = addresses.iter().find(|a| !is_public(a.ip())) {
        return Err(ResolveError::NotPublic {
            host: host.to_owned(),
            address: bad.ip(),
        });
    }
    Ok(addresses)
}

/// The resolver installed in the delivery client.
#[derive(Debug)]
pub(crate) struct CheckedResolver {
    pub(crate) allow_private_networks: bool,
    pub(crate) timeout: Duration,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let (allow, timeout) = (self.allow_private_networks, self.timeout);
        Box::pin(async move {
            let addresses = resolve_checked(&host, allow, timeout).await?;
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}
