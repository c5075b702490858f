#!/usr/bin/env python3
"""Generates apimachinery/src/protobuf/descriptors.rs: the protobuf message table of kubecache's
built-in types (field tags and wire kinds from k8s-pb, JSON names from k8s-openapi).

Why a generator: kube's protobuf messages (generated.proto) and their JSON forms are two views
of the same Go structs. k8s-pb (prost code generated from generated.proto) knows every tag and
wire kind but has no JSON; k8s-openapi knows every JSON property name but has no protobuf. This
script joins the two, by type and field name, into a compact table that a generic transcoder
(apimachinery/src/protobuf/) walks. Run it again after bumping either crate:

    python3 scripts/gen-protobuf-descriptors.py > apimachinery/src/protobuf/descriptors.rs

`--check FILE` exits 1 when FILE differs from what would be generated (the test
`descriptors_are_generated` runs this).

Sources: the crates' sources in the cargo registry (k8s-pb 0.9.0, k8s-openapi 0.29.0, v1_33).
"""

import glob
import os
import re
import sys

K8S_PB = "k8s-pb-0.9.0"
K8S_OPENAPI = "k8s-openapi-0.29.0"
OPENAPI_VERSION = "v1_33"

# The kinds kubecache serves are read from the built-in strategies (apimachinery/src/strategy/*.rs,
# each declares its identity with `ResourceInfo::new(group, version, plural, singular, Kind,
# scope)`), so a new built-in resource needs no line here. The k8s-pb module follows from the
# group's first label and the version (`apps/v1` → `api.apps.v1`, the core group →
# `api.core.v1`), but for the groups outside k8s.io/api (apiextensions, apiregistration). The `…List` kind is added for
# each, but for the create-only reviews (never stored or listed). The Rust tests
# `every_registered_resource_and_its_list_has_a_message` and `descriptors_are_generated`
# fail if this reading misses a resource.
STRATEGIES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "apimachinery", "src",
                          "strategy")
MODULE_OF_GROUP = {
    "": "api.core",
    "apiextensions.k8s.io": "apiextensions_apiserver.pkg.apis.apiextensions",
    "apiregistration.k8s.io": "kube_aggregator.pkg.apis.apiregistration",
}
RESOURCE_INFO = re.compile(
    r'ResourceInfo::new\(\s*"([^"]*)",\s*"([^"]*)",\s*"[^"]*",\s*"[^"]*",\s*"([^"]*)"')


def served_kinds():
    """(k8s-pb module, apiVersion, kind, create-only) of every built-in strategy."""
    kinds = []
    for path in sorted(glob.glob(os.path.join(STRATEGIES, "*.rs"))):
        text = open(path).read()
        found = list(RESOURCE_INFO.finditer(text))
        for i, m in enumerate(found):
            group, version, kind = m.groups()
            if not kind:
                continue  # the untyped strategy's placeholder identity
            following = text[m.end():found[i + 1].start() if i + 1 < len(found) else None]
            module = MODULE_OF_GROUP.get(group, "api." + group.split(".")[0])
            api_version = f"{group}/{version}" if group else version
            kinds.append((f"{module}.{version}", api_version, kind,
                          ".create_only()" in following))
    return kinds


SERVED = served_kinds()
ROOTS = [(m, v, k) for (m, v, k, _) in SERVED]
LISTED = [(m, v, k) for (m, v, k, create_only) in SERVED if not create_only]
ROOTS = ROOTS + [(m, v, k + "List") for (m, v, k) in LISTED] + [
    ("apimachinery.pkg.apis.meta.v1", "v1", "Status"),
    ("apimachinery.pkg.apis.meta.v1", "v1", "DeleteOptions"),
    ("apimachinery.pkg.apis.meta.v1", "", "WatchEvent"),
    ("api.autoscaling.v1", "autoscaling/v1", "Scale"),
    ("api.policy.v1", "policy/v1", "Eviction"),
    ("api.authentication.v1", "authentication.k8s.io/v1", "TokenRequest"),
    ("apimachinery.pkg.runtime", "", "Unknown"),
]

