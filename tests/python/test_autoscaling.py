"""HorizontalPodAutoscalers through the official client's AutoscalingV1Api and AutoscalingV2Api
(one stored object, two versions), LimitRanges, ResourceQuotas and ComponentStatuses through
CoreV1Api — on the embedded store and on etcd (the `storage` fixture)."""

import json

import time

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

NS = "default"


@pytest.fixture
def v1(api_client):
    return client.AutoscalingV1Api(api_client)


@pytest.fixture
def v2(api_client):
    return client.AutoscalingV2Api(api_client)


def target(name):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}


def test_v2_object_read_as_v1_and_back(v1, v2):
    created = v2.create_namespaced_horizontal_pod_autoscaler(
        NS,
        {
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": target("web"),
                "minReplicas": 2,
                "maxReplicas": 6,
                "metrics": [
                    {"type": "Pods", "pods": {"metric": {"name": "qps"},
                        "target": {"type": "AverageValue", "averageValue": "1k"}}},
                    {"type": "Resource", "resource": {"name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70}}},
                ],
            },
        },
    )
    assert isinstance(created, client.V2HorizontalPodAutoscaler)
    old = v1.read_namespaced_horizontal_pod_autoscaler("web", NS)
    assert isinstance(old, client.V1HorizontalPodAutoscaler)
    assert old.spec.target_cpu_utilization_percentage == 70
    assert old.spec.min_replicas == 2
    others = json.loads(old.metadata.annotations["autoscaling.alpha.kubernetes.io/metrics"])
    assert others == [{"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "1k"}}]
    assert old.metadata.resource_version == created.metadata.resource_version

    # A v1 client's update keeps what only v2 says.
    old.spec.max_replicas = 9
    v1.replace_namespaced_horizontal_pod_autoscaler("web", NS, old)
    new = v2.read_namespaced_horizontal_pod_autoscaler("web", NS)
    assert new.spec.max_replicas == 9
    assert [m.type for m in new.spec.metrics] == ["Pods", "Resource"]
    assert new.spec.metrics[0].pods.target.average_value == "1k"
    assert new.metadata.annotations is None

    # The status subresource, written as v2, read as v1.
    new.status = client.V2HorizontalPodAutoscalerStatus(current_replicas=2, desired_replicas=3)
    v2.replace_namespaced_horizontal_pod_autoscaler_status("web", NS, new)
    assert v1.read_namespaced_horizontal_pod_autoscaler_status("web", NS).status.desired_replicas == 3

    listed = v1.list_namespaced_horizontal_pod_autoscaler(NS)
    assert [h.metadata.name for h in listed.items] == ["web"]
    v1.delete_namespaced_horizontal_pod_autoscaler("web", NS)
    with pytest.raises(ApiException) as gone:
        v2.read_namespaced_horizontal_pod_autoscaler("web", NS)
    assert gone.value.status == 404


def test_v1_object_read_as_v2_and_watched_in_both(v1, v2):
    events = {}
    for name, api in (("v1", v1), ("v2", v2)):
        stream = watch.Watch().stream(
            api.list_namespaced_horizontal_pod_autoscaler, NS, timeout_seconds=5
        )
        events[name] = stream
    v1.create_namespaced_horizontal_pod_autoscaler(
        NS,
        {"metadata": {"name": "api"},
         "spec": {"scaleTargetRef": target("api"), "maxReplicas": 4,
                  "targetCPUUtilizationPercentage": 55}},
    )
    read = v2.read_namespaced_horizontal_pod_autoscaler("api", NS)
    assert read.spec.min_replicas == 1
    assert read.spec.metrics[0].resource.name == "cpu"
    assert read.spec.metrics[0].resource.target.average_utilization == 55
    first_v1 = next(events["v1"])
    assert first_v1["type"] == "ADDED"
    assert isinstance(first_v1["object"], client.V1HorizontalPodAutoscaler)
    assert first_v1["object"].spec.target_cpu_utilization_percentage == 55
    first_v2 = next(events["v2"])
    assert first_v2["type"] == "ADDED"
    assert first_v2["object"].spec.metrics[0].resource.target.average_utilization == 55

    with pytest.raises(ApiException) as invalid:
        v2.create_namespaced_horizontal_pod_autoscaler(
            NS,
            {"metadata": {"name": "bad"},
             "spec": {"scaleTargetRef": target("bad"), "minReplicas": 3, "maxReplicas": 1}},
        )
    assert invalid.value.status == 422
    causes = json.loads(invalid.value.body)["details"]["causes"]
    assert {"reason": "FieldValueInvalid", "field": "spec.maxReplicas",
            "message": "Invalid value: 1: must be greater than or equal to `minReplicas`"} in causes


def test_limit_ranges_quotas_and_component_statuses(core):
    limits = core.create_namespaced_limit_range(
        NS,
        {"metadata": {"name": "defaults"},
         "spec": {"limits": [{"type": "Container", "max": {"memory": "1Gi"}}]}},
    )
    assert limits.spec.limits[0].default == {"memory": "1Gi"}
    assert limits.spec.limits[0].default_request == {"memory": "1Gi"}
    core.create_namespaced_resource_quota(
        NS, {"metadata": {"name": "pods"}, "spec": {"hard": {"pods": "5"}}}
    )
    # The resourcequota controller computes the status first; it is written by hand after.
    deadline = time.monotonic() + 20
    while not core.read_namespaced_resource_quota("pods", NS).status.used:
        assert time.monotonic() < deadline, "the quota's status was never computed"
        time.sleep(0.05)
    quota = core.read_namespaced_resource_quota("pods", NS)
    quota.status = client.V1ResourceQuotaStatus(hard={"pods": "5"}, used={"pods": "1"})
    core.replace_namespaced_resource_quota_status("pods", NS, quota)
    assert core.read_namespaced_resource_quota("pods", NS).status.used == {"pods": "1"}
    with pytest.raises(ApiException) as invalid:
        core.create_namespaced_resource_quota(
            NS, {"metadata": {"name": "bad"}, "spec": {"hard": {"widgets": "1"}}}
        )
    assert invalid.value.status == 422

    statuses = core.list_component_status()
    assert [s.metadata.name for s in statuses.items] == ["etcd-0"]
    healthy = statuses.items[0].conditions[0]
    assert (healthy.type, healthy.status, healthy.message) == ("Healthy", "True", "ok")
    assert core.read_component_status("etcd-0").metadata.name == "etcd-0"
