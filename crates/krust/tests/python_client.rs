//! End to end with the official Kubernetes Python client: `krust server` on loopback, driven by the pytest suite in tests/python.

use std::io::{BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bench::server::KrustServer;

/// The workspace root, where `tests/python` lives.
const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// How long the whole pytest run may take before it is killed as hung.
const PYTEST_DEADLINE: Duration = Duration::from_secs(300);

/// A child process killed on drop (pytest, should the test panic or time out).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads a pipe to its end on a thread, so the child never blocks writing.
fn drain(pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = BufReader::new(pipe).read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Fails the test unless python3 can import the client and pytest.
fn require_python_packages() {
    let probe = Command::new("python3")
        .args(["-c", "import kubernetes, pytest"])
        .stdin(Stdio::null())
        .output();
    match probe {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "the Python packages `kubernetes` and `pytest` are not importable; run `./x deps` to install them\n{}",
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(err) => panic!("cannot run python3 ({err}); install Python 3 and run `./x deps`"),
    }
}

#[test]
fn the_official_python_client_passes_the_pytest_suite() {
    require_python_packages();
    // No scheduler, Deployment or ReplicaSet controller: the suite deletes
    // and replaces the objects it read with preconditions, and their writes
    // meanwhile (PodScheduled conditions with no nodes, Deployment status)
    // would conflict. The namespace controller it relies on still runs.
    let server = KrustServer::start(
        Path::new(env!("CARGO_BIN_EXE_krust")),
        tempfile::tempdir().unwrap(),
        &["--disable", "scheduler,deployment,replicaset"],
    )
    .unwrap();
    let root = Path::new(WORKSPACE);
    assert!(
        root.join("tests/python/test_client.py").is_file(),
        "tests/python/test_client.py is missing under {}",
        root.display()
    );

    let mut child = Command::new("python3")
        .args(["-m", "pytest", "-q", "-rxXs", "-p", "no:cacheprovider"])
        .arg("tests/python")
        .current_dir(root)
        .env("KUBECONFIG", server.kubeconfig())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start python3 -m pytest");
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let mut pytest = KillOnDrop(child);

    let started = Instant::now();
    let status = loop {
        if let Some(status) = pytest.0.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > PYTEST_DEADLINE {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(pytest);
    let output = format!(
        "--- pytest stdout ---\n{}\n--- pytest stderr ---\n{}",
        stdout.join().unwrap(),
        stderr.join().unwrap()
    );
    let Some(status) = status else {
        panic!("pytest did not finish within {PYTEST_DEADLINE:?}; killed\n{output}");
    };
    assert!(status.success(), "pytest failed ({status})\n{output}");
    eprintln!("{output}");
}
