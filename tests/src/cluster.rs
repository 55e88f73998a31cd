//! A real local control plane: etcd, kube-apiserver and kube-controller-manager as child
//! processes, an admin kubeconfig, and Switchyard's CRDs installed.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::binaries::binary;
use crate::pki::{self, TestCa};
use crate::ports::free_ports;
use crate::process::{Supervised, log_tail};
use crate::{Error, repo_root, write_file};

/// The controllers that make the control plane behave like a cluster for our purposes: owner
/// references are garbage-collected and deleted namespaces really go away. There is no kubelet
/// and no scheduler, so there are no pods: tests create EndpointSlices themselves.
const CONTROLLERS: &str = "garbage-collector-controller,namespace-controller,\
serviceaccount-controller,serviceaccount-token-controller";

pub struct ClusterOptions {
    /// Where certificates, data and logs go. `None`: a temporary directory removed on drop.
    pub state_dir: Option<PathBuf>,
    /// Apply `crds/manifests/*.yaml` and wait until they are established.
    pub install_crds: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            state_dir: None,
            install_crds: true,
        }
    }
}

pub struct Cluster {
    kubeconfig: PathBuf,
    server: String,
    // Stopped last-started-first on drop (controller manager, apiserver, then etcd).
    processes: Vec<Supervised>,
    _temp: Option<tempfile::TempDir>,
}

