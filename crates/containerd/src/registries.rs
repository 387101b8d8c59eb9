//! k3s-style `registries.yaml` turned into containerd 1.6 `certs.d/HOST/hosts.toml`.
//!
//! ```yaml
//! mirrors:
//!   docker.io:
//!     endpoint: ["http://127.0.0.1:5000"]
//! configs:
//!   "127.0.0.1:5000":
//!     auth: {username: u, password: p}
//!     tls: {ca_file: /ca.pem, cert_file: /c.pem, key_file: /k.pem, insecure_skip_verify: false}
//! ```
//!
//! containerd 1.6's hosts.toml has no place for credentials nor for k3s's
//! `rewrite`: credentials go through the CRI `PullImage` auth instead (see
//! [`Registries::pull_auth`]), and rewrites are parsed but not applied (a
//! warning says so).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;

use crate::config::quote;
use crate::supervisor::write_atomically;

/// The first line of every hosts.toml written here; only directories whose
/// hosts.toml starts with it are ever removed as stale.
const WRITTEN_BY_KRUST: &str = "# Written by krust from registries.yaml; edits are overwritten.";

/// The registry docker.io images are pulled from when no mirror answers.
const DOCKER_HUB_SERVER: &str = "https://registry-1.docker.io";

/// The mirror key that applies to every registry; containerd reads it from
/// `certs.d/_default`.
const ANY_REGISTRY: &str = "*";

/// A parsed `registries.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registries {
    /// Registry host (`docker.io`, `registry.k8s.io`, `*`) → where to pull from instead.
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    /// Registry or mirror host (`host[:port]`) → credentials and TLS.
    #[serde(default)]
    pub configs: BTreeMap<String, RegistryConfig>,
}

/// The endpoints tried, in order, before the registry itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    /// Endpoint URLs (`http://127.0.0.1:5000`); without a scheme, https.
    #[serde(default, rename = "endpoint")]
    pub endpoints: Vec<String>,
    /// k3s's repository rewrites (regex → replacement); containerd 1.6
    /// cannot apply them.
    #[serde(default, rename = "rewrite")]
    pub rewrites: BTreeMap<String, String>,
}

/// How to talk to one registry host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Credentials, passed with each image pull.
    #[serde(default)]
    pub auth: Option<Auth>,
    /// TLS settings, written to hosts.toml.
    #[serde(default)]
    pub tls: Option<Tls>,
}

/// Registry credentials, in the shape of the CRI `AuthConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// User name.
    #[serde(default)]
    pub username: String,
    /// Password.
    #[serde(default)]
    pub password: String,
    /// base64 of `username:password`, the Docker config.json way.
    #[serde(default)]
    pub auth: String,
    /// An OAuth refresh token.
    #[serde(default)]
    pub identity_token: String,
}

