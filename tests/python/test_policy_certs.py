"""The official Python client's typed APIs on the admissionregistration.k8s.io,
apiregistration.k8s.io, certificates.k8s.io and flowcontrol.apiserver.k8s.io resources:
create, read, list, watch, patch, delete and an invalid object each (decoded into the
client's models, so every field the models require is there), and a CSR approved through
`replace_certificate_signing_request_approval`, as `kubectl certificate approve` does."""

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client, watch
from kubernetes.client.rest import ApiException


def csr_request(name):
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(request.public_bytes(serialization.Encoding.PEM)).decode()


RULE = {"operations": ["CREATE"], "apiGroups": ["apps"], "apiVersions": ["v1"],
        "resources": ["deployments"]}


def webhooks(name):
    return {"metadata": {"name": name}, "webhooks": [{
        "name": "check.example.com",
        "clientConfig": {"url": "https://hook.example.com/check"},
        "rules": [RULE], "sideEffects": "None", "admissionReviewVersions": ["v1"]}]}


# (API class, the method suffix, a valid body, an invalid body, the invalid body's field).
CASES = [
    (client.AdmissionregistrationV1Api, "mutating_webhook_configuration",
     webhooks("m"), {**webhooks("bad"), "webhooks": [{**webhooks("bad")["webhooks"][0],
                                                      "sideEffects": "Some"}]},
     "webhooks[0].sideEffects"),
    (client.AdmissionregistrationV1Api, "validating_webhook_configuration",
     webhooks("v"), {**webhooks("bad"), "webhooks": [{**webhooks("bad")["webhooks"][0],
                                                      "name": "short"}]},
     "webhooks[0].name"),
    (client.AdmissionregistrationV1Api, "validating_admission_policy",
     {"metadata": {"name": "p"}, "spec": {"matchConstraints": {"resourceRules": [RULE]},
                                          "validations": [{"expression": "true"}]}},
     {"metadata": {"name": "bad"}, "spec": {"validations": [{"expression": "true"}]}},
     "spec.matchConstraints"),
    (client.AdmissionregistrationV1Api, "validating_admission_policy_binding",
     {"metadata": {"name": "b"}, "spec": {"policyName": "p", "validationActions": ["Warn"]}},
     {"metadata": {"name": "bad"}, "spec": {"policyName": "", "validationActions": ["Warn"]}},
     "spec.policyName"),
    (client.ApiregistrationV1Api, "api_service",
     {"metadata": {"name": "v1alpha1.example.com"},
      "spec": {"group": "example.com", "version": "v1alpha1", "groupPriorityMinimum": 1000,
               "versionPriority": 15, "insecureSkipTLSVerify": True,
               "service": {"namespace": "default", "name": "example"}}},
     {"metadata": {"name": "v1alpha1.example.com-bad"},
      "spec": {"group": "example.com", "version": "v1alpha1", "groupPriorityMinimum": 1000,
               "versionPriority": 15}},
     "metadata.name"),
    (client.CertificatesV1Api, "certificate_signing_request",
     {"metadata": {"name": "c"}, "spec": {"request": csr_request("c"), "usages": ["client auth"],
                                          "signerName": "example.com/signer"}},
     {"metadata": {"name": "bad"}, "spec": {"request": csr_request("bad"), "usages": [],
                                            "signerName": "example.com/signer"}},
     "spec.usages"),
    (client.FlowcontrolApiserverV1Api, "flow_schema",
     {"metadata": {"name": "f"}, "spec": {"priorityLevelConfiguration": {"name": "catch-all"}}},
     {"metadata": {"name": "bad"}, "spec": {"priorityLevelConfiguration": {"name": ""}}},
     "spec.priorityLevelConfiguration.name"),
    (client.FlowcontrolApiserverV1Api, "priority_level_configuration",
     {"metadata": {"name": "l"}, "spec": {"type": "Limited", "limited": {
         "limitResponse": {"type": "Reject"}}}},
     {"metadata": {"name": "bad"}, "spec": {"type": "Sometimes"}},
     "spec.type"),
]


@pytest.mark.parametrize("api_class,suffix,valid,invalid,field", CASES,
                         ids=[case[1] for case in CASES])
def test_typed_crud_watch_and_validation(api_client, api_class, suffix, valid, invalid, field):
    api = api_class(api_client)
    call = lambda verb: getattr(api, f"{verb}_{suffix}")  # noqa: E731
    name = valid["metadata"]["name"]

    start = call("list")().metadata.resource_version
    created = call("create")(valid)
    assert created.metadata.name == name
    assert created.metadata.uid
    assert call("read")(name).metadata.uid == created.metadata.uid
    assert name in [item.metadata.name for item in call("list")().items]

    patched = call("patch")(name, {"metadata": {"labels": {"team": "a"}}})
    assert patched.metadata.labels == {"team": "a"}
    call("delete")(name)

    events = [
        (event["type"], event["object"].metadata.name)
        for event in watch.Watch().stream(call("list"), resource_version=start,
                                          timeout_seconds=2)
    ]
    assert events == [("ADDED", name), ("MODIFIED", name), ("DELETED", name)]

    with pytest.raises(ApiException) as error:
        call("create")(invalid)
    assert error.value.status == 422
    assert field in error.value.body
    with pytest.raises(ApiException) as error:
        call("read")(invalid["metadata"]["name"])
    assert error.value.status == 404


def test_a_csr_is_approved_through_its_approval_subresource(api_client):
    api = client.CertificatesV1Api(api_client)
    api.create_certificate_signing_request({
        "metadata": {"name": "node-1"},
        "spec": {"request": csr_request("node-1"), "usages": ["client auth"],
                 "signerName": "kubernetes.io/kube-apiserver-client"}})
    csr = api.read_certificate_signing_request("node-1")
    assert csr.spec.username == "system:unsecured"
    csr.status.conditions = [client.V1CertificateSigningRequestCondition(
        type="Approved", status="True", reason="PythonApprove", message="approved")]
    approved = api.replace_certificate_signing_request_approval("node-1", csr)
    [condition] = approved.status.conditions
    assert (condition.type, condition.reason) == ("Approved", "PythonApprove")
    assert condition.last_update_time is not None

    # The status subresource cannot withdraw it.
    approved.status.conditions = []
    with pytest.raises(ApiException) as error:
        api.replace_certificate_signing_request_status("node-1", approved)
    assert error.value.status == 422
    assert "updates may not remove a condition of type" in error.value.body
