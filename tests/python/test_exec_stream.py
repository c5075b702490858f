"""`pods/exec` through the official Python client's `stream` module (WebSocket,
`v5.channel.k8s.io` then `v4.channel.k8s.io`), and `pods/log`, against kubecache in front of
the fake kubelet (server/tests/kubelet/fake_kubelet.py, a real process running the command).
"""

import json
import os
import subprocess
import sys

import pytest
from kubernetes import client
from kubernetes.stream import stream

from conftest import REPO, Kubecache

FAKE_KUBELET = os.path.join(REPO, "server", "tests", "kubelet", "fake_kubelet.py")


@pytest.fixture
def kubelet(tmp_path):
    """The fake kubelet on a self-signed certificate (kubecache does not verify a kubelet
    without --kubelet-certificate-authority, as kube-apiserver): its HTTPS port and the file
    it records its requests and upgrades in."""
    cert, key = tmp_path / "kubelet.pem", tmp_path / "kubelet.key"
    record = tmp_path / "requests.jsonl"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=kubelet", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    process = subprocess.Popen(
        [sys.executable, FAKE_KUBELET, "--cert", str(cert), "--key", str(key),
         "--record", str(record)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        words = process.stdout.readline().split()
        assert words[:2] == ["kubelet", "https"], words
        yield int(words[2]), record
    finally:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def core(kubelet):
    port, _ = kubelet
    server = Kubecache(["--allow-loopback-proxy-targets"])
    configuration = client.Configuration()
    configuration.host = server.url
    api = client.ApiClient(configuration)
    core = client.CoreV1Api(api)
    core.create_node({"metadata": {"name": "node-a"}})
    core.patch_node_status("node-a", {"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
    }})
    core.create_namespaced_pod("default", {
        "metadata": {"name": "web"},
        "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "app"}]},
    })
    try:
        yield core
    finally:
        api.close()
        server.kill()


def upgrades(record):
    """The upgrades the fake kubelet made: (upgrade, stream protocol)."""
    with open(record) as lines:
        events = [json.loads(line) for line in lines]
    return [(e["upgrade"], e["protocol"]) for e in events if e.get("event") == "upgrade"]


def test_exec_output_and_exit_code(core, kubelet):
    output = stream(
        core.connect_get_namespaced_pod_exec, "web", "default",
        command=["sh", "-c", "echo from-exec"], stdout=True, stderr=True, stdin=False,
        tty=False,
    )
    assert output == "from-exec\n"

    session = stream(
        core.connect_get_namespaced_pod_exec, "web", "default",
        command=["sh", "-c", "echo partial; exit 4"], stdout=True, stderr=True,
        stdin=False, tty=False, _preload_content=False,
    )
    session.run_forever(timeout=30)
    assert session.read_stdout() == "partial\n"
    assert session.returncode == 4
    # The client's v5.channel.k8s.io WebSocket reached the kubelet as SPDY (kube's
    # translation), once per session.
    assert upgrades(kubelet[1]) == [("SPDY/3.1", "v4.channel.k8s.io")] * 2


def test_exec_with_stdin(core):
    session = stream(
        core.connect_get_namespaced_pod_exec, "web", "default",
        command=["sh", "-c", "read line; echo got:$line"], stdout=True, stderr=True,
        stdin=True, tty=False, _preload_content=False,
    )
    session.write_stdin("hello\n")
    session.run_forever(timeout=30)
    assert session.read_stdout() == "got:hello\n"
    assert session.returncode == 0


def test_log_through_the_client(core):
    log = core.read_namespaced_pod_log("web", "default", tail_lines=2)
    assert log == "default/web/app line 4\ndefault/web/app line 5\n"
