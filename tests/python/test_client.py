"""The official Kubernetes Python client (`pip install kubernetes`) against kubecache."""

import json
import threading
import time

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException


def configmap(name, data, labels=None):
    # No kind/apiVersion: the server defaults them from the URL, like kube-apiserver.
    metadata = {"name": name}
    if labels:
        metadata["labels"] = labels
    return {"metadata": metadata, "data": data}


def deployment(name, replicas=1):
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {"name": "main", "image": "nginx:1.25"},
                        {"name": "sidecar", "image": "busybox:1.36"},
                    ]
                },
            },
        },
    }


def error_body(error):
    body = json.loads(error.body)
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == error.status
    return body


def test_create_and_read_namespace(core):
    created = core.create_namespace(body={"metadata": {"name": "py-ns", "labels": {"a": "b"}}})
    assert isinstance(created, client.V1Namespace)
    assert created.metadata.name == "py-ns"
    assert created.metadata.uid
    assert created.metadata.resource_version
    read = core.read_namespace("py-ns")
    assert read.status.phase == "Active"
    assert read.metadata.labels["a"] == "b"
    assert read.metadata.labels["kubernetes.io/metadata.name"] == "py-ns"
    names = [ns.metadata.name for ns in core.list_namespace().items]
    assert "py-ns" in names and "default" in names


def test_configmap_lifecycle(core, namespace):
    created = core.create_namespaced_config_map(
        namespace, configmap("cm", {"a": "1", "b": "2"}, {"app": "web"})
    )
    assert isinstance(created, client.V1ConfigMap)
    assert created.kind == "ConfigMap"
    assert created.api_version == "v1"
    assert created.metadata.namespace == namespace
    assert created.data == {"a": "1", "b": "2"}

    read = core.read_namespaced_config_map("cm", namespace)
    assert read.metadata.uid == created.metadata.uid
    assert read.metadata.resource_version == created.metadata.resource_version
    assert read.metadata.labels == {"app": "web"}

    listed = core.list_namespaced_config_map(namespace)
    assert isinstance(listed, client.V1ConfigMapList)
    assert [cm.metadata.name for cm in listed.items] == ["cm"]
    assert listed.metadata.resource_version

    # A dict patch goes out as a strategic merge patch.
    patched = core.patch_namespaced_config_map(
        "cm", namespace, {"data": {"c": "3", "a": None}, "metadata": {"labels": {"tier": "x"}}}
    )
    assert patched.data == {"b": "2", "c": "3"}
    assert patched.metadata.labels == {"app": "web", "tier": "x"}
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)
    # A list patch goes out as a JSON patch.
    patched = core.patch_namespaced_config_map(
        "cm", namespace, [{"op": "replace", "path": "/data/b", "value": "20"}]
    )
    assert patched.data == {"b": "20", "c": "3"}

    # Replace with the current resourceVersion succeeds ...
    current = core.read_namespaced_config_map("cm", namespace)
    body = configmap("cm", {"only": "this"})
    body["metadata"]["resourceVersion"] = current.metadata.resource_version
    replaced = core.replace_namespaced_config_map("cm", namespace, body)
    assert replaced.data == {"only": "this"}
    assert replaced.metadata.labels is None
    assert replaced.metadata.uid == created.metadata.uid
    # ... and with a stale one conflicts.
    with pytest.raises(ApiException) as error:
        core.replace_namespaced_config_map("cm", namespace, body)
    assert error.value.status == 409
    assert error_body(error.value)["reason"] == "Conflict"

    # Like kube-apiserver, deleting a configmap answers a Success Status (the client's
    # declared response type is "object", so it is a dict).
    status = core.delete_namespaced_config_map("cm", namespace)
    assert status["kind"] == "Status"
    assert status["status"] == "Success"
    assert status["details"]["name"] == "cm"
    assert status["details"]["kind"] == "configmaps"
    assert status["details"]["uid"] == created.metadata.uid
    assert "group" not in status["details"]
    with pytest.raises(ApiException) as error:
        core.read_namespaced_config_map("cm", namespace)
    assert error.value.status == 404
    assert core.list_namespaced_config_map(namespace).items == []


