//! CRI requests built from a Pod, as upstream kubelet builds them: the sandbox config (metadata, hostname, logs, DNS, host ports, namespaces, security, labels) and each container's config (image, command, env, mounts, log path, resources, security, labels). Pure.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{
    Container, Pod, PodSecurityContext, SeccompProfile, SecurityContext,
};

/// CRI labels and annotations kubelet puts on sandboxes and containers;
/// the agent finds its pods' runtime objects again by them.
pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";
pub const CONTAINER_HASH_ANNOTATION: &str = "io.kubernetes.container.hash";
pub const RESTART_COUNT_ANNOTATION: &str = "io.kubernetes.container.restartCount";
pub const TERMINATION_MESSAGE_PATH_ANNOTATION: &str =
    "io.kubernetes.container.terminationMessagePath";
pub const GRACE_PERIOD_ANNOTATION: &str = "io.kubernetes.pod.terminationGracePeriod";
/// Marks the agent's own runtime objects among others in the namespace.
pub const MANAGED_LABEL: &str = "io.kubernetes.krust.managed";

/// The resolver settings the node itself uses (from /etc/resolv.conf).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostDns {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl HostDns {
    pub fn parse(resolv_conf: &str) -> HostDns {
        let mut dns = HostDns::default();
        for line in resolv_conf.lines() {
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("nameserver") => dns.servers.extend(fields.next().map(str::to_string)),
                Some("search") | Some("domain") => {
                    dns.searches = fields.map(str::to_string).collect();
                }
                Some("options") => dns.options.extend(fields.map(str::to_string)),
                _ => {}
            }
        }
        dns
    }
}

/// Where a pod's container logs go: `LOGS/NAMESPACE_NAME_UID`, upstream's
/// `/var/log/pods` layout under the agent's log root.
pub fn pod_log_directory(logs_root: &Path, pod: &Pod) -> PathBuf {
    logs_root.join(format!(
        "{}_{}_{}",
        namespace_of(pod),
        name_of(pod),
        uid_of(pod)
    ))
}

/// A container attempt's log file, relative to the pod's log directory.
pub fn container_log_path(container: &str, attempt: u32) -> String {
    format!("{container}/{attempt}.log")
}

fn name_of(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

fn namespace_of(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

fn uid_of(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|spec| spec.host_network)
        .unwrap_or(false)
}

/// The pod's identifying labels, as on both sandboxes and containers.
fn identity_labels(pod: &Pod) -> HashMap<String, String> {
    HashMap::from([
        (POD_NAME_LABEL.to_string(), name_of(pod).to_string()),
        (
            POD_NAMESPACE_LABEL.to_string(),
            namespace_of(pod).to_string(),
        ),
        (POD_UID_LABEL.to_string(), uid_of(pod).to_string()),
        (MANAGED_LABEL.to_string(), "true".to_string()),
    ])
}

/// What pods' resolv.conf is made from: the node's resolver and the
/// cluster DNS (`--cluster-dns`, `--cluster-domain`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsSettings {
    pub host: HostDns,
    pub cluster_servers: Vec<String>,
    pub cluster_domain: String,
}

/// The MissingClusterDNS event's message when the pod asks for cluster DNS
/// and the node has none, as upstream words it.
pub fn missing_cluster_dns(pod: &Pod, settings: &DnsSettings) -> Option<String> {
    if !settings.cluster_servers.is_empty() {
        return None;
    }
    let policy = pod
        .spec
        .as_ref()
        .and_then(|spec| spec.dns_policy.as_deref())
        .unwrap_or("ClusterFirst");
    let wants_cluster = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network(pod),
        _ => false,
    };
    wants_cluster.then(|| {
        format!(
            "pod: \"{}_{}({})\". kubelet does not have ClusterDNS IP configured and cannot create Pod using \"{policy}\" policy. Falling back to \"Default\" policy.",
            name_of(pod),
            namespace_of(pod),
            uid_of(pod)
        )
    })
}

/// Upstream's limits on a pod's resolv.conf.
const MAX_NAMESERVERS: usize = 3;
const MAX_DNS_SEARCH_PATHS: usize = 32;

