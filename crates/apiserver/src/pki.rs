//! The cluster PKI: a self-managed CA on disk, the apiserver's serving certificate and client certificates signed by it.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, SanType, SigningKey as _,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};

pub const CA_CERT_FILE: &str = "ca.crt";
pub const CA_KEY_FILE: &str = "ca.key";
pub const SERVING_CERT_FILE: &str = "serving.crt";
pub const SERVING_KEY_FILE: &str = "serving.key";

const CA_COMMON_NAME: &str = "krust-ca";
const SERVING_COMMON_NAME: &str = "kube-apiserver";
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
const SERVING_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);
const CLIENT_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// A serving certificate this close to expiry is replaced at startup rather than left to lapse while running.
const SERVING_RENEWAL_WINDOW: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Certificates are backdated so that nodes whose clocks lag a little still accept them immediately.
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(60 * 60);

const OID_COMMON_NAME: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];
const OID_ORGANIZATION: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x0a];
const DER_TAG_SEQUENCE: u8 = 0x30;
const DER_TAG_SET: u8 = 0x31;
const DER_TAG_UTF8_STRING: u8 = 0x0c;
const DER_TAG_BIT_STRING: u8 = 0x03;
const DER_TAG_EXPLICIT_VERSION: u8 = 0xa0;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{} is corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("{} exists but {} is missing; restore it or remove both to create a new CA", present.display(), missing.display())]
    IncompletePair { present: PathBuf, missing: PathBuf },
    #[error("{} does not hold the private key of {}", key.display(), certificate.display())]
    KeyMismatch { key: PathBuf, certificate: PathBuf },
    #[error("no subject alternative names requested for the serving certificate")]
    NoSubjectAltNames,
    #[error("invalid subject alternative name {0:?}: neither an IP address nor an ASCII DNS name")]
    InvalidSubjectAltName(String),
    #[error("a client certificate needs a non-empty common name (the user name)")]
    EmptyCommonName,
    #[error("certificate generation failed: {0}")]
    Generation(String),
}

impl From<rcgen::Error> for PkiError {
    fn from(error: rcgen::Error) -> Self {
        PkiError::Generation(error.to_string())
    }
}

/// The CA that signs every cluster certificate; its key never leaves this struct.
struct CertificateAuthority {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    /// The CA's subject exactly as encoded in its certificate: issued certificates must repeat these bytes to chain.
    subject_der: Vec<u8>,
    subject_key_identifier: Option<Vec<u8>>,
    key: KeyPair,
}

/// The cluster CA plus the apiserver's serving certificate, as loaded from (or created in) the PKI directory.
pub struct Pki {
    ca: CertificateAuthority,
    serving_cert_pem: String,
    serving_cert_der: CertificateDer<'static>,
    serving_key_pem: String,
    serving_key_der: PrivatePkcs8KeyDer<'static>,
}

impl fmt::Debug for Pki {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("Pki").finish_non_exhaustive()
    }
}

impl Pki {
    /// Loads the PKI from `dir`, creating the CA and serving certificate on first start.
    ///
    /// The CA is never replaced; the serving certificate is re-issued when it is missing, lacks one of `sans`,
    /// expires within 30 days, or no longer chains to the CA.
    pub fn load_or_create(dir: &Path, sans: &[String]) -> Result<Pki, PkiError> {
        let requested_sans = parse_subject_alt_names(sans)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| io_error(dir, source))?;

        let ca = load_or_create_ca(dir)?;
        let serving_cert_path = dir.join(SERVING_CERT_FILE);
        let serving_key_path = dir.join(SERVING_KEY_FILE);
        let existing = match (
            read_optional(&serving_cert_path)?,
            read_optional(&serving_key_path)?,
        ) {
            (Some(cert_pem), Some(key_pem)) => {
                let cert_der = parse_certificate_pem(&serving_cert_path, &cert_pem)?;
                let key = parse_key_pem(&serving_key_path, &key_pem)?;
                Some((cert_pem, cert_der, key_pem, key))
            }
            _ => None,
        };

        let reusable = match existing {
            Some((cert_pem, cert_der, key_pem, key)) => {
                match serving_reissue_reason(&ca, &cert_der, &key, &requested_sans) {
                    None => Some((cert_pem, cert_der, key_pem, key)),
                    Some(reason) => {
                        tracing::info!(%reason, "re-issuing the apiserver serving certificate");
                        None
                    }
                }
            }
            None => None,
        };

