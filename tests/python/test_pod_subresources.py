"""The pod subresources through the official Python client: `create_namespaced_pod_binding`
and `create_namespaced_pod_eviction` (policy/v1), with kube's answers."""

import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException


def pod(name, labels):
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "nginx:1.25"}]},
    }


def status_of(response):
    """The body of a call made with `_preload_content=False`: kube answers these creates with
    a Status, which the client's typed models (V1Binding, V1Eviction) cannot hold."""
    return json.loads(response.data)


def test_binding_sets_node_once(core, namespace):
    core.create_namespaced_pod(namespace, pod("web", {"app": "web"}))
    binding = client.V1Binding(
        metadata=client.V1ObjectMeta(name="web"),
        target=client.V1ObjectReference(kind="Node", name="node-1"),
    )
    response = core.create_namespaced_pod_binding(
        "web", namespace, binding, _preload_content=False
    )
    assert response.status == 201
    assert status_of(response)["status"] == "Success"

    bound = core.read_namespaced_pod("web", namespace)
    assert bound.spec.node_name == "node-1"
    scheduled = [c for c in bound.status.conditions if c.type == "PodScheduled"]
    assert [c.status for c in scheduled] == ["True"]

    with pytest.raises(ApiException) as again:
        core.create_namespaced_pod_binding(
            "web",
            namespace,
            client.V1Binding(
                metadata=client.V1ObjectMeta(name="web"),
                target=client.V1ObjectReference(kind="Node", name="node-2"),
            ),
            _preload_content=False,
        )
    assert again.value.status == 409
    body = json.loads(again.value.body)
    assert body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on pods/binding "web": '
        'pod web is already assigned to node "node-1"'
    )


def test_eviction_honours_the_disruption_budget(core, namespace, api_client):
    policy = client.PolicyV1Api(api_client)
    for name in ["db-1", "db-2"]:
        core.create_namespaced_pod(namespace, pod(name, {"app": "db"}))
        core.patch_namespaced_pod_status(
            name,
            namespace,
            {
                "status": {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True"}],
                }
            },
        )
    created = policy.create_namespaced_pod_disruption_budget(
        namespace,
        {
            "metadata": {"name": "db"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}},
        },
    )
    policy.patch_namespaced_pod_disruption_budget_status(
        "db",
        namespace,
        {
            "status": {
                "observedGeneration": created.metadata.generation,
                "disruptionsAllowed": 1,
                "currentHealthy": 2,
                "desiredHealthy": 1,
                "expectedPods": 2,
            }
        },
    )

    def evict(name):
        return core.create_namespaced_pod_eviction(
            name,
            namespace,
            client.V1Eviction(metadata=client.V1ObjectMeta(name=name)),
            _preload_content=False,
        )

    response = evict("db-1")
    assert response.status == 201
    assert status_of(response)["status"] == "Success"
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_pod("db-1", namespace)
    assert gone.value.status == 404
    budget = policy.read_namespaced_pod_disruption_budget("db", namespace)
    assert budget.status.disruptions_allowed == 0
    assert "db-1" in budget.status.disrupted_pods

    with pytest.raises(ApiException) as blocked:
        evict("db-2")
    assert blocked.value.status == 429
    body = json.loads(blocked.value.body)
    assert body["reason"] == "TooManyRequests"
    assert body["message"] == (
        "Cannot evict pod as it would violate the pod's disruption budget."
    )
    assert body["details"]["causes"] == [
        {
            "reason": "DisruptionBudget",
            "message": "The disruption budget db needs 1 healthy pods and has 2 currently",
        }
    ]
    assert core.read_namespaced_pod("db-2", namespace).metadata.name == "db-2"
