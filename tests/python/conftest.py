"""Fixtures for the official Kubernetes Python client against a real kubecache binary.

The binary is not built here: it comes from $KUBECACHE_BIN, else
target/debug/kubecache in the repository (build it first with
`cargo build -p kubecache-server`). Each test gets its own server, started with
`serve` on a free insecure port (no secure port) and killed afterwards — once on the embedded
store (in memory) and once on a real etcd started for the test (`etcd` on PATH): the `storage`
fixture's two parameters.
"""

import os
import queue
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
import uuid

import pytest
from kubernetes import client

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
START_TIMEOUT = 30.0
SERVING = re.compile(r"serving .* on (http://\S+)")


def kubecache_binary():
    path = os.environ.get("KUBECACHE_BIN") or os.path.join(
        REPO, "target", "debug", "kubecache"
    )
    if not os.path.isfile(path):
        pytest.fail(
            f"kubecache binary not found at {path}: run `cargo build -p kubecache-server`"
            " or set KUBECACHE_BIN"
        )
    return path


def free_port():
    """A loopback port free right now (`--insecure-port 0` turns the port off)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Kubecache:
    """One `kubecache serve --insecure-port PORT --secure-port 0` child process (a free
    loopback port; the secure port is off)."""

    def __init__(self, args=()):
        self.log = []
        self.process = subprocess.Popen(
            [
                kubecache_binary(),
                "serve",
                "--insecure-port",
                str(free_port()),
                "--secure-port",
                "0",
                # All in-process controllers but the kube-root-ca.crt publisher: its ConfigMap
                # in every namespace would be one more object in the tests that count
                # ConfigMaps (the Rust suite's harness does the same).
                "--controllers",
                "*,-root-ca-cert-publisher",
                *args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines = queue.Queue()

        def pump():
            # Keeps draining stdout so the server never blocks on a full pipe.
            for line in self.process.stdout:
                self.log.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        self.url = None
        while self.url is None:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise RuntimeError(
                    f"kubecache did not start within {START_TIMEOUT}s:\n{''.join(self.log)}"
                )
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self.kill()
                raise RuntimeError(f"kubecache exited before serving:\n{''.join(self.log)}")
            match = SERVING.search(line)
            if match:
                self.url = match.group(1)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


class Etcd:
    """A single-member etcd on free loopback ports with its data in `directory`."""

    def __init__(self, directory):
        binary = shutil.which("etcd") or "/usr/bin/etcd"
        if not os.path.isfile(binary):
            pytest.fail("etcd not found: run scripts/install-deps.sh")
        self.url = f"http://127.0.0.1:{free_port()}"
        peer = f"http://127.0.0.1:{free_port()}"
        log_path = os.path.join(directory, "etcd.log")
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(
            [
                binary,
                "--name", "t",
                "--data-dir", os.path.join(directory, "etcd-data"),
                "--listen-client-urls", self.url,
                "--advertise-client-urls", self.url,
                "--listen-peer-urls", peer,
                "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"t={peer}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                with open(log_path) as log:
                    raise RuntimeError(f"etcd did not become healthy:\n{log.read()}")
            time.sleep(0.05)

    def healthy(self):
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as response:
                return b'"health":"true"' in response.read()
        except OSError:
            return False

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture(params=["memory", "etcd"])
def storage(request, tmp_path):
    """The `kubecache serve` arguments choosing the store: in memory, or a fresh etcd."""
    if request.param == "memory":
        yield []
        return
    etcd = Etcd(str(tmp_path))
    try:
        yield ["--etcd-servers", etcd.url]
    finally:
        etcd.kill()


@pytest.fixture
def kubecache(storage):
    server = Kubecache(storage)
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def api_client(kubecache):
    """A `kubernetes.client.ApiClient` whose Configuration.host is the server's address."""
    configuration = client.Configuration()
    configuration.host = kubecache.url
    api = client.ApiClient(configuration)
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def core(api_client):
    return client.CoreV1Api(api_client)


@pytest.fixture
def apps(api_client):
    return client.AppsV1Api(api_client)


@pytest.fixture
def namespace(core):
    """A fresh namespace (created through the client, as a dict body)."""
    name = "py-" + uuid.uuid4().hex[:8]
    core.create_namespace(body={"metadata": {"name": name}})
    return name
