"""Custom resources through the official client's `DynamicClient`: cert-manager's published
Certificate CRD (from shared/fixtures/crds, found through $KUBECACHE_FIXTURES or the nearest
ancestor directory that has it) is created through the apiextensions API, then a Certificate
goes through create, get, list, merge patch, a refused invalid update and delete.

No timed assertions: every wait polls with a deadline, then the state is compared.
"""

import json
import os
import time

import pytest
import yaml
from kubernetes import client
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError, UnprocessibleEntityError

WAIT = 30.0


def crd_dir():
    if os.environ.get("KUBECACHE_FIXTURES"):
        return os.path.join(os.environ["KUBECACHE_FIXTURES"], "crds")
    directory = os.path.dirname(os.path.abspath(__file__))
    while True:
        candidate = os.path.join(directory, "shared", "fixtures", "crds")
        if os.path.isdir(candidate):
            return candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            pytest.fail("shared/fixtures/crds not found in an ancestor (or set KUBECACHE_FIXTURES)")
        directory = parent


def wait_for(what, check, timeout=WAIT):
    """Polls `check` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.05)


def established(extensions, name):
    crd = extensions.read_custom_resource_definition(name)
    conditions = (crd.status and crd.status.conditions) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def certificate(name, secret):
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {
            "secretName": secret,
            "dnsNames": ["web.example.com"],
            "issuerRef": {"name": "ca", "kind": "Issuer"},
        },
    }


def test_dynamic_client_on_a_custom_resource(api_client, namespace):
    path = os.path.join(crd_dir(), "cert-manager", "cert-manager.io_certificates.yaml")
    with open(path) as file:
        crd = yaml.safe_load(file)
    extensions = client.ApiextensionsV1Api(api_client)
    extensions.create_custom_resource_definition(body=crd)
    wait_for("Certificate CRD Established", lambda: established(extensions, crd["metadata"]["name"]))

    dynamic = DynamicClient(api_client)
    certificates = dynamic.resources.get(api_version="cert-manager.io/v1", kind="Certificate")
    assert certificates.name == "certificates"
    assert certificates.namespaced
    assert set(certificates.short_names) == {"cert", "certs"}

    created = certificates.create(body=certificate("web", "web-tls"), namespace=namespace)
    assert created.kind == "Certificate"
    assert created.apiVersion == "cert-manager.io/v1"
    assert created.metadata.namespace == namespace
    assert created.metadata.uid
    assert created.metadata.generation == 1
    certificates.create(body=certificate("api", "api-tls"), namespace=namespace)

    read = certificates.get(name="web", namespace=namespace)
    assert read.metadata.uid == created.metadata.uid
    assert read.spec.secretName == "web-tls"
    assert read.spec.issuerRef.name == "ca"

    listed = certificates.get(namespace=namespace)
    assert listed.kind == "CertificateList"
    assert sorted(item.metadata.name for item in listed.items) == ["api", "web"]
    assert listed.metadata.resourceVersion
    selected = certificates.get(namespace=namespace, field_selector="metadata.name=api")
    assert [item.metadata.name for item in selected.items] == ["api"]

    patched = certificates.patch(
        name="web",
        namespace=namespace,
        body={"spec": {"secretName": "web-tls-2"}},
        content_type="application/merge-patch+json",
    )
    assert patched.spec.secretName == "web-tls-2"
    assert patched.metadata.generation == 2
    assert patched.metadata.resourceVersion != created.metadata.resourceVersion

    # The schema refuses a secretName of the wrong type: 422 with kube's cause.
    with pytest.raises(UnprocessibleEntityError) as error:
        certificates.patch(
            name="web",
            namespace=namespace,
            body={"spec": {"secretName": 5}},
            content_type="application/merge-patch+json",
        )
    body = json.loads(error.value.body)
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueTypeInvalid",
            "message": 'Invalid value: "integer": spec.secretName in body must be of type string: "integer"',
            "field": "spec.secretName",
        }
    ]
    assert certificates.get(name="web", namespace=namespace).spec.secretName == "web-tls-2"

    deleted = certificates.delete(name="web", namespace=namespace)
    assert deleted.kind in ("Certificate", "Status")
    with pytest.raises(NotFoundError):
        certificates.get(name="web", namespace=namespace)
    remaining = certificates.get(namespace=namespace)
    assert [item.metadata.name for item in remaining.items] == ["api"]
