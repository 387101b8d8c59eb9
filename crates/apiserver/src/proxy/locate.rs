//! Where a pod, node or service subresource request goes: container choice, kubelet address and port, log and stream options, and service endpoint candidates, with kube-apiserver's rules and error texts.

use api::validation::{FieldError, invalid_status};
use rand::Rng;
use serde_json::Value;

use crate::status::ApiError;

/// The kubelet port used when a Node does not report `status.daemonEndpoints.kubeletEndpoint.Port`
/// (kube-apiserver's `--kubelet-port` default).
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

/// The kubelet address types in order of preference: k3s's
/// `--kubelet-preferred-address-types` (IPs first), since node host names
/// often do not resolve, or resolve to the wrong machine, across a cluster.
const PREFERRED_ADDRESS_TYPES: [&str; 5] = [
    "InternalIP",
    "ExternalIP",
    "Hostname",
    "InternalDNS",
    "ExternalDNS",
];

/// Query parameters in their order, repeated keys kept (exec's `command` repeats).
pub type QueryPairs = Vec<(String, String)>;

pub fn query_pairs(raw: Option<&str>) -> QueryPairs {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// The first value of a parameter, as upstream's query decoding reads scalar options.
fn first<'a>(query: &'a QueryPairs, key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

fn all<'a>(query: &'a QueryPairs, key: &str) -> impl Iterator<Item = &'a str> {
    query
        .iter()
        .filter(move |(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

/// A boolean option: absent is false, `0` or `false` (any case) is false, anything else true, as
/// apimachinery's `Convert_Slice_string_To_bool`.
fn flag(query: &QueryPairs, key: &str) -> bool {
    match first(query, key) {
        None => false,
        Some(value) => !(value == "0" || value.eq_ignore_ascii_case("false")),
    }
}

/// An optional integer option; an empty value counts as absent, as upstream's conversion does.
fn integer(query: &QueryPairs, key: &str) -> Result<Option<i64>, ApiError> {
    match first(query, key) {
        None | Some("") => Ok(None),
        Some(text) => text.parse::<i64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "strconv.ParseInt: parsing {text:?}: invalid syntax"
            ))
        }),
    }
}

/// Every container name of a pod in upstream's visiting order: init, regular, ephemeral.
fn container_names(pod: &Value) -> Vec<&str> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|list| {
            pod["spec"][list]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|container| container["name"].as_str())
        })
        .collect()
}

/// The container a log or stream request addresses: the one asked for, which must exist, or the pod's only
/// regular container. Choosing by the `kubectl.kubernetes.io/default-container` annotation is kubectl's job;
/// kube-apiserver does not read it.
pub fn choose_container(pod: &Value, pod_name: &str, requested: &str) -> Result<String, ApiError> {
    if !requested.is_empty() {
        return if container_names(pod).contains(&requested) {
            Ok(requested.to_string())
        } else {
            Err(ApiError::bad_request(format!(
                "container {requested} is not valid for pod {pod_name}"
            )))
        };
    }
    let regular = pod["spec"]["containers"].as_array();
    match regular.map(Vec::as_slice).unwrap_or_default() {
        [only] => Ok(only["name"].as_str().unwrap_or_default().to_string()),
        [] => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {pod_name}"
        ))),
        _ => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {pod_name}, choose one of: [{}]",
            container_names(pod).join(" ")
        ))),
    }
}

/// Where a node's kubelet listens: its preferred address and its reported port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeletEndpoint {
    pub host: String,
    pub port: u16,
}