/// The sandbox's DNS: the pod's `dnsConfig` over its `dnsPolicy`'s base.
/// ClusterFirst uses the cluster DNS with the pod's namespace first in the
/// search path and `ndots:5`, except for hostNetwork pods (those need
/// ClusterFirstWithHostNet); without cluster DNS it falls back to the
/// node's resolver, as upstream does.
pub fn dns_config(pod: &Pod, settings: &DnsSettings) -> cri::DnsConfig {
    let spec = pod.spec.as_ref();
    let policy = spec
        .and_then(|spec| spec.dns_policy.as_deref())
        .unwrap_or("ClusterFirst");
    let host = &settings.host;
    let cluster = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network(pod),
        _ => false,
    } && !settings.cluster_servers.is_empty();
    let mut dns = match policy {
        "None" => cri::DnsConfig::default(),
        _ if cluster => {
            let domain = settings.cluster_domain.trim_end_matches('.');
            let mut searches = vec![
                format!("{}.svc.{domain}", namespace_of(pod)),
                format!("svc.{domain}"),
                domain.to_string(),
            ];
            for search in &host.searches {
                if !searches.contains(search) {
                    searches.push(search.clone());
                }
            }
            cri::DnsConfig {
                servers: settings.cluster_servers.clone(),
                searches,
                options: vec!["ndots:5".to_string()],
            }
        }
        _ => cri::DnsConfig {
            servers: host.servers.clone(),
            searches: host.searches.clone(),
            options: host.options.clone(),
        },
    };
    if let Some(extra) = spec.and_then(|spec| spec.dns_config.as_ref()) {
        for server in extra.nameservers.iter().flatten() {
            if !dns.servers.contains(server) {
                dns.servers.push(server.clone());
            }
        }
        for search in extra.searches.iter().flatten() {
            if !dns.searches.contains(search) {
                dns.searches.push(search.clone());
            }
        }
        for option in extra.options.iter().flatten() {
            let text = match &option.value {
                Some(value) => format!("{}:{value}", option.name.as_deref().unwrap_or_default()),
                None => option.name.clone().unwrap_or_default(),
            };
            let name = option.name.as_deref().unwrap_or_default();
            dns.options
                .retain(|existing| existing.split(':').next() != Some(name));
            dns.options.push(text);
        }
    }
    dns.servers.truncate(MAX_NAMESERVERS);
    dns.searches.truncate(MAX_DNS_SEARCH_PATHS);
    dns
}

/// Upstream's runAsNonRoot check before a container is created: with
/// `runAsNonRoot`, the effective `runAsUser` must not be 0, or else the
/// image's user (`image_uid`, `image_username` from the image status; an
/// image naming neither runs as root) must be a numeric non-zero one.
pub fn verify_run_as_non_root(
    pod: &Pod,
    container: &k8s_openapi::api::core::v1::Container,
    image_uid: Option<i64>,
    image_username: &str,
) -> Result<(), String> {
    let pod_security = pod
        .spec
        .as_ref()
        .and_then(|spec| spec.security_context.as_ref());
    let security = container.security_context.as_ref();
    let non_root = security
        .and_then(|s| s.run_as_non_root)
        .or_else(|| pod_security.and_then(|s| s.run_as_non_root))
        .unwrap_or(false);
    if !non_root {
        return Ok(());
    }
    let described = format!("{}_{}({})", name_of(pod), namespace_of(pod), uid_of(pod));
    let run_as_user = security
        .and_then(|s| s.run_as_user)
        .or_else(|| pod_security.and_then(|s| s.run_as_user));
    if let Some(user) = run_as_user {
        if user == 0 {
            return Err(format!(
                "container's runAsUser breaks non-root policy (pod: \"{described}\", container: {})",
                container.name
            ));
        }
        return Ok(());
    }
    let uid = match (image_uid, image_username) {
        (Some(uid), _) => Some(uid),
        (None, "") => Some(0),
        (None, _) => None,
    };
    match uid {
        Some(0) => Err(format!(
            "container has runAsNonRoot and image will run as root (pod: \"{described}\", container: {})",
            container.name
        )),
        None => Err(format!(
            "container has runAsNonRoot and image has non-numeric user ({image_username}), cannot verify user is non-root (pod: \"{described}\", container: {})",
            container.name
        )),
        Some(_) => Ok(()),
    }
}

/// The sandbox's host name: `spec.hostname` or the pod name (at most 63
/// characters, no trailing dot or dash); empty with hostNetwork, which
/// keeps the node's.
pub fn sandbox_hostname(pod: &Pod) -> String {
    if host_network(pod) {
        return String::new();
    }
    let name = pod
        .spec
        .as_ref()
        .and_then(|spec| spec.hostname.clone())
        .unwrap_or_else(|| name_of(pod).to_string());
    let mut hostname: String = name.chars().take(63).collect();
    while hostname.ends_with(['-', '.']) {
        hostname.pop();
    }
    hostname
}