# Messages whose JSON form is not an object of their fields.
SPECIAL = {
    "apimachinery.pkg.apis.meta.v1.Time": "Time",
    "apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "apimachinery.pkg.apis.meta.v1.Duration": "Duration",
    "apimachinery.pkg.apis.meta.v1.FieldsV1": "RawJson",
    "apimachinery.pkg.runtime.RawExtension": "RawJson",
    "apimachinery.pkg.api.resource.Quantity": "Quantity",
    "apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.Json": "RawJson",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOrArray": "SchemaOrArray",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOrBool": "SchemaOrBool",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOrStringArray":
        "SchemaOrStringArray",
    "api.authentication.v1.ExtraValue": "StringList",
    "api.authorization.v1.ExtraValue": "StringList",
    "api.certificates.v1.ExtraValue": "StringList",
}

# The integer and boolean fields that are plain (non-pointer) `omitempty` fields of the Go
# structs: a Go client always sends them, zero or not, and Go's JSON leaves them out when
# zero, so a zero on the wire decodes as absent. Every other optional integer or boolean is a
# Go pointer (`*int32`, `*bool`): its zero is a value (`replicas: 0`) and decodes as such.
# Neither k8s-pb nor k8s-openapi records the difference; this list is from the k8s.io/api and
# apiextensions Go types of Kubernetes 1.33 (JSON names). Empty strings are handled apart:
# see EMPTY_STRING_IS_A_VALUE in apimachinery/src/protobuf/transcode.rs.
_VOLUME_READ_ONLY = [
    "AwsElasticBlockStoreVolumeSource", "AzureFilePersistentVolumeSource",
    "AzureFileVolumeSource", "CSIPersistentVolumeSource", "CephFsPersistentVolumeSource",
    "CephFsVolumeSource", "CinderPersistentVolumeSource", "CinderVolumeSource",
    "FcVolumeSource", "FlexPersistentVolumeSource", "FlexVolumeSource",
    "GcePersistentDiskVolumeSource", "GlusterfsPersistentVolumeSource", "GlusterfsVolumeSource",
    "IscsiPersistentVolumeSource", "IscsiVolumeSource", "NfsVolumeSource",
    "PersistentVolumeClaimVolumeSource", "PortworxVolumeSource", "QuobyteVolumeSource",
    "RbdPersistentVolumeSource", "RbdVolumeSource", "ScaleIoPersistentVolumeSource",
    "ScaleIoVolumeSource", "StorageOsPersistentVolumeSource", "StorageOsVolumeSource",
    "VolumeMount", "VolumeMountStatus",
]
OMIT_ZERO = {
    **{f"api.core.v1.{m}": ["readOnly"] for m in _VOLUME_READ_ONLY},
    "api.core.v1.AwsElasticBlockStoreVolumeSource": ["readOnly", "partition"],
    "api.core.v1.GcePersistentDiskVolumeSource": ["readOnly", "partition"],
    "api.core.v1.IscsiPersistentVolumeSource": ["readOnly", "chapAuthDiscovery", "chapAuthSession"],
    "api.core.v1.IscsiVolumeSource": ["readOnly", "chapAuthDiscovery", "chapAuthSession"],
    "api.core.v1.ScaleIoPersistentVolumeSource": ["readOnly", "sslEnabled"],
    "api.core.v1.ScaleIoVolumeSource": ["readOnly", "sslEnabled"],
    "api.authorization.v1.SubjectAccessReviewStatus": ["denied"],
    "api.core.v1.Container": ["stdin", "stdinOnce", "tty"],
    "api.core.v1.EphemeralContainerCommon": ["stdin", "stdinOnce", "tty"],
    "api.core.v1.ContainerImage": ["sizeBytes"],
    "api.core.v1.ContainerPort": ["hostPort"],
    "api.core.v1.ContainerStateTerminated": ["signal"],
    "api.core.v1.Event": ["count"],
    "api.core.v1.EventSeries": ["count"],
    "api.core.v1.NodeSpec": ["unschedulable"],
    "api.core.v1.PodCondition": ["observedGeneration"],
    "api.core.v1.PodStatus": ["observedGeneration"],
    "api.core.v1.PodSpec": ["hostNetwork", "hostPID", "hostIPC"],
    "api.core.v1.Probe": [
        "initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
        "failureThreshold",
    ],
    "api.core.v1.ReplicationControllerSpec": ["minReadySeconds"],
    "api.core.v1.ReplicationControllerStatus": [
        "fullyLabeledReplicas", "observedGeneration", "readyReplicas", "availableReplicas",
    ],
    "api.core.v1.ServicePort": ["nodePort"],
    "api.core.v1.ServiceSpec": ["healthCheckNodePort", "publishNotReadyAddresses"],
    "api.apps.v1.DaemonSetSpec": ["minReadySeconds"],
    "api.apps.v1.DaemonSetStatus": [
        "observedGeneration", "updatedNumberScheduled", "numberAvailable", "numberUnavailable",
    ],
    "api.apps.v1.DeploymentSpec": ["minReadySeconds", "paused"],
    "api.apps.v1.DeploymentStatus": [
        "observedGeneration", "replicas", "updatedReplicas", "availableReplicas",
        "unavailableReplicas", "readyReplicas",
    ],
    "api.apps.v1.ReplicaSetSpec": ["minReadySeconds"],
    "api.apps.v1.ReplicaSetStatus": [
        "fullyLabeledReplicas", "observedGeneration", "readyReplicas", "availableReplicas",
    ],
    "api.apps.v1.StatefulSetSpec": ["minReadySeconds"],
    "api.apps.v1.StatefulSetStatus": [
        "observedGeneration", "readyReplicas", "currentReplicas", "updatedReplicas",
    ],
    "api.batch.v1.JobStatus": ["active", "succeeded", "failed"],
    "api.admissionregistration.v1.ValidatingAdmissionPolicyStatus": ["observedGeneration"],
    "api.events.v1.Event": ["deprecatedCount"],
    "api.flowcontrol.v1.ResourcePolicyRule": ["clusterScope"],
    "api.networking.v1.ServiceBackendPort": ["number"],
    "api.policy.v1.PodDisruptionBudgetStatus": ["observedGeneration"],
    "api.scheduling.v1.PriorityClass": ["globalDefault"],
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceColumnDefinition": ["priority"],
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionCondition": [
        "observedGeneration",
    ],
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionSpec": [
        "preserveUnknownFields",
    ],
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionStatus": [
        "observedGeneration",
    ],
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionVersion": [
        "deprecated",
    ],
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaProps": [
        "exclusiveMaximum", "exclusiveMinimum", "uniqueItems", "nullable",
        "x-kubernetes-embedded-resource", "x-kubernetes-int-or-string",
    ],
    "apimachinery.pkg.apis.meta.v1.Condition": ["observedGeneration"],
    "kube_aggregator.pkg.apis.apiregistration.v1.APIServiceSpec": ["insecureSkipTLSVerify"],
    "apimachinery.pkg.apis.meta.v1.ObjectMeta": ["generation"],
    "apimachinery.pkg.apis.meta.v1.Status": ["code"],
    "apimachinery.pkg.apis.meta.v1.StatusDetails": ["retryAfterSeconds"],
}

