"""The official Python client's typed APIs on the storage.k8s.io, node.k8s.io and
networking.k8s.io kinds kube 1.33 serves (CSIDriver, CSINode, CSIStorageCapacity,
StorageClass, VolumeAttachment, RuntimeClass, IngressClass, IPAddress, ServiceCIDR), table-driven: create,
get, list, watch, replace, delete, and one invalid object each (422 with kube's field cause,
nothing written) — on the embedded store and on etcd (the `storage` fixture).
"""

import json
from dataclasses import dataclass
from typing import Callable

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

NAMESPACE = "default"


@dataclass
class Kind:
    """One kind: its typed API, the method suffix (`csi_driver`), whether it is namespaced,
    a valid body, an allowed change, an invalid body and the field kube's cause names."""

    api: Callable
    method: str
    namespaced: bool
    valid: dict
    change: Callable
    invalid: dict
    cause_field: str

    def call(self, api_client, verb, *args):
        """`verb` of the typed API; the namespace goes where the generated method wants it
        (first for create and list, after the name otherwise)."""
        api = self.api(api_client)
        if not self.namespaced:
            return getattr(api, f"{verb}_{self.method}")(*args)
        method = getattr(api, f"{verb}_namespaced_{self.method}")
        if verb in ("create", "list"):
            return method(NAMESPACE, *args)
        return method(args[0], NAMESPACE, *args[1:])


def labelled(obj):
    obj.metadata.labels = {"changed": "yes"}


KINDS = [
    Kind(
        client.StorageV1Api,
        "csi_driver",
        False,
        {"metadata": {"name": "csi.example.com"}, "spec": {}},
        labelled,
        {"metadata": {"name": "bad.example.com"}, "spec": {"fsGroupPolicy": "Sometimes"}},
        "spec.fsGroupPolicy",
    ),
    Kind(
        client.StorageV1Api,
        "csi_node",
        False,
        {"metadata": {"name": "node-1"},
         "spec": {"drivers": [{"name": "csi.example.com", "nodeID": "i-1"}]}},
        labelled,
        {"metadata": {"name": "node-2"},
         "spec": {"drivers": [{"name": "csi.example.com", "nodeID": ""}]}},
        "spec.drivers[0].nodeID",
    ),
    Kind(
        client.StorageV1Api,
        "csi_storage_capacity",
        True,
        {"metadata": {"name": "fast-zone-a"}, "storageClassName": "fast", "capacity": "10Gi"},
        labelled,
        {"metadata": {"name": "broken"}, "storageClassName": "Fast_Class"},
        "storageClassName",
    ),
    Kind(
        client.StorageV1Api,
        "storage_class",
        False,
        {"metadata": {"name": "fast"}, "provisioner": "ebs.csi.aws.com"},
        labelled,
        {"metadata": {"name": "recycled"}, "provisioner": "ebs.csi.aws.com",
         "reclaimPolicy": "Recycle"},
        "reclaimPolicy",
    ),
    Kind(
        client.StorageV1Api,
        "volume_attachment",
        False,
        {"metadata": {"name": "csi-0a1b"},
         "spec": {"attacher": "csi.example.com", "nodeName": "node-1",
                  "source": {"persistentVolumeName": "pv-1"}}},
        labelled,
        {"metadata": {"name": "nowhere"},
         "spec": {"attacher": "csi.example.com", "nodeName": "node-1", "source": {}}},
        "spec.source",
    ),
    Kind(
        client.NodeV1Api,
        "runtime_class",
        False,
        {"metadata": {"name": "gvisor"}, "handler": "runsc"},
        labelled,
        {"metadata": {"name": "kata"}, "handler": "Kata_QEMU"},
        "handler",
    ),
    Kind(
        client.NetworkingV1Api,
        "ingress_class",
        False,
        {"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}},
        labelled,
        {"metadata": {"name": "plain"}, "spec": {"controller": "nginx"}},
        "spec.controller",
    ),
    Kind(
        client.NetworkingV1Api,
        "ip_address",
        False,
        {"metadata": {"name": "192.168.77.5"},
         "spec": {"parentRef": {"group": "gateway.networking.k8s.io", "resource": "gateways",
                                "namespace": "default", "name": "edge"}}},
        labelled,
        {"metadata": {"name": "2001:db8:0::5"},
         "spec": {"parentRef": {"resource": "gateways", "name": "edge"}}},
        "metadata.name",
    ),
    Kind(
        client.NetworkingV1Api,
        "service_cidr",
        False,
        {"metadata": {"name": "extra"}, "spec": {"cidrs": ["10.100.0.0/16"]}},
        labelled,
        {"metadata": {"name": "sloppy"}, "spec": {"cidrs": ["10.100.0.1/16"]}},
        "spec.cidrs[0]",
    ),
]


@pytest.mark.parametrize("kind", KINDS, ids=[k.method for k in KINDS])
def test_typed_crud_watch_and_validation(api_client, kind):
    name = kind.valid["metadata"]["name"]
    listed = kind.call(api_client, "list")
    created = kind.call(api_client, "create", kind.valid)
    assert created.metadata.name == name
    assert created.metadata.resource_version

    got = kind.call(api_client, "read", name)
    assert got.metadata.uid == created.metadata.uid
    assert name in [item.metadata.name for item in kind.call(api_client, "list").items]

    kind.change(got)
    replaced = kind.call(api_client, "replace", name, got)
    assert replaced.metadata.labels == {"changed": "yes"}
    kind.call(api_client, "delete", name)

    # The watch from before the create sees the three writes, typed.
    events = []
    stream = watch.Watch()
    api = kind.api(api_client)
    list_fn = getattr(api, f"list_namespaced_{kind.method}" if kind.namespaced else f"list_{kind.method}")
    args = (NAMESPACE,) if kind.namespaced else ()
    for event in stream.stream(
        list_fn, *args, resource_version=listed.metadata.resource_version, timeout_seconds=5
    ):
        events.append((event["type"], event["object"].metadata.name))
        if len(events) == 3:
            stream.stop()
    assert events == [("ADDED", name), ("MODIFIED", name), ("DELETED", name)]
    with pytest.raises(ApiException) as gone:
        kind.call(api_client, "read", name)
    assert gone.value.status == 404

    with pytest.raises(ApiException) as error:
        kind.call(api_client, "create", kind.invalid)
    assert error.value.status == 422, error.value.body
    body = json.loads(error.value.body)
    assert body["reason"] == "Invalid"
    assert kind.cause_field in [c.get("field") for c in body["details"]["causes"]], body
    with pytest.raises(ApiException) as missing:
        kind.call(api_client, "read", kind.invalid["metadata"]["name"])
    assert missing.value.status == 404