fn protocol(name: Option<&str>) -> i32 {
    match name {
        Some("UDP") => cri::Protocol::Udp as i32,
        Some("SCTP") => cri::Protocol::Sctp as i32,
        _ => cri::Protocol::Tcp as i32,
    }
}

/// Host ports of every container.
pub fn port_mappings(pod: &Pod) -> Vec<cri::PortMapping> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .flat_map(|container| container.ports.iter().flatten())
        .filter_map(|port| {
            let host_port = port.host_port.filter(|p| *p > 0)?;
            Some(cri::PortMapping {
                protocol: protocol(port.protocol.as_deref()),
                container_port: port.container_port,
                host_port,
                host_ip: port.host_ip.clone().unwrap_or_default(),
            })
        })
        .collect()
}

fn seccomp(profile: Option<&SeccompProfile>) -> Option<cri::SecurityProfile> {
    let profile = profile?;
    let profile_type = match profile.type_.as_str() {
        "RuntimeDefault" => cri::security_profile::ProfileType::RuntimeDefault,
        "Localhost" => cri::security_profile::ProfileType::Localhost,
        _ => cri::security_profile::ProfileType::Unconfined,
    };
    Some(cri::SecurityProfile {
        profile_type: profile_type as i32,
        localhost_ref: profile.localhost_profile.clone().unwrap_or_default(),
    })
}

fn all_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    pod.spec.iter().flat_map(|spec| {
        spec.init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
    })
}

fn namespace_options(pod: &Pod) -> cri::NamespaceOption {
    let spec = pod.spec.as_ref();
    let flag = |value: Option<bool>| value.unwrap_or(false);
    let mode = |host: bool, shared_default: cri::NamespaceMode| {
        if host {
            cri::NamespaceMode::Node as i32
        } else {
            shared_default as i32
        }
    };
    let share_pid = flag(spec.and_then(|s| s.share_process_namespace));
    cri::NamespaceOption {
        network: mode(
            flag(spec.and_then(|s| s.host_network)),
            cri::NamespaceMode::Pod,
        ),
        pid: mode(
            flag(spec.and_then(|s| s.host_pid)),
            if share_pid {
                cri::NamespaceMode::Pod
            } else {
                cri::NamespaceMode::Container
            },
        ),
        ipc: mode(flag(spec.and_then(|s| s.host_ipc)), cri::NamespaceMode::Pod),
        ..Default::default()
    }
}

/// RunPodSandbox's config. `attempt` counts sandboxes made for the pod.
pub fn sandbox_config(
    pod: &Pod,
    attempt: u32,
    logs_root: &Path,
    dns: &DnsSettings,
    cgroup_parent: &str,
) -> cri::PodSandboxConfig {
    let security: Option<&PodSecurityContext> =
        pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let mut labels = identity_labels(pod);
    for (key, value) in pod.metadata.labels.iter().flatten() {
        labels.entry(key.clone()).or_insert_with(|| value.clone());
    }
    let annotations: HashMap<String, String> = pod
        .metadata
        .annotations
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let privileged = all_containers(pod).any(|container| {
        container
            .security_context
            .as_ref()
            .and_then(|s| s.privileged)
            .unwrap_or(false)
    });
    let sysctls = security
        .and_then(|s| s.sysctls.as_ref())
        .map(|sysctls| {
            sysctls
                .iter()
                .map(|s| (s.name.clone(), s.value.clone()))
                .collect()
        })
        .unwrap_or_default();
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name_of(pod).to_string(),
            uid: uid_of(pod).to_string(),
            namespace: namespace_of(pod).to_string(),
            attempt,
        }),
        hostname: sandbox_hostname(pod),
        log_directory: pod_log_directory(logs_root, pod).display().to_string(),
        dns_config: Some(dns_config(pod, dns)),
        port_mappings: port_mappings(pod),
        labels,
        annotations,
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.to_string(),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(pod)),
                run_as_user: security
                    .and_then(|s| s.run_as_user)
                    .map(|value| cri::Int64Value { value }),
                run_as_group: security
                    .and_then(|s| s.run_as_group)
                    .map(|value| cri::Int64Value { value }),
                supplemental_groups: security
                    .and_then(|s| s.supplemental_groups.clone())
                    .unwrap_or_default(),
                privileged,
                seccomp: seccomp(security.and_then(|s| s.seccomp_profile.as_ref())),
                ..Default::default()
            }),
            sysctls,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What the kubelet decided for one container attempt, besides its spec.