/// Reads a Node's kubelet address (by upstream's preferred address types, with the `kubernetes.io/hostname`
/// label standing in for a missing Hostname address) and port.
pub fn kubelet_endpoint(node: &Value) -> Result<KubeletEndpoint, ApiError> {
    let addresses: Vec<(&str, &str)> = node["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|address| Some((address["type"].as_str()?, address["address"].as_str()?)))
        .collect();
    let mut host = None;
    for wanted in PREFERRED_ADDRESS_TYPES {
        if let Some((_, address)) = addresses.iter().find(|(kind, _)| *kind == wanted) {
            host = Some(address.to_string());
            break;
        }
        if wanted == "Hostname"
            && let Some(label) = node["metadata"]["labels"]["kubernetes.io/hostname"].as_str()
            && !label.is_empty()
        {
            host = Some(label.to_string());
            break;
        }
    }
    let Some(host) = host else {
        // Go prints the []NodeAddress slice with %v.
        let known: Vec<String> = addresses
            .iter()
            .map(|(kind, address)| format!("{{{kind} {address}}}"))
            .collect();
        return Err(ApiError::internal(format!(
            "no preferred addresses found; known addresses: [{}]",
            known.join(" ")
        )));
    };
    let reported = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_i64();
    let port = match reported {
        Some(port) if port > 0 => u16::try_from(port)
            .map_err(|_| ApiError::internal(format!("the kubelet port {port} is out of range")))?,
        _ => DEFAULT_KUBELET_PORT,
    };
    Ok(KubeletEndpoint { host, port })
}

/// `pods/log` options (PodLogOptions), parsed and validated as upstream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogOptions {
    pub container: String,
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub since_seconds: Option<i64>,
    pub since_time: Option<String>,
    pub tail_lines: Option<i64>,
    pub limit_bytes: Option<i64>,
    /// Skips verifying the kubelet's serving certificate for this request only.
    pub insecure_skip_tls_verify_backend: bool,
}

impl LogOptions {
    pub fn from_query(query: &QueryPairs, pod_name: &str) -> Result<LogOptions, ApiError> {
        let options = LogOptions {
            container: first(query, "container").unwrap_or_default().to_string(),
            follow: flag(query, "follow"),
            previous: flag(query, "previous"),
            timestamps: flag(query, "timestamps"),
            since_seconds: integer(query, "sinceSeconds")?,
            since_time: first(query, "sinceTime")
                .filter(|time| !time.is_empty())
                .map(str::to_string),
            tail_lines: integer(query, "tailLines")?,
            limit_bytes: integer(query, "limitBytes")?,
            insecure_skip_tls_verify_backend: flag(query, "insecureSkipTLSVerifyBackend"),
        };
        let errors = options.validate();
        if errors.is_empty() {
            Ok(options)
        } else {
            Err(ApiError::invalid(invalid_status(
                "PodLogOptions",
                "",
                pod_name,
                &errors,
            )))
        }
    }

    /// Upstream's ValidatePodLogOptions.
    fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Some(lines) = self.tail_lines.filter(|lines| *lines < 0) {
            errors.push(FieldError::invalid(
                "tailLines",
                lines,
                "must be greater than or equal to 0",
            ));
        }
        if let Some(bytes) = self.limit_bytes.filter(|bytes| *bytes < 1) {
            errors.push(FieldError::invalid(
                "limitBytes",
                bytes,
                "must be greater than 0",
            ));
        }
        match (self.since_seconds, &self.since_time) {
            (Some(_), Some(_)) => errors.push(FieldError::forbidden(
                "",
                "at most one of `sinceTime` or `sinceSeconds` may be specified",
            )),
            (Some(seconds), None) if seconds < 1 => errors.push(FieldError::invalid(
                "sinceSeconds",
                seconds,
                "must be greater than 0",
            )),
            _ => {}
        }
        errors
    }

    /// The kubelet's `/containerLogs` query: only the options that are set, in upstream's order.
    pub fn kubelet_query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (set, key) in [
            (self.follow, "follow"),
            (self.previous, "previous"),
            (self.timestamps, "timestamps"),
        ] {
            if set {
                query.append_pair(key, "true");
            }
        }
        if let Some(seconds) = self.since_seconds {
            query.append_pair("sinceSeconds", &seconds.to_string());
        }
        if let Some(time) = &self.since_time {
            query.append_pair("sinceTime", time);
        }
        if let Some(lines) = self.tail_lines {
            query.append_pair("tailLines", &lines.to_string());
        }
        if let Some(bytes) = self.limit_bytes {
            query.append_pair("limitBytes", &bytes.to_string());
        }
        query.finish()
    }
}

