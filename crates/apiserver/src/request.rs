//! What a resource request addresses (resource, namespace, name, subresource), its query options, and the media types it asks for.

use std::collections::HashMap;

use api::resources::{self, Resource};

use crate::status::ApiError;

/// The object or collection a URL names.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub resource: &'static Resource,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Parses `/api/v1/...` and `/apis/GROUP/VERSION/...` resource paths.
/// Returns Ok(None) for paths that are not resource paths (discovery).
pub fn parse_target(path: &str) -> Result<Option<Target>, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
        _ => return Ok(None),
    };
    let not_found = || ApiError {
        code: 404,
        reason: "NotFound",
        message: "the server could not find the requested resource".into(),
        details: None,
    };
    let lookup = |plural: &str| resources::find(group, version, plural).ok_or_else(not_found);
    let decode = |segment: &str| percent_decode(segment);
    let target = match rest {
        [plural] => Target {
            resource: lookup(plural)?,
            namespace: None,
            name: None,
            subresource: None,
        },
        ["namespaces", namespace, sub] if matches!(*sub, "status" | "finalize") => Target {
            resource: lookup("namespaces")?,
            namespace: None,
            name: Some(decode(namespace)),
            subresource: Some((*sub).to_string()),
        },
        ["namespaces", namespace, plural, tail @ ..] if tail.len() <= 2 => {
            let resource = lookup(plural)?;
            if !resource.namespaced {
                return Err(not_found());
            }
            Target {
                resource,
                namespace: Some(decode(namespace)),
                name: tail.first().map(|n| decode(n)),
                subresource: tail.get(1).map(|s| (*s).to_string()),
            }
        }
        [plural, name, tail @ ..] if tail.len() <= 1 => Target {
            resource: lookup(plural)?,
            namespace: None,
            name: Some(decode(name)),
            subresource: tail.first().map(|s| (*s).to_string()),
        },
        _ => return Err(not_found()),
    };
    if let Some(sub) = &target.subresource
        && !target.resource.has_subresource(sub)
    {
        return Err(not_found());
    }
    Ok(Some(target))
}

fn percent_decode(segment: &str) -> String {
    form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_else(|| segment.to_string())
}

/// Query parameters; repeated keys keep the last value, as upstream's decoder does.
pub fn query(raw: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// How the client wants a GET or LIST rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rendering {
    Object,
    Table,
    PartialMetadata,
}

/// Reads the Accept header: the first acceptable offer wins.
pub fn rendering(accept: &str) -> Result<Rendering, ApiError> {
    if accept.trim().is_empty() {
        return Ok(Rendering::Object);
    }
    for offer in accept.split(',') {
        let offer = offer.replace(' ', "");
        let media = offer.split(';').next().unwrap_or("");
        let is_json = matches!(
            media,
            "application/json" | "*/*" | "application/*" | "application/yaml"
        );
        if !is_json {
            continue;
        }
        if offer.contains("as=Table") {
            if offer.contains("g=meta.k8s.io") {
                return Ok(Rendering::Table);
            }
            continue;
        }
        if offer.contains("as=PartialObjectMetadata") {
            return Ok(Rendering::PartialMetadata);
        }
        if offer.contains("as=") {
            continue;
        }
        return Ok(Rendering::Object);
    }
    Err(ApiError::not_acceptable(
        "only the following media types are accepted: application/json, application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> (String, Option<String>, Option<String>, Option<String>) {
        let t = parse_target(path).unwrap().unwrap();
        (
            t.resource.plural.to_string(),
            t.namespace,
            t.name,
            t.subresource,
        )
    }

    #[test]
    fn resource_paths_name_their_target() {
        assert_eq!(target("/api/v1/pods"), ("pods".into(), None, None, None));
        assert_eq!(
            target("/api/v1/namespaces/default/pods/web/status"),
            (
                "pods".into(),
                Some("default".into()),
                Some("web".into()),
                Some("status".into())
            )
        );
        assert_eq!(
            target("/api/v1/namespaces/kube-system"),
            ("namespaces".into(), None, Some("kube-system".into()), None)
        );
        assert_eq!(
            target("/api/v1/namespaces/kube-system/finalize"),
            (
                "namespaces".into(),
                None,
                Some("kube-system".into()),
                Some("finalize".into())
            )
        );
        assert_eq!(
            target("/apis/apps/v1/namespaces/a/deployments"),
            ("deployments".into(), Some("a".into()), None, None)
        );
        assert_eq!(parse_target("/apis/apps/v1").unwrap(), None);
        assert_eq!(parse_target("/api/v1/widgets").unwrap_err().code, 404);
        assert_eq!(
            parse_target("/api/v1/namespaces/a/pods/p/nonsense")
                .unwrap_err()
                .code,
            404
        );
        assert_eq!(
            parse_target("/api/v1/namespaces/a/nodes").unwrap_err().code,
            404
        );
    }

    #[test]
    fn accept_headers_choose_the_rendering() {
        let kubectl_get = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(rendering(kubectl_get).unwrap(), Rendering::Table);
        assert_eq!(rendering("application/json").unwrap(), Rendering::Object);
        assert_eq!(rendering("").unwrap(), Rendering::Object);
        assert_eq!(
            rendering("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io").unwrap(),
            Rendering::PartialMetadata
        );
        assert_eq!(
            rendering("application/vnd.kubernetes.protobuf")
                .unwrap_err()
                .code,
            406
        );
        assert_eq!(
            rendering("application/vnd.kubernetes.protobuf,application/json").unwrap(),
            Rendering::Object
        );
    }
}
