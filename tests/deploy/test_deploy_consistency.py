"""deploy/ says the same thing as the code it deploys.

Static checks read the real CLI (``build_parser()``) and the real package sources: every
``DRIFTLINE_*`` variable that deploy/ mentions is one driftline reads; every ``driftline``
command line in deploy/ parses, with flags the subcommand really has; ports, paths, topic
names and shard counts agree across the image, compose, Kubernetes, KEDA and Prometheus.

The integration tests run a real worker and a real ``alerts forward``, with the arguments
the compose file gives them, against the embedded broker, a real Alertmanager with deploy/'s
routes, and a real Prometheus with deploy/'s configuration and rules scraping both. They run
the compose producer's command (the bundled sample log, which drifts) plus one bad message,
and check that every path deploy/ probes answers, that Prometheus accepts every query of the
Grafana dashboard and the alerting rules and each of their selectors matches series scraped
from the worker or the forwarder, that the labels they group by are on those series, that a
rule goes pending and firing when its condition is made true (a worker down) and reaches
Alertmanager, that the sample's drift ends in Alertmanager as exactly the incidents a replay
leaves open, routed where ``amtool`` says, and that ``promtool check metrics`` accepts both
expositions. Queries are parsed with Prometheus' grammar (``promql-parser``).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

ENV_NAME = re.compile(r"\bDRIFTLINE_[A-Z0-9_]+\b")
PACKAGES = ("driftline.schemas", "driftline.detectors", "driftline.streams", "driftline.replay")
_SOURCES = ("predictions", "features", "labels")


# --------------------------------------------------------------------------- helpers


def _package_sources() -> list[Path]:
    files = []
    for name in PACKAGES:
        spec = find_spec(name)
        assert spec is not None and spec.submodule_search_locations, name
        for location in spec.submodule_search_locations:
            files.extend(sorted(Path(location).rglob("*.py")))
    return files


def _env_vars_read_by_driftline() -> set[str]:
    """``DRIFTLINE_*`` names that appear as string constants in driftline's own code."""
    names = set()
    for path in _package_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            value = getattr(node, "value", None) if isinstance(node, ast.Constant) else None
            if isinstance(value, str) and ENV_NAME.fullmatch(value):
                names.add(value)
    return names


def _deploy_text_files(deploy_dir: Path) -> list[Path]:
    suffixes = {".yaml", ".yml", ".json", ".md", ".sh", ".toml", ""}
    return sorted(
        p
        for p in deploy_dir.rglob("*")
        if p.is_file() and (p.suffix in suffixes or p.name.startswith("Dockerfile"))
    )


def _flag(args: list[str], name: str) -> str:
    for i, arg in enumerate(args):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name:
            return args[i + 1]
    raise AssertionError(f"{name} not in {args}")