        let (serving_cert_pem, serving_cert_der, serving_key_pem, serving_key) = match reusable {
            Some(existing) => existing,
            None => {
                let subject = encode_subject(SERVING_COMMON_NAME, &[]);
                let (cert_der, key) = ca.issue(
                    &subject,
                    requested_sans.iter().map(RequestedSan::to_rcgen).collect(),
                    ExtendedKeyUsagePurpose::ServerAuth,
                    SERVING_LIFETIME,
                )?;
                let cert_pem = pem_encode("CERTIFICATE", &cert_der);
                let key_pem = key.serialize_pem();
                // The key goes first: a certificate without its key is re-issued, never trusted.
                write_file_atomically(&serving_key_path, key_pem.as_bytes(), 0o600)
                    .map_err(|source| io_error(&serving_key_path, source))?;
                write_file_atomically(&serving_cert_path, cert_pem.as_bytes(), 0o644)
                    .map_err(|source| io_error(&serving_cert_path, source))?;
                (cert_pem, cert_der, key_pem, key)
            }
        };

        Ok(Pki {
            ca,
            serving_cert_pem,
            serving_cert_der,
            serving_key_pem,
            serving_key_der: PrivatePkcs8KeyDer::from(serving_key.serialize_der()),
        })
    }

    /// Issues a client certificate that Kubernetes reads as user `common_name` in groups `organizations`.
    ///
    /// Returns the certificate and its fresh private key, both PEM.
    pub fn issue_client_certificate(
        &self,
        common_name: &str,
        organizations: &[&str],
    ) -> Result<(String, String), PkiError> {
        if common_name.is_empty() {
            return Err(PkiError::EmptyCommonName);
        }
        let subject = encode_subject(common_name, organizations);
        let (cert_der, key) = self.ca.issue(
            &subject,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
            CLIENT_LIFETIME,
        )?;
        Ok((pem_encode("CERTIFICATE", &cert_der), key.serialize_pem()))
    }

    /// Issues a serving certificate (CN `common_name`) for `sans`, e.g. a
    /// kubelet's node name and addresses, so the API server can verify it.
    ///
    /// Returns the certificate and its fresh private key, both PEM.
    pub fn issue_serving_certificate(
        &self,
        common_name: &str,
        sans: &[String],
    ) -> Result<(String, String), PkiError> {
        let requested = parse_subject_alt_names(sans)?;
        let (cert_der, key) = self.ca.issue(
            &encode_subject(common_name, &[]),
            requested.iter().map(RequestedSan::to_rcgen).collect(),
            ExtendedKeyUsagePurpose::ServerAuth,
            SERVING_LIFETIME,
        )?;
        Ok((pem_encode("CERTIFICATE", &cert_der), key.serialize_pem()))
    }

    pub fn ca_certificate_pem(&self) -> &str {
        &self.ca.cert_pem
    }

    pub fn ca_certificate_der(&self) -> &CertificateDer<'static> {
        &self.ca.cert_der
    }

    pub fn serving_certificate_pem(&self) -> &str {
        &self.serving_cert_pem
    }

    pub fn serving_certificate_der(&self) -> &CertificateDer<'static> {
        &self.serving_cert_der
    }

    pub fn serving_key_pem(&self) -> &str {
        &self.serving_key_pem
    }

    pub fn serving_key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.serving_key_der.clone_key())
    }
}

/// The SANs the apiserver's serving certificate needs so that clients on the node, on other nodes and in pods
/// (via the `kubernetes` service) can all verify it.
pub fn default_sans(hostname: &str, node_ips: &[IpAddr], first_service_ip: IpAddr) -> Vec<String> {
    let mut sans = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST).to_string(),
        "localhost".to_string(),
        hostname.to_string(),
    ];
    sans.extend(node_ips.iter().map(IpAddr::to_string));
    sans.extend(
        [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        .map(String::from),
    );
    sans.push(first_service_ip.to_string());

    let mut seen = BTreeSet::new();
    sans.retain(|san| !san.is_empty() && seen.insert(san.to_ascii_lowercase()));
    sans
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum RequestedSan {
    Ip(IpAddr),
    /// Lower-cased, as DNS names compare case-insensitively.
    Dns(String),
}

impl RequestedSan {
    fn to_rcgen(&self) -> SanType {
        match self {
            RequestedSan::Ip(ip) => SanType::IpAddress(*ip),
            RequestedSan::Dns(name) => SanType::DnsName(
                name.clone()
                    .try_into()
                    .expect("DNS names are checked to be ASCII when parsed"),
            ),
        }
    }
}

impl fmt::Display for RequestedSan {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestedSan::Ip(ip) => write!(formatter, "{ip}"),
            RequestedSan::Dns(name) => formatter.write_str(name),
        }
    }
}

