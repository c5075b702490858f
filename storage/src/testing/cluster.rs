//! A real multi-member etcd cluster for tests: [`TestEtcdCluster::start`] runs N `etcd`
//! processes on free loopback ports (client, peer and a plain-HTTP metrics port each, the
//! latter for `/health` and for finding the leader), optionally serving clients over mutual
//! TLS with certificates generated here ([`TestPki`]). Members can be killed, restarted and
//! paused; every process is killed on drop. A missing `etcd` binary panics (tests never skip).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use super::etcd::{find_etcd, healthy, http_get};

/// How long the members may take to be healthy after they are spawned.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Certificates for an etcd cluster that requires client certificates, as PEM files in the
/// cluster's directory: a CA, the members' serving certificate (for 127.0.0.1 and
/// localhost) and a client certificate it signed, plus a client certificate signed by another
/// CA (which the members must refuse).
#[derive(Debug, Clone)]
pub struct TestPki {
    pub ca_file: PathBuf,
    pub server_cert_file: PathBuf,
    pub server_key_file: PathBuf,
    pub client_cert_file: PathBuf,
    pub client_key_file: PathBuf,
    pub untrusted_client_cert_file: PathBuf,
    pub untrusted_client_key_file: PathBuf,
}

impl TestPki {
    /// Generates the certificates into `dir`.
    pub fn generate(dir: &Path) -> TestPki {
        let (ca, ca_key) = authority("kubecache-test-etcd-ca");
        let (other_ca, other_ca_key) = authority("kubecache-test-other-ca");
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).expect("write a test certificate");
            path
        };
        let (server_cert, server_key) = leaf(
            "etcd",
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
            &ca,
            &ca_key,
        );
        let (client_cert, client_key) = leaf(
            "kube-apiserver-etcd-client",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
            &ca,
            &ca_key,
        );
        let (untrusted_cert, untrusted_key) = leaf(
            "intruder",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
            &other_ca,
            &other_ca_key,
        );
        TestPki {
            ca_file: write("ca.crt", ca.pem()),
            server_cert_file: write("server.crt", server_cert),
            server_key_file: write("server.key", server_key),
            client_cert_file: write("client.crt", client_cert),
            client_key_file: write("client.key", client_key),
            untrusted_client_cert_file: write("untrusted.crt", untrusted_cert),
            untrusted_client_key_file: write("untrusted.key", untrusted_key),
        }
    }
}

/// A self-signed CA and its key.
fn authority(name: &str) -> (rcgen::Certificate, KeyPair) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("self-sign the CA");
    (cert, key)
}

/// A certificate for `names` (IPs or DNS names) with one extended key usage, signed by
/// `ca`: (certificate PEM, key PEM).
fn leaf(
    common_name: &str,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    ca: &rcgen::Certificate,
    ca_key: &KeyPair,
) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("certificate params");
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("certificate key");
    let cert = params
        .signed_by(&key, ca, ca_key)
        .expect("sign a certificate");
    (cert.pem(), key.serialize_pem())
}

/// One member of a [`TestEtcdCluster`].
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    /// Plain HTTP `/health` and `/metrics`, also when clients use TLS.
    metrics_port: u16,
    /// The running process, `None` while stopped.
    child: Option<Child>,
}

/// An etcd cluster of N members owned by a test.
pub struct TestEtcdCluster {
    binary: PathBuf,
    /// Data dirs, logs and certificates; removed on drop (after the processes are gone).
    dir: tempfile::TempDir,
    members: Vec<Member>,
    /// Set when clients must use mutual TLS.
    pki: Option<TestPki>,
}

impl TestEtcdCluster {
    /// Starts `size` members serving clients over plain HTTP and waits until all are healthy.
    pub fn start(size: usize) -> TestEtcdCluster {
        TestEtcdCluster::start_with(size, false)
    }

    /// Starts `size` members that serve clients over TLS and require a client certificate
    /// signed by the cluster's CA ([`TestEtcdCluster::pki`]).
    pub fn start_tls(size: usize) -> TestEtcdCluster {
        TestEtcdCluster::start_with(size, true)
    }