/// Client TLS for a registry host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// CA bundle that signs the registry's certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate, with `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Client key, with `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// `registries.yaml` cannot be used; the message is one line naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not YAML, or not the registries.yaml schema.
    #[error("registries.yaml: {0}")]
    Syntax(String),
    /// A value that parses but cannot work.
    #[error("registries.yaml: {key}: {problem}")]
    Invalid {
        /// Where, e.g. `mirrors.docker.io.endpoint[0]`.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// Parses and checks a `registries.yaml`; an empty document means no settings.
pub fn parse(yaml: &str) -> Result<Registries, Error> {
    if yaml.trim().is_empty() {
        return Ok(Registries::default());
    }
    let registries: Option<Registries> = serde_norway::from_str(yaml)
        .map_err(|error| Error::Syntax(error.to_string().replace('\n', " ")))?;
    let registries = registries.unwrap_or_default();
    registries.validate()?;
    Ok(registries)
}

impl Registries {
    /// The credentials configured for exactly this host (`host[:port]`).
    pub fn auth_for(&self, host: &str) -> Option<&Auth> {
        self.configs.get(host)?.auth.as_ref()
    }

    /// The credentials to send with a pull from `registry` (an image
    /// reference's host, `docker.io` for short names): those of the first
    /// mirror endpoint that has any, else the registry's own. containerd 1.6
    /// sends one set of credentials to every host it tries for the pull.
    pub fn pull_auth(&self, registry: &str) -> Option<&Auth> {
        let mirror = self
            .mirrors
            .get(registry)
            .or_else(|| self.mirrors.get(ANY_REGISTRY));
        mirror
            .into_iter()
            .flat_map(|mirror| &mirror.endpoints)
            .filter_map(|endpoint| Endpoint::parse(endpoint).ok())
            .find_map(|endpoint| self.auth_for(&endpoint.host))
            .or_else(|| self.auth_for(registry))
    }

    fn validate(&self) -> Result<(), Error> {
        for (registry, mirror) in &self.mirrors {
            check_host(&format!("mirrors.{registry}"), registry, true)?;
            for (index, endpoint) in mirror.endpoints.iter().enumerate() {
                Endpoint::parse(endpoint).map_err(|problem| Error::Invalid {
                    key: format!("mirrors.{registry}.endpoint[{index}]"),
                    problem,
                })?;
            }
        }
        for (host, config) in &self.configs {
            check_host(&format!("configs.{host}"), host, false)?;
            if let Some(tls) = &config.tls
                && tls.cert_file.is_some() != tls.key_file.is_some()
            {
                return Err(Error::Invalid {
                    key: format!("configs.{host}.tls"),
                    problem: "cert_file and key_file go together".to_string(),
                });
            }
        }
        Ok(())
    }

    /// The hosts.toml for each registry directory, keyed by directory name.
    fn hosts_files(&self) -> BTreeMap<String, String> {
        let tls_only_hosts = self
            .configs
            .iter()
            .filter(|(_, config)| config.tls.is_some())
            .map(|(host, _)| host);
        let registries: BTreeSet<&String> = self.mirrors.keys().chain(tls_only_hosts).collect();
        registries
            .into_iter()
            .map(|registry| {
                let directory = if registry == ANY_REGISTRY {
                    "_default".to_string()
                } else {
                    registry.clone()
                };
                (directory, self.hosts_toml(registry))
            })
            .collect()
    }

    fn hosts_toml(&self, registry: &str) -> String {
        let mut toml = format!("{WRITTEN_BY_KRUST}\n");
        // Without `server`, containerd falls back to each pulled registry's
        // own upstream: what the `*` mirror needs.
        if registry != ANY_REGISTRY {
            let server = if registry == "docker.io" {
                DOCKER_HUB_SERVER.to_string()
            } else {
                format!("https://{registry}")
            };
            toml.push_str(&format!("server = {}\n", quote(&server)));
            self.push_tls(&mut toml, registry, "");
        }
        let endpoints = self
            .mirrors
            .get(registry)
            .map(|mirror| mirror.endpoints.as_slice())
            .unwrap_or_default();
        for endpoint in endpoints
            .iter()
            .filter_map(|text| Endpoint::parse(text).ok())
        {
            toml.push_str(&format!("\n[host.{}]\n", quote(&endpoint.url)));
            toml.push_str("  capabilities = [\"pull\", \"resolve\"]\n");
            self.push_tls(&mut toml, &endpoint.host, "  ");
        }
        toml
    }

    fn push_tls(&self, toml: &mut String, host: &str, indent: &str) {
        let Some(tls) = self
            .configs
            .get(host)
            .and_then(|config| config.tls.as_ref())
        else {
            return;
        };
        let path = |path: &Path| quote(&path.to_string_lossy());
        if tls.insecure_skip_verify {
            toml.push_str(&format!("{indent}skip_verify = true\n"));
        }
        if let Some(ca_file) = &tls.ca_file {
            toml.push_str(&format!("{indent}ca = {}\n", path(ca_file)));
        }
        if let (Some(cert_file), Some(key_file)) = (&tls.cert_file, &tls.key_file) {
            toml.push_str(&format!(
                "{indent}client = [[{}, {}]]\n",
                path(cert_file),
                path(key_file)
            ));
        }
    }
}

/// Writes one `HOST/hosts.toml` per mirrored (or TLS-configured) registry
/// under `certs_d`, and removes the directories an earlier registries.yaml
/// produced that this one no longer has. containerd re-reads these files at
/// every pull, so no restart is needed.
pub fn write_hosts_dirs(registries: &Registries, certs_d: &Path) -> anyhow::Result<()> {
    for (registry, mirror) in &registries.mirrors {
        if !mirror.rewrites.is_empty() {
            tracing::warn!(
                registry,
                "registries.yaml rewrite rules are ignored: containerd 1.6 cannot rewrite repositories"
            );
        }
    }
    std::fs::create_dir_all(certs_d).with_context(|| format!("creating {}", certs_d.display()))?;
    let hosts_files = registries.hosts_files();
    for (directory, contents) in &hosts_files {
        let dir = certs_d.join(directory);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        write_atomically(&dir.join("hosts.toml"), contents.as_bytes())?;
    }
    for entry in std::fs::read_dir(certs_d)
        .with_context(|| format!("reading {}", certs_d.display()))?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = !hosts_files.contains_key(&name)
            && std::fs::read_to_string(entry.path().join("hosts.toml"))
                .is_ok_and(|contents| contents.starts_with(WRITTEN_BY_KRUST));
        if stale {
            std::fs::remove_dir_all(entry.path())
                .with_context(|| format!("removing stale {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// A mirror endpoint: the URL for hosts.toml and the `host[:port]` that
/// `configs` are keyed by.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    url: String,
    host: String,
}

impl Endpoint {
    fn parse(text: &str) -> Result<Endpoint, String> {
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) => (scheme, rest),
            None => ("https", text),
        };
        if scheme != "http" && scheme != "https" {
            return Err(format!(
                "unsupported scheme {scheme:?} in {text:?}; use http or https"
            ));
        }
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if host.is_empty() || host.contains(char::is_whitespace) || host.contains('@') {
            return Err(format!("{text:?} has no valid host"));
        }
        Ok(Endpoint {
            url: format!("{scheme}://{}", rest.trim_end_matches('/')),
            host: host.to_string(),
        })
    }
}

/// A registry key becomes a directory name: no path separators, no dot names.
fn check_host(key: &str, host: &str, wildcard_allowed: bool) -> Result<(), Error> {
    let valid = (wildcard_allowed && host == ANY_REGISTRY)
        || (!host.is_empty()
            && host != "."
            && host != ".."
            && host != "_default"
            && !host.contains(['/', '\\', '*'])
            && !host.contains(char::is_whitespace));
    if valid {
        Ok(())
    } else {
        Err(Error::Invalid {
            key: key.to_string(),
            problem: format!("{host:?} is not a registry host[:port]"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_mirrored_to_a_local_plain_http_registry() {
        let registries = parse(
            r#"
mirrors:
  docker.io:
    endpoint:
      - "http://127.0.0.1:5000"
"#,
        )
        .unwrap();
        assert_eq!(
            registries.hosts_files(),
            BTreeMap::from([(
                "docker.io".to_string(),
                format!(
                    "{WRITTEN_BY_KRUST}\n\
                     server = \"https://registry-1.docker.io\"\n\
                     \n\
                     [host.\"http://127.0.0.1:5000\"]\n  \
                     capabilities = [\"pull\", \"resolve\"]\n"
                )
            )])
        );
    }

    #[test]
    fn tls_settings_of_endpoints_and_of_the_registry_itself() {
        let registries = parse(
            r#"
mirrors:
  registry.example.com:
    endpoint: ["mirror.example.com:8443/v2/", "https://second.example.com"]
configs:
  mirror.example.com:8443:
    tls:
      ca_file: /etc/ssl/mirror-ca.pem
      cert_file: /etc/ssl/client.pem
      key_file: /etc/ssl/client-key.pem
  second.example.com:
    tls:
      insecure_skip_verify: true
  registry.example.com:
    tls:
      ca_file: /etc/ssl/upstream-ca.pem
  private.example.com:
    tls:
      insecure_skip_verify: true
"#,
        )
        .unwrap();
        let files = registries.hosts_files();
        // A TLS config also applies when an image names that host directly.
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            [
                "mirror.example.com:8443",
                "private.example.com",
                "registry.example.com",
                "second.example.com"
            ]
        );
        assert_eq!(
            files["mirror.example.com:8443"],
            format!(
                "{WRITTEN_BY_KRUST}\n\
                 server = \"https://mirror.example.com:8443\"\n\
                 ca = \"/etc/ssl/mirror-ca.pem\"\n\
                 client = [[\"/etc/ssl/client.pem\", \"/etc/ssl/client-key.pem\"]]\n"
            )
        );
        assert_eq!(
            files["registry.example.com"],
            format!(
                "{WRITTEN_BY_KRUST}\n\
                 server = \"https://registry.example.com\"\n\
                 ca = \"/etc/ssl/upstream-ca.pem\"\n\
                 \n\
                 [host.\"https://mirror.example.com:8443/v2\"]\n  \
                 capabilities = [\"pull\", \"resolve\"]\n  \
                 ca = \"/etc/ssl/mirror-ca.pem\"\n  \
                 client = [[\"/etc/ssl/client.pem\", \"/etc/ssl/client-key.pem\"]]\n\
                 \n\
                 [host.\"https://second.example.com\"]\n  \
                 capabilities = [\"pull\", \"resolve\"]\n  \
                 skip_verify = true\n"
            )
        );
        assert_eq!(
            files["private.example.com"],
            format!(
                "{WRITTEN_BY_KRUST}\n\
                 server = \"https://private.example.com\"\n\
                 skip_verify = true\n"
            )
        );
    }

    #[test]
    fn the_wildcard_mirror_is_containerds_default_directory() {
        let registries =
            parse("mirrors:\n  \"*\":\n    endpoint: [\"http://10.0.0.1:5000\"]\n").unwrap();
        let files = registries.hosts_files();
        assert!(!files["_default"].contains("server"));
        assert!(files["_default"].contains("[host.\"http://10.0.0.1:5000\"]"));
    }

    #[test]
    fn credentials_for_a_pull_come_from_the_mirror_endpoint_first() {
        let registries = parse(
            r#"
mirrors:
  docker.io:
    endpoint: ["http://127.0.0.1:5000"]
configs:
  "127.0.0.1:5000":
    auth: {username: mirror-user, password: mirror-pass}
  quay.io:
    auth: {auth: dXNlcjpwYXNz}
"#,
        )
        .unwrap();
        assert_eq!(
            registries.pull_auth("docker.io").unwrap().username,
            "mirror-user"
        );
        assert_eq!(
            registries.pull_auth("quay.io").unwrap().auth,
            "dXNlcjpwYXNz"
        );
        assert_eq!(registries.pull_auth("registry.k8s.io"), None);
        assert_eq!(
            registries.auth_for("127.0.0.1:5000").unwrap().password,
            "mirror-pass"
        );
        assert_eq!(registries.auth_for("docker.io"), None);
    }

    #[test]
    fn empty_documents_mean_no_registries() {
        assert_eq!(parse(""), Ok(Registries::default()));
        assert_eq!(parse("# nothing\n"), Ok(Registries::default()));
        assert_eq!(parse("mirrors: {}\n"), Ok(Registries::default()));
    }

    #[test]
    fn errors_are_one_line_and_name_the_key() {
        let cases = [
            ("mirrors:\n  docker.io:\n    endpoints: [x]\n", "endpoints"),
            ("mirrors: [\n", "registries.yaml"),
            (
                "configs:\n  h:\n    tls:\n      insecure_skip_verify: maybe\n",
                "insecure_skip_verify",
            ),
            (
                "mirrors:\n  docker.io:\n    endpoint: [\"ftp://x\"]\n",
                "mirrors.docker.io.endpoint[0]",
            ),
            (
                "mirrors:\n  docker.io:\n    endpoint: [\"http://\"]\n",
                "mirrors.docker.io.endpoint[0]",
            ),
            (
                "configs:\n  h:\n    tls: {cert_file: /c.pem}\n",
                "configs.h.tls",
            ),
            ("mirrors:\n  ../etc:\n    endpoint: []\n", "mirrors.../etc"),
            ("configs:\n  \"*\": {}\n", "configs.*"),
        ];
        for (yaml, key) in cases {
            let message = parse(yaml).unwrap_err().to_string();
            assert!(!message.contains('\n'), "{message:?}");
            assert!(message.contains(key), "{message:?} should name {key}");
        }
    }

    #[test]
    fn stale_directories_go_and_foreign_ones_stay() {
        let certs_d = tempfile::tempdir().unwrap();
        let first = parse(
            "mirrors:\n  docker.io:\n    endpoint: [\"http://127.0.0.1:5000\"]\n  quay.io:\n    endpoint: [\"http://127.0.0.1:5001\"]\n",
        )
        .unwrap();
        write_hosts_dirs(&first, certs_d.path()).unwrap();
        let foreign = certs_d.path().join("ghcr.io");
        std::fs::create_dir(&foreign).unwrap();
        std::fs::write(foreign.join("hosts.toml"), "server = \"https://ghcr.io\"\n").unwrap();

        let second =
            parse("mirrors:\n  docker.io:\n    endpoint: [\"http://127.0.0.1:6000\"]\n").unwrap();
        write_hosts_dirs(&second, certs_d.path()).unwrap();

        let mut left: Vec<String> = std::fs::read_dir(certs_d.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["docker.io", "ghcr.io"]);
        let docker = std::fs::read_to_string(certs_d.path().join("docker.io/hosts.toml")).unwrap();
        assert!(docker.contains("http://127.0.0.1:6000"), "{docker}");
    }
}
