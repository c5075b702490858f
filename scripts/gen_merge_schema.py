#!/usr/bin/env python3
"""Generates core/src/merge_schema/generated.rs, the merge-schema table of the built-in types.

Source: the k8s-openapi 0.29 crate (Kubernetes 1.33 definitions) in the cargo registry. For
every generated type it reads
  - `// Generated from definition <name>`: the kube definition name,
  - the struct's fields and their Rust types: the nested definition (object, list item, map
    value),
  - the Deserialize impl's `"jsonName" => Field::Key_rust_name`: each field's JSON name,
  - the DeepMerge impl: `list::atomic|set|map(... lhs.key == rhs.key ...)`, `map::granular|atomic`,
    the list and map strategies kube's OpenAPI declares,
  - `impl crate::Resource`: GROUP/VERSION/KIND of the root types.
k8s-openapi's list-map key is the SMP patch merge key where kube declares one and the
list-map-keys otherwise; OVERRIDES below restore kube's real values where the two differ
(each checked against kubernetes' types.go tags), and adds what DeepMerge cannot say
(retainKeys, atomic structs, sets and keyed lists SMP does not merge).

Usage:
  python3 scripts/gen_merge_schema.py            # rewrite the committed table
  python3 scripts/gen_merge_schema.py --stdout   # print it (the staleness test compares this)
Environment: K8S_OPENAPI_SRC overrides where the crate's `src/v1_33` directory is.
"""

import glob
import json
import os
import re
import subprocess
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "core", "src", "merge_schema", "generated.rs")

# (definition, json field) -> changes. Keys are kube's own `+listMapKey` / `patchMergeKey` /
# `patchStrategy` tags (kubernetes/kubernetes staging/src/k8s.io/api/*/types.go, 1.33).
OVERRIDES = {
    # SSA keys containers' ports by (containerPort, protocol); SMP merges by containerPort.
    ("io.k8s.api.core.v1.Container", "ports"): {"keys": ["containerPort", "protocol"]},
    ("io.k8s.api.core.v1.EphemeralContainer", "ports"): {"keys": ["containerPort", "protocol"]},
    # Services' ports: list-map-keys (port, protocol), patch merge key port.
    ("io.k8s.api.core.v1.ServiceSpec", "ports"): {"keys": ["port", "protocol"]},
    # topologySpreadConstraints: list-map-keys (topologyKey, whenUnsatisfiable).
    ("io.k8s.api.core.v1.PodSpec", "topologySpreadConstraints"): {"keys": ["topologyKey", "whenUnsatisfiable"]},
    # `patchStrategy:"merge,retainKeys"` / `patchStrategy:"retainKeys"`.
    ("io.k8s.api.core.v1.PodSpec", "volumes"): {"retain_keys": True},
    ("io.k8s.api.core.v1.PodSpec", "resourceClaims"): {"retain_keys": True},
    ("io.k8s.api.apps.v1.DeploymentSpec", "strategy"): {"retain_keys": True},
    # listType=map without a patch strategy: SMP replaces the list.
    ("io.k8s.api.core.v1.ResourceRequirements", "claims"): {"smp_key": None},
    # k8s-openapi keys these by metadata.name; kube declares no list type (atomic) and no
    # patch strategy.
    ("io.k8s.api.apps.v1.StatefulSetSpec", "volumeClaimTemplates"): {"atomic": True},
    # Sets of primitives that SMP merges (`patchStrategy:"merge"`); other sets are replaced.
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers"): {"smp_merge_set": True},
    ("io.k8s.api.core.v1.NodeSpec", "podCIDRs"): {"smp_merge_set": True},
}

# `+structType=atomic` (DeepMerge cannot say it): SSA owns these as one value.
ATOMIC_STRUCTS = {
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.core.v1.ObjectReference",
    "io.k8s.api.core.v1.TypedLocalObjectReference",
    "io.k8s.api.core.v1.NodeSelector",
    "io.k8s.api.core.v1.ConfigMapKeySelector",
    "io.k8s.api.core.v1.SecretKeySelector",
    "io.k8s.api.core.v1.ObjectFieldSelector",
    "io.k8s.api.core.v1.ResourceFieldSelector",
}