def _subparser(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The parser that handles the options of ``argv`` (following subcommand names)."""
    current = parser
    for token in argv:
        subs = [a for a in current._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or token not in subs[0].choices:
            break
        current = subs[0].choices[token]
    return current


def _dockerfile(deploy_dir: Path) -> dict[str, str]:
    text = re.sub(r"\\\n", " ", (deploy_dir / "Dockerfile").read_text())
    last = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            last[keyword.upper()] = rest.strip()
    return last


def _driftline_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Compose services that run the driftline image."""
    image = compose["services"]["worker-1"]["image"]
    return {name: s for name, s in compose["services"].items() if s.get("image") == image}


def _workers(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in _driftline_services(compose).items() if s["command"][0] == "worker"}


def _readme_commands(readme: Path) -> list[list[str]]:
    """``driftline ...`` (and ``docker run ... driftline:TAG ...``) lines in code blocks."""
    commands, in_block, pending = [], False, ""
    for raw in readme.read_text(encoding="utf-8").splitlines():
        if raw.lstrip().startswith("```"):
            in_block = not in_block
            continue
        if not in_block:
            continue
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        line = line.removeprefix("$ ")
        words = shlex.split(line, comments=True)
        if words and words[0] == "driftline":
            commands.append(words[1:])
        elif words[:2] == ["docker", "run"]:
            # docker run [options] driftline:TAG ARGS: the image's entry point is driftline.
            image = next((i for i, w in enumerate(words) if w.startswith("driftline:")), None)
            if image is not None:
                commands.append(words[image + 1 :])
    return commands


def _command_lines(compose, k8s_object, deploy_dir: Path) -> dict[str, list[str]]:
    """Every driftline command line in deploy/, by where it comes from (argv without prog)."""
    lines = {f"compose:{n}": s["command"] for n, s in _driftline_services(compose).items()}
    (container,) = k8s_object("StatefulSet", "driftline")["spec"]["template"]["spec"]["containers"]
    lines["k8s:statefulset"] = container["args"]
    forward = k8s_object("Deployment", "driftline-alerts-forward")
    (container,) = forward["spec"]["template"]["spec"]["containers"]
    lines["k8s:alerts-forward"] = container["args"]
    docker = _dockerfile(deploy_dir)
    assert json.loads(docker["ENTRYPOINT"]) == ["driftline"]
    lines["Dockerfile:CMD"] = json.loads(docker["CMD"])
    for i, argv in enumerate(_readme_commands(deploy_dir / "README.md")):
        lines[f"README:{i}:{' '.join(argv[:2])}"] = argv
    return lines


# --------------------------------------------------------------------- static checks


def test_every_driftline_variable_in_deploy_is_read_by_driftline(deploy_dir):
    read = _env_vars_read_by_driftline()
    assert "DRIFTLINE_BROKER" in read, "the scan of driftline's sources found nothing"
    used = {}
    for path in _deploy_text_files(deploy_dir):
        for name in ENV_NAME.findall(path.read_text(encoding="utf-8")):
            used.setdefault(name, path.relative_to(deploy_dir).as_posix())
    assert used, "deploy/ uses no DRIFTLINE_* variable at all"
    unknown = {name: where for name, where in used.items() if name not in read}
    assert not unknown, f"variables driftline never reads: {unknown}"


def test_topic_service_variables_are_read_by_its_script(compose, deploy_dir):
    topics = compose["services"]["topics"]
    script = next(
        (deploy_dir / v.split(":")[0]).read_text()
        for v in topics["volumes"]
        if v.split(":")[1] in topics["entrypoint"]
    )
    for name in topics["environment"]:
        assert "${" + name in script, f"create-topics.sh ignores {name}"


def test_every_driftline_command_line_parses_with_real_flags(
    cli_parser, compose, k8s_object, deploy_dir
):
    lines = _command_lines(compose, k8s_object, deploy_dir)
    assert any(k.startswith("README:") for k in lines), "no driftline command in the README"
    for where, argv in lines.items():
        try:
            cli_parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{where}: `driftline {' '.join(argv)}` does not parse")
        options = _subparser(cli_parser, argv)._option_string_actions
        for token in argv:
            if token.startswith("--"):
                flag = token.split("=", 1)[0]
                # Exact names only: argparse would also accept an abbreviation.
                assert flag in options, f"{where}: driftline has no flag {flag}"


def test_worker_settings_agree_between_compose_and_kubernetes(compose, k8s_object):
    (container,) = k8s_object("StatefulSet", "driftline")["spec"]["template"]["spec"]["containers"]
    k8s_args = container["args"]
    for name, worker in _workers(compose).items():
        for flag in ("--app-id", "--store", "--data-dir", "--web-port", "--config"):
            assert _flag(worker["command"], flag) == _flag(k8s_args, flag), (name, flag)


def test_web_port_is_the_same_everywhere(
    cli_parser, compose, k8s_object, deploy_dir, yaml_documents
):
    worker_parser = _subparser(cli_parser, ["worker"])
    default_port = worker_parser.get_default("web_port")
    docker = _dockerfile(deploy_dir)
    # The image's default CMD runs the worker on its default port; HEALTHCHECK and EXPOSE
    # must follow it.
    assert docker["EXPOSE"] == str(default_port)
    assert f"127.0.0.1:{default_port}/" in docker["HEALTHCHECK"]

    workers = _workers(compose)
    ports = {int(_flag(w["command"], "--web-port")) for w in workers.values()}
    assert len(ports) == 1
    (port,) = ports
    for name, worker in workers.items():
        assert _flag(worker["command"], "--web-host") == "0.0.0.0", name
        assert f"127.0.0.1:{port}/" in " ".join(worker["healthcheck"]["test"]), name

    (prometheus,) = yaml_documents(deploy_dir / "prometheus" / "prometheus.yml")
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "driftline"]
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert sorted(t.rsplit(":", 1)[0] for t in targets) == sorted(workers)
    assert {int(t.rsplit(":", 1)[1]) for t in targets} == {port}

    sts = k8s_object("StatefulSet", "driftline")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    k8s_port = int(_flag(container["args"], "--web-port"))
    assert _flag(container["args"], "--web-host") == "0.0.0.0"
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named["web"] == k8s_port
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert (
            named.get(container[probe]["httpGet"]["port"], container[probe]["httpGet"]["port"])
            == k8s_port
        )
    for service in ("driftline-headless", "driftline-metrics"):
        for p in k8s_object("Service", service)["spec"]["ports"]:
            assert named.get(p["targetPort"], p["targetPort"]) == k8s_port, service
    annotations = k8s_object("Service", "driftline-metrics")["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == k8s_port
    policy = k8s_object("NetworkPolicy", "driftline")
    assert {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]} == {k8s_port}


