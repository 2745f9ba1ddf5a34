#!/usr/bin/env python3
"""Validates rendered Kubernetes objects offline.

    k8s_validate.py --k8s-version 1.35 --k8s-version 1.37 RENDERED.yaml...
    k8s_validate.py --self-test

Core kinds are checked against the Kubernetes JSON schemas that the
kubernetes-validate package ships (strict: an unknown field fails, as
`kubectl apply`'s strict field validation refuses it). Kinds of a
CustomResourceDefinition kept in k8s/crds/ (CloudNativePG's Cluster, the
RabbitMQ operator's RabbitmqCluster) are checked against the openAPIV3Schema
of the CRD's served version, read as the API server reads it: unknown fields
fail where the schema does not preserve them, `nullable`, int-or-string and
embedded objects are honoured; CEL rules (x-kubernetes-validations) are not
evaluated. An object of a kind neither knows fails.
"""

from __future__ import annotations

import argparse
import copy
import functools
import sys
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
CRD_DIR = ROOT / "k8s" / "crds"


def load_documents(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d]


def structural_to_json_schema(node: Any) -> Any:
    """A CRD's structural schema as JSON Schema, strict on unknown fields."""
    if isinstance(node, list):
        return [structural_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "default", "example"):
            continue
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: structural_to_json_schema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = (
                structural_to_json_schema(value) if isinstance(value, dict) else value
            )
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [structural_to_json_schema(v) for v in value]
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out = {"anyOf": [{"type": "integer"}, {"type": "string"}], **out}
    if node.get("x-kubernetes-embedded-resource"):
        # An embedded object carries its own apiVersion, kind and metadata.
        props = out.setdefault("properties", {})
        for field in ("apiVersion", "kind"):
            props.setdefault(field, {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    if out.get("type") == "object" and "properties" in out and not preserve:
        out.setdefault("additionalProperties", False)
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


@functools.lru_cache(maxsize=None)
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> JSON Schema, from every CRD in k8s/crds/."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for crd in load_documents(path):
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                if not version.get("served", True):
                    continue
                raw = version["schema"]["openAPIV3Schema"]
                schema = structural_to_json_schema(copy.deepcopy(raw))
                # metadata is the API server's: checked as ObjectMeta below.
                schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                api_version = f"{spec['group']}/{version['name']}"
                schemas[(api_version, spec["names"]["kind"])] = schema
    return schemas


def validate_custom(doc: dict[str, Any], k8s_version: str) -> list[str]:
    key = (doc.get("apiVersion", ""), doc.get("kind", ""))
    schema = crd_schemas()[key]
    validator = jsonschema.Draft7Validator(schema)
    errors = [
        f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    ]
    # The object's metadata against ObjectMeta: wrap it in a ConfigMap.
    probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc.get("metadata", {})}
    try:
        kubernetes_validate.validate(probe, k8s_version, strict=True)
    except kubernetes_validate.ValidationError as e:
        errors.append(f"metadata.{'.'.join(str(p) for p in e.path)}: {e.message}")
    return errors


def validate(doc: dict[str, Any], k8s_version: str) -> list[str]:
    """Every problem with `doc` under `k8s_version`, as lines."""
    key = (doc.get("apiVersion", ""), doc.get("kind", ""))
    if key in crd_schemas():
        return validate_custom(doc, k8s_version)
    try:
        kubernetes_validate.validate(doc, k8s_version, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path) or "(root)"
        return [f"{path}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [
            f"no schema for {key[1]} {key[0]} in Kubernetes {k8s_version} "
            f"nor in {CRD_DIR.relative_to(ROOT)}/"
        ]
    return []


def name_of(doc: dict[str, Any]) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def check_files(paths: Iterable[Path], versions: list[str]) -> int:
    failures = 0
    checked = 0
    for path in paths:
        for doc in load_documents(path):
            for version in versions:
                checked += 1
                for problem in validate(doc, version):
                    failures += 1
                    print(f"k8s-validate: {path.name}: {name_of(doc)} (Kubernetes {version}): {problem}")
    print(f"k8s-validate: {checked} object checks against Kubernetes {', '.join(versions)} "
          f"and {len(crd_schemas())} CRD kinds: {failures} problem(s)")
    return 1 if failures else 0


def self_test(versions: list[str]) -> int:
    """Objects that must fail, each for a reason the check must see."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bad"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
    }
    cluster = {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": "bad"},
        "spec": {"instances": 3, "storage": {"size": "1Gi"}},
    }
    rabbit = {
        "apiVersion": "rabbitmq.com/v1beta1",
        "kind": "RabbitmqCluster",
        "metadata": {"name": "bad"},
        "spec": {"replicas": 3},
    }
    good = [deployment, cluster, rabbit]
    bad: list[tuple[str, dict[str, Any]]] = []

    d = copy.deepcopy(deployment)
    d["spec"]["replicas"] = "two"
    bad.append(("a core field of the wrong type", d))
    d = copy.deepcopy(deployment)
    d["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    bad.append(("an unknown core field (a typo)", d))
    d = copy.deepcopy(deployment)
    del d["spec"]["selector"]
    bad.append(("a missing required core field", d))
    c = copy.deepcopy(cluster)
    c["spec"]["instance"] = 3
    bad.append(("an unknown CloudNativePG field", c))
    c = copy.deepcopy(cluster)
    c["spec"]["instances"] = "three"
    bad.append(("a CloudNativePG field of the wrong type", c))
    c = copy.deepcopy(cluster)
    c["metadata"]["labels"] = {"a": 1}
    bad.append(("custom resource metadata that is not ObjectMeta", c))
    r = copy.deepcopy(rabbit)
    r["spec"]["persistence"] = {"storage": "20Gi", "storageClass": "ssd"}
    bad.append(("an unknown RabbitmqCluster field", r))
    bad.append(("an unknown kind", {"apiVersion": "example.com/v1", "kind": "Widget",
                                    "metadata": {"name": "w"}}))

    failed = 0
    for version in versions:
        for doc in good:
            problems = validate(doc, version)
            if problems:
                failed += 1
                print(f"k8s-validate self-test: a valid {name_of(doc)} was refused: {problems}")
        for what, doc in bad:
            if not validate(doc, version):
                failed += 1
                print(f"k8s-validate self-test: {what} passed (Kubernetes {version})")
    total = len(versions) * (len(good) + len(bad))
    print(f"k8s-validate self-test: {total - failed} passed, {failed} failed")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k8s-version", action="append", required=True,
                        help="a Kubernetes version to validate against (repeat)")
    parser.add_argument("--self-test", action="store_true")
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args()
    if args.self_test:
        return self_test(args.k8s_version)
    return check_files(args.files, args.k8s_version)


if __name__ == "__main__":
    sys.exit(main())