fn parse_subject_alt_names(sans: &[String]) -> Result<Vec<RequestedSan>, PkiError> {
    if sans.is_empty() {
        return Err(PkiError::NoSubjectAltNames);
    }
    let mut parsed = BTreeSet::new();
    for san in sans {
        let san = san.trim();
        let requested = match san.parse::<IpAddr>() {
            Ok(ip) => RequestedSan::Ip(ip),
            Err(_) if !san.is_empty() && san.is_ascii() && !san.contains(char::is_whitespace) => {
                RequestedSan::Dns(san.to_ascii_lowercase())
            }
            Err(_) => return Err(PkiError::InvalidSubjectAltName(san.to_string())),
        };
        parsed.insert(requested);
    }
    Ok(parsed.into_iter().collect())
}

fn load_or_create_ca(dir: &Path) -> Result<CertificateAuthority, PkiError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    match (read_optional(&cert_path)?, read_optional(&key_path)?) {
        (Some(cert_pem), Some(key_pem)) => {
            CertificateAuthority::load(&cert_path, cert_pem, &key_path, &key_pem)
        }
        (None, None) => {
            let ca = CertificateAuthority::generate()?;
            write_file_atomically(&key_path, ca.key.serialize_pem().as_bytes(), 0o600)
                .map_err(|source| io_error(&key_path, source))?;
            write_file_atomically(&cert_path, ca.cert_pem.as_bytes(), 0o644)
                .map_err(|source| io_error(&cert_path, source))?;
            tracing::info!(dir = %dir.display(), "created the cluster CA");
            Ok(ca)
        }
        // Silently replacing half a CA would invalidate every certificate and kubeconfig already handed out.
        (Some(_), None) => Err(PkiError::IncompletePair {
            present: cert_path,
            missing: key_path,
        }),
        (None, Some(_)) => Err(PkiError::IncompletePair {
            present: key_path,
            missing: cert_path,
        }),
    }
}

impl CertificateAuthority {
    fn generate() -> Result<CertificateAuthority, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, CA_COMMON_NAME);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, CA_LIFETIME);
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        let (subject_der, subject_key_identifier) = ca_names(cert.der())
            .map_err(|reason| PkiError::Generation(format!("generated CA unreadable: {reason}")))?;
        Ok(CertificateAuthority {
            cert_pem,
            cert_der: cert.der().clone(),
            subject_der,
            subject_key_identifier,
            key,
        })
    }

    fn load(
        cert_path: &Path,
        cert_pem: String,
        key_path: &Path,
        key_pem: &str,
    ) -> Result<CertificateAuthority, PkiError> {
        let cert_der = parse_certificate_pem(cert_path, &cert_pem)?;
        let key = parse_key_pem(key_path, key_pem)?;
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der)
            .expect("parse_certificate_pem already parsed it");
        if !cert.is_ca() {
            return Err(corrupt(cert_path, "not a CA certificate"));
        }
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(PkiError::KeyMismatch {
                key: key_path.to_path_buf(),
                certificate: cert_path.to_path_buf(),
            });
        }
        if cert.validity().not_after.timestamp() <= unix_now() {
            tracing::warn!(path = %cert_path.display(), "the cluster CA has expired; every certificate it signed is now rejected");
        }
        let (subject_der, subject_key_identifier) =
            ca_names(&cert_der).map_err(|reason| corrupt(cert_path, &reason))?;
        Ok(CertificateAuthority {
            cert_pem,
            cert_der,
            subject_der,
            subject_key_identifier,
            key,
        })
    }

    /// Issues a leaf certificate for a fresh P-256 key.
    ///
    /// rcgen 0.14 keeps one value per attribute type in a subject (rustls/rcgen#81), yet Kubernetes reads every
    /// O as a group, and a loaded CA's subject must be repeated byte for byte. So rcgen builds the certificate
    /// (validity, SANs, extensions) and the issuer and subject names are then replaced and the TBS re-signed.
    fn issue(
        &self,
        subject_der: &[u8],
        sans: Vec<SanType>,
        usage: ExtendedKeyUsagePurpose,
        lifetime: Duration,
    ) -> Result<(CertificateDer<'static>, KeyPair), PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, lifetime);

        let mut issuer_params = CertificateParams::default();
        issuer_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        issuer_params.key_identifier_method = match &self.subject_key_identifier {
            Some(identifier) => KeyIdMethod::PreSpecified(identifier.clone()),
            None => KeyIdMethod::Sha256,
        };
        let issuer = Issuer::new(issuer_params, &self.key);
        let draft = params.signed_by(&key, &issuer)?;
        let cert_der =
            replace_names_and_resign(draft.der(), &self.subject_der, subject_der, &self.key)?;
        Ok((CertificateDer::from(cert_der), key))
    }
}