def source_dir():
    if os.environ.get("K8S_OPENAPI_SRC"):
        return os.environ["K8S_OPENAPI_SRC"]
    home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    found = sorted(glob.glob(os.path.join(home, "registry", "src", "*", "k8s-openapi-0.29.0", "src", "v1_33")))
    if found:
        return found[0]
    # Elsewhere (another CARGO_HOME): ask cargo where the locked crate's sources are.
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    cargo = os.environ.get("CARGO", "cargo")
    out = subprocess.run([cargo, "metadata", "--format-version", "1", "--offline"], cwd=root,
                         capture_output=True, text=True)
    if out.returncode == 0:
        for package in json.loads(out.stdout)["packages"]:
            if package["name"] == "k8s-openapi" and package["version"] == "0.29.0":
                return os.path.join(os.path.dirname(package["manifest_path"]), "src", "v1_33")
    sys.exit("k8s-openapi 0.29.0 sources not found (run `cargo fetch`)")


def camel_fallback(rust):
    parts = rust.rstrip("_").split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def block(text, start):
    """The text from `start` to its matching closing brace."""
    depth = 0
    for i in range(text.index("{", start), len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    raise ValueError("unbalanced braces")


def strip_option(ty):
    m = re.fullmatch(r"Option<(.*)>", ty)
    return m.group(1) if m else ty


def parse_file(path, root):
    text = open(path).read()
    m = re.search(r"^// Generated from definition (\S+)", text, re.M)
    if not m:
        return None
    name = m.group(1)
    rel = os.path.relpath(path, root)[: -len(".rs")]
    module = "crate::" + "::".join(rel.split(os.sep)[:-1])
    s = re.search(r"^pub struct (\w+) \{\n(.*?)^\}", text, re.M | re.S)
    if not s:
        other = re.search(r"^pub (?:struct|enum) (\w+)", text, re.M)
        return {"name": name, "rust": module + "::" + other.group(1), "opaque": True, "fields": [], "gvk": None}
    rust_name = s.group(1)
    fields = re.findall(r"^    pub (\w+): (.*),$", s.group(2), re.M)
    json_names = dict((r, j) for j, r in re.findall(r'"([^"]+)" => Field::Key_(\w+),', text))
    strategies = {}
    dm = re.search(r"impl crate::DeepMerge for \w+ \{", text)
    if dm:
        body = block(text, dm.start())
        for m in re.finditer(r"merge_strategies::(list|map)::(\w+)\(\s*&mut self\.(\w+),\s*other\.\w+(.*?)\)?;\n", body, re.S):
            kind, strat, field, rest = m.groups()
            keys = re.findall(r"\|lhs, rhs\| lhs\.([\w.()]+) == rhs\.", rest) if strat == "map" and kind == "list" else []
            strategies[field] = (kind, strat, keys)
    gvk = None
    r = re.search(r'impl crate::Resource for \w+ \{.*?GROUP: &\'static str = "([^"]*)";.*?KIND: &\'static str = "([^"]*)";.*?VERSION: &\'static str = "([^"]*)";', text, re.S)
    if r and "ObjectMeta" in s.group(2):
        gvk = (r.group(1), r.group(3), r.group(2))
    out = []
    if gvk:
        out.append({"json": "apiVersion", "ty": "std::string::String", "strategy": None})
        out.append({"json": "kind", "ty": "std::string::String", "strategy": None})
    for rust, ty in fields:
        out.append({"json": json_names.get(rust, camel_fallback(rust)), "ty": ty, "strategy": strategies.get(rust)})
    return {"name": name, "rust": module + "::" + rust_name, "opaque": False, "fields": out, "gvk": gvk}


def main():
    root = source_dir()
    defs = []
    for path in sorted(glob.glob(os.path.join(root, "**", "*.rs"), recursive=True)):
        d = parse_file(path, root)
        if d:
            defs.append(d)
    by_rust = {d["rust"]: d for d in defs}
    by_name = {d["name"]: d for d in defs}
    # JSON names of each struct's rust fields, for the list keys (`lhs.container_port`).
    rust_to_json = {}
    for path in sorted(glob.glob(os.path.join(root, "**", "*.rs"), recursive=True)):
        text = open(path).read()
        m = re.search(r"^// Generated from definition (\S+)", text, re.M)
        if m:
            rust_to_json[m.group(1)] = dict((r, j) for j, r in re.findall(r'"([^"]+)" => Field::Key_(\w+),', text))

    def nested(ty):
        """(shape, nested definition or None) of a field's Rust type."""
        ty = strip_option(ty)
        ty = re.sub(r"^std::boxed::Box<(.*)>$", r"\1", ty)
        m = re.fullmatch(r"std::vec::Vec<(.*)>", ty)
        if m:
            inner = by_rust.get(m.group(1))
            return "List", inner
        m = re.fullmatch(r"std::collections::BTreeMap<std::string::String, (.*)>", ty)
        if m:
            inner = by_rust.get(m.group(1))
            return "Map", inner
        d = by_rust.get(ty)
        if d is not None:
            return ("Scalar" if d["opaque"] else "Struct"), d
        return "Scalar", None

    lines = []
    emit = lines.append
    emit("// @generated by scripts/gen_merge_schema.py from k8s-openapi 0.29 (Kubernetes 1.33).")
    emit("// Do not edit: change the generator (or its OVERRIDES) and rerun it.")
    emit("")
    emit("use super::{Definition, Field, ListType, MapType, PatchStrategy, Shape};")
    emit("")
    emit("/// Every built-in definition, sorted by name.")
    emit("pub(super) static DEFINITIONS: &[Definition] = &[")
    seen_overrides = set()
    for d in sorted(defs, key=lambda d: d["name"]):
        name = d["name"]
        struct_type = "Atomic" if (name in ATOMIC_STRUCTS or d["opaque"]) else "Granular"
        emit(f"    Definition {{ name: {q(name)}, opaque: {str(d['opaque']).lower()}, struct_type: MapType::{struct_type}, fields: &[")
        for f in sorted(d["fields"], key=lambda f: f["json"]):
            shape, inner = nested(f["ty"])
            inner_name = inner["name"] if inner else None
            list_type, keys, map_type, smp_key, strategy = "Atomic", [], "Granular", None, "Replace"
            st = f["strategy"]
            if shape == "List":
                list_type = "Atomic"
                if st and st[1] == "set":
                    list_type = "Set"
                elif st and st[1] == "map":
                    list_type = "Map"
                    j = rust_to_json.get(inner_name, {})
                    keys = [j.get(k, camel_fallback(k)) for k in st[2]]
                    if any("." in k or "(" in k for k in st[2]):
                        list_type, keys = "Atomic", []
                    elif len(keys) == 1:
                        smp_key = keys[0]
                        strategy = "Merge"
                elif st is None and inner is not None and not inner["opaque"]:
                    list_type = "Atomic"
            elif shape == "Map":
                map_type = "Atomic" if (st and st[1] == "atomic") else "Granular"
            elif shape == "Struct":
                map_type = "Atomic" if inner_name in ATOMIC_STRUCTS else "Granular"
            o = OVERRIDES.get((name, f["json"]), {})
            if o:
                seen_overrides.add((name, f["json"]))
            if "keys" in o:
                keys = o["keys"]
            if "smp_key" in o:
                smp_key = o["smp_key"]
                strategy = "Merge" if smp_key else "Replace"
            if o.get("atomic"):
                list_type, keys, smp_key, strategy = "Atomic", [], None, "Replace"
            if o.get("smp_merge_set"):
                strategy = "Merge"
            if o.get("retain_keys"):
                strategy = "MergeRetainKeys" if strategy == "Merge" else "RetainKeys"
            emit(
                f"            Field {{ name: {q(f['json'])}, shape: Shape::{shape}, type_name: {opt(inner_name)}, "
                f"list_type: ListType::{list_type}, list_map_keys: &[{', '.join(q(k) for k in keys)}], "
                f"map_type: MapType::{map_type}, patch_merge_key: {opt(smp_key)}, patch_strategy: PatchStrategy::{strategy} }},"
            )
        emit("    ] },")
    emit("];")
    emit("")
    emit("/// (group, version, kind, definition) of every root type, sorted.")
    emit("pub(super) static ROOTS: &[(&str, &str, &str, &str)] = &[")
    for g, v, k, n in sorted((d["gvk"] + (d["name"],)) for d in defs if d["gvk"]):
        emit(f"    ({q(g)}, {q(v)}, {q(k)}, {q(n)}),")
    emit("];")
    missing = set(OVERRIDES) - seen_overrides
    if missing:
        sys.exit(f"overrides name fields that do not exist: {sorted(missing)}")
    text = "\n".join(lines) + "\n"
    if "--stdout" in sys.argv:
        sys.stdout.write(text)
    else:
        os.makedirs(os.path.dirname(OUT), exist_ok=True)
        with open(OUT, "w") as f:
            f.write(text)


def q(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def opt(s):
    return "None" if s is None else f"Some({q(s)})"


if __name__ == "__main__":
    main()
