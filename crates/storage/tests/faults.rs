//! Bad input and faults: foreign files, read-only and full disks, unreachable or TLS-only etcd; each a one-line error, nothing stored damaged.
//!
//! The disk tests mount their own small tmpfs (root only, as in CI) and
//! unmount it when done.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use storage::etcd_process::{EtcdProcess, EtcdServerTls};
use storage::{EtcdTls, OpenOptions, Precondition, StorageError};

fn no_compaction() -> OpenOptions {
    OpenOptions {
        compaction: None,
        ..OpenOptions::default()
    }
}

async fn open_sqlite(path: &Path) -> Result<storage::DynStorage, StorageError> {
    storage::open(&format!("sqlite://{}", path.display()), &no_compaction()).await
}

fn assert_one_line(error: &StorageError) {
    let text = error.to_string();
    eprintln!("error as reported: {text}");
    assert!(
        !text.contains('\n') && !text.is_empty(),
        "not one line: {text:?}"
    );
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let content = b"these are someone's notes, not a database\n".repeat(200);
    std::fs::write(&path, &content).unwrap();
    let error = open_sqlite(&path).await.err().expect("opened a text file");
    assert!(
        matches!(error, StorageError::NotKrustDatabase { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("not a krust database"),
        "{error}"
    );
    assert_one_line(&error);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        content,
        "the file was modified"
    );
}

#[tokio::test]
async fn another_applications_sqlite_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .execute_batch("CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('ada');")
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let error = open_sqlite(&path)
        .await
        .err()
        .expect("opened a foreign database");
    assert!(error.to_string().contains("another application"), "{error}");
    assert_one_line(&error);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the database was modified"
    );
}

#[tokio::test]
async fn a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let error = open_sqlite(dir.path())
        .await
        .err()
        .expect("opened a directory");
    assert!(error.to_string().contains("is a directory"), "{error}");
}

/// A tmpfs of its own, unmounted (and its mount point removed) on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "krust-test"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            assert_ne!(
                effective_uid(),
                0,
                "root could not mount a tmpfs for the disk fault tests"
            );
            eprintln!("skipping: mounting a tmpfs needs root");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "remount {options} failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// The effective user id, read from /proc so the test needs no unsafe code.
fn effective_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("Uid:"))
                .and_then(|line| line.split_whitespace().nth(2)?.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

#[tokio::test]
async fn a_read_only_disk_is_reported_and_its_data_kept() {
    let Some(disk) = Tmpfs::mount("16m") else {
        return;
    };
    let path = disk.path().join("state.db");
    {
        let store = open_sqlite(&path).await.unwrap();
        store
            .put("/ro/kept", Bytes::from_static(b"v"), Precondition::None)
            .await
            .unwrap();
    }
    disk.remount("ro");
    let error = open_sqlite(&path)
        .await
        .err()
        .expect("opened on a read-only disk");
    assert!(matches!(error, StorageError::ReadOnly { .. }), "{error}");
    assert!(error.to_string().contains("read-only"), "{error}");
    assert_one_line(&error);
    disk.remount("rw");
    let store = open_sqlite(&path).await.unwrap();
    assert_eq!(
        store.get("/ro/kept", 0).await.unwrap().unwrap().value,
        Bytes::from_static(b"v")
    );
}

#[tokio::test]
async fn a_full_disk_fails_writes_cleanly_and_loses_nothing() {
    let Some(disk) = Tmpfs::mount("2m") else {
        return;
    };
    let path = disk.path().join("state.db");
    let store = open_sqlite(&path).await.unwrap();
    let value = Bytes::from(vec![b'f'; 48 * 1024]);
    let mut written = Vec::new();
    let error = loop {
        let key = format!("/full/{:03}", written.len());
        match store.put(&key, value.clone(), Precondition::None).await {
            Ok(result) => written.push((key, result.revision)),
            Err(error) => break error,
        }
        assert!(written.len() < 1000, "a 2 MiB disk never filled up");
    };
    assert!(matches!(error, StorageError::DiskFull { .. }), "{error}");
    assert!(error.to_string().contains("disk full"), "{error}");
    assert_one_line(&error);
    assert!(!written.is_empty());
    let head = store.current_revision().await.unwrap();
    assert_eq!(
        head,
        written.last().unwrap().1,
        "a failed write took a revision"
    );
    for (key, revision) in &written {
        let kv = store.get(key, 0).await.unwrap().unwrap();
        assert_eq!((kv.mod_revision, kv.value.len()), (*revision, value.len()));
    }
    drop(store);
    disk.remount("size=32m");
    let store = open_sqlite(&path).await.unwrap();
    assert_eq!(store.current_revision().await.unwrap(), head);
    let listed = store
        .list(storage::ListRequest {
            prefix: "/full/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.kvs.len(), written.len());
    let next = store
        .put("/full/after", value, Precondition::None)
        .await
        .unwrap();
    assert_eq!(next.revision, head + 1);
}

#[tokio::test]
async fn an_unreachable_etcd_is_reported_within_the_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = OpenOptions {
        connect_timeout: Duration::from_secs(2),
        ..OpenOptions::default()
    };
    let started = Instant::now();
    let error = storage::open(&format!("etcd://127.0.0.1:{port}"), &options)
        .await
        .err()
        .expect("connected to nothing");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(error, StorageError::Unavailable { .. }), "{error}");
    assert!(
        error
            .to_string()
            .starts_with(&format!("etcd://127.0.0.1:{port}: unavailable")),
        "{error}"
    );
    assert_one_line(&error);
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files.
fn write_certificates(dir: &Path) -> (EtcdServerTls, EtcdTls) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client_cert = CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .signed_by(&client_key, &issuer)
        .unwrap();
    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let ca = write("ca.crt", ca_cert.pem());
    let server = EtcdServerTls {
        cert_file: write("server.crt", server_cert.pem()),
        key_file: write("server.key", server_key.serialize_pem()),
        client_ca_file: ca.clone(),
    };
    let client = EtcdTls {
        ca_file: Some(ca),
        cert_file: Some(write("client.crt", client_cert.pem())),
        key_file: Some(write("client.key", client_key.serialize_pem())),
    };
    (server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_with_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let (server_tls, client_tls) = write_certificates(dir.path());
    let process = tokio::task::spawn_blocking(move || EtcdProcess::start(Some(&server_tls)))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let options = OpenOptions {
        etcd_tls: client_tls.clone(),
        connect_timeout: Duration::from_secs(5),
        ..OpenOptions::default()
    };
    let store = storage::open(&process.endpoint(), &options).await.unwrap();
    let written = store
        .put(
            "/tls/k",
            Bytes::from_static(b"secret"),
            Precondition::Absent,
        )
        .await
        .unwrap();
    let read = store.get("/tls/k", 0).await.unwrap().unwrap();
    assert_eq!(read, written.kv);
    // Without a client certificate the server refuses the connection.
    let anonymous = OpenOptions {
        etcd_tls: EtcdTls {
            ca_file: client_tls.ca_file.clone(),
            ..EtcdTls::default()
        },
        connect_timeout: Duration::from_secs(3),
        ..OpenOptions::default()
    };
    let error = storage::open(&process.endpoint(), &anonymous)
        .await
        .err()
        .expect("etcd accepted a client without a certificate");
    assert!(matches!(error, StorageError::Unavailable { .. }), "{error}");
    assert_one_line(&error);
}