/// `pods/exec` and `pods/attach` options (PodExecOptions, PodAttachOptions).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamOptions {
    pub container: String,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
    /// Empty for attach.
    pub command: Vec<String>,
}

impl StreamOptions {
    pub fn from_query(query: &QueryPairs, exec: bool) -> Result<StreamOptions, ApiError> {
        let options = StreamOptions {
            container: first(query, "container").unwrap_or_default().to_string(),
            stdin: flag(query, "stdin"),
            stdout: flag(query, "stdout"),
            stderr: flag(query, "stderr"),
            tty: flag(query, "tty"),
            command: if exec {
                all(query, "command").map(str::to_string).collect()
            } else {
                Vec::new()
            },
        };
        // The kubelet refuses these too; answering here spares a connection and gives the caller the
        // same text either way.
        if exec && options.command.is_empty() {
            return Err(ApiError::bad_request(
                "you must specify a command to execute in the container",
            ));
        }
        if !(options.stdin || options.stdout || options.stderr) {
            return Err(ApiError::bad_request(
                "you must specify at least 1 of stdin, stdout, stderr",
            ));
        }
        Ok(options)
    }

    /// The kubelet's `/exec` or `/attach` query, in upstream's order and spelling (`1` for true).
    pub fn kubelet_query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (set, key) in [
            (self.stdin, "input"),
            (self.stdout, "output"),
            (self.stderr, "error"),
            (self.tty, "tty"),
        ] {
            if set {
                query.append_pair(key, "1");
            }
        }
        for argument in &self.command {
            query.append_pair("command", argument);
        }
        query.finish()
    }
}

/// The kubelet's `/portForward` query: the requested ports joined by commas, when any.
pub fn port_forward_query(query: &QueryPairs) -> Result<String, ApiError> {
    let mut ports = Vec::new();
    for value in all(query, "ports").filter(|value| !value.is_empty()) {
        for port in value.split(',') {
            let port: i32 = port.trim().parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "strconv.ParseInt: parsing {port:?}: invalid syntax"
                ))
            })?;
            ports.push(port.to_string());
        }
    }
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    if !ports.is_empty() {
        serializer.append_pair("port", &ports.join(","));
    }
    Ok(serializer.finish())
}

/// `scheme:name:port`, `name:port` or `name` (apimachinery's SplitSchemeNamePort); None when malformed.
pub fn split_scheme_name_port(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return None,
    };
    (!name.is_empty() && matches!(scheme, "" | "http" | "https")).then_some((scheme, name, port))
}

/// One address an Endpoints object offers for a port, with the pod it claims to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointCandidate {
    pub ip: String,
    pub port: u16,
    /// `(namespace, name)` of a Pod target reference; None when the address names no pod.
    pub pod: Option<(String, String)>,
}

/// The ready addresses of `endpoints` serving the port named `port_name`, in the order kube-apiserver tries
/// them: subsets from a random start, and within each subset addresses from a random start (spreading proxy
/// traffic without keeping state).
pub fn endpoint_candidates(endpoints: &Value, port_name: &str) -> Vec<EndpointCandidate> {
    let subsets = endpoints["subsets"].as_array().cloned().unwrap_or_default();
    if subsets.is_empty() {
        return Vec::new();
    }
    let mut random = rand::rng();
    let subset_start = random.random_range(0..subsets.len());
    let mut candidates = Vec::new();
    for offset in 0..subsets.len() {
        let subset = &subsets[(subset_start + offset) % subsets.len()];
        let addresses = subset["addresses"].as_array().cloned().unwrap_or_default();
        if addresses.is_empty() {
            continue;
        }
        for port in subset["ports"].as_array().into_iter().flatten() {
            if port["name"].as_str().unwrap_or_default() != port_name {
                continue;
            }
            let Some(number) = port["port"].as_u64().and_then(|n| u16::try_from(n).ok()) else {
                continue;
            };
            let address_start = random.random_range(0..addresses.len());
            for step in 0..addresses.len() {
                let address = &addresses[(address_start + step) % addresses.len()];
                let Some(ip) = address["ip"].as_str() else {
                    continue;
                };
                let target = &address["targetRef"];
                let pod = (target.is_object()
                    && target["kind"].as_str().is_none_or(|kind| kind == "Pod"))
                .then(|| {
                    (
                        target["namespace"].as_str().unwrap_or_default().to_string(),
                        target["name"].as_str().unwrap_or_default().to_string(),
                    )
                });
                candidates.push(EndpointCandidate {
                    ip: ip.to_string(),
                    port: number,
                    pod,
                });
            }
        }
    }
    candidates
}