    fn start_with(size: usize, tls: bool) -> TestEtcdCluster {
        assert!(size > 0, "a cluster has members");
        let binary = find_etcd();
        let mut last_error = String::new();
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("kubecache-etcd-cluster-")
                .tempdir()
                .expect("create the cluster's temp dir");
            let pki = tls.then(|| TestPki::generate(dir.path()));
            let ports = free_ports(size * 3);
            let members = (0..size)
                .map(|i| Member {
                    name: format!("m{i}"),
                    client_port: ports[3 * i],
                    peer_port: ports[3 * i + 1],
                    metrics_port: ports[3 * i + 2],
                    child: None,
                })
                .collect();
            let mut cluster = TestEtcdCluster {
                binary: binary.clone(),
                dir,
                members,
                pki,
            };
            match cluster.spawn_all_and_wait() {
                Ok(()) => return cluster,
                Err(error) => last_error = error,
            }
        }
        panic!("the etcd cluster did not start: {last_error}");
    }

    /// The number of members.
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// The certificates, when clients must use TLS.
    pub fn pki(&self) -> Option<&TestPki> {
        self.pki.as_ref()
    }

    /// Member `i`'s client URL (`https://` with TLS).
    pub fn endpoint(&self, i: usize) -> String {
        let scheme = if self.pki.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.members[i].client_port)
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.size()).map(|i| self.endpoint(i)).collect()
    }

    /// The client URLs as `--etcd-servers` takes them (comma separated).
    pub fn servers_flag(&self) -> String {
        self.endpoints().join(",")
    }

    /// The index of the member that is leader now, if one says so.
    pub fn leader(&self) -> Option<usize> {
        self.members.iter().position(|member| {
            member.child.is_some()
                && http_get(member.metrics_port, "/metrics")
                    .is_some_and(|metrics| metrics.contains("\netcd_server_is_leader 1"))
        })
    }

    /// Waits until some running member is leader and returns it.
    pub fn wait_leader(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(leader) = self.leader() {
                return leader;
            }
            assert!(
                Instant::now() < deadline,
                "no etcd leader within {timeout:?}; logs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether member `i` is running.
    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// Kills member `i` (SIGKILL) and waits for it to exit. Its data dir is kept.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops member `i` without killing it (SIGSTOP): its connections stay open and
    /// unanswered, as with a hung process or a partitioned host.
    pub fn pause(&mut self, i: usize) {
        self.signal(i, "-STOP");
    }

    /// Lets a paused member run again (SIGCONT).
    pub fn resume(&mut self, i: usize) {
        self.signal(i, "-CONT");
    }

    fn signal(&self, i: usize, signal: &str) {
        let child = self.members[i]
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("etcd member {i} is not running"));
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Kills every member.
    pub fn kill_all(&mut self) {
        for i in 0..self.size() {
            self.kill(i);
        }
    }

    /// Starts member `i` again on its ports and data dir (killing it first if it runs) and
    /// waits until it is healthy (which needs a quorum running).
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        let result = self
            .spawn(i)
            .and_then(|()| self.wait_healthy(&[i], START_TIMEOUT));
        if let Err(error) = result {
            panic!("etcd member {i} did not restart: {error}");
        }
    }

    /// Starts every stopped member and waits until all are healthy.
    pub fn restart_all(&mut self) {
        let stopped: Vec<usize> = (0..self.size()).filter(|&i| !self.is_running(i)).collect();
        let result = stopped
            .iter()
            .try_for_each(|&i| self.spawn(i))
            .and_then(|()| self.wait_healthy(&stopped, START_TIMEOUT));
        if let Err(error) = result {
            panic!("the etcd members did not restart: {error}");
        }
    }

    /// The logs of every member so far (for failure messages).
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                let log = std::fs::read_to_string(self.log_path(m)).unwrap_or_default();
                format!("--- etcd {}\n{log}", m.name)
            })
            .collect()
    }

    fn log_path(&self, member: &Member) -> PathBuf {
        self.dir.path().join(format!("{}.log", member.name))
    }

    fn peer_url(member: &Member) -> String {
        format!("http://127.0.0.1:{}", member.peer_port)
    }

    fn spawn_all_and_wait(&mut self) -> Result<(), String> {
        for i in 0..self.size() {
            self.spawn(i)?;
        }
        let all: Vec<usize> = (0..self.size()).collect();
        let result = self.wait_healthy(&all, START_TIMEOUT);
        if result.is_err() {
            self.kill_all();
        }
        result
    }

    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let member = &self.members[i];
        let log_path = self.log_path(member);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("open {}: {e}", log_path.display()))?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let initial_cluster = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, Self::peer_url(m)))
            .collect::<Vec<_>>()
            .join(",");
        let client = self.endpoint(i);
        let peer = Self::peer_url(member);
        let mut command = Command::new(&self.binary);
        command
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(self.dir.path().join(&member.name))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "kubecache-test"])
            .args([
                "--listen-metrics-urls",
                &format!("http://127.0.0.1:{}", member.metrics_port),
            ]);
        if let Some(pki) = &self.pki {
            command
                .arg("--cert-file")
                .arg(&pki.server_cert_file)
                .arg("--key-file")
                .arg(&pki.server_key_file)
                .arg("--trusted-ca-file")
                .arg(&pki.ca_file)
                .arg("--client-cert-auth");
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.binary.display()))?;
        self.members[i].child = Some(child);
        Ok(())
    }

    /// Waits until the members `which` answer `/health` (each has a leader).
    fn wait_healthy(&mut self, which: &[usize], timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            for &i in which {
                if let Some(child) = self.members[i].child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    self.members[i].child = None;
                    return Err(format!(
                        "etcd member {i} exited with {status}; logs:\n{}",
                        self.logs()
                    ));
                }
            }
            if which.iter().all(|&i| healthy(self.members[i].metrics_port)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "etcd members {which:?} not healthy after {timeout:?}; logs:\n{}",
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestEtcdCluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// `n` distinct free ports on 127.0.0.1 (every listener is held until all are picked).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}