SCALARS = {
    "string": "String", "bytes": "Bytes", "bool": "Bool", "int32": "Int32", "int64": "Int64",
    "double": "Double",
}


def registry_dir(crate):
    home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    found = sorted(glob.glob(os.path.join(home, "registry", "src", "*", crate)))
    if not found:
        sys.exit(f"{crate} not found in {home}/registry/src (run `cargo fetch`)")
    return found[0]


FIELD_RE = re.compile(
    r"#\[prost\(([^\]]*)\)\]\s*pub\s+(r#)?(\w+)\s*:\s*(.*?),?\s*(?=///|#\[prost|\Z)", re.S
)
STRUCT_RE = re.compile(r"pub struct (\w+) \{(\}|.*?\n\})", re.S)


def parse_pb(root):
    """{full name: [(rust field, tag, label, type, target full name or None)]}."""
    messages = {}
    for path in glob.glob(os.path.join(root, "src", "**", "mod.rs"), recursive=True):
        module = os.path.relpath(os.path.dirname(path), os.path.join(root, "src"))
        module = module.replace(os.sep, ".")
        text = open(path).read()
        for struct in STRUCT_RE.finditer(text):
            name, body = struct.group(1), struct.group(2)[:-1]
            fields = []
            for f in FIELD_RE.finditer(body + "\n"):
                attrs, rust, ty = f.group(1), f.group(3), " ".join(f.group(4).split())
                tag = int(re.search(r'tag = "(\d+)"', attrs).group(1))
                kind = attrs.split(",")[0].strip()
                if kind.startswith("btree_map"):
                    key, value = re.search(r'"(\w+), (\w+)"', attrs).groups()
                    assert key == "string", (name, rust)
                    label, scalar = "Map", value
                elif "repeated" in attrs:
                    label, scalar = "Repeated", kind
                else:
                    label, scalar = "Optional", kind.split(" ")[0]
                target = None
                if scalar == "message":
                    target = resolve(module, message_path(ty))
                fields.append((rust, tag, label, scalar, target))
            messages[f"{module}.{name}"] = fields
    return messages


