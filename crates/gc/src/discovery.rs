//! API discovery as upstream's `ServerPreferredResources`: every served resource at its group's preferred version, tolerating groups that fail.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIGroupList, APIResourceList, APIVersions};
use kube::Client;
use kube::api::ApiResource;

/// One served resource (no subresources) with what discovery says of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveredResource {
    pub api_resource: ApiResource,
    pub namespaced: bool,
    pub verbs: Vec<String>,
}

impl DiscoveredResource {
    pub fn supports(&self, verbs: &[&str]) -> bool {
        verbs
            .iter()
            .all(|verb| self.verbs.iter().any(|v| v == verb))
    }

    /// `group/version, Resource=plural`, as Go prints a GroupVersionResource.
    pub fn gvr_string(&self) -> String {
        let ar = &self.api_resource;
        format!("{}/{}, Resource={}", ar.group, ar.version, ar.plural)
    }
}

/// The group versions whose resource lists could not be read, like client-go's
/// `ErrGroupDiscoveryFailed`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupDiscoveryFailed {
    /// `group/version` (or `v1`) → the error's text.
    pub groups: BTreeMap<String, String>,
}

impl std::fmt::Display for GroupDiscoveryFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let groups: Vec<String> = self
            .groups
            .iter()
            .map(|(gv, error)| format!("{gv}: {error}"))
            .collect();
        write!(
            f,
            "unable to retrieve the complete list of server APIs: {}",
            groups.join(", ")
        )
    }
}

impl std::error::Error for GroupDiscoveryFailed {}

/// Why discovery produced nothing or only part of the resources.
#[derive(Debug)]
pub enum DiscoveryError {
    /// `/api` or `/apis` itself failed: nothing is known.
    Unavailable(kube::Error),
    /// Some group versions failed; the others were discovered.
    Partial(GroupDiscoveryFailed),
}

impl std::fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiscoveryError::Unavailable(error) => write!(f, "{error}"),
            DiscoveryError::Partial(failed) => write!(f, "{failed}"),
        }
    }
}

impl std::error::Error for DiscoveryError {}

async fn get_json<T: serde::de::DeserializeOwned>(
    client: &Client,
    path: &str,
) -> Result<T, kube::Error> {
    let request = http::Request::get(path)
        .body(Vec::new())
        .map_err(kube::Error::HttpError)?;
    client.request::<T>(request).await
}

/// Every served resource at its preferred version (resources only served
/// at other versions of a group are taken from the first version that has
/// them), with the group versions that failed.
pub async fn server_preferred_resources(
    client: &Client,
) -> (Vec<DiscoveredResource>, Option<DiscoveryError>) {
    let mut lists: Vec<(String, Vec<String>)> = Vec::new();
    match get_json::<APIVersions>(client, "/api").await {
        Ok(core) => lists.push((String::new(), core.versions)),
        Err(error) => return (Vec::new(), Some(DiscoveryError::Unavailable(error))),
    }
    match get_json::<APIGroupList>(client, "/apis").await {
        Ok(groups) => {
            for group in groups.groups {
                let mut versions: Vec<String> = Vec::new();
                if let Some(preferred) = &group.preferred_version {
                    versions.push(preferred.version.clone());
                }
                for version in group.versions {
                    if !versions.contains(&version.version) {
                        versions.push(version.version);
                    }
                }
                lists.push((group.name, versions));
            }
        }
        Err(error) => return (Vec::new(), Some(DiscoveryError::Unavailable(error))),
    }
    let mut resources = Vec::new();
    let mut failed = GroupDiscoveryFailed::default();
    for (group, versions) in lists {
        let mut seen: HashSet<String> = HashSet::new();
        for version in versions {
            let (path, group_version) = if group.is_empty() {
                (format!("/api/{version}"), version.clone())
            } else {
                (
                    format!("/apis/{group}/{version}"),
                    format!("{group}/{version}"),
                )
            };
            let list = match get_json::<APIResourceList>(client, &path).await {
                Ok(list) => list,
                Err(error) => {
                    failed.groups.insert(group_version, error.to_string());
                    continue;
                }
            };
            for resource in list.resources {
                if resource.name.contains('/') || !seen.insert(resource.name.clone()) {
                    continue;
                }
                let api_resource = ApiResource {
                    group: group.clone(),
                    version: version.clone(),
                    api_version: group_version.clone(),
                    kind: resource.kind.clone(),
                    plural: resource.name.clone(),
                };
                resources.push(DiscoveredResource {
                    api_resource,
                    namespaced: resource.namespaced,
                    verbs: resource.verbs,
                });
            }
        }
    }
    let error = (!failed.groups.is_empty()).then_some(DiscoveryError::Partial(failed));
    (resources, error)
}

