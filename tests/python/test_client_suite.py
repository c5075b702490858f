"""The Python client suite: CRUD on pods, services, namespaces and deployments; a watch that
resumes from the last resourceVersion it saw after each stream ends (no event lost or seen
twice); and 410 Gone for a resourceVersion older than the server's cache, recovered by
relisting — as an informer does.

No timed assertions: every wait polls with a deadline, then the state is compared.
"""

import json
import threading
import time
import uuid

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from conftest import Kubecache

WAIT = 30.0


def wait_for(what, check, timeout=WAIT):
    """Polls `check` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.05)


def expect_api_error(status, reason, call, *args, **kwargs):
    with pytest.raises(ApiException) as error:
        call(*args, **kwargs)
    assert error.value.status == status, error.value.body
    if error.value.body:
        body = json.loads(error.value.body)
        assert body["kind"] == "Status"
        assert body["reason"] == reason, body
    return error.value


def pod(name, app):
    return {
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {
            "containers": [{"name": "main", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]
        },
    }


def names(items):
    return sorted(item.metadata.name for item in items)


def test_pod_crud(core, namespace):
    created = core.create_namespaced_pod(namespace, pod("web-0", "web"))
    assert isinstance(created, client.V1Pod)
    assert created.metadata.uid
    assert created.status.phase == "Pending"
    assert created.spec.containers[0].ports[0].container_port == 80
    core.create_namespaced_pod(namespace, pod("db-0", "db"))
    expect_api_error(409, "AlreadyExists", core.create_namespaced_pod, namespace, pod("db-0", "db"))

    read = core.read_namespaced_pod("web-0", namespace)
    assert read.metadata.uid == created.metadata.uid
    assert names(core.list_namespaced_pod(namespace, label_selector="app=web").items) == ["web-0"]
    assert names(
        core.list_namespaced_pod(namespace, field_selector="status.phase=Pending").items
    ) == ["db-0", "web-0"]
    everywhere = core.list_pod_for_all_namespaces(label_selector="app=db")
    assert [(p.metadata.namespace, p.metadata.name) for p in everywhere.items] == [
        (namespace, "db-0")
    ]

    patched = core.patch_namespaced_pod("web-0", namespace, {"metadata": {"labels": {"tier": "front"}}})
    assert patched.metadata.labels == {"app": "web", "tier": "front"}

    # The status subresource changes only the status; the main resource keeps it.
    current = core.read_namespaced_pod_status("web-0", namespace)
    current.status.phase = "Running"
    current.status.pod_ip = "10.0.0.7"
    running = core.replace_namespaced_pod_status("web-0", namespace, current)
    assert running.status.phase == "Running"
    assert running.status.pod_ip == "10.0.0.7"
    assert core.read_namespaced_pod("web-0", namespace).status.phase == "Running"

    # Replace with the current object, then with a stale one.
    current = core.read_namespaced_pod("web-0", namespace)
    current.metadata.annotations = {"note": "replaced"}
    replaced = core.replace_namespaced_pod("web-0", namespace, current)
    assert replaced.metadata.annotations == {"note": "replaced"}
    assert replaced.status.phase == "Running"
    expect_api_error(409, "Conflict", core.replace_namespaced_pod, "web-0", namespace, current)

    deleted = core.delete_namespaced_pod("web-0", namespace)
    assert isinstance(deleted, client.V1Pod)
    assert deleted.metadata.name == "web-0"
    expect_api_error(404, "NotFound", core.read_namespaced_pod, "web-0", namespace)
    assert names(core.list_namespaced_pod(namespace).items) == ["db-0"]


def test_service_crud(core, namespace):
    body = {
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        },
    }
    created = core.create_namespaced_service(namespace, body)
    assert isinstance(created, client.V1Service)
    assert created.kind == "Service"
    assert [(p.name, p.port, p.target_port) for p in created.spec.ports] == [("http", 80, 8080)]
    expect_api_error(409, "AlreadyExists", core.create_namespaced_service, namespace, body)

    assert names(core.list_namespaced_service(namespace, label_selector="app=web").items) == ["web"]
    assert core.read_namespaced_service("web", namespace).spec.selector == {"app": "web"}

    # A dict patch is a strategic merge patch: ports merge by port.
    patched = core.patch_namespaced_service(
        "web", namespace, {"spec": {"ports": [{"name": "https", "port": 443, "targetPort": 8443}]}}
    )
    assert sorted(p.port for p in patched.spec.ports) == [80, 443]
    # A list patch is a JSON patch.
    patched = core.patch_namespaced_service(
        "web", namespace, [{"op": "replace", "path": "/spec/selector", "value": {"app": "web2"}}]
    )
    assert patched.spec.selector == {"app": "web2"}

    current = core.read_namespaced_service("web", namespace)
    current.metadata.labels = {"app": "web", "v": "2"}
    replaced = core.replace_namespaced_service("web", namespace, current)
    assert replaced.metadata.labels == {"app": "web", "v": "2"}
    expect_api_error(409, "Conflict", core.replace_namespaced_service, "web", namespace, current)

    # Like kube-apiserver (ReturnDeletedObject), a service delete answers the service.
    deleted = core.delete_namespaced_service("web", namespace)
    assert isinstance(deleted, client.V1Service)
    assert deleted.metadata.name == "web"
    expect_api_error(404, "NotFound", core.read_namespaced_service, "web", namespace)
    expect_api_error(404, "NotFound", core.delete_namespaced_service, "web", namespace)


def test_namespace_crud(core):
    name = "py-crud-" + uuid.uuid4().hex[:6]
    created = core.create_namespace({"metadata": {"name": name, "labels": {"team": "a"}}})
    assert isinstance(created, client.V1Namespace)
    assert created.status.phase == "Active"
    assert created.metadata.labels == {"team": "a", "kubernetes.io/metadata.name": name}
    expect_api_error(409, "AlreadyExists", core.create_namespace, {"metadata": {"name": name}})
    assert names(core.list_namespace(label_selector="team=a").items) == [name]

    patched = core.patch_namespace(name, {"metadata": {"labels": {"team": "b"}}})
    assert patched.metadata.labels["team"] == "b"
    assert names(core.list_namespace(label_selector="team=a").items) == []

    current = core.read_namespace(name)
    current.metadata.annotations = {"owner": "py"}
    replaced = core.replace_namespace(name, current)
    assert replaced.metadata.annotations == {"owner": "py"}
    expect_api_error(409, "Conflict", core.replace_namespace, name, current)

    core.create_namespaced_config_map(name, {"metadata": {"name": "inside"}, "data": {"a": "1"}})
    # Deleting a namespace answers the namespace, Terminating; it goes away with its content.
    deleted = core.delete_namespace(name)  # declared "object": a dict
    assert deleted["kind"] == "Namespace"
    assert deleted["metadata"]["name"] == name

    def gone():
        try:
            core.read_namespace(name)
            return False
        except ApiException as e:
            return e.status == 404

    wait_for(f"namespace {name} removed", gone)
    assert core.list_config_map_for_all_namespaces(field_selector=f"metadata.namespace={name}").items == []


def test_deployment_crud(apps, namespace):
    def deployment(name, tier, image="nginx:1.25"):
        return {
            "metadata": {"name": name, "labels": {"tier": tier}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "main", "image": image}]},
                },
            },
        }

    web = apps.create_namespaced_deployment(namespace, deployment("web", "front"))
    apps.create_namespaced_deployment(namespace, deployment("api", "back"))
    apps.create_namespaced_deployment(namespace, deployment("ui", "front"))
    assert web.metadata.generation == 1
    everywhere = apps.list_deployment_for_all_namespaces(label_selector="tier=front")
    assert sorted((d.metadata.namespace, d.metadata.name) for d in everywhere.items) == [
        (namespace, "ui"),
        (namespace, "web"),
    ]

    # Status through its subresource; a spec replace keeps it and bumps the generation.
    status = apps.patch_namespaced_deployment_status(
        "web", namespace, {"status": {"replicas": 2, "readyReplicas": 1, "observedGeneration": 1}}
    )
    assert status.status.ready_replicas == 1
    current = apps.read_namespaced_deployment("web", namespace)
    current.spec.template.spec.containers[0].image = "nginx:1.26"
    replaced = apps.replace_namespaced_deployment("web", namespace, current)
    assert replaced.spec.template.spec.containers[0].image == "nginx:1.26"
    assert replaced.metadata.generation == 2
    assert replaced.status.ready_replicas == 1
    expect_api_error(409, "Conflict", apps.replace_namespaced_deployment, "web", namespace, current)

    apps.delete_collection_namespaced_deployment(namespace, label_selector="tier=front")
    assert names(apps.list_namespaced_deployment(namespace).items) == ["api"]
    expect_api_error(404, "NotFound", apps.read_namespaced_deployment, "web", namespace)


def test_watch_resumes_from_last_resource_version(core, namespace):
    """The server ends each watch after 1 s (timeoutSeconds); the consumer starts the next one
    from the resourceVersion of the last event it saw. Writes happen in bursts with a resume
    between them; the events seen must be exactly the writes, in order, each once."""
    start_rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    lock = threading.Lock()
    seen = []  # (type, name, data, resourceVersion)
    streams = [0]  # watches that ended
    errors = []
    stop = threading.Event()

    def consume():
        last = start_rv
        while not stop.is_set():
            try:
                for event in watch.Watch().stream(
                    core.list_namespaced_config_map,
                    namespace,
                    resource_version=last,
                    timeout_seconds=1,
                ):
                    obj = event["object"]
                    with lock:
                        seen.append(
                            (event["type"], obj.metadata.name, obj.data, obj.metadata.resource_version)
                        )
                    last = obj.metadata.resource_version
            except Exception as e:  # reported by the assertions below
                errors.append(repr(e))
                return
            with lock:
                streams[0] += 1

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()

    expected = []  # (type, name, data, resourceVersion or None for deletes)
    data = {}
    for burst in range(3):
        for i in range(4):
            name = f"c{burst}-{i}"
            data[name] = {"v": "0"}
            cm = core.create_namespaced_config_map(namespace, {"metadata": {"name": name}, "data": data[name]})
            expected.append(("ADDED", name, dict(data[name]), cm.metadata.resource_version))
        for i in range(2):
            name = f"c{burst}-{i}"
            data[name] = {"v": "1"}
            cm = core.patch_namespaced_config_map(name, namespace, {"data": {"v": "1"}})
            expected.append(("MODIFIED", name, dict(data[name]), cm.metadata.resource_version))
        name = f"c{burst}-3"
        core.delete_namespaced_config_map(name, namespace)
        expected.append(("DELETED", name, dict(data.pop(name)), None))
        # Let at least one watch end and the next one start before the next burst.
        with lock:
            ended = streams[0]
        wait_for("a watch to end and resume", lambda: errors or streams[0] > ended)

    wait_for("every event", lambda: errors or len(seen) >= len(expected))
    stop.set()
    consumer.join(timeout=WAIT)
    assert errors == []
    assert streams[0] >= 3
    assert [e[:3] for e in seen] == [e[:3] for e in expected]
    versions = [int(e[3]) for e in seen]
    assert versions == sorted(versions) and len(set(versions)) == len(versions), versions
    for got, want in zip(seen, expected):
        if want[3] is not None:
            assert got[3] == want[3], (got, want)


def relist(core, namespace):
    """An informer's relist: the state by name and the resourceVersion to watch from."""
    listed = core.list_namespaced_config_map(namespace)
    state = {cm.metadata.name: cm.data for cm in listed.items}
    return state, listed.metadata.resource_version


