//! Kubeconfig files for kubectl and other clients: cluster "krust", user "admin", context "krust".

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use base64::Engine as _;

use crate::pki::write_file_atomically;

/// A kubeconfig with the credentials embedded, so it works wherever it is copied to.
pub fn render_kubeconfig(
    server_url: &str,
    ca_pem: &str,
    client_cert_pem: &str,
    client_key_pem: &str,
) -> String {
    let base64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    // A JSON string is a valid YAML double-quoted scalar, so any URL is quoted and escaped correctly.
    let server = serde_json::Value::from(server_url).to_string();
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: krust
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: krust
  context:
    cluster: krust
    user: admin
current-context: krust
preferences: {{}}
",
        ca = base64(ca_pem),
        cert = base64(client_cert_pem),
        key = base64(client_key_pem),
    )
}

/// Writes a kubeconfig readable only by its owner (it holds a private key), replacing any old one atomically.
pub fn write_kubeconfig(path: &Path, contents: &str) -> io::Result<()> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)?;
    }
    write_file_atomically(path, contents.as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    const KUBECTL: &str = "/usr/bin/kubectl";

    fn kubectl_view(path: &Path, jsonpath: &str) -> String {
        let output = Command::new(KUBECTL)
            .args(["config", "view", "--raw", "--kubeconfig"])
            .arg(path)
            .args(["-o", &format!("jsonpath={jsonpath}")])
            .output()
            .expect("kubectl must be installed at /usr/bin/kubectl");
        assert!(
            output.status.success(),
            "kubectl rejected the kubeconfig: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    #[test]
    fn kubectl_reads_server_and_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::pki::Pki::load_or_create(dir.path(), &["127.0.0.1".to_string()]).unwrap();
        let (cert_pem, key_pem) = pki
            .issue_client_certificate("admin", &["system:masters"])
            .unwrap();
        let server_url = "https://127.0.0.1:6443";
        let contents = render_kubeconfig(server_url, pki.ca_certificate_pem(), &cert_pem, &key_pem);
        let path = dir.path().join("nested/dir/kubeconfig.yaml");
        write_kubeconfig(&path, &contents).unwrap();

        assert_eq!(
            kubectl_view(&path, "{.clusters[0].cluster.server}"),
            server_url
        );
        assert_eq!(kubectl_view(&path, "{.current-context}"), "krust");
        assert_eq!(kubectl_view(&path, "{.contexts[0].context.user}"), "admin");
        let decode = |jsonpath: &str| {
            let encoded = kubectl_view(&path, jsonpath);
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .unwrap(),
            )
            .unwrap()
        };
        assert_eq!(
            decode("{.clusters[0].cluster.certificate-authority-data}"),
            pki.ca_certificate_pem()
        );
        assert_eq!(decode("{.users[0].user.client-certificate-data}"), cert_pem);
        assert_eq!(decode("{.users[0].user.client-key-data}"), key_pem);
    }

    #[test]
    fn server_url_with_yaml_special_characters_survives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        let server_url = "https://[fd00::1]:6443/#path: 'x'";
        write_kubeconfig(&path, &render_kubeconfig(server_url, "ca", "cert", "key")).unwrap();
        assert_eq!(
            kubectl_view(&path, "{.clusters[0].cluster.server}"),
            server_url
        );
    }

    #[test]
    fn replaces_existing_file_with_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_kubeconfig(&path, "new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary files left"
        );
    }
}
