"""The Kubernetes manifests: valid against the Kubernetes schemas, offline, and coherent.

kubernetes-validate ships the OpenAPI-derived JSON schemas of every supported Kubernetes
release inside its wheel, so validation needs no cluster and no network. Strict mode rejects
unknown fields, which is where a misspelt probe or resource key would otherwise hide (the API
server would silently drop it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

# The newest release the package knows and an older one still widely run in production.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
CORE_GROUPS = ("v1", "apps/", "policy/", "networking.k8s.io/", "autoscaling/")


def _is_core(doc: dict[str, Any]) -> bool:
    return doc["apiVersion"] == "v1" or doc["apiVersion"].startswith(CORE_GROUPS)


def test_there_are_manifests_to_validate(k8s_resources):
    kinds = {doc["kind"] for _, doc in k8s_resources}
    for kind in ("StatefulSet", "ConfigMap", "Service", "PodDisruptionBudget", "ScaledObject"):
        assert kind in kinds


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_core_manifests_validate_against_kubernetes_schemas(k8s_resources, version):
    core = [(path, doc) for path, doc in k8s_resources if _is_core(doc)]
    assert len(core) >= 8
    for path, doc in core:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name}: {doc['kind']}/{doc['metadata']['name']}: {exc.message}")


def test_validator_rejects_a_misspelt_field(k8s_object):
    """The check above can fail: strict validation catches an unknown key."""
    import copy

    sts = copy.deepcopy(k8s_object("StatefulSet", "driftline"))
    container = sts["spec"]["template"]["spec"]["containers"][0]
    container["livenessprobe"] = container.pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, K8S_VERSIONS[-1], strict=True)


def test_every_manifest_is_listed_in_its_kustomization(yaml_documents, k8s_manifest_files):
    for path in k8s_manifest_files:
        (kustomization,) = yaml_documents(path.parent / "kustomization.yaml")
        assert path.name in kustomization["resources"], f"{path} not in its kustomization"
        for listed in kustomization["resources"]:
            assert (path.parent / listed).is_file(), f"{listed} listed but missing"


def test_worker_runs_non_root_with_a_hardened_context(k8s_object):
    pod = k8s_object("StatefulSet", "driftline")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    (container,) = pod["containers"]
    ctx = container["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False


def test_image_user_matches_pod_security_context(k8s_object, deploy_dir: Path):
    """The Dockerfile's numeric USER is the uid the pod runs as and owns the volume with."""
    dockerfile = (deploy_dir / "Dockerfile").read_text()
    user_lines = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert user_lines, "the Dockerfile sets no USER"
    uid, _, gid = user_lines[-1].partition(":")
    security = k8s_object("StatefulSet", "driftline")["spec"]["template"]["spec"]["securityContext"]
    assert int(uid) == security["runAsUser"]
    assert int(gid or uid) == security["runAsGroup"] == security["fsGroup"]


def test_statefulset_has_a_rocksdb_volume_per_pod(k8s_object):
    sts = k8s_object("StatefulSet", "driftline")
    templates = {t["metadata"]["name"]: t for t in sts["spec"]["volumeClaimTemplates"]}
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    data_mounts = [name for name in templates if name in mounts]
    assert data_mounts, "no volumeClaimTemplate is mounted in the worker"
    assert _flag(container["args"], "--store") == "rocksdb"
    assert _flag(container["args"], "--data-dir") in {mounts[name] for name in data_mounts}


def test_services_and_pdb_select_the_worker_pods(k8s_object):
    pod_labels = k8s_object("StatefulSet", "driftline")["spec"]["template"]["metadata"]["labels"]
    sts = k8s_object("StatefulSet", "driftline")
    headless = k8s_object("Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    selectors = [
        headless["spec"]["selector"],
        k8s_object("Service", "driftline-metrics")["spec"]["selector"],
        k8s_object("PodDisruptionBudget", "driftline")["spec"]["selector"]["matchLabels"],
        sts["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector.items() <= pod_labels.items()


def test_configmaps_are_wired_into_the_pod(k8s_object):
    pod = k8s_object("StatefulSet", "driftline")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env_from = {ref["configMapRef"]["name"] for ref in container["envFrom"]}
    assert "driftline-env" in env_from
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_mounts = [
        m for m in container["volumeMounts"] if "configMap" in volumes.get(m["name"], {})
    ]
    assert len(config_mounts) == 1
    (mount,) = config_mounts
    config_map = k8s_object("ConfigMap", volumes[mount["name"]]["configMap"]["name"])
    config_dir, _, config_file = _flag(container["args"], "--config").rpartition("/")
    assert config_dir == mount["mountPath"]
    assert config_file in config_map["data"]


def test_keda_scaledobject_targets_the_statefulset_within_partitions(k8s_object):
    """KEDA's CRDs are not core Kubernetes: checked structurally, against our own objects."""
    scaled = k8s_object("ScaledObject", "driftline")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    target = scaled["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"]) == ("apps/v1", "StatefulSet")
    sts = k8s_object("StatefulSet", target["name"])
    assert scaled["spec"]["minReplicaCount"] <= sts["spec"]["replicas"]
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]

    (container,) = sts["spec"]["template"]["spec"]["containers"]
    shards = int(_flag(container["args"], "--partitions"))
    assert scaled["spec"]["maxReplicaCount"] <= shards, "more workers than state shards"

    env = k8s_object("ConfigMap", "driftline-env")["data"]
    broker = env["DRIFTLINE_BROKER"].removeprefix("kafka://")
    app_id = _flag(container["args"], "--app-id")
    topics = {t["metadata"]["topic"] for t in scaled["spec"]["triggers"]}
    # Detection happens on the shard topic: its lag must drive scaling.
    assert f"{app_id}-shards" in topics
    assert scaled["spec"]["triggers"]
    for trigger in scaled["spec"]["triggers"]:
        meta = trigger["metadata"]
        assert trigger["type"] == "kafka"
        # Faust's consumer group id is its application id.
        assert meta["consumerGroup"] == app_id
        assert meta["topic"]
        assert int(meta["lagThreshold"]) > 0
        assert meta.get("allowIdleConsumers", "false") == "false"
        assert meta["bootstrapServers"] == broker
        auth = k8s_object("TriggerAuthentication", trigger["authenticationRef"]["name"])
        assert auth["apiVersion"] == "keda.sh/v1alpha1"


def _flag(args: list[str], name: str) -> str:
    """The value of ``--name=value`` or ``--name value`` in a container's args."""
    for i, arg in enumerate(args):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name:
            return args[i + 1]
    raise AssertionError(f"{name} not among the worker's args {args}")