/// Whether a pod's IPs include `ip`: upstream proxies only to endpoint addresses their pod still holds.
pub fn pod_has_ip(pod: &Value, ip: &str) -> bool {
    let listed = pod["status"]["podIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry["ip"].as_str());
    listed
        .chain(pod["status"]["podIP"].as_str())
        .any(|pod_ip| pod_ip == ip)
}

/// Whether a proxy may dial this address on a port other than the kubelet's (upstream's isProxyableIP):
/// never loopback or link-local, so `nodes/NAME:PORT/proxy` cannot reach the API server's own host services.
pub fn is_proxyable_ip(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => !(v4.is_loopback() || v4.is_link_local() || v4.is_multicast()),
        std::net::IpAddr::V6(v6) => {
            let link_local = (v6.segments()[0] & 0xffc0) == 0xfe80;
            let interface_local_multicast = (v6.segments()[0] & 0xff0f) == 0xff01;
            let link_local_multicast = (v6.segments()[0] & 0xff0f) == 0xff02;
            !(v6.is_loopback() || link_local || interface_local_multicast || link_local_multicast)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(containers: &[&str], init: &[&str]) -> Value {
        let list = |names: &[&str]| -> Vec<Value> {
            names.iter().map(|name| json!({"name": name})).collect()
        };
        json!({"spec": {"containers": list(containers), "initContainers": list(init)}})
    }

    #[test]
    fn containers_are_chosen_as_upstream() {
        assert_eq!(
            choose_container(&pod(&["app"], &[]), "web", "").unwrap(),
            "app"
        );
        let two = pod(&["a", "b"], &["setup"]);
        assert_eq!(
            choose_container(&two, "web", "").unwrap_err().message,
            "a container name must be specified for pod web, choose one of: [setup a b]"
        );
        assert_eq!(choose_container(&two, "web", "setup").unwrap(), "setup");
        let wrong = choose_container(&two, "web", "wrong").unwrap_err();
        assert_eq!(
            (wrong.code, wrong.message.as_str()),
            (400, "container wrong is not valid for pod web")
        );
        assert_eq!(
            choose_container(&pod(&[], &[]), "web", "")
                .unwrap_err()
                .message,
            "a container name must be specified for pod web"
        );
    }

    #[test]
    fn kubelet_endpoints_follow_the_preferred_address_types() {
        let node = json!({"status": {
            "addresses": [{"type": "ExternalIP", "address": "203.0.113.9"}, {"type": "InternalIP", "address": "10.0.0.4"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 11250}},
        }});
        assert_eq!(
            kubelet_endpoint(&node).unwrap(),
            KubeletEndpoint {
                host: "10.0.0.4".into(),
                port: 11250
            }
        );
        let labelled = json!({"metadata": {"labels": {"kubernetes.io/hostname": "n1"}},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.4"}]}});
        assert_eq!(
            kubelet_endpoint(&labelled).unwrap(),
            KubeletEndpoint {
                host: "10.0.0.4".into(),
                port: DEFAULT_KUBELET_PORT
            }
        );
        let named_only = json!({"metadata": {"labels": {"kubernetes.io/hostname": "n1"}},
            "status": {"addresses": []}});
        assert_eq!(
            kubelet_endpoint(&named_only).unwrap(),
            KubeletEndpoint {
                host: "n1".into(),
                port: DEFAULT_KUBELET_PORT
            }
        );
        let bare = kubelet_endpoint(&json!({"status": {}})).unwrap_err();
        assert_eq!(bare.code, 500);
        assert!(
            bare.message
                .ends_with("no preferred addresses found; known addresses: []")
        );
    }

    #[test]
    fn log_options_are_validated_and_forwarded() {
        let query = query_pairs(Some("follow=true&tailLines=5&timestamps=1&container=app"));
        let options = LogOptions::from_query(&query, "web").unwrap();
        assert_eq!(options.container, "app");
        assert_eq!(
            options.kubelet_query(),
            "follow=true&timestamps=true&tailLines=5"
        );

        let negative =
            LogOptions::from_query(&query_pairs(Some("tailLines=-1")), "web").unwrap_err();
        assert_eq!(negative.code, 422);
        assert_eq!(
            negative.message,
            "PodLogOptions \"web\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"
        );
        let both = LogOptions::from_query(
            &query_pairs(Some("sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z")),
            "web",
        )
        .unwrap_err();
        assert!(
            both.message
                .contains("at most one of `sinceTime` or `sinceSeconds`")
        );
        assert_eq!(
            LogOptions::from_query(&query_pairs(Some("limitBytes=x")), "web")
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn exec_options_need_a_command_and_a_stream() {
        let query = query_pairs(Some(
            "command=ls&command=-l&stdout=true&stderr=true&tty=false",
        ));
        let options = StreamOptions::from_query(&query, true).unwrap();
        assert_eq!(
            options.kubelet_query(),
            "output=1&error=1&command=ls&command=-l"
        );
        assert_eq!(
            StreamOptions::from_query(&query_pairs(Some("stdout=1")), true)
                .unwrap_err()
                .code,
            400
        );
        assert!(
            StreamOptions::from_query(&query_pairs(Some("command=ls")), true)
                .unwrap_err()
                .message
                .contains("at least 1 of stdin, stdout, stderr")
        );
        assert!(StreamOptions::from_query(&query_pairs(Some("stdin=true")), false).is_ok());
        assert_eq!(
            port_forward_query(&query_pairs(Some("ports=80&ports=443"))).unwrap(),
            "port=80%2C443"
        );
    }

    #[test]
    fn ids_split_into_scheme_name_and_port() {
        assert_eq!(split_scheme_name_port("web"), Some(("", "web", "")));
        assert_eq!(
            split_scheme_name_port("web:http"),
            Some(("", "web", "http"))
        );
        assert_eq!(
            split_scheme_name_port("https:web:443"),
            Some(("https", "web", "443"))
        );
        assert_eq!(split_scheme_name_port("ftp:web:21"), None);
        assert_eq!(split_scheme_name_port(":80"), None);
        assert_eq!(split_scheme_name_port("a:b:c:d"), None);
    }

    #[test]
    fn endpoint_candidates_match_the_port_name() {
        let endpoints = json!({"subsets": [
            {"addresses": [{"ip": "10.1.0.5", "targetRef": {"kind": "Pod", "namespace": "default", "name": "web"}}],
             "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090}]},
            {"notReadyAddresses": [{"ip": "10.1.0.6"}], "ports": [{"name": "http", "port": 8080}]},
        ]});
        assert_eq!(
            endpoint_candidates(&endpoints, "http"),
            [EndpointCandidate {
                ip: "10.1.0.5".into(),
                port: 8080,
                pod: Some(("default".into(), "web".into()))
            }]
        );
        assert!(endpoint_candidates(&endpoints, "").is_empty());
        assert!(pod_has_ip(
            &json!({"status": {"podIPs": [{"ip": "10.1.0.5"}]}}),
            "10.1.0.5"
        ));
        assert!(!is_proxyable_ip("127.0.0.1".parse().unwrap()));
        assert!(is_proxyable_ip("10.0.0.1".parse().unwrap()));
    }
}