pub struct ContainerLaunch<'a> {
    pub container: &'a Container,
    pub attempt: u32,
    pub image_ref: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<cri::Mount>,
    pub resources: cri::LinuxContainerResources,
    /// The hash of the container spec it was made from.
    pub spec_hash: String,
    pub restart_count: i32,
}

/// CreateContainer's config for one attempt of a container of `pod`.
pub fn container_config(pod: &Pod, launch: &ContainerLaunch<'_>) -> cri::ContainerConfig {
    let container = launch.container;
    let mut labels = identity_labels(pod);
    labels.insert(CONTAINER_NAME_LABEL.to_string(), container.name.clone());
    let grace = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);
    let annotations = HashMap::from([
        (
            CONTAINER_HASH_ANNOTATION.to_string(),
            launch.spec_hash.clone(),
        ),
        (
            RESTART_COUNT_ANNOTATION.to_string(),
            launch.restart_count.to_string(),
        ),
        (
            TERMINATION_MESSAGE_PATH_ANNOTATION.to_string(),
            container
                .termination_message_path
                .clone()
                .unwrap_or_else(|| "/dev/termination-log".into()),
        ),
        (GRACE_PERIOD_ANNOTATION.to_string(), grace.to_string()),
    ]);
    let pod_security = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let security: Option<&SecurityContext> = container.security_context.as_ref();
    let run_as_user = security
        .and_then(|s| s.run_as_user)
        .or_else(|| pod_security.and_then(|s| s.run_as_user));
    let run_as_group = security
        .and_then(|s| s.run_as_group)
        .or_else(|| pod_security.and_then(|s| s.run_as_group));
    let privileged = security.and_then(|s| s.privileged).unwrap_or(false);
    let capabilities = security
        .and_then(|s| s.capabilities.as_ref())
        .map(|caps| cri::Capability {
            add_capabilities: caps.add.clone().unwrap_or_default(),
            drop_capabilities: caps.drop.clone().unwrap_or_default(),
            ..Default::default()
        });
    let seccomp_profile = security
        .and_then(|s| s.seccomp_profile.as_ref())
        .or_else(|| pod_security.and_then(|s| s.seccomp_profile.as_ref()));
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: container.name.clone(),
            attempt: launch.attempt,
        }),
        image: Some(cri::ImageSpec {
            image: launch.image_ref.clone(),
            user_specified_image: container.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command: launch.command.clone(),
        args: launch.args.clone(),
        working_dir: container.working_dir.clone().unwrap_or_default(),
        envs: launch
            .env
            .iter()
            .map(|(key, value)| cri::KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        mounts: launch.mounts.clone(),
        labels,
        annotations,
        log_path: container_log_path(&container.name, launch.attempt),
        stdin: container.stdin.unwrap_or(false),
        stdin_once: container.stdin_once.unwrap_or(false),
        tty: container.tty.unwrap_or(false),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(launch.resources.clone()),
            security_context: Some(cri::LinuxContainerSecurityContext {
                capabilities,
                privileged,
                namespace_options: Some(namespace_options(pod)),
                run_as_user: run_as_user.map(|value| cri::Int64Value { value }),
                run_as_group: run_as_group.map(|value| cri::Int64Value { value }),
                readonly_rootfs: security
                    .and_then(|s| s.read_only_root_filesystem)
                    .unwrap_or(false),
                supplemental_groups: pod_security
                    .and_then(|s| s.supplemental_groups.clone())
                    .unwrap_or_default(),
                no_new_privs: !security
                    .and_then(|s| s.allow_privilege_escalation)
                    .unwrap_or(true),
                seccomp: seccomp(seccomp_profile),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"}},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn resolv_conf_gives_servers_searches_and_options() {
        let dns = HostDns::parse(
            "# comment\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nsearch a.example b.example\noptions ndots:2 edns0\n",
        );
        assert_eq!(dns.servers, ["10.0.0.2", "10.0.0.3"]);
        assert_eq!(dns.searches, ["a.example", "b.example"]);
        assert_eq!(dns.options, ["ndots:2", "edns0"]);
    }

    #[test]
    fn the_sandbox_carries_identity_logs_ports_and_namespaces() {
        let pod = pod(json!({
            "containers": [{"name": "web", "image": "nginx",
                "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 53, "protocol": "UDP"}]}],
        }));
        let dns = DnsSettings {
            host: HostDns::parse("nameserver 10.0.0.2\n"),
            ..DnsSettings::default()
        };
        let config = sandbox_config(
            &pod,
            1,
            Path::new("/logs"),
            &dns,
            "/kubepods/besteffort/podu-1",
        );
        let metadata = config.metadata.unwrap();
        assert_eq!(
            (
                metadata.name.as_str(),
                metadata.namespace.as_str(),
                metadata.uid.as_str(),
                metadata.attempt
            ),
            ("web-1", "shop", "u-1", 1)
        );
        assert_eq!(config.hostname, "web-1");
        assert_eq!(config.log_directory, "/logs/shop_web-1_u-1");
        assert_eq!(config.labels[POD_UID_LABEL], "u-1");
        assert_eq!(config.labels["app"], "web");
        assert_eq!(config.port_mappings.len(), 1);
        assert_eq!(config.port_mappings[0].host_port, 8080);
        assert_eq!(config.dns_config.unwrap().servers, ["10.0.0.2"]);
        let linux = config.linux.unwrap();
        assert_eq!(linux.cgroup_parent, "/kubepods/besteffort/podu-1");
        let namespaces = linux.security_context.unwrap().namespace_options.unwrap();
        assert_eq!(namespaces.network, cri::NamespaceMode::Pod as i32);
        assert_eq!(namespaces.pid, cri::NamespaceMode::Container as i32);
    }

    #[test]
    fn host_network_keeps_the_node_hostname_and_network() {
        let pod =
            pod(json!({"hostNetwork": true, "containers": [{"name": "a", "image": "busybox"}]}));
        let config = sandbox_config(
            &pod,
            0,
            Path::new("/l"),
            &DnsSettings::default(),
            "/kubepods",
        );
        assert_eq!(config.hostname, "");
        let namespaces = config
            .linux
            .unwrap()
            .security_context
            .unwrap()
            .namespace_options
            .unwrap();
        assert_eq!(namespaces.network, cri::NamespaceMode::Node as i32);
    }

    #[test]
    fn dns_policy_none_uses_only_the_pod_dns_config() {
        let pod = pod(
            json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"],
            "searches": ["x.local"], "options": [{"name": "ndots", "value": "5"}]},
            "containers": [{"name": "a", "image": "busybox"}]}),
        );
        let dns = dns_config(
            &pod,
            &DnsSettings {
                host: HostDns::parse("nameserver 10.0.0.2\noptions ndots:1\n"),
                ..DnsSettings::default()
            },
        );
        assert_eq!(dns.servers, ["1.1.1.1"]);
        assert_eq!(dns.searches, ["x.local"]);
        assert_eq!(dns.options, ["ndots:5"]);
    }

    #[test]
    fn run_as_non_root_refuses_root_users_as_upstream_words_it() {
        let with = |spec: serde_json::Value| pod(spec);
        let container = |security: serde_json::Value| -> k8s_openapi::api::core::v1::Container {
            serde_json::from_value(json!({"name": "c", "securityContext": security})).unwrap()
        };
        let plain = with(json!({"containers": []}));
        assert_eq!(
            verify_run_as_non_root(&plain, &container(json!({})), None, ""),
            Ok(())
        );
        let non_root = container(json!({"runAsNonRoot": true}));
        assert_eq!(
            verify_run_as_non_root(&plain, &non_root, None, ""),
            Err("container has runAsNonRoot and image will run as root (pod: \"web-1_shop(u-1)\", container: c)".into())
        );
        assert_eq!(
            verify_run_as_non_root(&plain, &non_root, Some(1000), ""),
            Ok(())
        );
        assert!(
            verify_run_as_non_root(&plain, &non_root, None, "nobody")
                .unwrap_err()
                .contains("image has non-numeric user (nobody)")
        );
        let pod_level = with(
            json!({"securityContext": {"runAsNonRoot": true, "runAsUser": 0}, "containers": []}),
        );
        assert_eq!(
            verify_run_as_non_root(&pod_level, &container(json!({})), Some(1000), ""),
            Err("container's runAsUser breaks non-root policy (pod: \"web-1_shop(u-1)\", container: c)".into())
        );
        assert_eq!(
            verify_run_as_non_root(&pod_level, &container(json!({"runAsUser": 1000})), None, ""),
            Ok(())
        );
    }

    #[test]
    fn pods_wanting_cluster_dns_on_a_node_without_it_are_told() {
        let cluster_first = pod(json!({"containers": [{"name": "a", "image": "busybox"}]}));
        let message = missing_cluster_dns(&cluster_first, &DnsSettings::default()).unwrap();
        assert!(message.starts_with("pod: \"web-1_shop(u-1)\". kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy."), "{message}");
        assert_eq!(missing_cluster_dns(&cluster_first, &cluster_dns()), None);
        let default = pod(json!({"dnsPolicy": "Default", "containers": []}));
        assert_eq!(missing_cluster_dns(&default, &DnsSettings::default()), None);
    }

    fn cluster_dns() -> DnsSettings {
        DnsSettings {
            host: HostDns::parse("nameserver 10.0.0.2\nsearch corp.example\noptions ndots:1\n"),
            cluster_servers: vec!["10.43.0.10".into()],
            cluster_domain: "cluster.local".into(),
        }
    }

    #[test]
    fn cluster_first_searches_the_namespace_first_with_ndots_5() {
        let pod = pod(json!({"containers": [{"name": "a", "image": "busybox"}]}));
        let dns = dns_config(&pod, &cluster_dns());
        assert_eq!(dns.servers, ["10.43.0.10"]);
        assert_eq!(
            dns.searches,
            [
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example"
            ]
        );
        assert_eq!(dns.options, ["ndots:5"]);
    }

    #[test]
    fn host_network_pods_need_cluster_first_with_host_net_for_cluster_dns() {
        let host_net = pod(json!({"hostNetwork": true,
            "containers": [{"name": "a", "image": "busybox"}]}));
        assert_eq!(dns_config(&host_net, &cluster_dns()).servers, ["10.0.0.2"]);
        let with_host_net = pod(
            json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet",
            "containers": [{"name": "a", "image": "busybox"}]}),
        );
        assert_eq!(
            dns_config(&with_host_net, &cluster_dns()).servers,
            ["10.43.0.10"]
        );
        let default = pod(json!({"dnsPolicy": "Default",
            "containers": [{"name": "a", "image": "busybox"}]}));
        let dns = dns_config(&default, &cluster_dns());
        assert_eq!(dns.servers, ["10.0.0.2"]);
        assert_eq!(dns.options, ["ndots:1"]);
    }

    #[test]
    fn pod_dns_config_adds_to_the_policy_base_within_upstream_limits() {
        let pod = pod(
            json!({"dnsConfig": {"nameservers": ["1.1.1.1", "8.8.8.8", "9.9.9.9"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]},
            "containers": [{"name": "a", "image": "busybox"}]}),
        );
        let dns = dns_config(&pod, &cluster_dns());
        assert_eq!(dns.servers, ["10.43.0.10", "1.1.1.1", "8.8.8.8"]);
        assert_eq!(dns.options, ["ndots:2", "edns0"]);
    }

    #[test]
    fn the_container_config_names_its_attempt_log_and_hash() {
        let pod = pod(json!({"containers": [{"name": "web", "image": "busybox",
            "securityContext": {"runAsUser": 1000, "readOnlyRootFilesystem": true,
                "capabilities": {"add": ["NET_ADMIN"]}}}]}));
        let container = &pod.spec.as_ref().unwrap().containers[0];
        let config = container_config(
            &pod,
            &ContainerLaunch {
                container,
                attempt: 2,
                image_ref: "sha256:abc".into(),
                command: vec!["httpd".into()],
                args: vec!["-f".into()],
                env: vec![("A".into(), "1".into())],
                mounts: Vec::new(),
                resources: cri::LinuxContainerResources::default(),
                spec_hash: "h1".into(),
                restart_count: 2,
            },
        );
        assert_eq!(config.log_path, "web/2.log");
        assert_eq!(config.metadata.unwrap().attempt, 2);
        assert_eq!(config.image.unwrap().user_specified_image, "busybox");
        assert_eq!(config.labels[CONTAINER_NAME_LABEL], "web");
        assert_eq!(config.annotations[CONTAINER_HASH_ANNOTATION], "h1");
        assert_eq!(config.annotations[RESTART_COUNT_ANNOTATION], "2");
        assert_eq!(config.envs[0].key, "A");
        let security = config.linux.unwrap().security_context.unwrap();
        assert_eq!(security.run_as_user.unwrap().value, 1000);
        assert!(security.readonly_rootfs);
        assert_eq!(
            security.capabilities.unwrap().add_capabilities,
            ["NET_ADMIN"]
        );
    }
}
