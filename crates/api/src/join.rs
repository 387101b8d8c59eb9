//! The node-joining protocol's wire format, shared by the API server and agents: where an agent reads the cluster CA and gets its node certificates, and the JSON of that exchange.

use serde::{Deserialize, Serialize};

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