/// The CA's raw subject and subject key identifier, which issued certificates must carry as issuer and AKI.
fn ca_names(cert_der: &[u8]) -> Result<(Vec<u8>, Option<Vec<u8>>), String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(cert_der).map_err(|error| error.to_string())?;
    let subject_key_identifier =
        cert.extensions()
            .iter()
            .find_map(|extension| match extension.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(identifier) => Some(identifier.0.to_vec()),
                _ => None,
            });
    Ok((cert.subject().as_raw().to_vec(), subject_key_identifier))
}

fn serving_reissue_reason(
    ca: &CertificateAuthority,
    cert_der: &CertificateDer<'static>,
    key: &KeyPair,
    requested_sans: &[RequestedSan],
) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .expect("parse_certificate_pem already parsed it");
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Some(format!(
            "{SERVING_KEY_FILE} does not match {SERVING_CERT_FILE}"
        ));
    }
    let present = certificate_sans(&cert);
    let missing: Vec<String> = requested_sans
        .iter()
        .filter(|san| !present.contains(san))
        .map(RequestedSan::to_string)
        .collect();
    if !missing.is_empty() {
        return Some(format!(
            "missing subject alternative names {}",
            missing.join(", ")
        ));
    }
    let renew_after =
        cert.validity().not_after.timestamp() - SERVING_RENEWAL_WINDOW.as_secs() as i64;
    if unix_now() >= renew_after {
        return Some("expires within 30 days".to_string());
    }
    if let Err(error) = verify_serving_chain(ca, cert_der, &present) {
        return Some(format!("does not verify against the cluster CA: {error}"));
    }
    None
}

fn certificate_sans(cert: &X509Certificate<'_>) -> BTreeSet<RequestedSan> {
    let Ok(Some(extension)) = cert.subject_alternative_name() else {
        return BTreeSet::new();
    };
    extension
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(RequestedSan::Dns(dns.to_ascii_lowercase())),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => Some(RequestedSan::Ip(IpAddr::from(
                    <[u8; 4]>::try_from(*bytes).ok()?,
                ))),
                16 => Some(RequestedSan::Ip(IpAddr::from(
                    <[u8; 16]>::try_from(*bytes).ok()?,
                ))),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Checks signature, validity period and server-auth usage the way a TLS client would; SANs are checked separately.
fn verify_serving_chain(
    ca: &CertificateAuthority,
    cert_der: &CertificateDer<'static>,
    sans: &BTreeSet<RequestedSan>,
) -> Result<(), String> {
    let server_name = sans
        .iter()
        .find_map(|san| ServerName::try_from(san.to_string()).ok())
        .ok_or("no subject alternative name usable as a TLS server name")?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca.cert_der.clone())
        .map_err(|error| error.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|error| error.to_string())?;
    rustls::client::danger::ServerCertVerifier::verify_server_cert(
        verifier.as_ref(),
        cert_der,
        &[],
        &server_name,
        &[],
        UnixTime::now(),
    )
    .map(|_| ())
    .map_err(|error| error.to_string())
}

fn set_validity(params: &mut CertificateParams, lifetime: Duration) {
    // rcgen wants `time::OffsetDateTime`; deriving it from the epoch avoids depending on `time` directly.
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    params.not_before = epoch + since_epoch.saturating_sub(CLOCK_SKEW_ALLOWANCE);
    params.not_after = epoch + since_epoch + lifetime;
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since_epoch| since_epoch.as_secs() as i64)
}

fn read_optional(path: &Path) -> Result<Option<String>, PkiError> {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| corrupt(path, "not UTF-8 PEM")),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(io_error(path, source)),
    }
}