def test_list_with_label_selector(core, namespace):
    for name, tier in [("a1", "front"), ("a2", "front"), ("b1", "back")]:
        core.create_namespaced_config_map(namespace, configmap(name, {}, {"tier": tier}))
    core.create_namespaced_config_map(namespace, configmap("none", {}))

    def names(**kwargs):
        return [cm.metadata.name for cm in core.list_namespaced_config_map(namespace, **kwargs).items]

    assert names(label_selector="tier=front") == ["a1", "a2"]
    assert names(label_selector="tier!=front") == ["b1", "none"]
    assert names(label_selector="tier in (front,back)") == ["a1", "a2", "b1"]
    assert names(label_selector="!tier") == ["none"]
    assert names(field_selector="metadata.name=b1") == ["b1"]
    everywhere = core.list_config_map_for_all_namespaces(label_selector="tier=back")
    assert [(cm.metadata.namespace, cm.metadata.name) for cm in everywhere.items] == [
        (namespace, "b1")
    ]
    # Paging with limit/continue.
    first = core.list_namespaced_config_map(namespace, limit=3)
    assert len(first.items) == 3
    assert first.metadata._continue
    rest = core.list_namespaced_config_map(namespace, limit=3, _continue=first.metadata._continue)
    assert [cm.metadata.name for cm in rest.items] == ["none"]
    assert not rest.metadata._continue


def test_deployment_scale_and_delete(apps, namespace):
    created = apps.create_namespaced_deployment(namespace, deployment("web"))
    assert isinstance(created, client.V1Deployment)
    assert created.kind == "Deployment"
    assert created.api_version == "apps/v1"
    assert created.spec.replicas == 1
    assert [c.name for c in created.spec.template.spec.containers] == ["main", "sidecar"]

    scale = apps.read_namespaced_deployment_scale("web", namespace)
    assert isinstance(scale, client.V1Scale)
    assert scale.spec.replicas == 1

    scaled = apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 3}})
    assert scaled.spec.replicas == 3
    assert apps.read_namespaced_deployment_scale("web", namespace).spec.replicas == 3
    assert apps.read_namespaced_deployment("web", namespace).spec.replicas == 3

    # Strategic merge on containers keeps the sidecar.
    patched = apps.patch_namespaced_deployment(
        "web",
        namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:1.26"}]}}}},
    )
    containers = patched.spec.template.spec.containers
    assert [(c.name, c.image) for c in containers] == [
        ("main", "nginx:1.26"),
        ("sidecar", "busybox:1.36"),
    ]

    status = apps.delete_namespaced_deployment(
        "web", namespace, body=client.V1DeleteOptions(propagation_policy="Background")
    )
    assert status["kind"] == "Status", status
    assert status["status"] == "Success"
    assert status["details"] == {
        "name": "web",
        "group": "apps",
        "kind": "deployments",
        "uid": created.metadata.uid,
    }
    deadline = time.monotonic() + 20
    while True:
        try:
            apps.read_namespaced_deployment("web", namespace)
        except ApiException as error:
            assert error.status == 404
            break
        assert time.monotonic() < deadline, "deployment still there"
        time.sleep(0.1)
    assert apps.list_namespaced_deployment(namespace).items == []


def test_errors(core, namespace):
    with pytest.raises(ApiException) as error:
        core.read_namespaced_config_map("missing", namespace)
    assert error.value.status == 404
    body = error_body(error.value)
    assert body["reason"] == "NotFound"
    assert body["details"]["name"] == "missing"
    assert body["details"]["kind"] == "configmaps"
    assert "group" not in body["details"]  # omitempty: the core group is ""
    assert body["message"] == 'configmaps "missing" not found'

    with pytest.raises(ApiException) as error:
        core.read_namespace("no-such-namespace")
    assert error.value.status == 404
    assert error_body(error.value)["reason"] == "NotFound"

    core.create_namespaced_config_map(namespace, configmap("dup", {}))
    with pytest.raises(ApiException) as error:
        core.create_namespaced_config_map(namespace, configmap("dup", {}))
    assert error.value.status == 409
    body = error_body(error.value)
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == 'configmaps "dup" already exists'

    with pytest.raises(ApiException) as error:
        core.delete_namespaced_config_map("missing", namespace)
    assert error.value.status == 404

    # Creating in a namespace that does not exist.
    with pytest.raises(ApiException) as error:
        core.create_namespaced_config_map("no-such-namespace", configmap("x", {}))
    assert error.value.status == 404
    assert error_body(error.value)["reason"] == "NotFound"