def test_alerts_forward_is_wired_the_same_everywhere(
    cli_parser, compose, k8s_object, deploy_dir, yaml_documents
):
    """The forwarder's web port, probes, scrape target and Alertmanager URL agree."""
    service = compose["services"]["alerts-forward"]
    assert service["command"][:2] == ["alerts", "forward"]
    port = int(_flag(service["command"], "--web-port"))
    assert port == _subparser(cli_parser, ["alerts", "forward"]).get_default("web_port")
    assert f"127.0.0.1:{port}/health" in " ".join(service["healthcheck"]["test"])
    am = _flag(service["command"], "--alertmanager")
    host, am_port = am.removeprefix("http://").split(":")
    assert compose["services"][host]["ports"][0].endswith(f":{am_port}")

    (prometheus,) = yaml_documents(deploy_dir / "prometheus" / "prometheus.yml")
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "driftline-forward"]
    assert job["static_configs"][0]["targets"] == [f"alerts-forward:{port}"]

    deployment = k8s_object("Deployment", "driftline-alerts-forward")
    assert deployment["spec"]["replicas"] == 1, "one reader per consumer group"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    k8s_port = int(_flag(container["args"], "--web-port"))
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named["web"] == k8s_port
    for probe in ("livenessProbe", "readinessProbe"):
        assert named[container[probe]["httpGet"]["port"]] == k8s_port
    metrics = k8s_object("Service", "driftline-alerts-forward-metrics")
    assert int(metrics["metadata"]["annotations"]["prometheus.io/port"]) == k8s_port
    assert metrics["spec"]["selector"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    policy = k8s_object("NetworkPolicy", "driftline-alerts-forward")
    assert {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]} == {k8s_port}