fn parse_certificate_pem(path: &Path, pem: &str) -> Result<CertificateDer<'static>, PkiError> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|error| corrupt(path, &format!("no PEM certificate: {error}")))?;
    x509_parser::parse_x509_certificate(&der)
        .map_err(|error| corrupt(path, &format!("invalid certificate: {error}")))?;
    Ok(der)
}

fn parse_key_pem(path: &Path, pem: &str) -> Result<KeyPair, PkiError> {
    KeyPair::from_pem(pem).map_err(|error| corrupt(path, &format!("invalid private key: {error}")))
}

fn corrupt(path: &Path, reason: &str) -> PkiError {
    PkiError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.replace('\n', " "),
    }
}

fn io_error(path: &Path, source: io::Error) -> PkiError {
    PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// Replaces `path` with `contents` so that readers see the old or the new file, never a partial one, and the
/// new file has `mode` regardless of umask.
pub(crate) fn write_file_atomically(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let temp_path = directory.join(format!(
        ".{}.tmp-{}-{}",
        file_name.to_string_lossy(),
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));

    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp_path)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temp_path, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp_path);
    }
    result?;
    // The rename is only durable once the directory entry is.
    fs::File::open(directory)?.sync_all()
}

/// A subject of CN=`common_name` followed by one O per organization, each in its own RDN as `openssl` and Go write them.
fn encode_subject(common_name: &str, organizations: &[&str]) -> Vec<u8> {
    let attribute = |oid: &[u8], value: &str| {
        let type_and_value = der_encode(
            DER_TAG_SEQUENCE,
            &[oid, &der_encode(DER_TAG_UTF8_STRING, value.as_bytes())].concat(),
        );
        der_encode(DER_TAG_SET, &type_and_value)
    };
    let mut relative_names = attribute(OID_COMMON_NAME, common_name);
    for organization in organizations {
        relative_names.extend(attribute(OID_ORGANIZATION, organization));
    }
    der_encode(DER_TAG_SEQUENCE, &relative_names)
}

/// Rewrites the issuer and subject of a certificate's TBS part and signs it again with `ca_key`.
fn replace_names_and_resign(
    cert_der: &[u8],
    issuer_der: &[u8],
    subject_der: &[u8],
    ca_key: &KeyPair,
) -> Result<Vec<u8>, PkiError> {
    const ISSUER_INDEX: usize = 3;
    const SUBJECT_INDEX: usize = 5;
    let malformed =
        || PkiError::Generation("rcgen produced an unexpected certificate layout".to_string());

    let certificate_parts =
        der_children(der_content(cert_der).ok_or_else(malformed)?).ok_or_else(malformed)?;
    let [tbs, signature_algorithm, _signature] = certificate_parts[..] else {
        return Err(malformed());
    };
    let mut tbs_parts =
        der_children(der_content(tbs).ok_or_else(malformed)?).ok_or_else(malformed)?;
    if tbs_parts.len() <= SUBJECT_INDEX || tbs_parts[0].first() != Some(&DER_TAG_EXPLICIT_VERSION) {
        return Err(malformed());
    }
    tbs_parts[ISSUER_INDEX] = issuer_der;
    tbs_parts[SUBJECT_INDEX] = subject_der;
    let tbs = der_encode(DER_TAG_SEQUENCE, &tbs_parts.concat());

    let signature = ca_key.sign(&tbs)?;
    let signature_bits = der_encode(DER_TAG_BIT_STRING, &[&[0u8][..], &signature].concat());
    Ok(der_encode(
        DER_TAG_SEQUENCE,
        &[&tbs[..], signature_algorithm, &signature_bits].concat(),
    ))
}

fn der_encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut encoded = vec![tag];
    let length = content.len();
    if length < 0x80 {
        encoded.push(length as u8);
    } else {
        let length_bytes = length.to_be_bytes();
        let significant =
            &length_bytes[length_bytes.iter().take_while(|byte| **byte == 0).count()..];
        encoded.push(0x80 | significant.len() as u8);
        encoded.extend_from_slice(significant);
    }
    encoded.extend_from_slice(content);
    encoded
}

/// Header length and content length of the DER element at the start of `bytes`.
fn der_header(bytes: &[u8]) -> Option<(usize, usize)> {
    let first_length_byte = *bytes.get(1)?;
    if first_length_byte < 0x80 {
        return Some((2, first_length_byte as usize));
    }
    let length_bytes = (first_length_byte & 0x7f) as usize;
    if length_bytes == 0 || length_bytes > std::mem::size_of::<usize>() {
        return None;
    }
    let length = bytes
        .get(2..2 + length_bytes)?
        .iter()
        .fold(0usize, |length, byte| (length << 8) | *byte as usize);
    Some((2 + length_bytes, length))
}

