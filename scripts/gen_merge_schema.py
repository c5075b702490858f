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
k8s-openapi's list key is the SMP patch merge key where kube declares one and the
list-map-keys otherwise, and DeepMerge cannot say retainKeys, atomic structs, or which lists
SMP merges. So kube's own type tags (`+listType`, `+listMapKey`, `+patchStrategy`,
`+patchMergeKey`, `+mapType`, `+structType`, the comments of kubernetes' types.go) are used
where known: they are extracted once from the k8s-pb crate's generated sources (which keep
those comments) into the committed core/src/merge_schema/kube_tags.txt, and override the
DeepMerge-derived strategies of every field they cover (DeepMerge alone decides for the few
definitions k8s-pb lacks).

Usage:
  python3 scripts/gen_merge_schema.py                 # rewrite the committed table
  python3 scripts/gen_merge_schema.py --stdout        # print it (the staleness test compares this)
  python3 scripts/gen_merge_schema.py --extract-tags  # refresh kube_tags.txt from k8s-pb 0.9.0
  python3 scripts/gen_merge_schema.py --report        # list where the tags differ from DeepMerge
Environment: K8S_OPENAPI_SRC / K8S_PB_SRC override where the crates' sources are.
"""

import glob
import json
import os
import re
import subprocess
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "core", "src", "merge_schema", "generated.rs")
TAGS = os.path.join(os.path.dirname(OUT), "kube_tags.txt")
TAG_NAMES = ("listType", "listMapKey", "patchMergeKey", "patchStrategy", "mapType", "structType")

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


def pb_source_dir():
    if os.environ.get("K8S_PB_SRC"):
        return os.environ["K8S_PB_SRC"]
    home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    found = sorted(glob.glob(os.path.join(home, "registry", "src", "*", "k8s-pb-0.9.0", "src")))
    if not found:
        sys.exit("k8s-pb 0.9.0 sources not found (`cargo fetch` a crate depending on it, or set K8S_PB_SRC)")
    return found[0]


def squash(name):
    """A field name without case or separators: `pod_cid_rs`, `podCIDRs` -> `podcidrs`."""
    return name.replace("r#", "").replace("_", "").lower()


def extract_tags(defs):
    """kube's type tags from k8s-pb's doc comments, written as kube_tags.txt."""
    by_name = {d["name"]: d for d in defs}
    root = pb_source_dir()
    # Every k8s-pb struct: its tags and its fields' (squashed name -> (tags, type)).
    structs = {}
    for path in sorted(glob.glob(os.path.join(root, "**", "mod.rs"), recursive=True)):
        rel = os.path.relpath(os.path.dirname(path), root)
        if rel == ".":
            continue
        prefix = "io.k8s." + rel.replace(os.sep, ".").replace("_", "-")
        tags, struct = [], None
        for line in open(path):
            line = line.rstrip("\n")
            comment = re.match(r"^\s*/// ?(.*)$", line)
            if comment:
                tag = re.match(r"^\+(\w+)=(.*)$", comment.group(1).strip())
                if tag and tag.group(1) in TAG_NAMES:
                    tags.append((tag.group(1), tag.group(2).strip()))
                continue
            if re.match(r"^\s*#\[", line):
                continue
            m = re.match(r"^pub struct (\w+) \{", line)
            if m:
                struct = prefix + "." + m.group(1)
                structs[struct] = {"tags": tags, "fields": {}}
                tags = []
                continue
            m = re.match(r"^    pub (?:r#)?(\w+):(.*)$", line)
            if m and struct is not None:
                structs[struct]["fields"][squash(m.group(1))] = tags
                tags = []
                continue
            if line.startswith("}"):
                struct = None
            tags = []
    out = []
    for struct, info in structs.items():
        d = by_name.get(struct)
        if d is None:
            continue
        out.append(("D", struct, "", []))
        if info["tags"]:
            out.append(("S", struct, "", info["tags"]))
        # Go embeds (`EphemeralContainerCommon`) are one proto field holding the embedded
        # message; their fields are the definition's.
        fields = dict(info["fields"])
        for name in info["fields"]:
            for other, other_info in structs.items():
                if squash(other.rsplit(".", 1)[1]) == name and other.rsplit(".", 1)[0] == struct.rsplit(".", 1)[0]:
                    for k, v in other_info["fields"].items():
                        fields.setdefault(k, v)
        for f in d["fields"]:
            tags = fields.get(squash(f["json"]))
            if tags is None:
                continue
            out.append(("F", struct, f["json"], tags))
    lines = []
    for kind, definition, field, tag_list in sorted(out, key=lambda t: (t[1], t[0], t[2])):
        parts = [kind, definition] + ([field] if kind == "F" else []) + [f"{k}={v}" for k, v in tag_list]
        lines.append("\t".join(parts))
    with open(TAGS, "w") as f:
        f.write("# kube's type tags of the built-in types, from k8s-pb 0.9.0's sources:\n")
        f.write("# `python3 scripts/gen_merge_schema.py --extract-tags`. D: a definition k8s-pb has;\n")
        f.write("# S: the tags of a type; F: a field k8s-pb has (by JSON name) and its tags.\n")
        f.write("\n".join(lines) + "\n")


def load_tags():
    """(covered definitions, struct tags, field tags) from kube_tags.txt."""
    covered, structs, fields = set(), {}, {}
    if not os.path.exists(TAGS):
        return covered, structs, fields
    for line in open(TAGS):
        if line.startswith("#") or not line.strip():
            continue
        parts = line.rstrip("\n").split("\t")
        if parts[0] == "D":
            covered.add(parts[1])
            continue
        pairs = [p.split("=", 1) for p in (parts[2:] if parts[0] == "S" else parts[3:])]
        tags = {}
        for k, v in pairs:
            tags.setdefault(k, []).append(v)
        if parts[0] == "S":
            structs[parts[1]] = tags
        else:
            fields[(parts[1], parts[2])] = tags
    return covered, structs, fields


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

    if "--extract-tags" in sys.argv:
        extract_tags(defs)
    covered, struct_tags, field_tags = load_tags()

    def is_atomic_struct(name):
        return struct_tags.get(name, {}).get("structType") == ["atomic"]

    def existing_keys(item, keys):
        """List-map keys the 1.33 item type has (k8s-pb may be newer)."""
        fields = {f["json"] for f in by_name[item]["fields"]} if item in by_name else set()
        return [k for k in keys if k in fields]

    report = []

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
    emit("// Do not edit: change the generator or kube_tags.txt and rerun it.")
    emit("")
    emit("use super::{Definition, Field, ListType, MapType, PatchStrategy, Shape};")
    emit("")
    emit("/// Every built-in definition, sorted by name.")
    emit("pub(super) static DEFINITIONS: &[Definition] = &[")
    for d in sorted(defs, key=lambda d: d["name"]):
        name = d["name"]
        struct_type = "Atomic" if (is_atomic_struct(name) or d["opaque"]) else "Granular"
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
                map_type = "Atomic" if inner_name and is_atomic_struct(inner_name) else "Granular"
            if (name, f["json"]) in field_tags:
                derived = (list_type, keys, map_type, smp_key, strategy)
                list_type, keys, map_type, smp_key, strategy = from_tags(
                    shape, field_tags[(name, f["json"])], inner_name, is_atomic_struct
                )
                keys = existing_keys(inner_name, keys)
                if derived != (list_type, keys, map_type, smp_key, strategy):
                    report.append(f"{name}.{f['json']}: DeepMerge {derived} -> kube tags {(list_type, keys, map_type, smp_key, strategy)}")
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
    text = "\n".join(lines) + "\n"
    if "--report" in sys.argv:
        sys.stderr.write("\n".join(report) + "\n")
    if "--stdout" in sys.argv:
        sys.stdout.write(text)
    else:
        os.makedirs(os.path.dirname(OUT), exist_ok=True)
        with open(OUT, "w") as f:
            f.write(text)


def from_tags(shape, tags, inner_name, is_atomic_struct):
    """(list type, list-map keys, map/struct type, SMP merge key, SMP strategy) of a field
    from kube's tags; absent tags mean kube's defaults (atomic lists, granular maps, no
    patch strategy)."""
    strategies = tags.get("patchStrategy", [""])[0].split(",")
    merge, retain = "merge" in strategies, "retainKeys" in strategies
    strategy = {(True, True): "MergeRetainKeys", (True, False): "Merge",
                (False, True): "RetainKeys", (False, False): "Replace"}[(merge, retain)]
    list_type, keys, map_type, smp_key = "Atomic", [], "Granular", None
    if shape == "List":
        list_type = {"atomic": "Atomic", "set": "Set", "map": "Map"}[tags.get("listType", ["atomic"])[0]]
        keys = tags.get("listMapKey", []) if list_type == "Map" else []
        smp_key = tags.get("patchMergeKey", [None])[0] if merge else None
    elif shape == "Map":
        map_type = "Atomic" if tags.get("mapType") == ["atomic"] else "Granular"
    elif shape == "Struct":
        atomic = tags.get("structType") == ["atomic"] or (inner_name and is_atomic_struct(inner_name))
        map_type = "Atomic" if atomic else "Granular"
    return list_type, keys, map_type, smp_key, strategy


def q(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def opt(s):
    return "None" if s is None else f"Some({q(s)})"


if __name__ == "__main__":
    main()