def _probed_paths(compose, k8s_object, deploy_dir, yaml_documents) -> dict[str, str]:
    """Every HTTP path deploy/ expects a worker to serve -> where it is used."""
    paths: dict[str, str] = {}
    url_path = re.compile(r"https?://[^/'\"]+(/[A-Za-z0-9_/-]*)")
    for match in url_path.finditer(_dockerfile(deploy_dir)["HEALTHCHECK"]):
        paths[match.group(1)] = "Dockerfile HEALTHCHECK"
    for name, worker in _workers(compose).items():
        for match in url_path.finditer(" ".join(worker["healthcheck"]["test"])):
            paths[match.group(1)] = f"compose {name} healthcheck"
    (container,) = k8s_object("StatefulSet", "driftline")["spec"]["template"]["spec"]["containers"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        paths[container[probe]["httpGet"]["path"]] = f"k8s {probe}"
    annotations = k8s_object("Service", "driftline-metrics")["metadata"]["annotations"]
    paths[annotations["prometheus.io/path"]] = "k8s metrics Service annotation"
    (prometheus,) = yaml_documents(deploy_dir / "prometheus" / "prometheus.yml")
    for job in prometheus["scrape_configs"]:
        paths[job.get("metrics_path", "/metrics")] = f"prometheus job {job['job_name']}"
    return paths


def test_probed_paths_are_pages_of_the_worker(compose, k8s_object, deploy_dir, yaml_documents):
    """Static half: the paths are registered by the worker's web module."""
    served = set()
    for path in _package_sources():
        served.update(re.findall(r"\.page\(\s*\"(/[^\"]*)\"", path.read_text(encoding="utf-8")))
    probed = _probed_paths(compose, k8s_object, deploy_dir, yaml_documents)
    assert {"/health", "/ready", "/metrics"} <= probed.keys()
    missing = {p: where for p, where in probed.items() if p not in served}
    assert not missing, f"paths the worker does not serve: {missing} (it serves {sorted(served)})"


def test_shard_counts_and_topics_agree(compose, k8s_object):
    from driftline.streams import TopicLayout

    topics_env = compose["services"]["topics"]["environment"]
    for name, worker in _workers(compose).items():
        assert _flag(worker["command"], "--partitions") == topics_env["PARTITIONS"], name
        assert _flag(worker["command"], "--app-id") == topics_env["APP_ID"], name

    (container,) = k8s_object("StatefulSet", "driftline")["spec"]["template"]["spec"]["containers"]
    app_id = _flag(container["args"], "--app-id")
    consumed = {f"{app_id}-shards", *TopicLayout().sources}
    scaled = k8s_object("ScaledObject", "driftline")
    for trigger in scaled["spec"]["triggers"]:
        assert trigger["metadata"]["topic"] in consumed
        assert trigger["metadata"]["consumerGroup"] == app_id
    assert scaled["spec"]["maxReplicaCount"] <= int(_flag(container["args"], "--partitions"))


def test_sample_log_path_in_compose_is_where_the_image_installs_it(compose, deploy_dir):
    """The producer replays package data from inside the image's virtualenv."""
    from driftline.replay import sample_path

    (producer,) = [s for s in _driftline_services(compose).values() if s["command"][0] == "replay"]
    path = producer["command"][-1]
    docker = (deploy_dir / "Dockerfile").read_text()
    venv = re.search(r"python -m venv (\S+)", docker).group(1)
    python = re.search(r"python:(\d+\.\d+)", docker).group(1)
    relative = Path(sample_path()).relative_to(Path(find_spec("driftline.replay").origin).parent)
    expected = f"{venv}/lib/python{python}/site-packages/driftline/replay/{relative.as_posix()}"
    assert path == expected
    assert sample_path().is_file()


def test_create_topics_script_creates_what_the_worker_uses(tmp_path, deploy_dir):
    """Run the real script with a stand-in for kafka-topics.sh that records its arguments."""
    from driftline.streams import TopicLayout
    from driftline.streams._app import changelog_topic_name, shard_topic_name

    record = tmp_path / "calls"
    stub = tmp_path / "kafka-topics.sh"
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{record}"\n')
    stub.chmod(0o755)
    env = dict(os.environ, KAFKA_TOPICS=str(stub), APP_ID="myapp", PARTITIONS="5")
    env.update(REPLICATION="3", COMMAND_CONFIG="/etc/admin.properties", BOOTSTRAP="b:9093")
    subprocess.run(
        ["bash", str(deploy_dir / "kafka" / "create-topics.sh")], env=env, check=True, timeout=30
    )
    calls = {}
    for line in record.read_text().splitlines():
        topic = re.search(r"--topic (\S+)", line).group(1)
        calls[topic] = line
    layout = TopicLayout()
    expected = {*layout.all_topics(), shard_topic_name("myapp"), changelog_topic_name("myapp")}
    assert set(calls) == expected
    for topic, line in calls.items():
        assert "--partitions 5 --replication-factor 3" in line
        assert "--if-not-exists" in line and "--bootstrap-server b:9093" in line
        assert "--command-config /etc/admin.properties" in line
        assert "min.insync.replicas=2" in line
        policy = "compact" if topic == changelog_topic_name("myapp") else "delete"
        assert f"cleanup.policy={policy}" in line, topic


# ------------------------------------------------------------------ integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, timeout: float = 3.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, (
            f"worker exited {process.returncode}:\n{log.read_text()[-3000:]}"
        )
        try:
            if _get(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} not 200 after {timeout}s:\n{log.read_text()[-3000:]}")


