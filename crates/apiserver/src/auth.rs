//! Request authentication: who is calling, from a verified client certificate or a bearer token.

use std::fmt;

use rustls_pki_types::CertificateDer;

/// Every authenticated user is in this group, as kube-apiserver adds it.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// The user a `--token` holder authenticates as.
pub const TOKEN_USER: &str = "krust:token";
const TOKEN_GROUPS: [&str; 2] = ["system:masters", AUTHENTICATED_GROUP];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

/// The user a client certificate names: CN is the user, every O a group, as kube-apiserver reads them.
///
/// Only call this with a certificate the TLS handshake has already verified against the cluster CA.
/// Returns None when the certificate does not parse or has no common name.
pub fn user_from_client_certificate(der: &[u8]) -> Option<UserInfo> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = certificate.subject();
    // Go's crypto/x509 keeps the last CN when a subject repeats it; kube-apiserver uses that one.
    let name = subject
        .iter_common_name()
        .last()
        .and_then(|attribute| attribute.as_str().ok())?;
    if name.is_empty() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .filter_map(|attribute| attribute.as_str().ok())
        .map(String::from)
        .collect();
    Some(with_authenticated_group(name.to_string(), groups))
}

fn with_authenticated_group(name: String, mut groups: Vec<String>) -> UserInfo {
    if !groups.iter().any(|group| group == AUTHENTICATED_GROUP) {
        groups.push(AUTHENTICATED_GROUP.to_string());
    }
    UserInfo { name, groups }
}

/// Accepts the static bearer token(s) given with `--token`.
///
/// A holder is user `krust:token` in `system:masters`: agents join the cluster with this token, so for now it
/// grants full access; RBAC will narrow what it may do once it exists.
#[derive(Clone, Default)]
pub struct TokenAuthenticator {
    tokens: Vec<Vec<u8>>,
}

