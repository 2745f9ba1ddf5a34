#!/usr/bin/env python3
"""pai's rules for its deployment manifests, over rendered objects.

    k8s_lint.py RENDERED.yaml...            lint each rendered overlay
    k8s_lint.py --dockerfile Dockerfile     no secret in the image
    k8s_lint.py --compose CONFIG.json       docker compose's rendered config
    k8s_lint.py --self-test                 every rule fails on a bad object

Rules (each problem names its rule):
  probes        every long-running container has a liveness and a readiness
                probe (a Job's pod instead has activeDeadlineSeconds)
  resources     every container requests and limits cpu and memory
  non-root      runAsNonRoot (pod or container), never uid 0
  read-only     readOnlyRootFilesystem, no privilege escalation, all
                capabilities dropped
  token         pods mount no service-account token
  pdb           every Deployment and StatefulSet has a PodDisruptionBudget
                selecting its pods
  hpa           a Deployment an HPA scales sets no replicas (an apply would
                reset the HPA's count)
  pai-command   a pai container runs `pai run --service X` for its
                component X (or `pai migrate` in the migrate Job)
  secret-env    a secret-like variable comes from a Secret, never a literal;
                no literal value holds a URL with a password
  configmap     no secret-like key, no key a Secret also has, and no URL
                with a password in a ConfigMap
  refs          every Secret and ConfigMap a pod names is rendered, made by
                an operator this overlay runs, or optional
  network       the NetworkPolicies allow exactly pai's call graph
                (docs/ARCHITECTURE.md), only the gateway from outside the
                namespace, PostgreSQL and RabbitMQ only from pai's pods
  dockerfile    no ENV or ARG of a secret-like name in the image
  compose       every service of the design in its own container, running
                `pai run --service X`; only the gateway publishes a port
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path
from typing import Any, Iterable

import yaml

Problem = tuple[str, str]  # (rule, message)

# Names of settings that hold secrets: pai's own and the usual patterns.
SECRET_NAMES = {
    "JWT_SECRET_KEY", "GMAIL_CLIENT_ID", "GMAIL_CLIENT_SECRET",
    "MAIL_TOKEN_ENCRYPTION_KEY", "MAIL_TOKEN_PREVIOUS_KEYS",
    "DATABASE_URL", "AMQP_URL", "POSTGRES_PASSWORD", "RABBITMQ_DEFAULT_PASS",
    "AMQP_PASSWORD", "PGPASSWORD",
}
SECRET_PATTERN = re.compile(
    r"(SECRET|PASSWORD|PASSWD|PASSPHRASE|PRIVATE|CREDENTIAL|API_?KEY|_KEY|_KEYS|_TOKEN)$"
    r"|SECRET|PASSWORD|PASSWD|TOKEN_ENCRYPTION",
    re.IGNORECASE,
)
# scheme://user:password@host with a password that is not a $(VAR) reference.
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:(?!\$\()[^@\s/]+@", re.IGNORECASE)

PAI_SERVICES = ["gateway", "auth", "documents", "mail-sync", "search", "inference"]
# Who calls whom (docs/ARCHITECTURE.md): callee -> callers.
CALLERS = {
    "auth": {"gateway", "documents", "search", "inference", "mail-sync"},
    "documents": {"gateway"},
    "mail-sync": {"gateway"},
    "search": {"gateway", "documents", "mail-sync", "inference", "search"},
    "inference": {"gateway", "search"},
    "gateway": set(),
}
PAI_PORTS = {"gateway": 8000, "auth": 50051, "documents": 50052, "mail-sync": 50053,
             "search": 50054, "inference": 50055}
# Pods that hold pai's data services: (labels, port, the operator's object
# that makes them, if any).
DATA_PODS = {
    "postgres (in-cluster)": ({"app.kubernetes.io/name": "postgres"}, 5432, None),
    "rabbitmq (in-cluster)": ({"app.kubernetes.io/name": "rabbitmq"}, 5672, None),
    "postgres (CloudNativePG)": ({"cnpg.io/cluster": "pai-postgres"}, 5432,
                                 ("Cluster", "pai-postgres")),
    "rabbitmq (operator)": ({"app.kubernetes.io/name": "pai-rabbitmq",
                             "app.kubernetes.io/component": "rabbitmq"}, 5672,
                            ("RabbitmqCluster", "pai-rabbitmq")),
}
# Objects the operators make, by the kind of object that makes them.
MADE_BY = {
    ("postgresql.cnpg.io/v1", "Cluster"): lambda n: {f"{n}-app", f"{n}-ca", f"{n}-superuser"},
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): lambda n: {f"{n}-default-user",
                                                            f"{n}-erlang-cookie"},
}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}


def is_secret_name(name: str) -> bool:
    return name.upper() in SECRET_NAMES or bool(SECRET_PATTERN.search(name))


def label(doc: dict[str, Any]) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    kind = doc.get("kind")
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind in WORKLOADS:
        return doc["spec"]["template"]["spec"]
    return None


def pod_labels(doc: dict[str, Any]) -> dict[str, str]:
    if doc.get("kind") == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["metadata"].get("labels", {})
    return doc["spec"]["template"].get("metadata", {}).get("labels", {})


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Whether a LabelSelector matches `labels` (an empty one matches all)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def lint_container(where: str, c: dict[str, Any], pod: dict[str, Any],
                   long_running: bool) -> list[Problem]:
    problems: list[Problem] = []
    name = f"{where} container {c.get('name')}"
    if long_running:
        for probe in ("livenessProbe", "readinessProbe"):
            if probe not in c:
                problems.append(("probes", f"{name} has no {probe}"))
    res = c.get("resources") or {}
    for part in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in (res.get(part) or {}):
                problems.append(("resources", f"{name} has no {part}.{resource}"))
    pod_sc = pod.get("securityContext") or {}
    sc = c.get("securityContext") or {}
    non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    if non_root is not True:
        problems.append(("non-root", f"{name} does not set runAsNonRoot: true"))
    if uid == 0:
        problems.append(("non-root", f"{name} runs as uid 0"))
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append(("read-only", f"{name} has a writable root filesystem"))
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append(("read-only", f"{name} does not set allowPrivilegeEscalation: false"))
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        problems.append(("read-only", f"{name} does not drop ALL capabilities"))
    for env in c.get("env") or []:
        value = env.get("value")
        if value is None:
            continue
        if is_secret_name(env["name"]) and "$(" not in value:
            problems.append(("secret-env", f"{name} sets {env['name']} to a literal; "
                                           "take it from a Secret"))
        if URL_WITH_PASSWORD.search(value):
            problems.append(("secret-env", f"{name}'s {env['name']} holds a URL with a password"))
    return problems


def pai_command(doc: dict[str, Any], c: dict[str, Any]) -> list[Problem]:
    image = c.get("image", "")
    if not re.search(r"(^|/)pai(:|@|$)", image):
        return []
    component = pod_labels(doc).get("app.kubernetes.io/component")
    args = list(c.get("command") or []) + list(c.get("args") or [])
    expected = ["migrate"] if component == "migrate" else ["run", "--service", component]
    if args != expected:
        return [("pai-command", f"{label(doc)} runs `pai {' '.join(args)}`, "
                                f"expected `pai {' '.join(expected)}`")]
    return []


def lint_workloads(docs: list[dict[str, Any]]) -> list[Problem]:
    problems: list[Problem] = []
    pdbs = [d for d in docs if d.get("kind") == "PodDisruptionBudget"]
    scaled = {
        (d["spec"]["scaleTargetRef"]["kind"], d["spec"]["scaleTargetRef"]["name"])
        for d in docs if d.get("kind") == "HorizontalPodAutoscaler"
    }
    for doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        kind = doc["kind"]
        long_running = kind not in ("Job", "CronJob")
        if not long_running:
            job = doc["spec"] if kind == "Job" else doc["spec"]["jobTemplate"]["spec"]
            if "activeDeadlineSeconds" not in job:
                problems.append(("probes", f"{label(doc)} has no activeDeadlineSeconds"))
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(("token", f"{label(doc)} mounts a service-account token"))
        for c in spec.get("containers") or []:
            problems += lint_container(label(doc), c, spec, long_running)
            problems += pai_command(doc, c)
        for c in spec.get("initContainers") or []:
            problems += lint_container(label(doc), c, spec, long_running=False)
        if kind in ("Deployment", "StatefulSet"):
            labels = pod_labels(doc)
            if not any(selects(p["spec"].get("selector"), labels) for p in pdbs):
                problems.append(("pdb", f"{label(doc)} has no PodDisruptionBudget"))
            if (kind, doc["metadata"]["name"]) in scaled and "replicas" in doc["spec"]:
                problems.append(("hpa", f"{label(doc)} sets replicas but an HPA scales it"))
    return problems


def lint_configmaps(docs: list[dict[str, Any]]) -> list[Problem]:
    problems: list[Problem] = []
    secret_keys = {
        key for d in docs if d.get("kind") == "Secret"
        for key in list((d.get("data") or {})) + list((d.get("stringData") or {}))
    }
    for doc in docs:
        if doc.get("kind") != "ConfigMap":
            continue
        for key, value in (doc.get("data") or {}).items():
            if is_secret_name(key):
                problems.append(("configmap", f"{label(doc)} has the secret-like key {key}"))
            elif key in secret_keys:
                problems.append(("configmap", f"{label(doc)} has {key}, which a Secret holds"))
            if URL_WITH_PASSWORD.search(str(value)):
                problems.append(("configmap", f"{label(doc)}'s {key} holds a URL with a password"))
    return problems


def lint_refs(docs: list[dict[str, Any]]) -> list[Problem]:
    """Secrets and ConfigMaps named by pods exist, or are optional."""
    problems: list[Problem] = []
    have = {(d["kind"], d["metadata"]["name"]) for d in docs if d.get("kind") in ("Secret", "ConfigMap")}
    for d in docs:
        make = MADE_BY.get((d.get("apiVersion"), d.get("kind")))
        if make:
            have |= {("Secret", n) for n in make(d["metadata"]["name"])}
    # TLS certificates: cert-manager makes them, or the operator by hand.
    for d in docs:
        if d.get("kind") == "Ingress":
            have |= {("Secret", t["secretName"]) for t in d["spec"].get("tls", [])}

    def need(where: str, kind: str, name: str, optional: bool) -> None:
        if not optional and (kind, name) not in have:
            problems.append(("refs", f"{where} needs {kind} {name}, which nothing makes"))

    for doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        where = label(doc)
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            for src in c.get("envFrom") or []:
                for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                    if key in src:
                        need(where, kind, src[key]["name"], src[key].get("optional", False))
            for env in c.get("env") or []:
                ref = env.get("valueFrom") or {}
                for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                    if key in ref:
                        need(where, kind, ref[key]["name"], ref[key].get("optional", False))
        for vol in spec.get("volumes") or []:
            if "secret" in vol:
                need(where, "Secret", vol["secret"]["secretName"], vol["secret"].get("optional", False))
            if "configMap" in vol:
                need(where, "ConfigMap", vol["configMap"]["name"], vol["configMap"].get("optional", False))
    return problems


INGRESS_NS = {"kubernetes.io/metadata.name": "ingress-nginx"}
ELSEWHERE_NS = {"kubernetes.io/metadata.name": "somewhere-else"}
ANY_POD: dict[str, str] = {}


def allowed(policies: list[dict[str, Any]], dst: dict[str, str], port: int,
            src: dict[str, str], src_ns: dict[str, str] | None = None) -> bool:
    """Whether a pod labelled `src`, in this namespace (`src_ns` None) or in
    a namespace labelled `src_ns`, may reach port `port` of a pod labelled
    `dst` here, under these policies."""
    selecting = [p for p in policies if selects(p["spec"].get("podSelector"), dst)
                 and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])]
    if not selecting:
        return True  # not isolated
    for p in selecting:
        for rule in p["spec"].get("ingress") or []:
            ports = rule.get("ports")
            if ports and not any(
                pr.get("port") == port
                or (isinstance(pr.get("port"), int) and pr.get("endPort")
                    and pr["port"] <= port <= pr["endPort"])
                for pr in ports
            ):
                continue
            sources = rule.get("from")
            if not sources:
                return True  # from anywhere
            for peer in sources:
                if "ipBlock" in peer:
                    if src_ns is not None:
                        return True
                elif "namespaceSelector" in peer:
                    if (src_ns is not None and selects(peer["namespaceSelector"], src_ns)
                            and ("podSelector" not in peer or selects(peer["podSelector"], src))):
                        return True
                elif src_ns is None and selects(peer.get("podSelector"), src):
                    return True
    return False


def lint_network(docs: list[dict[str, Any]]) -> list[Problem]:
    problems: list[Problem] = []
    policies = [d for d in docs if d.get("kind") == "NetworkPolicy"]
    pai_pods = {
        pod_labels(d).get("app.kubernetes.io/component"): pod_labels(d)
        for d in docs if pod_spec(d) is not None
        and pod_labels(d).get("app.kubernetes.io/name") == "pai"
    }
    if not pai_pods:
        return problems
    # A pod that is not pai's, and pai's migrate Job.
    stranger = {"app.kubernetes.io/name": "something-else"}
    for dst in PAI_SERVICES:
        if dst not in pai_pods:
            problems.append(("network", f"no workload for the {dst} service"))
            continue
        port = PAI_PORTS[dst]
        for src, labels in sorted(pai_pods.items()):
            ok = allowed(policies, pai_pods[dst], port, labels)
            want = src in CALLERS[dst]
            if ok and not want:
                problems.append(("network", f"{src} may reach {dst}:{port}, which it never calls"))
            if want and not ok:
                problems.append(("network", f"{src} cannot reach {dst}:{port}, which it calls"))
        if allowed(policies, pai_pods[dst], port, stranger):
            problems.append(("network", f"a pod that is not pai's may reach {dst}:{port}"))
        if allowed(policies, pai_pods[dst], port, ANY_POD, ELSEWHERE_NS):
            problems.append(("network", f"{dst}:{port} is reachable from any namespace"))
        from_ingress = allowed(policies, pai_pods[dst], port, ANY_POD, INGRESS_NS)
        if from_ingress and dst != "gateway":
            problems.append(("network", f"{dst}:{port} is reachable from the ingress controller"))
        if dst == "gateway" and not from_ingress:
            problems.append(("network", "the gateway is not reachable from the ingress controller"))
    pods = [pod_labels(d) for d in docs if pod_spec(d) is not None]
    operators = {(d.get("kind"), d.get("metadata", {}).get("name")) for d in docs}
    for name, (labels, port, made_by) in DATA_PODS.items():
        present = made_by in operators or any(
            all(p.get(k) == v for k, v in labels.items()) for p in pods)
        if not present:
            continue
        if not allowed(policies, labels, port, pai_pods.get("gateway")):
            problems.append(("network", f"pai cannot reach {name} on {port}"))
        if (allowed(policies, labels, port, stranger)
                or allowed(policies, labels, port, ANY_POD, ELSEWHERE_NS)
                or allowed(policies, labels, port, ANY_POD, INGRESS_NS)):
            problems.append(("network", f"{name} on {port} is reachable by pods that are not pai's"))
    if not any(p["spec"].get("podSelector") == {} and not p["spec"].get("ingress")
               for p in policies):
        problems.append(("network", "no default-deny ingress policy"))
    return problems


def lint_shards(docs: list[dict[str, Any]]) -> list[Problem]:
    """The search StatefulSet has as many replicas as SEARCH_SHARDS says
    (each replica is one shard; a replica more or less would own no users,
    or leave some without a shard)."""
    shards = {str(d["data"].get("SEARCH_SHARDS", "1")) for d in docs
              if d.get("kind") == "ConfigMap" and d["metadata"]["name"].startswith("pai-config")
              and d.get("data")}
    problems: list[Problem] = []
    for doc in docs:
        if doc.get("kind") == "StatefulSet" and doc["metadata"]["name"] == "search":
            replicas = str(doc["spec"].get("replicas", 1))
            if shards and shards != {replicas}:
                problems.append(("shards", f"{label(doc)} has {replicas} replicas, SEARCH_SHARDS is {sorted(shards)}"))
    return problems


METRIC = re.compile(r"\bpai_[a-z0-9_]+")


def recorded_metrics() -> set[str]:
    """The pai_* names the Rust sources mention."""
    root = Path(__file__).resolve().parent.parent
    names: set[str] = set()
    for path in root.glob("**/*.rs"):
        if "target" not in path.parts:
            names.update(METRIC.findall(path.read_text(errors="replace")))
    return names


def lint_dashboards(docs: list[dict[str, Any]], recorded: set[str] | None = None) -> list[Problem]:
    """Every Grafana dashboard's queries name metrics pai records."""
    problems: list[Problem] = []
    for doc in docs:
        if doc.get("kind") != "ConfigMap" or "grafana_dashboard" not in (doc["metadata"].get("labels") or {}):
            continue
        if recorded is None:
            recorded = recorded_metrics()
        for key, text in (doc.get("data") or {}).items():
            try:
                dashboard = json.loads(text)
            except ValueError as err:
                problems.append(("dashboard", f"{label(doc)}'s {key} is not JSON: {err}"))
                continue
            exprs = [t.get("expr", "") for p in dashboard.get("panels", []) for t in p.get("targets", [])]
            if not exprs:
                problems.append(("dashboard", f"{label(doc)}'s {key} has no queries"))
            for expr in exprs:
                for name in METRIC.findall(expr):
                    if name not in recorded:
                        problems.append(("dashboard", f"{label(doc)}'s {key} reads {name}, which pai does not record"))
    return problems


