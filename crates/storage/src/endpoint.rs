//! `--datastore-endpoint` parsing and opening the chosen backend.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::{CompactionPolicy, DynStorage, EtcdStore, MemoryStore, SqliteStore, StorageError};

/// A parsed `--datastore-endpoint`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `sqlite:///path/state.db`
    Sqlite(PathBuf),
    /// `etcd://host:2379[,host:2379...]` (also `http://` and `https://` URLs)
    Etcd(Vec<String>),
    /// `memory://`
    Memory,
}

impl Endpoint {
    pub fn parse(endpoint: &str) -> Result<Self, StorageError> {
        let invalid = |reason: &str| StorageError::InvalidEndpoint {
            endpoint: endpoint.to_string(),
            reason: reason.to_string(),
        };
        if let Some(path) = endpoint.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(invalid("expected sqlite:///path/to/state.db"));
            }
            if path.contains('?') {
                return Err(invalid("sqlite endpoints take no query parameters"));
            }
            return Ok(Endpoint::Sqlite(PathBuf::from(path)));
        }
        if endpoint == "memory://" {
            return Ok(Endpoint::Memory);
        }
        let hosts = if let Some(hosts) = endpoint.strip_prefix("etcd://") {
            hosts.split(',').map(str::to_string).collect::<Vec<_>>()
        } else if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
            endpoint.split(',').map(str::to_string).collect()
        } else {
            return Err(invalid(
                "expected sqlite:///path, etcd://host:port[,host:port...] or memory://",
            ));
        };
        if hosts.iter().any(|h| h.trim().is_empty()) {
            return Err(invalid("empty etcd host"));
        }
        for host in &hosts {
            let authority = host
                .split_once("://")
                .map_or(host.as_str(), |(_, rest)| rest);
            let (name, port) = authority
                .rsplit_once(':')
                .ok_or_else(|| invalid("etcd hosts need a port, as in etcd://127.0.0.1:2379"))?;
            if name.is_empty() || port.parse::<u16>().is_err() {
                return Err(invalid(&format!("{host:?} is not host:port")));
            }
        }
        Ok(Endpoint::Etcd(hosts))
    }
}

/// Client certificates for etcd (`--datastore-cafile/-certfile/-keyfile`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EtcdTls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl EtcdTls {
    pub fn is_configured(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some()
    }

    /// The TLS settings for the etcd client, read from the named files.
    pub(crate) fn client_config(&self) -> Result<etcd_client::TlsOptions, String> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        let mut options = etcd_client::TlsOptions::new();
        if let Some(ca) = &self.ca_file {
            options = options.ca_certificate(etcd_client::Certificate::from_pem(read(ca)?));
        }
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                options =
                    options.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
            }
            (None, None) => {}
            _ => return Err("--datastore-certfile and --datastore-keyfile go together".into()),
        }
        Ok(options)
    }
}

/// Everything besides the endpoint that opening a store needs.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Automatic compaction for SQLite (None: never compact automatically).
    pub compaction: Option<CompactionPolicy>,
    pub etcd_tls: EtcdTls,
    /// How long to wait for etcd before giving up.
    pub connect_timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            compaction: Some(CompactionPolicy::default()),
            etcd_tls: EtcdTls::default(),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Opens the backend an endpoint names.
pub async fn open(endpoint: &str, options: &OpenOptions) -> Result<DynStorage, StorageError> {
    Ok(match Endpoint::parse(endpoint)? {
        Endpoint::Memory => Arc::new(MemoryStore::new()),
        Endpoint::Sqlite(path) => {
            let compaction = options.compaction;
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path, compaction))
                .await
                .map_err(|e| StorageError::Backend {
                    backend: "sqlite",
                    message: format!("open task failed: {e}"),
                })??;
            Arc::new(store)
        }
        Endpoint::Etcd(hosts) => {
            Arc::new(EtcdStore::connect(&hosts, &options.etcd_tls, options.connect_timeout).await?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_backend() {
        assert_eq!(
            Endpoint::parse("sqlite:///var/lib/krust/state.db").unwrap(),
            Endpoint::Sqlite(PathBuf::from("/var/lib/krust/state.db"))
        );
        assert_eq!(Endpoint::parse("memory://").unwrap(), Endpoint::Memory);
        assert_eq!(
            Endpoint::parse("etcd://10.0.0.1:2379,10.0.0.2:2379").unwrap(),
            Endpoint::Etcd(vec!["10.0.0.1:2379".into(), "10.0.0.2:2379".into()])
        );
        assert_eq!(
            Endpoint::parse("https://etcd.example:2379").unwrap(),
            Endpoint::Etcd(vec!["https://etcd.example:2379".into()])
        );
    }

    #[test]
    fn refuses_malformed_endpoints_with_the_reason() {
        for (endpoint, reason) in [
            ("sqlite://", "expected sqlite:///path"),
            ("postgres://db", "expected sqlite:///path, etcd://"),
            ("etcd://", "empty etcd host"),
            ("etcd://host", "need a port"),
            ("etcd://host:http", "is not host:port"),
            ("sqlite:///x.db?_journal=WAL", "no query parameters"),
        ] {
            let error = Endpoint::parse(endpoint).unwrap_err().to_string();
            assert!(error.contains(reason), "{endpoint}: {error}");
            assert!(!error.contains('\n'));
        }
    }
}
