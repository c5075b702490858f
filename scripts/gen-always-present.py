#!/usr/bin/env python3
"""Generates apimachinery/src/always_present/table.rs: for every Go struct of kubecache's built-in
types, the fields that Go's encoding/json always writes although k8s-openapi drops them when
empty: the non-pointer struct fields.

Why: `omitempty` never omits a struct value, so kube-apiserver serializes every non-pointer
struct field of its Go types even when it is empty: a created Service has
`"status":{"loadBalancer":{}}`, a Deployment's pod template `"metadata":{"creationTimestamp":
null}` (a zero metav1.Time marshals as `null`), every container `"resources":{}`. k8s-openapi
models them as `Option` and leaves them out, and neither k8s-openapi nor k8s-pb records
whether a Go field is a pointer. The Go types do. kube's OpenAPI v3 documents carry the same
fact (kube-openapi gives every non-pointer struct field `"default": {}`), but the Swagger 2.0
document (api/openapi-spec/swagger.json) drops `default` beside `$ref`, so it cannot be used.

Input: the Go sources of k8s.io/api, k8s.io/apimachinery, k8s.io/apiextensions-apiserver and
k8s.io/kube-aggregator (APIService) at the Kubernetes version kubecache follows (v0.33.x =
Kubernetes 1.33), e.g. extracted with `git archive v0.33.9` from the kubernetes/api,
kubernetes/apimachinery, kubernetes/apiextensions-apiserver and kubernetes/kube-aggregator
repositories (of kube-aggregator, `pkg/apis/apiregistration` is enough):

    python3 scripts/gen-always-present.py API_DIR APIMACHINERY_DIR APIEXTENSIONS_DIR \
        KUBE_AGGREGATOR_DIR > apimachinery/src/always_present/table.rs

The roots are the kinds of the protobuf descriptor table (apimachinery/src/protobuf/descriptors.rs,
`KINDS`); every struct reachable from them through fields is listed when it has such fields.
Keys are kube's OpenAPI definition names (`io.k8s.api.core.v1.ServiceStatus`), fields are JSON
names. Empty forms: `Object` (`{}`, then filled the same way), `Null` for the types whose
MarshalJSON writes `null` when zero (meta/v1 Time and MicroTime, runtime.RawExtension,
apiextensions JSON, meta/v1 FieldsV1), and the zeros of the other custom marshallers
(IntOrString `0`, Quantity `"0"`, Duration `"0s"`). A struct with a MarshalJSON not listed in CUSTOM stops
the generator: its zero form has to be looked up and added.
"""

import os
import re
import sys

# Go packages: import path prefix → source root argument index.
MODULES = [
    "k8s.io/api", "k8s.io/apimachinery", "k8s.io/apiextensions-apiserver", "k8s.io/kube-aggregator",
]

# Struct types with their own MarshalJSON, and what it writes for the zero value.
CUSTOM = {
    ("k8s.io/apimachinery/pkg/apis/meta/v1", "Time"): "Null",
    ("k8s.io/apimachinery/pkg/apis/meta/v1", "MicroTime"): "Null",
    ("k8s.io/apimachinery/pkg/apis/meta/v1", "FieldsV1"): "Null",
    ("k8s.io/apimachinery/pkg/runtime", "RawExtension"): "Null",
    ("k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1", "JSON"): "Null",
    ("k8s.io/apimachinery/pkg/apis/meta/v1", "Duration"): "ZeroDuration",  # "0s"
    ("k8s.io/apimachinery/pkg/api/resource", "Quantity"): "ZeroQuantity",  # "0"
    ("k8s.io/apimachinery/pkg/util/intstr", "IntOrString"): "Zero",  # 0
    # Written as schemas, booleans or arrays; only ever behind pointers.
    ("k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1", "JSONSchemaPropsOrBool"): None,
    ("k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1", "JSONSchemaPropsOrArray"): None,
    ("k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1",
     "JSONSchemaPropsOrStringArray"): None,
}

# The descriptor table's k8s-pb module of a kind → the Go package.
PB_MODULE_TO_GO = [
    ("apiextensions_apiserver.", "k8s.io/apiextensions-apiserver/"),
    ("apimachinery.", "k8s.io/apimachinery/"),
    ("api.", "k8s.io/api/"),
    ("kube_aggregator.", "k8s.io/kube-aggregator/"),
]


def definition_name(package, name):
    """kube's OpenAPI definition name: the package path with its domain reversed."""
    domain, _, rest = package.partition("/")
    reversed_domain = ".".join(reversed(domain.split(".")))
    return f"{reversed_domain}.{rest.replace('/', '.')}.{name}"


class Package:
    def __init__(self, path, directory):
        self.path = path
        self.imports = {}  # alias → import path
        self.types = {}  # name → ("struct", body) | ("other", None)
        self.marshals = set()
        for file in sorted(os.listdir(directory)):
            if not file.endswith(".go") or file.endswith("_test.go"):
                continue
            # Generated code declares no API types, and its import aliases may differ from
            # the types' (autoscaling/v2's `v1` is core/v1 in types.go, meta/v1 elsewhere).
            if file.startswith(("generated.", "zz_generated")):
                continue
            text = open(os.path.join(directory, file)).read()
            self.read(text)

    def read(self, text):
        for block in re.findall(r"^import \((.*?)^\)", text, re.S | re.M):
            for line in block.splitlines():
                m = re.match(r'\s*(\w+)?\s*"([^"]+)"', line)
                if m:
                    path = m.group(2)
                    self.imports[m.group(1) or path.rsplit("/", 1)[-1]] = path
        for m in re.finditer(r'^import (\w+)? ?"([^"]+)"', text, re.M):
            self.imports[m.group(1) or m.group(2).rsplit("/", 1)[-1]] = m.group(2)
        for m in re.finditer(r"^type (\w+) struct \{\n(.*?)^\}", text, re.S | re.M):
            self.types[m.group(1)] = ("struct", m.group(2))
        for m in re.finditer(r"^type (\w+) struct\{\}", text, re.M):
            self.types[m.group(1)] = ("struct", "")
        for m in re.finditer(r"^type (\w+) (?!struct)\S", text, re.M):
            self.types.setdefault(m.group(1), ("other", None))
        for m in re.finditer(r"^func \(\w+ \*?(\w+)\) MarshalJSON\(", text, re.M):
            self.marshals.add(m.group(1))