def message_path(ty):
    """The message type named in a field's Rust type (inside Option/Vec/Box/BTreeMap)."""
    inner = ty.replace(" ", "").replace(",>", ">")
    for wrapper in ["::core::option::Option<", "::prost::alloc::vec::Vec<",
                    "::prost::alloc::boxed::Box<"]:
        if inner.startswith(wrapper):
            inner = inner[len(wrapper):-1].strip()
    if "BTreeMap<" in inner:
        inner = inner[inner.index("BTreeMap<") + len("BTreeMap<"):-1]
        inner = inner.split(",", 1)[1]
    return inner.replace(" ", "")


def resolve(module, path):
    parts = module.split(".")
    segs = path.split("::")
    while segs and segs[0] == "super":
        parts = parts[:-1]
        segs = segs[1:]
    return ".".join(parts + segs)


def openapi_json_names(root, module, message):
    """{rust key: json name} from k8s-openapi's Deserialize impl of the same type."""
    directory = os.path.join(root, "src", OPENAPI_VERSION, *module.split("."))
    for path in glob.glob(os.path.join(directory, "*.rs")):
        text = open(path).read()
        m = re.search(r"pub struct (\w+) \{", text)
        if not m or m.group(1).lower() != message.lower():
            continue
        found = re.findall(r'"([^"]+)" => Field::Key_(\w+),', text)
        names = {norm(k.rstrip("_")): j for j, k in found}
        body = text[m.end():text.index("\n}", m.end())] + "\n"
        required = {
            norm(f.rstrip("_"))
            for f, ty in re.findall(r"pub (\w+): ([^\n]*),\n", body)
            if not ty.startswith("Option<")
        }
        return names, required
    return None, set()


def norm(key):
    """Field names compared without case and underscores: k8s-pb and k8s-openapi split
    acronyms differently (`pod_cid_rs` / `pod_cidrs`) and escape keywords differently
    (`r#type` / `type_`, `r#ref` / `ref_path`)."""
    key = key[2:] if key.startswith("r#") else key
    key = {"ref": "ref_path"}.get(key, key)
    return key.replace("_", "").lower()


# Fields of newer Kubernetes versions than k8s-openapi's v1_33 (k8s-pb 0.9 follows 1.34):
# kubecache's typed decoding drops them anyway; their JSON name is the proto field name.
NEWER = {
    "api.core.v1.Container.restart_policy_rules",
    "api.core.v1.EphemeralContainerCommon.restart_policy_rules",
    "api.core.v1.EnvVarSource.file_key_ref",
    "api.core.v1.NodeStatus.declared_features",
    "api.core.v1.PodSpec.hostname_override",
    "api.core.v1.PodSpec.workload_ref",
    "api.core.v1.PodStatus.extended_resource_claim_status",
    "api.core.v1.PodStatus.allocated_resources",
    "api.core.v1.PodStatus.resources",
    "api.core.v1.VolumeProjection.pod_certificate",
    "api.storage.v1.CSIDriverSpec.service_account_token_in_secrets",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionCondition.observed_generation",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionStatus.observed_generation",
}