/// Finds the resource of an `apiVersion` and `kind`, as in owner references.
#[derive(Clone, Debug, Default)]
pub struct ResourceMap {
    by_group_kind: BTreeMap<(String, String), DiscoveredResource>,
}

/// The group of an `apiVersion` (`apps/v1` → `apps`, `v1` → ``).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

impl ResourceMap {
    pub fn new(resources: &[DiscoveredResource]) -> ResourceMap {
        let mut by_group_kind = BTreeMap::new();
        for resource in resources {
            let ar = &resource.api_resource;
            by_group_kind
                .entry((ar.group.clone(), ar.kind.clone()))
                .or_insert_with(|| resource.clone());
        }
        ResourceMap { by_group_kind }
    }

    /// The resource serving `kind` in `api_version`'s group, addressed at
    /// `api_version` itself (any served version of a kind names the same
    /// objects).
    pub fn lookup(&self, api_version: &str, kind: &str) -> Option<DiscoveredResource> {
        let group = group_of(api_version);
        let mut found = self
            .by_group_kind
            .get(&(group.to_string(), kind.to_string()))?
            .clone();
        if let Some((_, version)) = api_version.rsplit_once('/').or(Some(("", api_version))) {
            found.api_resource.version = version.to_string();
            found.api_resource.api_version = api_version.to_string();
        }
        Some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(group: &str, version: &str, kind: &str, plural: &str) -> DiscoveredResource {
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        DiscoveredResource {
            api_resource: ApiResource {
                group: group.into(),
                version: version.into(),
                api_version,
                kind: kind.into(),
                plural: plural.into(),
            },
            namespaced: true,
            verbs: vec!["list".into(), "delete".into()],
        }
    }

    #[test]
    fn owner_references_find_their_resource_at_the_version_they_name() {
        let map = ResourceMap::new(&[
            resource("apps", "v1", "ReplicaSet", "replicasets"),
            resource("", "v1", "ConfigMap", "configmaps"),
        ]);
        let rs = map.lookup("apps/v1beta2", "ReplicaSet").unwrap();
        assert_eq!(rs.api_resource.plural, "replicasets");
        assert_eq!(rs.api_resource.api_version, "apps/v1beta2");
        assert_eq!(
            map.lookup("v1", "ConfigMap")
                .unwrap()
                .api_resource
                .api_version,
            "v1"
        );
        assert!(map.lookup("v1", "Widget").is_none());
        assert!(map.lookup("extensions/v1beta1", "ConfigMap").is_none());
    }

    #[test]
    fn group_failures_print_like_client_go() {
        let mut failed = GroupDiscoveryFailed::default();
        failed.groups.insert(
            "metrics.k8s.io/v1beta1".into(),
            "the server is currently unable to handle the request".into(),
        );
        assert_eq!(
            failed.to_string(),
            "unable to retrieve the complete list of server APIs: metrics.k8s.io/v1beta1: the server is currently unable to handle the request"
        );
        let pods = resource("", "v1", "Pod", "pods");
        assert_eq!(pods.gvr_string(), "/v1, Resource=pods");
        assert!(pods.supports(&["delete"]));
        assert!(!pods.supports(&["delete", "watch"]));
    }
}