impl fmt::Debug for TokenAuthenticator {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("TokenAuthenticator")
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

impl TokenAuthenticator {
    /// Empty tokens are ignored: they would otherwise match an empty credential.
    pub fn new<I, S>(tokens: I) -> TokenAuthenticator
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let tokens = tokens
            .into_iter()
            .map(Into::into)
            .filter(|token| !token.is_empty())
            .map(String::into_bytes)
            .collect();
        TokenAuthenticator { tokens }
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Authenticates an `Authorization` header value of the form `Bearer <token>`.
    ///
    /// Parsing follows kube-apiserver: surrounding whitespace is trimmed, the scheme is case-insensitive
    /// (RFC 6750), and the token is the text between the first and second space.
    pub fn authenticate(&self, authorization_header: &str) -> Option<UserInfo> {
        let mut parts = authorization_header.trim().splitn(3, ' ');
        let scheme = parts.next()?;
        let presented = parts.next()?;
        if !scheme.eq_ignore_ascii_case("bearer") || presented.is_empty() {
            return None;
        }
        // Every configured token is compared, so timing does not reveal which one (if any) was close.
        let matched = self.tokens.iter().fold(false, |matched, token| {
            matched | constant_time_eq(token, presented.as_bytes())
        });
        matched.then(|| UserInfo {
            name: TOKEN_USER.to_string(),
            groups: TOKEN_GROUPS.map(String::from).to_vec(),
        })
    }
}

/// Compares in time that depends only on the lengths, never on where the first differing byte is.
fn constant_time_eq(expected: &[u8], presented: &[u8]) -> bool {
    let mut difference = expected.len() ^ presented.len();
    for (index, expected_byte) in expected.iter().enumerate() {
        let presented_byte = presented.get(index).copied().unwrap_or(0);
        difference |= usize::from(expected_byte ^ presented_byte);
    }
    std::hint::black_box(difference) == 0
}

/// Authenticates a request: the TLS-verified client certificate first, then the bearer token.
///
/// `peer_certificates` must come from a handshake verified against the cluster CA (as `tls::server_config`
/// does), leaf first. None means the caller answers 401 unless `is_anonymous_path` allows the request.
pub fn authenticate(
    peer_certificates: Option<&[CertificateDer<'_>]>,
    authorization: Option<&str>,
    tokens: &TokenAuthenticator,
) -> Option<UserInfo> {
    peer_certificates
        .and_then(<[CertificateDer<'_>]>::first)
        .and_then(|leaf| user_from_client_certificate(leaf))
        .or_else(|| authorization.and_then(|header| tokens.authenticate(header)))
}

/// Whether a path is served without authentication: health checks (including individual checks such as
/// `/readyz/ping`) and `/version`, which kube-apiserver exposes to `system:unauthenticated`.
pub fn is_anonymous_path(path: &str) -> bool {
    const HEALTH_PATHS: [&str; 3] = ["/healthz", "/livez", "/readyz"];
    if path == "/version" || path == "/version/" {
        return true;
    }
    HEALTH_PATHS
        .iter()
        .any(|health| match path.strip_prefix(health) {
            Some("") => true,
            Some(check) => check.strip_prefix('/').is_some_and(is_health_check_name),
            None => false,
        })
}

/// Check names are like `ping`, `etcd` or `poststarthook/start-informers`; anything else (dot segments,
/// percent-encoding) is refused so that a crafted path cannot ride on the anonymous allowance.
fn is_health_check_name(check: &str) -> bool {
    check.split('/').all(|segment| {
        !segment.is_empty()
            && segment
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::Pki;
    use rustls_pki_types::pem::PemObject as _;

    fn issued_client_certificate(
        common_name: &str,
        organizations: &[&str],
    ) -> CertificateDer<'static> {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &["localhost".to_string()]).unwrap();
        let (cert_pem, _key_pem) = pki
            .issue_client_certificate(common_name, organizations)
            .unwrap();
        CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()
    }

    fn certificate_without_common_name() -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:masters");
        params.self_signed(&key).unwrap().der().clone()
    }

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|value| value.to_string()).collect()
    }

    #[test]
    fn client_certificate_names_user_and_groups() {
        let certificate = issued_client_certificate("jane", &["developers", "ops"]);
        assert_eq!(
            user_from_client_certificate(&certificate),
            Some(UserInfo {
                name: "jane".to_string(),
                groups: strings(&["developers", "ops", AUTHENTICATED_GROUP]),
            })
        );
    }

    #[test]
    fn authenticated_group_is_not_duplicated() {
        let certificate = issued_client_certificate("jane", &[AUTHENTICATED_GROUP]);
        let user = user_from_client_certificate(&certificate).unwrap();
        assert_eq!(user.groups, [AUTHENTICATED_GROUP]);
    }

    #[test]
    fn certificate_without_common_name_or_garbage_names_nobody() {
        assert_eq!(
            user_from_client_certificate(&certificate_without_common_name()),
            None
        );
        assert_eq!(user_from_client_certificate(b"not a certificate"), None);
    }

    #[test]
    fn bearer_token_is_accepted_with_any_scheme_case() {
        let tokens = TokenAuthenticator::new(["first-secret", "second-secret"]);
        let expected = Some(UserInfo {
            name: TOKEN_USER.to_string(),
            groups: strings(&["system:masters", AUTHENTICATED_GROUP]),
        });
        for header in [
            "Bearer first-secret",
            "bearer second-secret",
            "BEARER first-secret",
            "  Bearer first-secret  ",
            "Bearer first-secret trailing-ignored-as-upstream",
        ] {
            assert_eq!(tokens.authenticate(header), expected, "{header:?}");
        }
    }

    #[test]
    fn wrong_or_malformed_credentials_are_refused() {
        let tokens = TokenAuthenticator::new(["secret"]);
        for header in [
            "Bearer wrong",
            "Bearer secre",
            "Bearer secrets",
            "Bearer SECRET",
            "Bearer",
            "Bearer ",
            "Bearer  secret",
            "Basic secret",
            "secret",
            "",
        ] {
            assert_eq!(tokens.authenticate(header), None, "{header:?}");
        }
    }

    #[test]
    fn empty_tokens_are_never_configured() {
        let tokens = TokenAuthenticator::new([""]);
        assert!(tokens.is_empty());
        assert_eq!(tokens.authenticate("Bearer "), None);
        assert!(!format!("{tokens:?}").contains("secret"));
        assert!(!format!("{:?}", TokenAuthenticator::new(["secret"])).contains("secret"));
    }

    #[test]
    fn constant_time_eq_matches_only_equal_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abc\0", b"abc"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn certificate_takes_precedence_over_token() {
        let tokens = TokenAuthenticator::new(["secret"]);
        let certificate = issued_client_certificate("admin", &["system:masters"]);
        let user = authenticate(
            Some(std::slice::from_ref(&certificate)),
            Some("Bearer secret"),
            &tokens,
        )
        .unwrap();
        assert_eq!(user.name, "admin");
    }

    #[test]
    fn token_is_used_without_a_usable_certificate() {
        let tokens = TokenAuthenticator::new(["secret"]);
        let nameless = certificate_without_common_name();
        for certificates in [None, Some(&[][..]), Some(std::slice::from_ref(&nameless))] {
            let user = authenticate(certificates, Some("Bearer secret"), &tokens).unwrap();
            assert_eq!(user.name, TOKEN_USER);
            assert_eq!(
                authenticate(certificates, Some("Bearer nope"), &tokens),
                None
            );
            assert_eq!(authenticate(certificates, None, &tokens), None);
        }
    }

    #[test]
    fn only_health_and_version_paths_are_anonymous() {
        for path in [
            "/healthz",
            "/livez",
            "/readyz",
            "/readyz/ping",
            "/livez/etcd",
            "/healthz/poststarthook/start-informers",
            "/version",
            "/version/",
        ] {
            assert!(is_anonymous_path(path), "{path}");
        }
        for path in [
            "/",
            "/api",
            "/api/v1/secrets",
            "/healthzz",
            "/readyz-foo",
            "/readyz/",
            "/readyz/../api/v1/secrets",
            "/readyz/%2e%2e/api",
            "/readyz//ping",
            "/version/extra",
            "/versions",
            "healthz",
        ] {
            assert!(!is_anonymous_path(path), "{path}");
        }
    }
}