def camel(snake):
    head, *rest = snake.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def main():
    pb = parse_pb(registry_dir(K8S_PB))
    openapi = registry_dir(K8S_OPENAPI)

    order, seen = [], set()
    todo = [f"{m}.{k}" for (m, _, k) in ROOTS]
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        if name not in pb:
            sys.exit(f"message {name} not found in k8s-pb")
        seen.add(name)
        order.append(name)
        for (_, _, _, _, target) in pb[name]:
            if target and target not in seen:
                todo.append(target)
    order.sort()
    index = {n: i for i, n in enumerate(order)}

    def inlined(target, names):
        """Every field of `target` is a JSON property of the embedding type, or an embedded
        struct of its own (admissionregistration's NamedRuleWithOperations embeds
        RuleWithOperations, which embeds Rule)."""
        return all(
            norm(f[0]) in names or f"{target}.{f[0]}" in NEWER
            or (f[4] and inlined(f[4], names))
            for f in pb[target]
        )

    out = []
    w = out.append
    w("// @generated by scripts/gen-protobuf-descriptors.py from k8s-pb 0.9.0 (field tags and")
    w("// kinds) and k8s-openapi 0.29.0 (JSON names). Do not edit; run the script again.")
    w("")
    w("use super::table::{Field, Label::*, Message, Special, Type::*};")
    w("")
    w("pub static MESSAGES: &[Message] = &[")
    unmatched = []
    unused_omit_zero = {(m, f) for m, fs in OMIT_ZERO.items() for f in fs}
    for name in order:
        module, _, short = name.rpartition(".")
        names, required = (None, set())
        if name not in SPECIAL:
            names, required = openapi_json_names(openapi, module, short)
        names = names or {}
        special = SPECIAL.get(name, "None")
        w(f"    // {index[name]}")
        w("    Message {")
        w(f'        name: "{name}",')
        w(f"        special: Special::{special},")
        w("        fields: &[")
        for (rust, tag, label, scalar, target) in sorted(pb[name], key=lambda f: f[1]):
            json = names.get(norm(rust))
            if json is None and target and names and inlined(target, names):
                # An embedded Go struct (`json:",inline"`): a nested message in protobuf,
                # its fields inlined in JSON.
                json, label = "", "Inline"
            if label == "Optional" and not target and norm(rust) in required:
                label = "Required"
            if json is None:
                json = camel(rust.removeprefix("r#"))
                if names and f"{name}.{rust}" not in NEWER:
                    unmatched.append(f"{name}.{rust}")
            omit_zero = OMIT_ZERO.get(name, [])
            if json in omit_zero:
                assert label == "Optional" and scalar in ("int32", "int64", "bool"), (name, json)
                label = "OmitZero"
                unused_omit_zero.discard((name, json))
            ty = f"Message({index[target]})" if target else SCALARS[scalar]
            w(f'            Field {{ tag: {tag}, json: "{json}", ty: {ty}, label: {label} }},')
        w("        ],")
        w("    },")
    w("];")
    w("")
    w("/// The messages of the kinds served in protobuf, by (apiVersion, kind).")
    w("pub static KINDS: &[(&str, &str, u16)] = &[")
    for (module, version, kind) in sorted(ROOTS, key=lambda r: (r[1], r[2])):
        if version:
            w(f'    ("{version}", "{kind}", {index[module + "." + kind]}),')
    w("];")
    w("")
    for const, name in [
        ("UNKNOWN", "apimachinery.pkg.runtime.Unknown"),
        ("WATCH_EVENT", "apimachinery.pkg.apis.meta.v1.WatchEvent"),
        ("JSON_SCHEMA_PROPS", "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaProps"),
    ]:
        w(f"pub const {const}: u16 = {index[name]};")
    text = "\n".join(out) + "\n"
    if unused_omit_zero:
        sys.exit(f"OMIT_ZERO names fields that do not exist: {sorted(unused_omit_zero)}")
    if unmatched:
        sys.exit("fields without a JSON name in k8s-openapi: " + ", ".join(unmatched))

    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        current = open(sys.argv[2]).read()
        if current != text:
            sys.exit(f"{sys.argv[2]} is not what the generator produces; run it again")
        return
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
