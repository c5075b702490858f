"""ResourceQuota and LimitRange through the official Python client: the quota's status is
computed by the controller, pods are charged and refused with kube's 403 message (the refused
pod is not written), a delete gives usage back, and a LimitRange's defaults are on the pod the
client gets back.

No timed assertions: every wait polls with a deadline, then the state is compared.
"""

import json
import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

WAIT = 20.0


def wait_for(what, check, timeout=WAIT):
    """Polls `check` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def pod(name, resources=None):
    container = {"name": "app", "image": "nginx"}
    if resources is not None:
        container["resources"] = resources
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [container]}}


def used(core, namespace, name):
    return core.read_namespaced_resource_quota(name, namespace).status.used or {}


def test_quota_charges_refuses_and_releases(core, namespace):
    core.create_namespaced_resource_quota(
        namespace,
        client.V1ResourceQuota(
            metadata=client.V1ObjectMeta(name="compute"),
            spec=client.V1ResourceQuotaSpec(hard={"pods": "2", "requests.memory": "1Gi"}),
        ),
    )
    status = wait_for(
        "the quota's status",
        lambda: core.read_namespaced_resource_quota("compute", namespace).status.used,
    )
    assert status == {"pods": "0", "requests.memory": "0"}

    memory = {"requests": {"memory": "256Mi"}}
    core.create_namespaced_pod(namespace, pod("a", memory))
    core.create_namespaced_pod(namespace, pod("b", memory))
    assert used(core, namespace, "compute") == {"pods": "2", "requests.memory": "512Mi"}

    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(namespace, pod("c", memory))
    assert refused.value.status == 403
    body = json.loads(refused.value.body)
    assert body["reason"] == "Forbidden"
    assert body["message"] == (
        'pods "c" is forbidden: exceeded quota: compute, requested: pods=1, '
        "used: pods=2, limited: pods=2"
    )
    names = [p.metadata.name for p in core.list_namespaced_pod(namespace).items]
    assert sorted(names) == ["a", "b"]

    core.delete_namespaced_pod("a", namespace)
    wait_for("usage given back", lambda: used(core, namespace, "compute").get("pods") == "1")
    assert used(core, namespace, "compute")["requests.memory"] == "256Mi"
    core.create_namespaced_pod(namespace, pod("c", memory))


def test_limit_range_defaults_and_refusals(core, namespace):
    core.create_namespaced_limit_range(
        namespace,
        client.V1LimitRange(
            metadata=client.V1ObjectMeta(name="limits"),
            spec=client.V1LimitRangeSpec(limits=[
                client.V1LimitRangeItem(
                    type="Container",
                    default={"memory": "256Mi"},
                    default_request={"memory": "64Mi"},
                    max={"memory": "512Mi"},
                ),
            ]),
        ),
    )
    created = core.create_namespaced_pod(namespace, pod("plain"))
    resources = created.spec.containers[0].resources
    assert resources.requests == {"memory": "64Mi"}
    assert resources.limits == {"memory": "256Mi"}
    assert created.metadata.annotations["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: memory request for container app; "
        "memory limit for container app"
    )

    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(namespace, pod("big", {"limits": {"memory": "1Gi"}}))
    assert refused.value.status == 403
    assert json.loads(refused.value.body)["message"] == (
        'pods "big" is forbidden: maximum memory usage per Container is 512Mi, '
        "but limit is 1Gi"
    )
