"""The official Python client on values a real kube-apiserver wrote into etcd (protobuf, under
their keys: shared/fixtures/kube-storage beside the repository), and on a value that cannot be
read (KEP-3926's StoreReadError and unsafe delete).

The values go into etcd through its HTTP gateway (`/v3/kv/put`, the same request `etcdctl
put KEY < file` makes over gRPC), before kubecache starts on that etcd.
"""

import base64
import json
import os
import threading
import time
import urllib.request

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from conftest import REPO, Etcd, Kubecache

def _fixtures():
    """$KUBECACHE_FIXTURES/kube-storage, else shared/fixtures/kube-storage in the nearest
    ancestor of the repository that has it (as the Rust tests find it)."""
    if os.environ.get("KUBECACHE_FIXTURES"):
        return os.path.join(os.environ["KUBECACHE_FIXTURES"], "kube-storage")
    directory = REPO
    while True:
        candidate = os.path.join(directory, "shared", "fixtures", "kube-storage")
        if os.path.isdir(candidate):
            return candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            raise RuntimeError("shared/fixtures/kube-storage in an ancestor of the repository")
        directory = parent


FIXTURES = _fixtures()


def etcd_put(etcd, key, value):
    body = json.dumps(
        {
            "key": base64.b64encode(key.encode()).decode(),
            "value": base64.b64encode(value).decode(),
        }
    ).encode()
    request = urllib.request.Request(etcd.url + "/v3/kv/put", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def etcd_get(etcd, key):
    body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
    request = urllib.request.Request(etcd.url + "/v3/kv/range", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        kvs = json.load(response).get("kvs", [])
    return base64.b64decode(kvs[0]["value"]) if kvs else None


def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


@pytest.fixture
def etcd(tmp_path):
    server = Etcd(str(tmp_path))
    try:
        yield server
    finally:
        server.kill()


def serve(etcd):
    server = Kubecache(["--etcd-servers", etcd.url])
    configuration = client.Configuration()
    configuration.host = server.url
    return server, client.ApiClient(configuration)


def test_kube_apiserver_values_are_read_and_watched(etcd):
    etcd_put(etcd, "/registry/pods/default/pi-dqtsw", fixture("pod.bin"))
    etcd_put(etcd, "/registry/jobs/default/pi", fixture("job.bin"))
    server, api = serve(etcd)
    try:
        core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
        expected_pod = json.loads(fixture("pod.json"))
        pod = core.read_namespaced_pod("pi-dqtsw", "default")
        assert pod.metadata.uid == expected_pod["metadata"]["uid"]
        assert pod.metadata.labels == expected_pod["metadata"]["labels"]
        assert pod.spec.containers[0].command == ["perl", "-Mbignum=bpi", "-wle", "print bpi(2000)"]
        assert pod.spec.node_name == "kubernetes-minion-group-vlql"
        assert pod.status.phase == "Succeeded"
        assert pod.status.container_statuses[0].state.terminated.exit_code == 0
        job = batch.read_namespaced_job("pi", "default")
        assert job.spec.completions == 1 and job.status.succeeded == 1
        assert job.status.conditions[0].type == "Complete"

        pods = core.list_namespaced_pod("default")
        assert [p.metadata.name for p in pods.items] == ["pi-dqtsw"]
        events = []
        seen = threading.Event()

        def follow():
            stream = watch.Watch().stream(
                core.list_namespaced_pod,
                "default",
                resource_version=pods.metadata.resource_version,
                timeout_seconds=20,
            )
            for event in stream:
                events.append(event)
                if event["type"] == "MODIFIED":
                    seen.set()
                    return

        watcher = threading.Thread(target=follow, daemon=True)
        watcher.start()
        core.patch_namespaced_pod(
            "pi-dqtsw", "default", {"metadata": {"labels": {"touched": "by-python"}}}
        )
        assert seen.wait(20), events
        assert events[-1]["object"].metadata.labels["touched"] == "by-python"
        assert etcd_get(etcd, "/registry/pods/default/pi-dqtsw").startswith(b"k8s\x00")
    finally:
        api.close()
        server.kill()


def test_unreadable_value_is_a_store_read_error_and_can_be_removed(etcd):
    etcd_put(etcd, "/registry/configmaps/default/bad", b"\x00 not an object")
    server, api = serve(etcd)
    try:
        core = client.CoreV1Api(api)
        with pytest.raises(ApiException) as listed:
            core.list_namespaced_config_map("default")
        assert listed.value.status == 500
        status = json.loads(listed.value.body)
        assert status["reason"] == "StoreReadError"
        assert status["details"]["causes"][0]["field"] == "/registry/configmaps/default/bad"
        with pytest.raises(ApiException) as got:
            core.read_namespaced_config_map("bad", "default")
        assert got.value.status == 500
        assert "Key: /registry/configmaps/default/bad" in json.loads(got.value.body)["message"]
        # Other resources keep working.
        core.list_namespaced_secret("default")

        core.delete_namespaced_config_map(
            "bad", "default", body={"ignoreStoreReadErrorWithClusterBreakingPotential": True}
        )
        assert etcd_get(etcd, "/registry/configmaps/default/bad") is None
        deadline = time.monotonic() + 20
        while True:
            try:
                assert core.list_namespaced_config_map("default").items == []
                break
            except ApiException:
                assert time.monotonic() < deadline
                time.sleep(0.2)
    finally:
        api.close()
        server.kill()
