"""Fixtures for the official Kubernetes Python client against a real kubecache binary.

The binary is not built here: it comes from $KUBECACHE_BIN, else
target/debug/kubecache in the repository (build it first with
`cargo build -p kubecache-server`). Each test gets its own server, started with
`serve` on a free port (in memory) and killed afterwards.
"""

import os
import queue
import re
import socket
import subprocess
import threading
import time
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


@pytest.fixture
def kubecache():
    server = Kubecache()
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