def lint_rendered(docs: list[dict[str, Any]]) -> list[Problem]:
    return (lint_workloads(docs) + lint_configmaps(docs) + lint_refs(docs)
            + lint_network(docs) + lint_shards(docs) + lint_dashboards(docs))


def lint_dockerfile(text: str) -> list[Problem]:
    problems: list[Problem] = []
    joined = re.sub(r"\\\n", " ", text)
    for line in joined.splitlines():
        m = re.match(r"\s*(ENV|ARG)\s+(.*)", line, re.IGNORECASE)
        if not m:
            continue
        names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)(?==|\s|$)", m.group(2))
        for name in names:
            if is_secret_name(name):
                problems.append(("dockerfile", f"the image sets {name} ({m.group(1).upper()})"))
    return problems


def lint_compose(config: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    services = config.get("services") or {}
    for name in PAI_SERVICES:
        svc = services.get(name)
        if svc is None:
            problems.append(("compose", f"no {name} service"))
            continue
        if svc.get("command") != ["run", "--service", name]:
            problems.append(("compose", f"{name} runs {svc.get('command')}, "
                                        f"expected run --service {name}"))
    for name in ("postgres", "rabbitmq", "migrate"):
        if name not in services:
            problems.append(("compose", f"no {name} service"))
    published = sorted(n for n, s in services.items() if s.get("ports"))
    if published != ["gateway"]:
        problems.append(("compose", f"services publishing ports: {published}, expected only gateway"))
    images = {services[n].get("image") for n in PAI_SERVICES + ["migrate"] if n in services}
    if len(images) != 1:
        problems.append(("compose", f"pai's services run different images: {sorted(map(str, images))}"))
    return problems


def report(what: str, problems: list[Problem]) -> int:
    for rule, message in problems:
        print(f"k8s-lint: {what}: [{rule}] {message}")
    return len(problems)


# --- self-test: each rule must fail on an object that breaks it ------------

def good_objects() -> list[dict[str, Any]]:
    container = {
        "name": "auth", "image": "pai", "args": ["run", "--service", "auth"],
        "env": [{"name": "JWT_SECRET_KEY",
                 "valueFrom": {"secretKeyRef": {"name": "pai-secrets", "key": "JWT_SECRET_KEY"}}}],
        "envFrom": [{"configMapRef": {"name": "pai-config"}}],
        "livenessProbe": {"grpc": {"port": 50051}},
        "readinessProbe": {"grpc": {"port": 50051}},
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                      "limits": {"cpu": "1", "memory": "1Gi"}},
        "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
    }
    def labels() -> dict[str, str]:
        return {"app.kubernetes.io/name": "pai", "app.kubernetes.io/component": "auth"}

    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "auth"},
        "spec": {"selector": {"matchLabels": labels()},
                 "template": {"metadata": {"labels": labels()},
                              "spec": {"automountServiceAccountToken": False,
                                       "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                                       "containers": [container]}}},
    }
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "auth"},
           "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels()}}}
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pai-config"},
              "data": {"AUTH_URL": "http://auth:50051", "ASK_MAX_TOKENS": "64",
                       "REFRESH_TOKEN_LIFETIME_DAYS": "30"}}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pai-secrets"},
              "data": {"JWT_SECRET_KEY": "eA=="}}
    return [deployment, pdb, config, secret]