def test_watch_existing_objects_then_changes(core, namespace):
    for name in ["w1", "w2"]:
        core.create_namespaced_config_map(namespace, configmap(name, {"v": "0"}))

    # A watch without resourceVersion starts with ADDED for every existing object and ends
    # by itself at timeout_seconds.
    started = time.monotonic()
    events = []
    for event in watch.Watch().stream(
        core.list_namespaced_config_map, namespace, timeout_seconds=3
    ):
        events.append((event["type"], event["object"].metadata.name))
        assert isinstance(event["object"], client.V1ConfigMap)
    assert time.monotonic() - started < 15
    assert sorted(events) == [("ADDED", "w1"), ("ADDED", "w2")]

    # A watch from the list's resourceVersion sees only later changes.
    listed = core.list_namespaced_config_map(namespace)
    rv = listed.metadata.resource_version

    def writer():
        time.sleep(0.5)
        core.patch_namespaced_config_map("w1", namespace, {"data": {"v": "1"}})
        core.create_namespaced_config_map(namespace, configmap("w3", {"v": "3"}))
        core.delete_namespaced_config_map("w2", namespace)

    thread = threading.Thread(target=writer)
    thread.start()
    seen = []
    w = watch.Watch()
    try:
        # timeout_seconds only bounds a hang (generously, for a loaded machine): the watch is
        # stopped as soon as the three events are in.
        for event in w.stream(
            core.list_namespaced_config_map, namespace, resource_version=rv, timeout_seconds=60
        ):
            obj = event["object"]
            seen.append((event["type"], obj.metadata.name, obj.data))
            if len(seen) == 3:
                w.stop()
    finally:
        thread.join(timeout=20)
    assert seen == [
        ("MODIFIED", "w1", {"v": "1"}),
        ("ADDED", "w3", {"v": "3"}),
        ("DELETED", "w2", {"v": "0"}),
    ]
    assert w.resource_version is not None
    assert int(w.resource_version) > int(rv)


def test_status_bodies_are_kubes_bytes(core, namespace):
    """kube-apiserver's Status bodies byte for byte (its JSON encoder: the Go struct's field
    order, `details` before `code`, and a trailing newline), as the Python client's own
    tests compare the body of a 409."""
    core.create_namespaced_config_map(namespace, configmap("dup", {}))
    with pytest.raises(ApiException) as error:
        core.create_namespaced_config_map(namespace, configmap("dup", {}))
    assert error.value.status == 409
    assert error.value.body == (
        '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        '"message":"configmaps \\"dup\\" already exists","reason":"AlreadyExists",'
        '"details":{"name":"dup","kind":"configmaps"},"code":409}\n'
    )
    with pytest.raises(ApiException) as error:
        core.read_namespaced_config_map("missing", namespace)
    assert error.value.body == (
        '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        '"message":"configmaps \\"missing\\" not found","reason":"NotFound",'
        '"details":{"name":"missing","kind":"configmaps"},"code":404}\n'
    )
    # A successful DELETE answers a Success Status (no code), with the same encoding.
    created = core.create_namespaced_config_map(namespace, configmap("bye", {}))
    response = core.delete_namespaced_config_map(
        "bye", namespace, _preload_content=False
    )
    assert response.data.decode() == (
        '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success",'
        '"details":{"name":"bye","kind":"configmaps","uid":"%s"}}\n'
        % created.metadata.uid
    )


TOO_LARGE = (
    '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
    '"message":"Request entity too large: limit is 3145728",'
    '"reason":"RequestEntityTooLarge","code":413}\n'
)


def test_oversized_body_is_413_not_a_broken_pipe(core, namespace, kubecache):
    """A 4 MiB create is answered 413 with kube's Status; the client finishes sending its body
    and reads the answer instead of failing with a broken pipe."""
    big = configmap("big", {"x": "y" * (4 * 1024 * 1024)})
    with pytest.raises(ApiException) as error:
        core.create_namespaced_config_map(namespace, big)
    assert error.value.status == 413
    assert error.value.body == TOO_LARGE

    # Python's own HTTP/1.1 client writes the whole body before it reads anything (urllib3,
    # under the Kubernetes client, hides a broken pipe; http.client does not): with a
    # Content-Length, and chunked.
    import http.client
    import urllib.parse

    address = urllib.parse.urlparse(kubecache.url)
    body = json.dumps(big).encode()
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    for chunked in (False, True):
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        try:
            if chunked:
                pieces = (body[i : i + 65536] for i in range(0, len(body), 65536))
                connection.request(
                    "POST",
                    path,
                    pieces,
                    {"Content-Type": "application/json"},
                    encode_chunked=True,
                )
            else:
                connection.request(
                    "POST", path, body, {"Content-Type": "application/json"}
                )
            response = connection.getresponse()
            assert response.status == 413
            assert response.getheader("Connection") == "close"
            assert response.read().decode() == TOO_LARGE
        finally:
            connection.close()
    with pytest.raises(ApiException) as error:
        core.read_namespaced_config_map("big", namespace)
    assert error.value.status == 404
