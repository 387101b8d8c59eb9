//! A container's environment as the kubelet builds it: `$(VAR)` expansion, downward-API fields and resources, ConfigMap and Secret keys and envFrom, with lookups passed in so this stays pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, ObjectFieldSelector, Pod, ResourceFieldSelector};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use crate::quantity::Quantity;
use crate::resources::{self, CPU, EPHEMERAL_STORAGE, MEMORY};
use crate::spec;

/// Replaces `$(NAME)` with `lookup(NAME)`; `$$` stands for a literal `$`,
/// and a reference that cannot be resolved (or is not closed) stays as
/// written, exactly like upstream's expansion.
pub fn expand(input: &str, mut lookup: impl FnMut(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut expanded = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            expanded.push_str(&input[checkpoint..cursor]);
            match bytes[cursor + 1] {
                b'$' => {
                    expanded.push('$');
                    cursor += 1;
                }
                b'(' => match input[cursor + 2..].find(')') {
                    Some(name_len) => {
                        let name = &input[cursor + 2..cursor + 2 + name_len];
                        match lookup(name) {
                            Some(value) => expanded.push_str(&value),
                            None => {
                                expanded.push_str("$(");
                                expanded.push_str(name);
                                expanded.push(')');
                            }
                        }
                        cursor += name_len + 2;
                    }
                    None => {
                        expanded.push_str("$(");
                        cursor += 1;
                    }
                },
                // A lone operator: kept, and the character after it is
                // copied with the rest of the text.
                _ => expanded.push('$'),
            }
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    expanded.push_str(&input[checkpoint..]);
    expanded
}

/// Expansion against a set of variables.
pub fn expand_with(input: &str, variables: &BTreeMap<String, String>) -> String {
    expand(input, |name| variables.get(name).cloned())
}

/// The container's command and args with `$(VAR)` taken from its resolved
/// environment.
pub fn expand_command_and_args(
    container: &Container,
    env: &[EnvValue],
) -> (Vec<String>, Vec<String>) {
    let variables: BTreeMap<String, String> = env
        .iter()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect();
    let expand_all = |list: Option<&Vec<String>>| {
        list.map(|items| {
            items
                .iter()
                .map(|item| expand_with(item, &variables))
                .collect()
        })
        .unwrap_or_default()
    };
    (
        expand_all(container.command.as_ref()),
        expand_all(container.args.as_ref()),
    )
}

/// Read access to the ConfigMaps and Secrets of the pod's namespace.
/// `Ok(None)` means the object does not exist; `Err` is any other failure
/// and its text is reported as is.
pub trait ObjectSource {
    fn config_map_data(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, String>;
    fn secret_data(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, String>;
}

/// An [`ObjectSource`] over objects held in memory.
#[derive(Clone, Debug, Default)]
pub struct StaticObjects {
    pub config_maps: BTreeMap<(String, String), BTreeMap<String, String>>,
    pub secrets: BTreeMap<(String, String), BTreeMap<String, Vec<u8>>>,
}

impl ObjectSource for StaticObjects {
    fn config_map_data(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, String> {
        Ok(self
            .config_maps
            .get(&(namespace.to_string(), name.to_string()))
            .cloned())
    }

    fn secret_data(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        Ok(self
            .secrets
            .get(&(namespace.to_string(), name.to_string()))
            .cloned())
    }
}

/// What the environment of a container depends on besides the pod.
pub struct EnvContext<'a> {
    /// The pod's IPs as the sandbox reports them.
    pub pod_ips: &'a [String],
    /// The node's IPs, primary first.
    pub host_ips: &'a [String],
    /// Stands in for missing limits in resourceFieldRef.
    pub node_allocatable: &'a BTreeMap<String, ApiQuantity>,
    pub objects: &'a dyn ObjectSource,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvValue {
    pub name: String,
    pub value: String,
}

/// envFrom keys left out because they cannot be variable names; the shell
/// reports them in an InvalidEnvironmentVariableNames event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedKeys {
    /// "configMap" or "secret".
    pub source_kind: &'static str,
    pub source_name: String,
    /// Sorted, prefix included.
    pub keys: Vec<String>,
}

impl SkippedKeys {
    pub fn event_message(&self, namespace: &str) -> String {
        format!(
            "Keys [{}] from the EnvFrom {} {}/{} were skipped since they are considered invalid environment variable names.",
            self.keys.join(", "),
            self.source_kind,
            namespace,
            self.source_name
        )
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvedEnv {
    /// Sorted by name, one value per name (env overrides envFrom).
    pub vars: Vec<EnvValue>,
    pub skipped: Vec<SkippedKeys>,
}

/// Why a container's environment cannot be built; the texts are upstream's
/// and end up in the CreateContainerConfigError waiting message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyMissing {
        key: String,
        namespace: String,
        name: String,
    },
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyMissing {
        key: String,
        namespace: String,
        name: String,
    },
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    #[error("{0}")]
    Lookup(String),
    #[error("unsupported pod version: {0}")]
    UnsupportedVersion(String),
    #[error("field label not supported: {0}")]
    FieldLabelNotSupported(String),
    #[error("field label does not support subscript: {0}")]
    FieldLabelNoSubscript(String),
    #[error("invalid key subscript in {field_path}: {reason}")]
    InvalidSubscript { field_path: String, reason: String },
    #[error("unsupported fieldPath: {0}")]
    UnsupportedFieldPath(String),
    #[error("unsupported container resource : {0}")]
    UnsupportedResource(String),
    #[error("container {0} not found")]
    ContainerNotFound(String),
    #[error("host IP unknown; known addresses: []")]
    HostIpUnknown,
}

/// Per-call memory of fetched objects, so every reference to one object in
/// a container sees the same content.
#[derive(Default)]
struct FetchedObjects {
    config_maps: BTreeMap<String, Option<BTreeMap<String, String>>>,
    secrets: BTreeMap<String, Option<BTreeMap<String, Vec<u8>>>>,
}

impl FetchedObjects {
    fn config_map(
        &mut self,
        source: &dyn ObjectSource,
        namespace: &str,
        name: &str,
    ) -> Result<Option<&BTreeMap<String, String>>, EnvError> {
        if !self.config_maps.contains_key(name) {
            let data = source
                .config_map_data(namespace, name)
                .map_err(EnvError::Lookup)?;
            self.config_maps.insert(name.to_string(), data);
        }
        Ok(self.config_maps.get(name).and_then(Option::as_ref))
    }

    fn secret(
        &mut self,
        source: &dyn ObjectSource,
        namespace: &str,
        name: &str,
    ) -> Result<Option<&BTreeMap<String, Vec<u8>>>, EnvError> {
        if !self.secrets.contains_key(name) {
            let data = source
                .secret_data(namespace, name)
                .map_err(EnvError::Lookup)?;
            self.secrets.insert(name.to_string(), data);
        }
        Ok(self.secrets.get(name).and_then(Option::as_ref))
    }
}

/// Whether a key may be an environment variable name under upstream's
/// relaxed rule: printable ASCII other than '='.
pub fn is_env_var_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}

/// Builds the container's environment: envFrom first, then env in order,
/// each env value expanded against the variables defined before it.
pub fn resolve_env(
    pod: &Pod,
    container: &Container,
    context: &EnvContext<'_>,
) -> Result<ResolvedEnv, EnvError> {
    let namespace = spec::pod_namespace(pod);
    let mut fetched = FetchedObjects::default();
    let mut variables: BTreeMap<String, String> = BTreeMap::new();
    let mut skipped = Vec::new();

    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.as_deref().unwrap_or_default();
        let (source_kind, source_name, entries): (&'static str, &str, Vec<(String, String)>) =
            if let Some(reference) = &source.config_map_ref {
                let optional = reference.optional.unwrap_or(false);
                match fetched.config_map(context.objects, namespace, &reference.name)? {
                    Some(data) => (
                        "configMap",
                        &reference.name,
                        data.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    ),
                    None if optional => continue,
                    None => return Err(EnvError::ConfigMapNotFound(reference.name.clone())),
                }
            } else if let Some(reference) = &source.secret_ref {
                let optional = reference.optional.unwrap_or(false);
                match fetched.secret(context.objects, namespace, &reference.name)? {
                    Some(data) => (
                        "secret",
                        &reference.name,
                        data.iter()
                            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
                            .collect(),
                    ),
                    None if optional => continue,
                    None => return Err(EnvError::SecretNotFound(reference.name.clone())),
                }
            } else {
                continue;
            };
        let mut invalid = Vec::new();
        for (key, value) in entries {
            let name = format!("{prefix}{key}");
            if is_env_var_name(&name) {
                variables.insert(name, value);
            } else {
                invalid.push(name);
            }
        }
        if !invalid.is_empty() {
            invalid.sort();
            skipped.push(SkippedKeys {
                source_kind,
                source_name: source_name.to_string(),
                keys: invalid,
            });
        }
    }

    for var in container.env.iter().flatten() {
        let literal = var.value.as_deref().unwrap_or_default();
        let value = if !literal.is_empty() {
            expand_with(literal, &variables)
        } else if let Some(source) = &var.value_from {
            if let Some(field) = &source.field_ref {
                pod_field_value(pod, field, context.pod_ips, context.host_ips)?
            } else if let Some(field) = &source.resource_field_ref {
                container_resource_value(field, pod, container, context.node_allocatable)?
            } else if let Some(selector) = &source.config_map_key_ref {
                let optional = selector.optional.unwrap_or(false);
                let Some(data) = fetched.config_map(context.objects, namespace, &selector.name)?
                else {
                    if optional {
                        continue;
                    }
                    return Err(EnvError::ConfigMapNotFound(selector.name.clone()));
                };
                match data.get(&selector.key) {
                    Some(value) => value.clone(),
                    None if optional => continue,
                    None => {
                        return Err(EnvError::ConfigMapKeyMissing {
                            key: selector.key.clone(),
                            namespace: namespace.to_string(),
                            name: selector.name.clone(),
                        });
                    }
                }
            } else if let Some(selector) = &source.secret_key_ref {
                let optional = selector.optional.unwrap_or(false);
                let Some(data) = fetched.secret(context.objects, namespace, &selector.name)? else {
                    if optional {
                        continue;
                    }
                    return Err(EnvError::SecretNotFound(selector.name.clone()));
                };
                match data.get(&selector.key) {
                    Some(value) => String::from_utf8_lossy(value).into_owned(),
                    None if optional => continue,
                    None => {
                        return Err(EnvError::SecretKeyMissing {
                            key: selector.key.clone(),
                            namespace: namespace.to_string(),
                            name: selector.name.clone(),
                        });
                    }
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        variables.insert(var.name.clone(), value);
    }

    Ok(ResolvedEnv {
        vars: variables
            .into_iter()
            .map(|(name, value)| EnvValue { name, value })
            .collect(),
        skipped,
    })
}

/// `metadata.annotations['key']` split into path and key.
fn split_subscript(field_path: &str) -> Option<(&str, &str)> {
    let inner = field_path.strip_suffix("']")?;
    let (path, key) = inner.split_once("['")?;
    (!path.is_empty()).then_some((path, key))
}

/// A downward-API field of the pod.
pub fn pod_field_value(
    pod: &Pod,
    selector: &ObjectFieldSelector,
    pod_ips: &[String],
    host_ips: &[String],
) -> Result<String, EnvError> {
    let version = selector.api_version.as_deref().unwrap_or("v1");
    if version != "v1" {
        return Err(EnvError::UnsupportedVersion(version.to_string()));
    }
    let field_path = selector.field_path.as_str();
    if let Some((path, key)) = split_subscript(field_path) {
        let (map, key_to_check) = match path {
            "metadata.annotations" => (pod.metadata.annotations.as_ref(), key.to_lowercase()),
            "metadata.labels" => (pod.metadata.labels.as_ref(), key.to_string()),
            _ => return Err(EnvError::FieldLabelNoSubscript(field_path.to_string())),
        };
        if let Some(reason) = qualified_name_problem(&key_to_check) {
            return Err(EnvError::InvalidSubscript {
                field_path: field_path.to_string(),
                reason,
            });
        }
        return Ok(map.and_then(|m| m.get(key)).cloned().unwrap_or_default());
    }
    let sorted_ips = crate::status::sort_pod_ips(pod_ips, host_ips);
    let pod_spec = pod.spec.as_ref();
    let value = match field_path {
        "metadata.name" => spec::pod_name(pod).to_string(),
        "metadata.namespace" => spec::pod_namespace(pod).to_string(),
        "metadata.uid" => spec::pod_uid(pod).to_string(),
        "metadata.labels" => format_map(pod.metadata.labels.as_ref()),
        "metadata.annotations" => format_map(pod.metadata.annotations.as_ref()),
        "spec.nodeName" | "spec.host" => pod_spec
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        "spec.serviceAccountName" => pod_spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => host_ips.first().cloned().ok_or(EnvError::HostIpUnknown)?,
        "status.hostIPs" => {
            if host_ips.is_empty() {
                return Err(EnvError::HostIpUnknown);
            }
            host_ips.join(",")
        }
        "status.podIP" => sorted_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => sorted_ips.join(","),
        // Accepted by the API's conversion but not resolvable by the kubelet.
        "spec.restartPolicy" | "spec.schedulerName" | "status.phase" => {
            return Err(EnvError::UnsupportedFieldPath(field_path.to_string()));
        }
        _ => return Err(EnvError::FieldLabelNotSupported(field_path.to_string())),
    };
    Ok(value)
}

/// `key="value"` lines in key order, values quoted like Go's `%q`.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Go's `%q` for a string.
pub(crate) fn go_quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Why a label or annotation key is not a qualified name, if it is not.
fn qualified_name_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split('/').collect::<Vec<_>>().as_slice() {
        [name] => (None, *name),
        [prefix, name] => (Some(*prefix), *name),
        _ => return Some("a qualified name must have at most one '/'".to_string()),
    };
    if let Some(prefix) = prefix {
        let valid_prefix = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !valid_prefix {
            return Some("prefix part must be a lowercase RFC 1123 subdomain".to_string());
        }
    }
    if name.is_empty() {
        return Some("name part must be non-empty".to_string());
    }
    if name.len() > 63 {
        return Some("name part must be no more than 63 characters".to_string());
    }
    let bytes = name.as_bytes();
    let edges_ok =
        bytes[0].is_ascii_alphanumeric() && bytes[bytes.len() - 1].is_ascii_alphanumeric();
    let body_ok = bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    (!(edges_ok && body_ok)).then(|| {
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character".to_string()
    })
}

/// A downward-API resource of a container, with unset limits standing for
/// the node's allocatable amount, rounded up in units of the divisor.
pub fn container_resource_value(
    selector: &ResourceFieldSelector,
    pod: &Pod,
    container: &Container,
    node_allocatable: &BTreeMap<String, ApiQuantity>,
) -> Result<String, EnvError> {
    let target = match selector.container_name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => spec::find_container(pod, name)
            .map(|(_, c)| c)
            .ok_or_else(|| EnvError::ContainerNotFound(name.to_string()))?,
        None => container,
    };
    let divisor = selector
        .divisor
        .as_ref()
        .and_then(|d| Quantity::from_api(d).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(Quantity::from_units(1));
    let resource = selector.resource.as_str();
    let (list_name, resource_name) = resource
        .split_once('.')
        .ok_or_else(|| EnvError::UnsupportedResource(resource.to_string()))?;
    let supported = matches!(resource_name, CPU | MEMORY | EPHEMERAL_STORAGE)
        || resource_name.starts_with("hugepages-");
    if !supported || !matches!(list_name, "limits" | "requests") {
        return Err(EnvError::UnsupportedResource(resource.to_string()));
    }
    let amount = if list_name == "limits" {
        resources::quantity_in(resources::limits(target), resource_name)
            .or_else(|| resources::quantity_in(Some(node_allocatable), resource_name))
    } else {
        resources::quantity_in(resources::requests(target), resource_name)
    }
    .unwrap_or(Quantity::ZERO);
    let units = if resource_name == CPU {
        ceil_div(amount.milli_value(), divisor.milli_value())
    } else {
        ceil_div(amount.value(), divisor.value())
    };
    Ok(units.to_string())
}

fn ceil_div(value: i64, divisor: i64) -> i64 {
    if divisor == 0 {
        return 0;
    }
    let quotient = value / divisor;
    if (value % divisor != 0) && ((value < 0) == (divisor < 0)) {
        quotient + 1
    } else {
        quotient
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource, PodSpec,
        ResourceRequirements, SecretEnvSource, SecretKeySelector,
    };

    #[test]
    fn expansion_like_upstream() {
        let variables: BTreeMap<String, String> = [
            ("VAR_A", "A"),
            ("VAR_B", "B"),
            ("VAR_C", "C"),
            ("VAR_REF", "$(VAR_A)"),
            ("VAR_EMPTY", ""),
            ("", "empty-name"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let cases = [
            ("$(VAR_A)", "A"),
            ("___$(VAR_B)___", "___B___"),
            ("$(VAR_A)-$(VAR_B)-$(VAR_C)", "A-B-C"),
            ("$(VAR_REF)", "$(VAR_A)"),
            ("$(VAR_EMPTY)", ""),
            ("$(UNKNOWN)", "$(UNKNOWN)"),
            ("$$(VAR_A)", "$(VAR_A)"),
            ("$$$(VAR_A)", "$A"),
            ("$$$$(VAR_A)", "$$(VAR_A)"),
            ("$$", "$"),
            ("$", "$"),
            ("$(VAR_A", "$(VAR_A"),
            ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
            ("$(", "$("),
            ("$()", "empty-name"),
            ("$VAR_A", "$VAR_A"),
            ("foo$", "foo$"),
            ("$ (VAR_A)", "$ (VAR_A)"),
            ("$(VAR_A)$", "A$"),
            ("héllo $(VAR_A) ü$é", "héllo A ü$é"),
            ("?_$(VAR_B)_?", "?_B_?"),
            ("$?_boo_$!", "$?_boo_$!"),
        ];
        for (input, expected) in cases {
            assert_eq!(expand_with(input, &variables), expected, "{input:?}");
        }
    }

    fn env(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        }
    }

    fn from(source: EnvVarSource, name: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(source),
        }
    }

    fn field(path: &str) -> EnvVarSource {
        EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: Some("v1".into()),
                field_path: path.into(),
            }),
            ..Default::default()
        }
    }

    fn config_map_key(name: &str, key: &str, optional: Option<bool>) -> EnvVarSource {
        EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: name.into(),
                key: key.into(),
                optional,
            }),
            ..Default::default()
        }
    }

    fn secret_key(name: &str, key: &str, optional: Option<bool>) -> EnvVarSource {
        EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: name.into(),
                key: key.into(),
                optional,
            }),
            ..Default::default()
        }
    }

    fn test_pod() -> Pod {
        let mut pod = Pod {
            spec: Some(PodSpec {
                node_name: Some("node-1".into()),
                service_account_name: Some("builder".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        pod.metadata.name = Some("web".into());
        pod.metadata.namespace = Some("prod".into());
        pod.metadata.uid = Some("uid-1".into());
        pod.metadata.labels = Some(
            [("app", "web"), ("tier", "front \"end\"")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        pod.metadata.annotations = Some(
            [("example.com/owner", "team-a")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        pod
    }

    fn objects() -> StaticObjects {
        let mut objects = StaticObjects::default();
        objects.config_maps.insert(
            ("prod".into(), "settings".into()),
            [("LEVEL", "debug"), ("bad=key", "x"), ("1ST", "ok")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        objects.secrets.insert(
            ("prod".into(), "creds".into()),
            [("PASSWORD".to_string(), b"s3cret".to_vec())]
                .into_iter()
                .collect(),
        );
        objects
    }

    fn resolve(container: Container) -> Result<ResolvedEnv, EnvError> {
        let objects = objects();
        let pod_ips = ["fd00::5".to_string(), "10.0.0.5".to_string()];
        let host_ips = ["192.168.1.10".to_string(), "fd01::10".to_string()];
        let allocatable = [
            ("cpu".to_string(), ApiQuantity("4".into())),
            ("memory".to_string(), ApiQuantity("8Gi".into())),
        ]
        .into_iter()
        .collect();
        let context = EnvContext {
            pod_ips: &pod_ips,
            host_ips: &host_ips,
            node_allocatable: &allocatable,
            objects: &objects,
        };
        resolve_env(&test_pod(), &container, &context)
    }

    fn values(env: &ResolvedEnv) -> BTreeMap<&str, &str> {
        env.vars
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_str()))
            .collect()
    }

    #[test]
    fn env_values_from_every_source() {
        let container = Container {
            name: "app".into(),
            env: Some(vec![
                env("GREETING", "hello"),
                env("MESSAGE", "$(GREETING) from $(POD_NAME)"),
                from(field("metadata.name"), "POD_NAME"),
                env("LATE", "$(POD_NAME)"),
                from(field("metadata.namespace"), "NS"),
                from(field("metadata.uid"), "UID"),
                from(field("metadata.labels['app']"), "APP"),
                from(field("metadata.annotations['example.com/owner']"), "OWNER"),
                from(field("metadata.labels"), "LABELS"),
                from(field("spec.nodeName"), "NODE"),
                from(field("spec.serviceAccountName"), "SA"),
                from(field("status.hostIP"), "HOST_IP"),
                from(field("status.hostIPs"), "HOST_IPS"),
                from(field("status.podIP"), "POD_IP"),
                from(field("status.podIPs"), "POD_IPS"),
                from(config_map_key("settings", "LEVEL", None), "LEVEL"),
                from(config_map_key("settings", "MISSING", Some(true)), "SKIPPED"),
                from(config_map_key("absent", "X", Some(true)), "SKIPPED_TOO"),
                from(secret_key("creds", "PASSWORD", None), "PASSWORD"),
                env("EMPTY", ""),
            ]),
            ..Default::default()
        };
        let resolved = resolve(container).unwrap();
        let expected: BTreeMap<&str, &str> = [
            ("GREETING", "hello"),
            ("MESSAGE", "hello from $(POD_NAME)"),
            ("POD_NAME", "web"),
            ("LATE", "web"),
            ("NS", "prod"),
            ("UID", "uid-1"),
            ("APP", "web"),
            ("OWNER", "team-a"),
            ("LABELS", "app=\"web\"\ntier=\"front \\\"end\\\"\""),
            ("NODE", "node-1"),
            ("SA", "builder"),
            ("HOST_IP", "192.168.1.10"),
            ("HOST_IPS", "192.168.1.10,fd01::10"),
            ("POD_IP", "10.0.0.5"),
            ("POD_IPS", "10.0.0.5,fd00::5"),
            ("LEVEL", "debug"),
            ("PASSWORD", "s3cret"),
            ("EMPTY", ""),
        ]
        .into_iter()
        .collect();
        assert_eq!(values(&resolved), expected);
    }

    #[test]
    fn env_errors_like_upstream() {
        let cases = [
            (
                from(config_map_key("settings", "NOPE", None), "X"),
                "couldn't find key NOPE in ConfigMap prod/settings",
            ),
            (
                from(config_map_key("settings", "NOPE", Some(false)), "X"),
                "couldn't find key NOPE in ConfigMap prod/settings",
            ),
            (
                from(secret_key("creds", "NOPE", None), "X"),
                "couldn't find key NOPE in Secret prod/creds",
            ),
            (
                from(config_map_key("absent", "X", None), "X"),
                "configmap \"absent\" not found",
            ),
            (
                from(secret_key("absent", "X", None), "X"),
                "secret \"absent\" not found",
            ),
            (
                from(field("spec.nothing"), "X"),
                "field label not supported: spec.nothing",
            ),
            (
                from(field("status.phase"), "X"),
                "unsupported fieldPath: status.phase",
            ),
            (
                from(field("spec.nodeName['x']"), "X"),
                "field label does not support subscript: spec.nodeName['x']",
            ),
        ];
        for (var, message) in cases {
            let container = Container {
                name: "app".into(),
                env: Some(vec![var]),
                ..Default::default()
            };
            assert_eq!(resolve(container).unwrap_err().to_string(), message);
        }
    }

    #[test]
    fn env_from_prefix_invalid_keys_and_override() {
        let container = Container {
            name: "app".into(),
            env_from: Some(vec![
                EnvFromSource {
                    config_map_ref: Some(ConfigMapEnvSource {
                        name: "settings".into(),
                        optional: None,
                    }),
                    prefix: Some("CFG_".into()),
                    secret_ref: None,
                },
                EnvFromSource {
                    config_map_ref: None,
                    prefix: None,
                    secret_ref: Some(SecretEnvSource {
                        name: "creds".into(),
                        optional: None,
                    }),
                },
                EnvFromSource {
                    config_map_ref: Some(ConfigMapEnvSource {
                        name: "absent".into(),
                        optional: Some(true),
                    }),
                    ..Default::default()
                },
            ]),
            env: Some(vec![
                env("PASSWORD", "overridden"),
                env("REF", "$(CFG_LEVEL)"),
            ]),
            ..Default::default()
        };
        let resolved = resolve(container).unwrap();
        let expected: BTreeMap<&str, &str> = [
            ("CFG_1ST", "ok"),
            ("CFG_LEVEL", "debug"),
            ("PASSWORD", "overridden"),
            ("REF", "debug"),
        ]
        .into_iter()
        .collect();
        assert_eq!(values(&resolved), expected);
        assert_eq!(
            resolved.skipped[0].event_message("prod"),
            "Keys [CFG_bad=key] from the EnvFrom configMap prod/settings were skipped since they are considered invalid environment variable names."
        );

        let missing = Container {
            name: "app".into(),
            env_from: Some(vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: "absent".into(),
                    optional: Some(false),
                }),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(
            resolve(missing).unwrap_err(),
            EnvError::SecretNotFound("absent".into())
        );
    }

    #[test]
    fn resource_fields_with_divisors_and_allocatable_defaults() {
        let container = Container {
            name: "app".into(),
            resources: Some(ResourceRequirements {
                requests: Some(
                    [("cpu", "250m"), ("memory", "100Mi")]
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), ApiQuantity(v.into())))
                        .collect(),
                ),
                limits: Some(
                    [("cpu", "1500m")]
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), ApiQuantity(v.into())))
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        };
        let allocatable: BTreeMap<String, ApiQuantity> = [
            ("cpu".to_string(), ApiQuantity("4".into())),
            ("memory".to_string(), ApiQuantity("8Gi".into())),
        ]
        .into_iter()
        .collect();
        let selector = |resource: &str, divisor: Option<&str>| ResourceFieldSelector {
            container_name: None,
            divisor: divisor.map(|d| ApiQuantity(d.into())),
            resource: resource.into(),
        };
        let cases = [
            (selector("limits.cpu", None), Ok("2".to_string())),
            (selector("limits.cpu", Some("1m")), Ok("1500".to_string())),
            (selector("requests.cpu", None), Ok("1".to_string())),
            (selector("requests.cpu", Some("100m")), Ok("3".to_string())),
            (
                selector("requests.memory", Some("1Mi")),
                Ok("100".to_string()),
            ),
            (
                selector("limits.memory", None),
                Ok((8u64 << 30).to_string()),
            ),
            (selector("limits.memory", Some("1Gi")), Ok("8".to_string())),
            (
                selector("requests.ephemeral-storage", None),
                Ok("0".to_string()),
            ),
            (
                selector("limits.nvidia.com/gpu", None),
                Err(EnvError::UnsupportedResource(
                    "limits.nvidia.com/gpu".into(),
                )),
            ),
        ];
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![container.clone()],
                ..Default::default()
            }),
            ..Default::default()
        };
        for (selector, expected) in cases {
            assert_eq!(
                container_resource_value(&selector, &pod, &container, &allocatable),
                expected,
                "{}",
                selector.resource
            );
        }
        let by_name = ResourceFieldSelector {
            container_name: Some("ghost".into()),
            ..selector("limits.cpu", None)
        };
        assert_eq!(
            container_resource_value(&by_name, &pod, &container, &allocatable),
            Err(EnvError::ContainerNotFound("ghost".into()))
        );
    }

    #[test]
    fn command_and_args_expand_against_the_resolved_env() {
        let container = Container {
            command: Some(vec!["/bin/$(TOOL)".into()]),
            args: Some(vec![
                "--level=$(LEVEL)".into(),
                "$$(LEVEL)".into(),
                "$(MISSING)".into(),
            ]),
            ..Default::default()
        };
        let env = [
            EnvValue {
                name: "TOOL".into(),
                value: "server".into(),
            },
            EnvValue {
                name: "LEVEL".into(),
                value: "debug".into(),
            },
        ];
        let (command, args) = expand_command_and_args(&container, &env);
        assert_eq!(command, ["/bin/server"]);
        assert_eq!(args, ["--level=debug", "$(LEVEL)", "$(MISSING)"]);
    }

    #[test]
    fn env_var_names() {
        let cases = [
            ("PATH", true),
            ("1ST", true),
            ("my.var-x", true),
            ("", false),
            ("a=b", false),
            ("tab\t", false),
            ("ünï", false),
        ];
        for (name, valid) in cases {
            assert_eq!(is_env_var_name(name), valid, "{name:?}");
        }
    }
}
