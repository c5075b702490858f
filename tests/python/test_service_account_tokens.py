"""Service-account tokens with the official Python client: TokenRequest through
`create_namespaced_service_account_token`, TokenReview through `create_token_review`, and the
ServiceAccount admission plugin's projected volume on a pod — on the embedded store and etcd."""

import base64
import json
import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException


def claims_of(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def wait_for_default_account(core, namespace):
    deadline = time.time() + 10
    while True:
        try:
            return core.read_namespaced_service_account("default", namespace)
        except ApiException as error:
            assert error.status == 404
            assert time.time() < deadline, "no default service account"
            time.sleep(0.05)


def test_token_request_and_review(api_client, core):
    namespace = "py-tokens"
    core.create_namespace({"metadata": {"name": namespace}})
    account = wait_for_default_account(core, namespace)

    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=["py-audience"], expiration_seconds=900)
    )
    answer = core.create_namespaced_service_account_token("default", namespace, request)
    token = answer.status.token
    claims = claims_of(token)
    assert claims["aud"] == ["py-audience"]
    assert claims["exp"] - claims["iat"] == 900
    assert claims["sub"] == f"system:serviceaccount:{namespace}:default"
    assert claims["kubernetes.io"]["serviceaccount"] == {
        "name": "default",
        "uid": account.metadata.uid,
    }
    assert answer.status.expiration_timestamp.timestamp() == claims["exp"]

    authentication = client.AuthenticationV1Api(api_client)
    review = authentication.create_token_review(
        client.V1TokenReview(
            spec=client.V1TokenReviewSpec(token=token, audiences=["py-audience"])
        )
    )
    assert review.status.authenticated is True
    assert review.status.user.username == f"system:serviceaccount:{namespace}:default"
    assert f"system:serviceaccounts:{namespace}" in review.status.user.groups
    # The API's own audiences are not the token's.
    refused = authentication.create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token))
    )
    assert not refused.status.authenticated
    assert "audiences" in refused.status.error

    with pytest.raises(ApiException) as error:
        core.create_namespaced_service_account_token("ghost", namespace, request)
    assert error.value.status == 404
    with pytest.raises(ApiException) as error:
        core.create_namespaced_service_account_token(
            "default",
            namespace,
            client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=60)
            ),
        )
    assert error.value.status == 422
    assert json.loads(error.value.body)["details"]["causes"][0]["field"] == (
        "spec.expirationSeconds"
    )


def test_pod_gets_the_projected_token_volume(core):
    namespace = "py-pods"
    core.create_namespace({"metadata": {"name": namespace}})
    wait_for_default_account(core, namespace)
    pod = core.create_namespaced_pod(
        namespace,
        {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}},
    )
    assert pod.spec.service_account_name == "default"
    volume = pod.spec.volumes[0]
    assert volume.name.startswith("kube-api-access-")
    sources = volume.projected.sources
    assert sources[0].service_account_token.expiration_seconds == 3607
    assert sources[1].config_map.name == "kube-root-ca.crt"
    assert sources[2].downward_api.items[0].field_ref.field_path == "metadata.namespace"
    mount = pod.spec.containers[0].volume_mounts[0]
    assert (mount.name, mount.mount_path, mount.read_only) == (
        volume.name,
        "/var/run/secrets/kubernetes.io/serviceaccount",
        True,
    )