def test_too_old_resource_version_is_410_and_a_relist_recovers(storage, tmp_path):
    """A client holding a resourceVersion from before a restart: the new server's cache starts
    later, so the watch answers 410 Gone (an ERROR event the client raises as ApiException);
    the client relists and watches from the list's resourceVersion without losing changes."""
    # In memory nothing would survive the restart: the embedded store gets a data directory.
    args = storage or ["--data-dir", str(tmp_path / "store")]
    server = Kubecache(args)
    try:
        configuration = client.Configuration()
        configuration.host = server.url
        core = client.CoreV1Api(client.ApiClient(configuration))
        namespace = "py-gone"
        core.create_namespace({"metadata": {"name": namespace}})
        for name in ["a", "b", "c"]:
            core.create_namespaced_config_map(namespace, {"metadata": {"name": name}, "data": {"v": "0"}})
        state, old_rv = relist(core, namespace)
        assert state == {"a": {"v": "0"}, "b": {"v": "0"}, "c": {"v": "0"}}
        core.patch_namespaced_config_map("a", namespace, {"data": {"v": "1"}})
        core.delete_namespaced_config_map("c", namespace)

        # Restart on the same store (kill -9: acknowledged writes survive).
        server.kill()
        server = Kubecache(args)
        configuration = client.Configuration()
        configuration.host = server.url
        core = client.CoreV1Api(client.ApiClient(configuration))

        error = expect_api_error(
            410,
            "Expired",
            lambda: list(
                watch.Watch().stream(
                    core.list_namespaced_config_map,
                    namespace,
                    resource_version=old_rv,
                    timeout_seconds=5,
                )
            ),
        )
        assert "Expired" in error.reason
        # A LIST at that exact resourceVersion is gone too.
        expect_api_error(
            410,
            "Expired",
            core.list_namespaced_config_map,
            namespace,
            resource_version=old_rv,
            resource_version_match="Exact",
        )

        # Relist, then watch from the list: the state is current and later changes arrive.
        state, rv = relist(core, namespace)
        assert state == {"a": {"v": "1"}, "b": {"v": "0"}}
        core.patch_namespaced_config_map("b", namespace, {"data": {"v": "2"}})
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "d"}, "data": {"v": "0"}})
        core.delete_namespaced_config_map("a", namespace)
        events = []
        w = watch.Watch()
        for event in w.stream(core.list_namespaced_config_map, namespace, resource_version=rv, timeout_seconds=10):
            obj = event["object"]
            events.append((event["type"], obj.metadata.name))
            if event["type"] == "DELETED":
                state.pop(obj.metadata.name, None)
            else:
                state[obj.metadata.name] = obj.data
            if len(events) == 3:
                w.stop()
        assert events == [("MODIFIED", "b"), ("ADDED", "d"), ("DELETED", "a")]
        assert state == relist(core, namespace)[0]
    finally:
        server.kill()

