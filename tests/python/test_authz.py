"""Access reviews and RBAC objects through the official Python client, server in RBAC mode."""

import time

import pytest
from kubernetes import client

from conftest import Kubecache


@pytest.fixture
def rbac_client():
    server = Kubecache(["--authorization-mode", "RBAC"])
    configuration = client.Configuration()
    configuration.host = server.url
    api = client.ApiClient(configuration)
    try:
        yield api
    finally:
        api.close()
        server.kill()


def review(authz, user, verb, resource, namespace):
    body = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=user,
            resource_attributes=client.V1ResourceAttributes(
                verb=verb, resource=resource, namespace=namespace
            ),
        )
    )
    return authz.create_subject_access_review(body).status


def test_subject_access_review_follows_bindings(rbac_client):
    authz = client.AuthorizationV1Api(rbac_client)
    rbac = client.RbacAuthorizationV1Api(rbac_client)
    assert review(authz, "bob", "get", "configmaps", "default").allowed is False

    rbac.create_namespaced_role_binding(
        "default",
        {
            "metadata": {"name": "bob-view"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}],
        },
    )
    deadline = time.monotonic() + 20
    status = review(authz, "bob", "get", "configmaps", "default")
    while not status.allowed and time.monotonic() < deadline:
        time.sleep(0.1)
        status = review(authz, "bob", "get", "configmaps", "default")
    assert status.allowed is True
    assert status.reason == (
        'RBAC: allowed by RoleBinding "bob-view/default" of ClusterRole "view" to User "bob"'
    )
    assert review(authz, "bob", "delete", "configmaps", "default").allowed is False

    mine = authz.create_self_subject_access_review(
        client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                non_resource_attributes=client.V1NonResourceAttributes(path="/metrics", verb="get")
            )
        )
    )
    assert mine.status.allowed is True  # the insecure port's user is in system:masters
