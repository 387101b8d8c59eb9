//! Credentials for an image pull, as kubelet chooses them: the pod's imagePullSecrets (dockerconfigjson or dockercfg) matching the image's registry first, then registries.yaml's `configs` for that registry or its mirror.

use std::collections::BTreeMap;

use base64::Engine as _;
use cri::api;
use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;

/// The registry host of an image reference, with Docker Hub's defaults
/// (`busybox` and `library/busybox` are on `docker.io`).
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
}

/// A registry key of a Docker config (`https://index.docker.io/v1/`,
/// `http://127.0.0.1:5000`, `registry.example`) as a bare host.
fn normalize_registry(key: &str) -> &str {
    let host = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        other => other,
    }
}

#[derive(Deserialize, Default)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(Deserialize, Default, Clone)]
struct DockerAuth {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    auth: String,
    #[serde(default, rename = "identitytoken")]
    identity_token: String,
}

/// The credentials for `registry` in the pull secrets, in their order.
/// No server address is set: containerd 1.6 parses it as a URL and drops
/// credentials whose address is a bare `host:port`.
pub fn from_pull_secrets(secrets: &[Secret], registry: &str) -> Option<api::AuthConfig> {
    for secret in secrets {
        let data = secret.data.as_ref()?;
        let config: DockerConfig = if let Some(json) = data.get(".dockerconfigjson") {
            serde_json::from_slice(&json.0).unwrap_or_default()
        } else if let Some(json) = data.get(".dockercfg") {
            DockerConfig {
                auths: serde_json::from_slice(&json.0).unwrap_or_default(),
            }
        } else {
            continue;
        };
        if let Some(auth) = config
            .auths
            .iter()
            .find(|(key, _)| normalize_registry(key) == registry)
            .map(|(_, auth)| auth.clone())
        {
            let (mut username, mut password) = (auth.username, auth.password);
            if username.is_empty()
                && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(&auth.auth)
                && let Some((user, pass)) = String::from_utf8_lossy(&decoded).split_once(':')
            {
                username = user.to_string();
                password = pass.to_string();
            }
            return Some(api::AuthConfig {
                username,
                password,
                auth: auth.auth,
                identity_token: auth.identity_token,
                ..Default::default()
            });
        }
    }
    None
}

/// The credentials registries.yaml gives for `registry` (or its mirror).
pub fn from_registries(
    registries: &containerd::registries::Registries,
    registry: &str,
) -> Option<api::AuthConfig> {
    let auth = registries.pull_auth(registry)?;
    Some(api::AuthConfig {
        username: auth.username.clone(),
        password: auth.password.clone(),
        auth: auth.auth.clone(),
        identity_token: auth.identity_token.clone(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn registries_follow_docker_defaults() {
        assert_eq!(registry_of("busybox"), "docker.io");
        assert_eq!(registry_of("library/busybox:1"), "docker.io");
        assert_eq!(registry_of("127.0.0.1:5000/app:v1"), "127.0.0.1:5000");
        assert_eq!(registry_of("registry.k8s.io/pause:3.10"), "registry.k8s.io");
        assert_eq!(registry_of("localhost/app"), "localhost");
    }

    fn secret(kind: &str, key: &str, config: serde_json::Value) -> Secret {
        let encoded = base64::engine::general_purpose::STANDARD.encode(config.to_string());
        serde_json::from_value(json!({"type": kind, "data": {key: encoded}})).unwrap()
    }

    #[test]
    fn pull_secrets_match_by_registry_host() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let secrets = [
            secret(
                "kubernetes.io/dockerconfigjson",
                ".dockerconfigjson",
                json!({"auths": {"http://127.0.0.1:5000": {"auth": auth}}}),
            ),
            secret(
                "kubernetes.io/dockercfg",
                ".dockercfg",
                json!({"https://index.docker.io/v1/": {"username": "bob", "password": "pw"}}),
            ),
        ];
        let local = from_pull_secrets(&secrets, "127.0.0.1:5000").unwrap();
        assert_eq!(
            (local.username.as_str(), local.password.as_str()),
            ("alice", "s3cret")
        );
        let hub = from_pull_secrets(&secrets, "docker.io").unwrap();
        assert_eq!(hub.username, "bob");
        assert!(from_pull_secrets(&secrets, "quay.io").is_none());
    }
}