def lint_objects(docs: list[dict[str, Any]]) -> list[Problem]:
    """Every rule but the network's (the self-test's workloads have no policies)."""
    return lint_workloads(docs) + lint_configmaps(docs) + lint_refs(docs)


def self_test() -> int:
    def container(docs):
        return docs[0]["spec"]["template"]["spec"]["containers"][0]

    def pod(docs):
        return docs[0]["spec"]["template"]["spec"]

    mutations = [
        ("probes", "no liveness probe", lambda d: container(d).pop("livenessProbe")),
        ("probes", "no readiness probe", lambda d: container(d).pop("readinessProbe")),
        ("resources", "no memory limit", lambda d: container(d)["resources"]["limits"].pop("memory")),
        ("resources", "no cpu request", lambda d: container(d)["resources"]["requests"].pop("cpu")),
        ("non-root", "runAsNonRoot unset", lambda d: pod(d)["securityContext"].pop("runAsNonRoot")),
        ("non-root", "uid 0", lambda d: container(d)["securityContext"].update(runAsUser=0)),
        ("read-only", "writable root", lambda d: container(d)["securityContext"].pop("readOnlyRootFilesystem")),
        ("read-only", "capabilities kept", lambda d: container(d)["securityContext"].pop("capabilities")),
        ("token", "a token mounted", lambda d: pod(d).pop("automountServiceAccountToken")),
        ("pdb", "no PDB", lambda d: d.pop(1)),
        ("pdb", "a PDB selecting other pods",
         lambda d: d[1]["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/component": "x"})),
        ("hpa", "replicas beside an HPA", lambda d: (d[0]["spec"].update(replicas=2), d.append(
            {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
             "metadata": {"name": "auth"},
             "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "auth"},
                      "maxReplicas": 3}}))),
        ("pai-command", "another service's command",
         lambda d: container(d).update(args=["run", "--service", "gateway"])),
        ("secret-env", "a literal JWT key", lambda d: container(d)["env"].__setitem__(
            0, {"name": "JWT_SECRET_KEY", "value": "not-a-placeholder-at-all"})),
        ("secret-env", "a URL with a password", lambda d: container(d)["env"].append(
            {"name": "BROKER", "value": "amqp://pai:hunter2@rabbitmq:5672/%2f"})),
        ("configmap", "a secret-like key", lambda d: d[2]["data"].update(GMAIL_CLIENT_SECRET="x")),
        ("configmap", "a key a Secret holds", lambda d: d[3]["data"].update(LOG_FORMAT="eA==")
         or d[2]["data"].update(LOG_FORMAT="json")),
        ("configmap", "DATABASE_URL with a password",
         lambda d: d[2]["data"].update(DB="postgres://pai:s3cret@db:5432/pai")),
        ("refs", "a Secret nothing makes", lambda d: d.pop(3)),
    ]
    failed = 0
    if lint_objects(good_objects()):
        failed += 1
        print(f"k8s-lint self-test: the good objects fail: {lint_objects(good_objects())}")
    for rule, what, mutate in mutations:
        docs = copy.deepcopy(good_objects())
        mutate(docs)
        rules = {r for r, _ in lint_objects(docs)}
        if rule not in rules:
            failed += 1
            print(f"k8s-lint self-test: {what}: rule {rule} did not fire (got {sorted(rules)})")
    # Network: a policy that lets documents reach inference, and one that
    # opens auth to the world, must both fail.
    net_ok = network_fixture()
    if lint_network(net_ok):
        failed += 1
        print(f"k8s-lint self-test: the good network fails: {lint_network(net_ok)}")
    for what, mutate in [
        ("documents may reach inference", lambda d: d.append(netpol("extra", "inference", 50055, ["documents"]))),
        ("auth open to all", lambda d: d.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                                 "metadata": {"name": "open"},
                                                 "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/component": "auth"}},
                                                          "policyTypes": ["Ingress"], "ingress": [{}]}})),
        ("no default deny", lambda d: d.pop(0)),
        ("search not reachable from inference", lambda d: d.remove(next(
            p for p in d if p.get("kind") == "NetworkPolicy" and p["metadata"]["name"] == "search"))
         or d.append(netpol("search", "search", 50054, ["gateway", "documents", "mail-sync"]))),
    ]:
        docs = copy.deepcopy(net_ok)
        mutate(docs)
        if not lint_network(docs):
            failed += 1
            print(f"k8s-lint self-test: {what}: rule network did not fire")
    board = {"kind": "ConfigMap", "metadata": {"name": "d", "labels": {"grafana_dashboard": "1"}},
             "data": {"d.json": json.dumps({"panels": [{"targets": [{"expr": "rate(pai_known_total[5m])"}]}]})}}
    if lint_dashboards([board], {"pai_known_total"}) or not lint_dashboards([board], {"pai_other"}):
        failed += 1
        print("k8s-lint self-test: the dashboard rule is wrong")
    search_set = {"kind": "StatefulSet", "metadata": {"name": "search"}, "spec": {"replicas": 3}}
    config = {"kind": "ConfigMap", "metadata": {"name": "pai-config-abc"}, "data": {"SEARCH_SHARDS": "3"}}
    if lint_shards([search_set, config]) or not lint_shards(
            [search_set, {**config, "data": {"SEARCH_SHARDS": "2"}}]):
        failed += 1
        print("k8s-lint self-test: the shards rule is wrong")
    dockerfile_bad = "FROM debian\nENV HOST=0.0.0.0 \\\n    JWT_SECRET_KEY=abc\n"
    if not lint_dockerfile(dockerfile_bad) or lint_dockerfile("FROM debian\nENV HOST=0.0.0.0 PORT=8000\n"):
        failed += 1
        print("k8s-lint self-test: the dockerfile rule is wrong")
    compose_good = {"services": {n: {"image": "pai:local", "command": ["run", "--service", n]}
                                 for n in PAI_SERVICES}}
    compose_good["services"]["gateway"]["ports"] = [{"published": "8000", "target": 8000}]
    compose_good["services"].update(postgres={"image": "postgres:15"}, rabbitmq={"image": "rabbitmq:3"},
                                    migrate={"image": "pai:local", "command": ["migrate"]})
    compose_bad = copy.deepcopy(compose_good)
    compose_bad["services"]["auth"]["ports"] = [{"published": "50051", "target": 50051}]
    if lint_compose(compose_good) or not lint_compose(compose_bad):
        failed += 1
        print("k8s-lint self-test: the compose rule is wrong")
    total = len(mutations) + 4 + 2 + 2 + 1
    print(f"k8s-lint self-test: {total - failed} passed, {failed} failed")
    return 1 if failed else 0


