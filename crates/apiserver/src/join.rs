//! Node joining on the server side: who may obtain node certificates (`POST /v1-krust/node-credentials`) and issuing them from the cluster CA.

pub use api::join::{
    CACERTS_PATH, NODE_CREDENTIALS_PATH, NODES_GROUP, NodeCredentials, NodeCredentialsRequest,
};

use crate::auth::{TOKEN_USER, UserInfo};
use crate::pki::Pki;
use crate::status::ApiError;

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