class _Worker:
    def __init__(self, base_url: str, topics: dict[str, str], process, log: Path) -> None:
        self.base_url, self.topics, self.process, self.log = base_url, topics, process, log


def _run_compose_command(
    argv: list[str], replacements: dict[str, str], extra: list[str], bootstrap: str, log: Path
) -> subprocess.Popen:
    """Start ``driftline`` with a compose service's command, the ``--flag=value`` arguments
    named in ``replacements`` replaced, ``extra`` appended, against the test broker."""
    run_argv = []
    for arg in argv:
        name = arg.split("=", 1)[0]
        run_argv.append(f"{name}={replacements[name]}" if name in replacements else arg)
    env = dict(os.environ, DRIFTLINE_BROKER=bootstrap)
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "driftline.streams.cli", *run_argv, *extra],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.fixture(scope="module")
def deployed_worker(kafka_broker, compose, tmp_path_factory) -> Iterator[_Worker]:
    """A real ``driftline worker`` run with compose's worker arguments.

    Only what must differ on a shared test machine is replaced: loopback instead of all
    interfaces, a free port, a private data directory, unique topic names and app id, and 2
    shards instead of 6 (fewer partitions start faster). The configuration file is the
    deploy/ one, so it is also checked to load.
    """
    argv = list(compose["services"]["worker-1"]["command"])
    tag = uuid.uuid4().hex[:8]
    topics = {
        "predictions": f"t-deploy-predictions-{tag}",
        "features": f"t-deploy-features-{tag}",
        "labels": f"t-deploy-labels-{tag}",
        "alerts": f"t-deploy-alerts-{tag}",
        "deadletter": f"t-deploy-deadletter-{tag}",
    }
    port = _free_port()
    data_dir = tmp_path_factory.mktemp("worker-data")
    config_in_container = _flag(argv, "--config")
    deploy_dir = Path(__file__).resolve().parents[2] / "deploy"
    replacements = {
        "--app-id": f"t-deploy-{tag}",
        "--partitions": "2",
        "--data-dir": str(data_dir),
        "--web-host": "127.0.0.1",
        "--web-port": str(port),
        "--config": str(deploy_dir / Path(config_in_container).name),
    }
    extra = [f"--topic-{kind}={name}" for kind, name in topics.items()]
    extra += ["--session-timeout=6", "--heartbeat-interval=0.5"]
    log = data_dir / "worker.log"
    process = _run_compose_command(argv, replacements, extra, kafka_broker.bootstrap_servers, log)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(base + "/ready", process, log, timeout=120)
        yield _Worker(base, topics, process, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    import asyncio

    from aiokafka import AIOKafkaProducer

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for value in values:
                await producer.send(topic, value)
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(send())


@pytest.fixture(scope="module")
def deployed_alertmanager(alertmanager):
    """A real Alertmanager with deploy/alertmanager/alertmanager.yml."""
    return alertmanager()


@pytest.fixture(scope="module")
def deployed_forwarder(deployed_worker, deployed_alertmanager, kafka_broker, compose):
    """A real ``driftline alerts forward`` run with compose's arguments, on the worker's
    alerts topic; as for the worker, only addresses and names are replaced."""
    argv = list(compose["services"]["alerts-forward"]["command"])
    port = _free_port()
    replacements = {
        "--alertmanager": deployed_alertmanager.url,
        "--web-host": "127.0.0.1",
        "--web-port": str(port),
        "--group": f"t-deploy-forward-{uuid.uuid4().hex[:8]}",
    }
    extra = [f"--topic={deployed_worker.topics['alerts']}"]
    log = deployed_worker.log.with_name("forward.log")
    process = _run_compose_command(argv, replacements, extra, kafka_broker.bootstrap_servers, log)
    try:
        _wait_for(f"http://127.0.0.1:{port}/ready", process, log, timeout=60)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def prometheus(
    deployed_worker,
    deployed_forwarder,
    deployed_alertmanager,
    deploy_dir,
    yaml_documents,
    start_prometheus,
):
    """A real Prometheus run with deploy/'s configuration and alerting rules.

    What must differ on a test machine is replaced: the targets (the live worker and
    forwarder, and a second "worker" on a port where nothing listens: a worker that is down),
    the intervals (1 s), the Alertmanager (a real one, with deploy/'s configuration), and
    every rule's ``for`` (2 s, so that a rule goes pending and then firing within the test).
    The rules' expressions, labels and annotations are deploy/'s.
    """
    (config,) = yaml_documents(deploy_dir / "prometheus" / "prometheus.yml")
    (rules,) = yaml_documents(deploy_dir / "prometheus" / "alerts.yml")
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = "2s"
    am = deployed_alertmanager
    live = deployed_worker.base_url.removeprefix("http://")
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = ["alerts.yml"]
    config["alerting"]["alertmanagers"][0]["static_configs"] = [
        {"targets": [am.url.removeprefix("http://")]}
    ]
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    jobs["driftline"]["static_configs"] = [{"targets": [live, f"127.0.0.1:{_free_port()}"]}]
    jobs["driftline-forward"]["static_configs"] = [{"targets": [deployed_forwarder]}]
    server = start_prometheus(config, {"alerts.yml": rules})
    server.alertmanager = am
    server.live_instance = live
    return server


@pytest.fixture(scope="module")
def scraped(prometheus, deployed_worker, kafka_broker, compose) -> Any:
    """Prometheus, once it has scraped the worker after the compose producer's command ran,
    plus one bad message.

    The producer service's own command line (``replay --publish`` of the bundled sample, whose
    second part drifts) is run against the worker's topics, so the worker must publish alerts:
    the labelled alert counter then has samples whose labels the dashboard relies on.
    """
    from driftline.replay import sample_path

    (producer,) = [s for s in _driftline_services(compose).values() if s["command"][0] == "replay"]
    argv = [*producer["command"][:-1], str(sample_path())]
    argv += [f"--topic-{kind}={deployed_worker.topics[kind]}" for kind in _SOURCES]
    env = dict(os.environ, **producer["environment"])
    env["DRIFTLINE_BROKER"] = kafka_broker.bootstrap_servers
    published = subprocess.run(
        [sys.executable, "-m", "driftline.streams.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert published.returncode == 0, published.stderr
    _produce(kafka_broker.bootstrap_servers, deployed_worker.topics["predictions"], [b"{oops"])
    # Two scrapes after the bad message (rates need two samples; Prometheus' discovery
    # hands the targets to the scraper only about 5 s after its start).
    prometheus.wait(
        lambda: prometheus.query(
            "min(count_over_time(driftline_invalid_messages_total[1m])) >= 2"
            " and on() sum(driftline_alerts_total) > 0"
        ),
        120,
        f"an alert and an invalid message counted\n{deployed_worker.log.read_text()[-3000:]}",
    )
    return prometheus


def _queries(deploy_dir: Path, yaml_documents) -> dict[str, str]:
    """Every PromQL query of the dashboard and of the alerting rules -> where it is."""
    queries = {}
    dashboard = json.loads((deploy_dir / "grafana" / "dashboards" / "driftline.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queries[target["expr"]] = f"dashboard panel {panel['title']!r}"
    for variable in dashboard["templating"]["list"]:
        query = variable["query"]
        queries[query["query"] if isinstance(query, dict) else query] = (
            f"variable ${variable['name']}"
        )
    (rules,) = yaml_documents(deploy_dir / "prometheus" / "alerts.yml")
    for group in rules["groups"]:
        for rule in group["rules"]:
            queries[rule["expr"]] = f"alert rule {rule['alert']}"
    return queries


@pytest.mark.integration
def test_worker_serves_every_probed_path(
    deployed_worker, compose, k8s_object, deploy_dir, yaml_documents
):
    probed = _probed_paths(compose, k8s_object, deploy_dir, yaml_documents)
    for path, where in sorted(probed.items()):
        status, _ = _get(deployed_worker.base_url + path)
        assert status == 200, f"{path} ({where}) answered {status}"


@pytest.mark.integration
def test_every_queried_metric_is_exported_by_a_worker(scraped, deploy_dir, yaml_documents, promql):
    """Prometheus evaluates every dashboard and rule query, and every selector in them
    matches series it scraped from the worker (the label matchers included)."""
    missing: dict[str, list[str]] = {}
    selectors = 0
    for expr, where in _queries(deploy_dir, yaml_documents).items():
        query = promql(expr)
        scraped.query(query.text)  # a query Prometheus rejects fails here
        assert query.selectors, f"{where}: no selector in {expr!r}"
        for selector in query.selectors:
            selectors += 1
            if not scraped.api("series", **{"match[]": selector}):
                missing.setdefault(selector, []).append(where)
    assert selectors > 15, "the queries name almost no series"
    exported = sorted(scraped.api("label/__name__/values"))
    assert not missing, f"selectors that match nothing the worker exports: {missing}; {exported}"


@pytest.mark.integration
def test_queried_labels_exist_on_the_queried_metrics(scraped, deploy_dir, yaml_documents, promql):
    """``sum by (model)`` on a metric without a ``model`` label silently shows one flat line.

    For every ``by (...)`` aggregation and ``on (...)`` match, Prometheus evaluates the
    expression being grouped; where that has a result now, each grouping label must be on it.
    """
    problems, checked = [], 0
    for expr, where in _queries(deploy_dir, yaml_documents).items():
        for inner, labels in promql(expr).groupings:
            result = scraped.query(inner)
            if not result:  # e.g. a backlog that is not there now: nothing to read labels from
                continue
            present = set().union(*(series["metric"] for series in result))
            for label in labels:
                checked += 1
                if label not in present:
                    problems.append(f"{where}: {label!r} not on {inner} (labels {present})")
    assert checked > 10, "the label check found almost nothing to check"
    assert not problems, "\n".join(problems)


@pytest.mark.integration
def test_worker_down_rule_goes_pending_then_firing_and_reaches_alertmanager(scraped):
    """deploy/'s DriftlineWorkerDown, evaluated by Prometheus on a worker that is not there."""

    def worker_down(state: str) -> list[dict]:
        alerts = scraped.api("alerts")["alerts"]
        return [
            a
            for a in alerts
            if a["labels"]["alertname"] == "DriftlineWorkerDown" and a["state"] == state
        ]

    firing = scraped.wait(lambda: worker_down("firing"), 30, "DriftlineWorkerDown firing")
    assert all(a["labels"]["instance"] != scraped.live_instance for a in firing)
    assert firing[0]["labels"]["severity"] == "warning"
    rules = scraped.api("rules")["groups"]
    states = {r["name"]: r["state"] for g in rules for r in g["rules"] if r["type"] == "alerting"}
    assert states["DriftlineWorkerDown"] == "firing"
    # Prometheus' own record of the rule's states: pending (for its `for`) before firing.
    history = 'ALERTS{alertname="DriftlineWorkerDown", alertstate="%s"}[5m]'
    assert scraped.query("count_over_time(" + history % "pending" + ")")
    assert scraped.query("count_over_time(" + history % "firing" + ")")
    # The live worker alerts on nothing: not down, no stale checkpoint.
    alerts = scraped.api("alerts")["alerts"]
    assert not [a for a in alerts if a["labels"].get("instance") == scraped.live_instance]
    am = scraped.alertmanager
    received = scraped.wait(
        lambda: [a for a in am.alerts() if a["labels"]["alertname"] == "DriftlineWorkerDown"],
        30,
        "the alert in Alertmanager",
    )
    assert {r["name"] for r in received[0]["receivers"]} == {"driftline-operators"}


@pytest.mark.integration
def test_the_sample_drift_reaches_alertmanager_through_the_forwarder(scraped, deploy_dir, program):
    """The compose stack's path for drift alerts: worker, alerts topic, ``alerts forward``,
    Alertmanager with deploy/'s routes. Alertmanager ends with exactly the incidents that a
    replay of the sample (same configuration) leaves open."""
    import io

    import orjson

    from driftline.replay import replay_files, sample_path

    out = io.BytesIO()
    replay_files([str(sample_path())], out, config=deploy_dir / "driftline.toml", progress=False)
    alerts = [orjson.loads(line) for line in out.getvalue().splitlines()]
    ended = {a["statistics"]["fired_alert_id"] for a in alerts if a["status"] == "resolved"}
    still_open = {a["alert_id"]: a for a in alerts if a["status"] == "firing"}
    for incident in ended:
        still_open.pop(incident, None)
    assert still_open, "the sample's drift leaves incidents open"
    am = scraped.alertmanager

    def drift_incidents() -> dict[str, dict]:
        return {a["labels"]["incident"]: a for a in am.alerts() if "incident" in a["labels"]}

    scraped.wait(lambda: drift_incidents().keys() == still_open.keys(), 60, "the open incidents")
    for incident, alert in drift_incidents().items():
        assert alert["labels"]["model"] == still_open[incident]["model"]
        assert alert["labels"]["kind"] == still_open[incident]["kind"]
        # Routed where amtool says deploy/'s route tree sends these labels.
        labels = [f"{k}={v}" for k, v in alert["labels"].items()]
        amtool = [program("amtool"), "config", "routes", "test", "--config.file=alertmanager.yml"]
        routed = subprocess.run(
            [*amtool, *labels],
            cwd=deploy_dir / "alertmanager",
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert {r["name"] for r in alert["receivers"]} == {routed.stdout.strip()}
    delivered = scraped.query('sum(driftline_forward_alerts_total{job="driftline-forward"})')
    assert float(delivered[0]["value"][1]) >= len(still_open)


@pytest.mark.integration
def test_worker_and_forwarder_metrics_pass_promtool_lint(
    deployed_worker, deployed_forwarder, program
):
    for base in (deployed_worker.base_url, f"http://{deployed_forwarder}"):
        status, body = _get(base + "/metrics")
        assert status == 200
        lint = subprocess.run(
            [program("promtool"), "check", "metrics"], input=body, capture_output=True, timeout=30
        )
        assert lint.returncode == 0, base + lint.stdout.decode() + lint.stderr.decode()


def test_detection_settings_load_and_agree(tmp_path, deploy_dir, k8s_object):
    """Both copies of driftline.toml are valid for the real loader and say the same thing."""
    from driftline.detectors import load_config

    in_cluster = tmp_path / "driftline.toml"
    in_cluster.write_text(k8s_object("ConfigMap", "driftline-config")["data"]["driftline.toml"])
    assert load_config(in_cluster) == load_config(deploy_dir / "driftline.toml")
