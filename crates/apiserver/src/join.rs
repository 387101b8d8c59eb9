//! Node joining: the cluster CA for agents (`GET /cacerts`, as k3s serves it) and, for a holder of a server token, a node's client and serving certificates (`POST /v1-krust/node-credentials`).

use serde::{Deserialize, Serialize};

use crate::auth::{TOKEN_USER, UserInfo};
use crate::pki::Pki;
use crate::status::ApiError;

/// Served without authentication: an agent reads the CA before it holds
/// any credential, like k3s's `/cacerts`.
pub const CACERTS_PATH: &str = "/cacerts";
/// Where an agent holding a server token gets its node certificates.
pub const NODE_CREDENTIALS_PATH: &str = "/v1-krust/node-credentials";
/// The group every node's client certificate names (upstream's Node authorizer reads it).
pub const NODES_GROUP: &str = "system:nodes";

/// What an agent asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCredentialsRequest {
    /// The Node's name; the client certificate names `system:node:NAME`.
    pub node_name: String,
    /// Names and IPs the kubelet's serving certificate must carry besides
    /// the node name.
    #[serde(default)]
    pub addresses: Vec<String>,
}

/// What the agent gets back, all PEM.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCredentials {
    pub ca_certificate: String,
    pub client_certificate: String,
    pub client_key: String,
    pub serving_certificate: String,
    pub serving_key: String,
}

/// Whether `user` may obtain node credentials: a server token's holder or
/// a cluster admin (k3s lets the server token join agents the same way).
pub fn may_join(user: &UserInfo) -> bool {
    user.name == TOKEN_USER || user.groups.iter().any(|group| group == "system:masters")
}

/// Issues the credentials of node `request.node_name`.
pub fn issue_node_credentials(
    pki: &Pki,
    request: &NodeCredentialsRequest,
) -> Result<NodeCredentials, ApiError> {
    let name = request.node_name.as_str();
    if let Some(problem) = api::validation::is_dns1123_subdomain(name).first() {
        return Err(ApiError::bad_request(format!(
            "invalid node name {name:?}: {problem}"
        )));
    }
    let user = format!("system:node:{name}");
    let (client_certificate, client_key) = pki
        .issue_client_certificate(&user, &[NODES_GROUP])
        .map_err(|error| ApiError::internal(error.to_string()))?;
    let mut sans = vec![name.to_string()];
    sans.extend(request.addresses.iter().cloned());
    sans.sort();
    sans.dedup();
    let (serving_certificate, serving_key) = pki
        .issue_serving_certificate(name, &sans)
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    Ok(NodeCredentials {
        ca_certificate: pki.ca_certificate_pem().to_string(),
        client_certificate,
        client_key,
        serving_certificate,
        serving_key,
    })
}