impl Cluster {
    /// Starts etcd, kube-apiserver and kube-controller-manager and waits until the API is ready.
    pub fn start(options: ClusterOptions) -> Result<Self, Error> {
        let (temp, dir) = match &options.state_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(Error::io(format!("create {}", dir.display())))?;
                (None, dir.clone())
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("switchyard-cluster-")
                    .tempdir()
                    .map_err(Error::io("create a temporary directory"))?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let pki_dir = dir.join("pki");
        std::fs::create_dir_all(&pki_dir).map_err(Error::io("create pki dir"))?;
        let ca = TestCa::new("switchyard-local-ca")?;
        let ca_file = pki_dir.join("ca.crt");
        write_file(&ca_file, ca.cert_pem())?;
        let serving = pki::write_pair(
            &pki_dir,
            "apiserver",
            &ca.serving(
                "kube-apiserver",
                &[
                    "kubernetes",
                    "kubernetes.default",
                    "kubernetes.default.svc",
                    "kubernetes.default.svc.cluster.local",
                    "10.96.0.1",
                ],
            )?,
        )?;
        let admin = pki::write_pair(
            &pki_dir,
            "admin",
            &ca.client("admin", Some("system:masters"))?,
        )?;
        let (sa_private, sa_public) = pki::key_pair_pem()?;
        let sa_key = pki_dir.join("service-account.key");
        let sa_pub = pki_dir.join("service-account.pub");
        write_file(&sa_key, &sa_private)?;
        write_file(&sa_pub, &sa_public)?;

        let ports = free_ports(4)?;
        let (etcd_client, etcd_peer, api_port, kcm_port) = (ports[0], ports[1], ports[2], ports[3]);
        let server = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = dir.join("kubeconfig");
        write_file(
            &kubeconfig,
            &kubeconfig_yaml(&server, &ca_file, &admin.cert, &admin.key),
        )?;

        let mut cluster = Cluster {
            kubeconfig,
            server,
            processes: Vec::new(),
            _temp: temp,
        };

        let mut etcd = Command::new(binary("etcd")?);
        etcd.args([
            "--name=default",
            &format!("--data-dir={}", dir.join("etcd").display()),
            &format!("--listen-client-urls=http://127.0.0.1:{etcd_client}"),
            &format!("--advertise-client-urls=http://127.0.0.1:{etcd_client}"),
            &format!("--listen-peer-urls=http://127.0.0.1:{etcd_peer}"),
            &format!("--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}"),
            &format!("--initial-cluster=default=http://127.0.0.1:{etcd_peer}"),
            // Test data is disposable; fsync is what makes etcd slow on a shared disk.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]);
        let etcd = Supervised::spawn("etcd", etcd, &dir.join("etcd.log"))?;
        cluster.processes.push(etcd);
        wait_for_tcp(
            &mut cluster.processes[0],
            etcd_client,
            Duration::from_secs(30),
        )?;

        let mut apiserver = Command::new(binary("kube-apiserver")?);
        apiserver.args([
            &format!("--etcd-servers=http://127.0.0.1:{etcd_client}"),
            &format!("--cert-dir={}", dir.join("apiserver-certs").display()),
            &format!("--tls-cert-file={}", serving.cert.display()),
            &format!("--tls-private-key-file={}", serving.key.display()),
            &format!("--client-ca-file={}", ca_file.display()),
            &format!("--secure-port={api_port}"),
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            &format!("--service-account-key-file={}", sa_pub.display()),
            &format!("--service-account-signing-key-file={}", sa_key.display()),
            "--allow-privileged=true",
            "--v=0",
        ]);
        let apiserver =
            Supervised::spawn("kube-apiserver", apiserver, &dir.join("kube-apiserver.log"))?;
        cluster.processes.push(apiserver);
        cluster.wait_ready(Duration::from_secs(120))?;

        // CRDs before the controller manager: its garbage collector then watches our resources
        // from its first discovery instead of after its next periodic resync.
        if options.install_crds {
            cluster.install_crds()?;
        }

        let mut kcm = Command::new(binary("kube-controller-manager")?);
        let kc = cluster.kubeconfig.display().to_string();
        kcm.args([
            &format!("--kubeconfig={kc}"),
            &format!("--authentication-kubeconfig={kc}"),
            &format!("--authorization-kubeconfig={kc}"),
            &format!("--controllers={CONTROLLERS}"),
            "--leader-elect=false",
            "--use-service-account-credentials=false",
            &format!("--service-account-private-key-file={}", sa_key.display()),
            &format!("--root-ca-file={}", ca_file.display()),
            &format!("--cert-dir={}", dir.join("kcm-certs").display()),
            &format!("--secure-port={kcm_port}"),
            "--bind-address=127.0.0.1",
            "--v=0",
        ]);
        let kcm = Supervised::spawn(
            "kube-controller-manager",
            kcm,
            &dir.join("kube-controller-manager.log"),
        )?;
        cluster.processes.push(kcm);
        let last = cluster.processes.len() - 1;
        wait_for_tcp(
            &mut cluster.processes[last],
            kcm_port,
            Duration::from_secs(60),
        )?;

        Ok(cluster)
    }

    /// A control plane someone else runs (`make cluster`), known by its kubeconfig.
    pub fn attach(kubeconfig: &Path) -> Result<Self, Error> {
        let kc = Kubeconfig::read_from(kubeconfig)
            .map_err(|e| Error::Kubeconfig(format!("{}: {e}", kubeconfig.display())))?;
        let server = kc
            .clusters
            .first()
            .and_then(|c| c.cluster.as_ref())
            .and_then(|c| c.server.clone())
            .ok_or_else(|| {
                Error::Kubeconfig(format!("{} names no server", kubeconfig.display()))
            })?;
        let cluster = Cluster {
            kubeconfig: kubeconfig.to_path_buf(),
            server,
            processes: Vec::new(),
            _temp: None,
        };
        cluster.kubectl_ok(&["get", "--raw", "/readyz"])?;
        Ok(cluster)
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// The processes this handle runs (empty when attached).
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.processes
            .iter()
            .map(|p| (p.name().to_string(), p.pid()))
            .collect()
    }

    /// A client for the admin user. Make one per tokio runtime: a client keeps connections on
    /// the runtime that created it.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        let kc = Kubeconfig::read_from(&self.kubeconfig)
            .map_err(|e| Error::Kubeconfig(format!("{}: {e}", self.kubeconfig.display())))?;
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .map_err(|e| Error::Kubeconfig(e.to_string()))?;
        kube::Client::try_from(config).map_err(Error::kube("build a client"))
    }

    /// `kubectl --kubeconfig <ours>`, the binary of the control plane's own release.
    pub fn kubectl(&self) -> Result<Command, Error> {
        let mut cmd = Command::new(binary("kubectl")?);
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig.display()));
        Ok(cmd)
    }

    /// Runs kubectl and returns its stdout, or an error quoting its stderr.
    pub fn kubectl_ok(&self, args: &[&str]) -> Result<String, Error> {
        let out = self
            .kubectl()?
            .args(args)
            .output()
            .map_err(Error::io("run kubectl"))?;
        check_output(&format!("kubectl {}", args.join(" ")), out)
    }

    /// `kubectl apply -n <namespace> -f -` with `yaml` on stdin.
    pub fn apply_yaml(&self, namespace: &str, yaml: &str) -> Result<String, Error> {
        use std::io::Write;
        let mut child = self
            .kubectl()?
            .args(["apply", "-n", namespace, "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(Error::io("run kubectl apply"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(yaml.as_bytes())
                .map_err(Error::io("write to kubectl apply"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(Error::io("wait for kubectl apply"))?;
        check_output("kubectl apply", out)
    }

    /// `helm --kubeconfig <ours>`.
    pub fn helm(&self) -> Result<Command, Error> {
        let mut cmd = Command::new(binary("helm")?);
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig.display()));
        Ok(cmd)
    }

    /// Server-side applies every CRD in `crds/manifests/` and waits until they are served.
    pub fn install_crds(&self) -> Result<(), Error> {
        let dir = repo_root().join("crds/manifests");
        let dir = dir.display().to_string();
        self.kubectl_ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=switchyard-tests",
            "-f",
            &dir,
        ])?;
        self.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "-f",
            &dir,
        ])?;
        Ok(())
    }

    /// Creates a namespace with a unique name starting with `prefix`; it is deleted on drop.
    pub fn namespace(&self, prefix: &str) -> Result<TestNamespace, Error> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "{prefix}-{:x}{:x}-{}",
            std::process::id(),
            nanos % 0xffff,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        self.kubectl_ok(&["create", "namespace", &name])?;
        Ok(TestNamespace {
            name,
            kubeconfig: self.kubeconfig.clone(),
        })
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + limit;
        let mut last = String::new();
        while Instant::now() < deadline {
            for p in &mut self.processes {
                p.check_running()?;
            }
            match self.kubectl_ok(&["get", "--raw", "/readyz"]) {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let log = self
            .processes
            .last()
            .map(|p| log_tail(p.log_path(), 30))
            .unwrap_or_default();
        Err(Error::Timeout {
            what: "kube-apiserver".into(),
            seconds: limit.as_secs(),
            detail: format!("{last}\n{log}"),
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        while let Some(mut p) = self.processes.pop() {
            p.stop();
        }
    }
}

/// A namespace for one test; deleted (without waiting) when dropped.
pub struct TestNamespace {
    name: String,
    kubeconfig: PathBuf,
}

impl TestNamespace {
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if let Ok(kubectl) = binary("kubectl") {
            let _ = Command::new(kubectl)
                .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
                .args(["delete", "namespace", &self.name, "--wait=false"])
                .output();
        }
    }
}

/// One control plane per test binary (or the one `SWITCHYARD_KUBECONFIG` names), started on
/// first use. Tests isolate themselves by namespace. Its processes end with the test binary.
pub fn shared_cluster() -> Result<&'static Cluster, Error> {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            let result = match std::env::var_os("SWITCHYARD_KUBECONFIG") {
                Some(path) => Cluster::attach(Path::new(&path)),
                None => Cluster::start(ClusterOptions::default()),
            };
            result.map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Invalid {
            context: "starting the shared control plane".into(),
            detail: e.clone(),
        })
}

fn kubeconfig_yaml(server: &str, ca: &Path, cert: &Path, key: &Path) -> String {
    // Paths only (no user input): the values are our own temp paths and a loopback URL.
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: switchyard\n  cluster:\n    server: {server}\n    certificate-authority: {}\nusers:\n- name: admin\n  user:\n    client-certificate: {}\n    client-key: {}\ncontexts:\n- name: switchyard\n  context:\n    cluster: switchyard\n    user: admin\n    namespace: default\ncurrent-context: switchyard\n",
        ca.display(),
        cert.display(),
        key.display()
    )
}

fn wait_for_tcp(process: &mut Supervised, port: u16, limit: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        process.check_running()?;
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(Error::Timeout {
        what: process.name().to_string(),
        seconds: limit.as_secs(),
        detail: log_tail(process.log_path(), 30),
    })
}

pub(crate) fn check_output(what: &str, out: Output) -> Result<String, Error> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Invalid {
            context: what.to_string(),
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}