FIELD_RE = re.compile(r'^\t(?:(\w+)\s+)?(\S+)\s+`([^`]*)`', re.M)


class Types:
    def __init__(self, roots):
        self.roots = dict(zip(MODULES, roots))
        self.packages = {}

    def package(self, path):
        if path not in self.packages:
            for module, root in self.roots.items():
                if path == module or path.startswith(module + "/"):
                    directory = os.path.join(root, path[len(module):].lstrip("/"))
                    self.packages[path] = Package(path, directory)
                    break
            else:
                return None
        return self.packages[path]

    def resolve(self, package, ty):
        """(package path, name) of a named type, or None for builtins, pointers, slices,
        maps and types outside the three modules."""
        if ty.startswith(("*", "[]", "map[")):
            return None
        if "." in ty:
            alias, name = ty.split(".", 1)
            path = self.package(package).imports.get(alias)
            if path is None or self.package(path) is None:
                return None
            return (path, name)
        if ty in self.package(package).types:
            return (package, ty)
        return None

    def kind(self, ref):
        """'struct', 'custom' or 'other' for a resolved named type."""
        package, name = ref
        pkg = self.package(package)
        entry = pkg.types.get(name)
        if entry is None:
            sys.exit(f"type {package}.{name} not found")
        if entry[0] != "struct":
            return "other"
        if ref in CUSTOM:
            return "custom"
        if name in pkg.marshals:
            sys.exit(f"{package}.{name} has its own MarshalJSON: add its zero form to CUSTOM")
        return "struct"

    def fields(self, ref):
        """[(json name, Go type text, resolved ref or None)] of a struct, inline members
        flattened, as encoding/json writes them."""
        package, name = ref
        body = self.package(package).types[name][1]
        out = []
        for m in FIELD_RE.finditer(body):
            field, ty, tags = m.group(1), m.group(2), m.group(3)
            json_tag = re.search(r'json:"([^"]*)"', tags)
            if json_tag is None:
                continue
            options = json_tag.group(1).split(",")
            json_name = options[0]
            if json_name == "-":
                continue
            if "omitzero" in options[1:]:
                continue  # a zero struct is left out: not always present
            target = self.resolve(package, ty)
            if field is None and json_name == "":
                # An embedded struct without a name: its fields are the parent's.
                if target is None:
                    sys.exit(f"embedded {ty} in {package}.{name} not resolved")
                out.extend(self.fields(target))
                continue
            if json_name == "":
                json_name = field or ty.rsplit(".", 1)[-1]
            out.append((json_name, ty, target))
        return out


def roots_from_descriptors(path):
    text = open(path).read()
    names = re.findall(r'^\s+name: "([^"]+)",', text, re.M)
    roots = []
    for index in re.findall(r'^\s+\("[^"]+", "[^"]+", (\d+)\),$', text, re.M):
        module, _, name = names[int(index)].rpartition(".")
        for prefix, go in PB_MODULE_TO_GO:
            if module.startswith(prefix):
                roots.append((go + module[len(prefix):].replace(".", "/"), name))
                break
    return roots


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    types = Types(sys.argv[1:5])
    here = os.path.dirname(os.path.abspath(__file__))
    roots = roots_from_descriptors(os.path.join(here, "..", "apimachinery", "src", "protobuf",
                                                "descriptors.rs"))
    table = {}
    seen, todo = set(), list(roots)
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        if types.kind(ref) != "struct":
            continue
        always = []
        for json_name, ty, target in types.fields(ref):
            if target is None:
                # Pointers, slices, maps: follow what they hold.
                inner = re.sub(r"^(\*|\[\]|map\[[^\]]*\])+", "", ty)
                if inner != ty:
                    deeper = types.resolve(ref[0], inner)
                    if deeper:
                        todo.append(deeper)
                continue
            kind = types.kind(target)
            if kind == "other":
                continue
            todo.append(target)
            if kind == "struct":
                always.append((json_name, "Object"))
            else:
                empty = CUSTOM[target]
                if empty is None:
                    sys.exit(f"{definition_name(*ref)}.{json_name}: a non-pointer {target[1]}, "
                             "whose zero form is not chosen yet")
                always.append((json_name, empty))
        if always:
            table[definition_name(*ref)] = sorted(always)

    out = []
    w = out.append
    w("// @generated by scripts/gen-always-present.py from the Go types of Kubernetes 1.33")
    w("// (k8s.io/api, apimachinery, apiextensions-apiserver and kube-aggregator v0.33). Do not")
    w("// edit; run the script again.")
    w("")
    w("use super::Empty::{self, *};")
    w("")
    w("/// kube's definition name → the fields Go always writes, with their empty form.")
    w("pub static ALWAYS_PRESENT: &[(&str, &[(&str, Empty)])] = &[")
    for name in sorted(table):
        fields = ", ".join(f'("{f}", {e})' for f, e in table[name])
        line = f'    ("{name}", &[{fields}]),'
        if len(line) <= 100:
            w(line)
        else:
            w(f'    ("{name}", &[')
            for f, e in table[name]:
                w(f'        ("{f}", {e}),')
            w("    ]),")
    w("];")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