fn der_content(element: &[u8]) -> Option<&[u8]> {
    let (header, length) = der_header(element)?;
    element.get(header..header.checked_add(length)?)
}

/// The complete elements (header included) that make up `content`.
fn der_children(mut content: &[u8]) -> Option<Vec<&[u8]>> {
    let mut children = Vec::new();
    while !content.is_empty() {
        let (header, length) = der_header(content)?;
        let total = header.checked_add(length)?;
        children.push(content.get(..total)?);
        content = &content[total..];
    }
    Some(children)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serving_verifies_for(pki: &Pki, name: &str) -> Result<(), rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca_certificate_der().clone()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        rustls::client::danger::ServerCertVerifier::verify_server_cert(
            verifier.as_ref(),
            pki.serving_certificate_der(),
            &[],
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
    }

    fn sans(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    fn read(dir: &Path, file: &str) -> Vec<u8> {
        fs::read(dir.join(file)).unwrap()
    }

    #[test]
    fn creates_files_with_private_keys_unreadable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        Pki::load_or_create(dir.path(), &sans(&["127.0.0.1", "localhost"])).unwrap();
        for (file, expected_mode) in [
            (CA_CERT_FILE, 0o644),
            (CA_KEY_FILE, 0o600),
            (SERVING_CERT_FILE, 0o644),
            (SERVING_KEY_FILE, 0o600),
        ] {
            let mode = fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, expected_mode, "{file}");
        }
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .filter(|name| name.to_string_lossy().starts_with('.'))
            .collect();
        assert!(
            leftovers.is_empty(),
            "temporary files left behind: {leftovers:?}"
        );
    }

    #[test]
    fn reload_reuses_ca_and_serving_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let requested = sans(&["127.0.0.1", "localhost", "node-1"]);
        let first = Pki::load_or_create(dir.path(), &requested).unwrap();
        let second = Pki::load_or_create(dir.path(), &requested).unwrap();
        assert_eq!(first.ca_certificate_pem(), second.ca_certificate_pem());
        assert_eq!(
            first.serving_certificate_pem(),
            second.serving_certificate_pem()
        );
        assert_eq!(first.serving_key_pem(), second.serving_key_pem());
        assert_eq!(
            first.ca_certificate_pem().as_bytes(),
            read(dir.path(), CA_CERT_FILE)
        );
    }

    #[test]
    fn new_san_reissues_only_the_serving_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let first = Pki::load_or_create(dir.path(), &sans(&["127.0.0.1", "localhost"])).unwrap();
        let ca_key_before = read(dir.path(), CA_KEY_FILE);
        assert!(serving_verifies_for(&first, "10.0.0.7").is_err());

        let second =
            Pki::load_or_create(dir.path(), &sans(&["127.0.0.1", "localhost", "10.0.0.7"]))
                .unwrap();
        assert_eq!(first.ca_certificate_pem(), second.ca_certificate_pem());
        assert_eq!(ca_key_before, read(dir.path(), CA_KEY_FILE));
        assert_ne!(
            first.serving_certificate_pem(),
            second.serving_certificate_pem()
        );
        assert_eq!(
            second.serving_certificate_pem().as_bytes(),
            read(dir.path(), SERVING_CERT_FILE)
        );
        for name in ["127.0.0.1", "localhost", "10.0.0.7"] {
            serving_verifies_for(&second, name).unwrap_or_else(|error| panic!("{name}: {error}"));
        }
    }

    #[test]
    fn serving_certificate_verifies_against_the_ca_for_every_san_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let requested = default_sans(
            "node-1",
            &["192.168.1.10".parse().unwrap(), "fd00::10".parse().unwrap()],
            "10.43.0.1".parse().unwrap(),
        );
        let pki = Pki::load_or_create(dir.path(), &requested).unwrap();
        for name in &requested {
            serving_verifies_for(&pki, name).unwrap_or_else(|error| panic!("{name}: {error}"));
        }
        assert!(serving_verifies_for(&pki, "example.com").is_err());

        let other_dir = tempfile::tempdir().unwrap();
        let other = Pki::load_or_create(other_dir.path(), &requested).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(other.ca_certificate_der().clone()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let foreign = rustls::client::danger::ServerCertVerifier::verify_server_cert(
            verifier.as_ref(),
            pki.serving_certificate_der(),
            &[],
            &ServerName::try_from("localhost").unwrap(),
            &[],
            UnixTime::now(),
        );
        assert!(
            foreign.is_err(),
            "a serving certificate must not verify against another CA"
        );
    }

    #[test]
    fn serving_certificate_from_another_ca_is_reissued() {
        let dir = tempfile::tempdir().unwrap();
        let requested = sans(&["127.0.0.1", "localhost"]);
        Pki::load_or_create(dir.path(), &requested).unwrap();
        let other_dir = tempfile::tempdir().unwrap();
        Pki::load_or_create(other_dir.path(), &requested).unwrap();
        for file in [SERVING_CERT_FILE, SERVING_KEY_FILE] {
            fs::copy(other_dir.path().join(file), dir.path().join(file)).unwrap();
        }
        let pki = Pki::load_or_create(dir.path(), &requested).unwrap();
        assert_ne!(
            pki.serving_certificate_pem().as_bytes(),
            read(other_dir.path(), SERVING_CERT_FILE)
        );
        serving_verifies_for(&pki, "localhost").unwrap();
    }

    #[test]
    fn serving_certificate_near_expiry_is_reissued() {
        let dir = tempfile::tempdir().unwrap();
        let requested = sans(&["127.0.0.1", "localhost"]);
        let pki = Pki::load_or_create(dir.path(), &requested).unwrap();
        let short_lived_sans = parse_subject_alt_names(&requested)
            .unwrap()
            .iter()
            .map(RequestedSan::to_rcgen)
            .collect();
        let (short_lived, key) = pki
            .ca
            .issue(
                &encode_subject(SERVING_COMMON_NAME, &[]),
                short_lived_sans,
                ExtendedKeyUsagePurpose::ServerAuth,
                Duration::from_secs(10 * 24 * 60 * 60),
            )
            .unwrap();
        let short_lived_pem = pem_encode("CERTIFICATE", &short_lived);
        fs::write(dir.path().join(SERVING_CERT_FILE), &short_lived_pem).unwrap();
        fs::write(dir.path().join(SERVING_KEY_FILE), key.serialize_pem()).unwrap();

        let reloaded = Pki::load_or_create(dir.path(), &requested).unwrap();
        assert_ne!(reloaded.serving_certificate_pem(), short_lived_pem);
        assert_eq!(reloaded.ca_certificate_pem(), pki.ca_certificate_pem());
        let (_, cert) =
            x509_parser::parse_x509_certificate(reloaded.serving_certificate_der()).unwrap();
        let remaining = cert.validity().not_after.timestamp() - unix_now();
        assert!(
            remaining > SERVING_RENEWAL_WINDOW.as_secs() as i64,
            "{remaining}s left"
        );
    }

    #[test]
    fn serving_key_not_matching_the_certificate_is_reissued() {
        let dir = tempfile::tempdir().unwrap();
        let requested = sans(&["localhost"]);
        let first = Pki::load_or_create(dir.path(), &requested).unwrap();
        let other_dir = tempfile::tempdir().unwrap();
        Pki::load_or_create(other_dir.path(), &requested).unwrap();
        fs::copy(
            other_dir.path().join(SERVING_KEY_FILE),
            dir.path().join(SERVING_KEY_FILE),
        )
        .unwrap();

        let reloaded = Pki::load_or_create(dir.path(), &requested).unwrap();
        assert_ne!(
            reloaded.serving_certificate_pem(),
            first.serving_certificate_pem()
        );
        let key = KeyPair::from_pem(reloaded.serving_key_pem()).unwrap();
        let (_, cert) =
            x509_parser::parse_x509_certificate(reloaded.serving_certificate_der()).unwrap();
        assert_eq!(
            cert.public_key().subject_public_key.data.as_ref(),
            key.public_key_raw()
        );
    }

    #[test]
    fn corrupt_files_are_reported_by_name_on_one_line() {
        for (file, contents) in [
            (CA_CERT_FILE, "garbage"),
            (
                CA_KEY_FILE,
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            ),
            (SERVING_CERT_FILE, "not a certificate"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            Pki::load_or_create(dir.path(), &sans(&["localhost"])).unwrap();
            fs::write(dir.path().join(file), contents).unwrap();
            let message = Pki::load_or_create(dir.path(), &sans(&["localhost"]))
                .unwrap_err()
                .to_string();
            assert!(message.contains(file), "{file}: {message}");
            assert!(!message.contains('\n'), "{file}: {message}");
        }
    }

    #[test]
    fn half_a_ca_is_an_error_not_a_new_ca() {
        let dir = tempfile::tempdir().unwrap();
        Pki::load_or_create(dir.path(), &sans(&["localhost"])).unwrap();
        fs::remove_file(dir.path().join(CA_KEY_FILE)).unwrap();
        let error = Pki::load_or_create(dir.path(), &sans(&["localhost"])).unwrap_err();
        assert!(matches!(error, PkiError::IncompletePair { .. }), "{error}");
        assert!(!dir.path().join(CA_KEY_FILE).exists());
    }

    #[test]
    fn ca_key_from_another_ca_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let other_dir = tempfile::tempdir().unwrap();
        Pki::load_or_create(dir.path(), &sans(&["localhost"])).unwrap();
        Pki::load_or_create(other_dir.path(), &sans(&["localhost"])).unwrap();
        fs::copy(
            other_dir.path().join(CA_KEY_FILE),
            dir.path().join(CA_KEY_FILE),
        )
        .unwrap();
        let error = Pki::load_or_create(dir.path(), &sans(&["localhost"])).unwrap_err();
        assert!(matches!(error, PkiError::KeyMismatch { .. }), "{error}");
    }

    #[test]
    fn invalid_or_missing_sans_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Pki::load_or_create(dir.path(), &[]),
            Err(PkiError::NoSubjectAltNames)
        ));
        assert!(matches!(
            Pki::load_or_create(dir.path(), &sans(&["bücher.example"])),
            Err(PkiError::InvalidSubjectAltName(_))
        ));
    }

    #[test]
    fn client_certificate_carries_user_groups_and_client_auth() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &sans(&["localhost"])).unwrap();
        let (cert_pem, key_pem) = pki
            .issue_client_certificate("jane", &["system:masters", "developers", "ops"])
            .unwrap();
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).unwrap();

        let common_names: Vec<_> = cert
            .subject()
            .iter_common_name()
            .map(|name| name.as_str().unwrap())
            .collect();
        let organizations: Vec<_> = cert
            .subject()
            .iter_organization()
            .map(|name| name.as_str().unwrap())
            .collect();
        assert_eq!(common_names, ["jane"]);
        assert_eq!(organizations, ["system:masters", "developers", "ops"]);
        assert_eq!(cert.issuer().as_raw(), {
            let (_, ca) = x509_parser::parse_x509_certificate(pki.ca_certificate_der()).unwrap();
            ca.subject().as_raw().to_vec()
        });
        let lifetime =
            cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
        let expected = (CLIENT_LIFETIME + CLOCK_SKEW_ALLOWANCE).as_secs() as i64;
        assert!((lifetime - expected).abs() < 60, "lifetime {lifetime}s");
        KeyPair::from_pem(&key_pem).unwrap();

        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca_certificate_der().clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        verifier
            .verify_client_cert(&cert_der, &[], UnixTime::now())
            .expect("the re-signed client certificate must verify against the CA");

        // A server-auth-only certificate must not pass as a client certificate.
        assert!(
            verifier
                .verify_client_cert(pki.serving_certificate_der(), &[], UnixTime::now())
                .is_err()
        );
    }

    #[test]
    fn client_certificate_needs_a_user_name() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &sans(&["localhost"])).unwrap();
        assert!(matches!(
            pki.issue_client_certificate("", &["system:masters"]),
            Err(PkiError::EmptyCommonName)
        ));
    }

    #[test]
    fn default_sans_cover_node_and_service_names_without_duplicates() {
        let node_ips: Vec<IpAddr> = vec![
            "192.168.1.10".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
        ];
        let sans = default_sans("node-1", &node_ips, "10.43.0.1".parse().unwrap());
        assert_eq!(
            sans,
            [
                "127.0.0.1",
                "localhost",
                "node-1",
                "192.168.1.10",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "10.43.0.1",
            ]
        );
    }

    #[test]
    fn der_lengths_round_trip_in_short_and_long_form() {
        for length in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let content = vec![0xab; length];
            let encoded = der_encode(DER_TAG_SEQUENCE, &content);
            assert_eq!(der_content(&encoded), Some(&content[..]), "length {length}");
            assert_eq!(der_children(&encoded), Some(vec![&encoded[..]]));
        }
        assert_eq!(der_content(&[0x30, 0x05, 0x00]), None);
    }
}