def netpol(name: str, dst: str, port: int, callers: Iterable[str]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name},
            "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "pai",
                                                     "app.kubernetes.io/component": dst}},
                     "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {
                         "app.kubernetes.io/name": "pai"}, "matchExpressions": [
                         {"key": "app.kubernetes.io/component", "operator": "In",
                          "values": sorted(callers)}]}}],
                                  "ports": [{"port": port, "protocol": "TCP"}]}]}}


def network_fixture() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                   "metadata": {"name": "deny"},
                                   "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}]
    for svc in PAI_SERVICES:
        labels = {"app.kubernetes.io/name": "pai", "app.kubernetes.io/component": svc}
        docs.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": svc},
                     "spec": {"selector": {"matchLabels": labels},
                              "template": {"metadata": {"labels": labels}, "spec": {"containers": []}}}})
        if CALLERS[svc]:
            docs.append(netpol(svc, svc, PAI_PORTS[svc], CALLERS[svc]))
    docs.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "gateway"},
                 "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/component": "gateway"}},
                          "policyTypes": ["Ingress"],
                          "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {
                              "kubernetes.io/metadata.name": "ingress-nginx"}}}],
                                       "ports": [{"port": 8000}]}]}})
    return docs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--self-test", action="store_true")
    parser.add_argument("--dockerfile", type=Path)
    parser.add_argument("--compose", type=Path, help="`docker compose config --format json` output")
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    count = 0
    for path in args.files:
        with path.open() as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        found = report(path.name, lint_rendered(docs))
        print(f"k8s-lint: {path.name}: {len(docs)} objects, {found} problem(s)")
        count += found
    if args.dockerfile:
        found = report(str(args.dockerfile), lint_dockerfile(args.dockerfile.read_text()))
        print(f"k8s-lint: {args.dockerfile}: {found} problem(s)")
        count += found
    if args.compose:
        found = report(args.compose.name, lint_compose(json.loads(args.compose.read_text())))
        print(f"k8s-lint: docker compose config: {found} problem(s)")
        count += found
    return 1 if count else 0


if __name__ == "__main__":
    sys.exit(main())
