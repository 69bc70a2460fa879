"""The Docker deployment, checked without a Docker engine.

The compose file is validated by a real compose implementation that needs no engine
(Debian's ``docker-compose``, ``config``); every file it builds from or mounts exists; the
Collector's exporters point at the ports and paths Spyglass serves; Grafana's provisioning
names Spyglass as a Jaeger data source at its dashboard URL; the image's command parses
with the real command line; and the README's compose commands name what exists.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.cli import serve
from app.server import OTLP_PATHS
from app.settings import Settings, split_addr
from demo_services.demo_plan import GRPC_SERVERS, SERVICES
from demo_services.service import ServiceSettings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DEPLOY = ROOT / "deploy"
COLLECTOR_CONFIGS = ("otel-collector.yaml", "otel-collector-loadbalancing.yaml")
BASE_PORT = 9000
DOCKER_COMPOSE = shutil.which("docker-compose")
needs_compose = pytest.mark.skipif(
    DOCKER_COMPOSE is None and not os.environ.get("SPYGLASS_REQUIRE_DOCKER_COMPOSE"),
    reason="Debian's docker-compose is not installed here (apt-get install docker-compose; .ci/run installs it)",
)


def _compose(
    *args: str, env: dict[str, str] | None = None, env_file: Path = ENV_EXAMPLE
) -> subprocess.CompletedProcess:
    assert DOCKER_COMPOSE, "docker-compose is required in CI (SPYGLASS_REQUIRE_DOCKER_COMPOSE is set)"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SPYGLASS_", "POSTGRES_", "GRAFANA_"))}
    return subprocess.run(
        [DOCKER_COMPOSE, "--project-directory", str(ROOT), "-f", str(COMPOSE), "--env-file", str(env_file), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **(env or {})},
    )


@cache
def _rendered(**env: str) -> dict[str, Any]:
    """The compose file as docker-compose resolves it (interpolated, paths absolute)."""
    result = _compose("config", env=env)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _dockerfile_cmd() -> list[str]:
    (line,) = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")]
    return json.loads(line[len("CMD ") :])


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def _serve_ports() -> tuple[int, int]:
    """The OTLP/HTTP and dashboard ports the image's command listens on."""
    argv = _dockerfile_cmd()
    return split_addr(_option(argv, "--otlp-http-addr"))[1], split_addr(_option(argv, "--ui-addr"))[1]


# -- the compose file ----------------------------------------------------------------------


@needs_compose
@pytest.mark.parametrize(
    "env",
    [{}, {"SPYGLASS_COLLECTOR_CONFIG": "otel-collector-loadbalancing.yaml", "SPYGLASS_UI_PUBLISH": "8080"}],
    ids=["default", "scaled-out"],
)
def test_docker_compose_validates_the_file(env):
    result = _compose("config", "-q", env=env)
    assert result.returncode == 0, result.stderr


@needs_compose
@pytest.mark.parametrize(
    "secret",
    [
        "SPYGLASS_AUTH_TOKEN",
        "POSTGRES_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
        "SPYGLASS_DEMO_JWT_KEY",
        "SPYGLASS_DEMO_CONTROL_TOKEN",
    ],
)
def test_a_missing_secret_stops_compose_naming_it(tmp_path, secret):
    env_file = tmp_path / ".env"
    kept = [line for line in ENV_EXAMPLE.read_text().splitlines() if not line.startswith(secret + "=")]
    env_file.write_text("\n".join(kept) + "\n")
    result = _compose("config", "-q", env_file=env_file)
    assert result.returncode != 0
    assert secret in result.stderr


def test_no_secret_is_written_in_the_compose_file():
    text = COMPOSE.read_text()
    example = dict(
        line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line and not line.startswith("#")
    )
    for name in example:
        # A secret appears only as an interpolation of the environment, never as a value.
        for match in re.finditer(rf"^\s*{name}:\s*(\S.*)$", text, re.MULTILINE):
            assert match.group(1).startswith("${"), match.group(0)
    for value in example.values():
        assert value not in text
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in (ROOT / ".dockerignore").read_text().splitlines()


@needs_compose
def test_every_built_or_mounted_file_exists():
    services = _rendered()["services"]
    for name, service in services.items():
        if "build" in service:
            context = Path(service["build"]["context"])
            assert (context / service["build"].get("dockerfile", "Dockerfile")).is_file(), name
        for volume in service.get("volumes", []):
            # docker-compose 1.x renders "source:target[:mode]", 2.x an object.
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume["source"]
            if source.startswith("/"):
                assert Path(source).exists(), f"{name}: {source}"
            else:
                assert source in _rendered()["volumes"], f"{name}: {source}"


def test_every_service_restarts_and_keeps_its_state_in_a_named_volume():
    raw = _raw()  # PyYAML applies the file's merge keys (<<) as it loads
    for name, service in raw["services"].items():
        assert service["restart"] == "unless-stopped", name
        if name not in ("otel-collector", "traffic"):
            named = [v.split(":", 1)[0] for v in service.get("volumes", []) if not v.startswith(".")]
            assert named and all(v in raw["volumes"] for v in named), name


def test_every_demo_instance_runs_in_its_own_container_with_what_the_launcher_gives_it():
    raw = _raw()["services"]
    known = {f"SPYGLASS_DEMO_{f.name.upper()}" for f in dataclasses.fields(ServiceSettings)}
    for name, module, offset, instance_id in SERVICES:
        service = raw[name]
        assert service["command"] == ["python", "-m", module], name
        env = service["environment"]
        assert env["SPYGLASS_DEMO_PORT"] == str(BASE_PORT + offset), name
        assert env["SPYGLASS_DEMO_HOST"] == "0.0.0.0"
        assert env["SPYGLASS_DEMO_ADVERTISED_HOST"] == name
        assert env["SPYGLASS_DEMO_REGISTRY_URL"] == f"http://registry:{BASE_PORT + 1}"
        assert env["SPYGLASS_OTLP_HTTP_ADDR"] == "otel-collector:4318"
        assert env["SPYGLASS_DEMO_CONTROL_TOKEN"].startswith("${SPYGLASS_DEMO_CONTROL_TOKEN")
        assert env.get("SPYGLASS_DEMO_INSTANCE_ID", "") == instance_id
        assert ("SPYGLASS_DEMO_JWT_KEY" in env) == (name in ("gateway", "users")), name
        if name in GRPC_SERVERS:
            assert env["SPYGLASS_DEMO_GRPC_PORT"] == str(BASE_PORT + GRPC_SERVERS[name])
        unknown = {k for k in env if k.startswith("SPYGLASS_DEMO_")} - known
        assert not unknown, f"{name} sets variables no service reads: {unknown}"
        assert "test" in service["healthcheck"]
    traffic = raw["traffic"]
    assert importlib.util.find_spec(traffic["command"][-1]) is not None
    assert traffic["environment"]["SPYGLASS_DEMO_GATEWAY_URL"] == f"http://gateway:{BASE_PORT}"


def test_spyglass_runs_on_postgresql_with_a_token_and_several_workers():
    service = _raw()["services"]["spyglass"]
    env = service["environment"]
    assert env["SPYGLASS_DATABASE_URL"].startswith("postgresql+psycopg://spyglass:${POSTGRES_PASSWORD}@postgres:5432/")
    assert env["SPYGLASS_AUTH_TOKEN"].startswith("${SPYGLASS_AUTH_TOKEN:?")
    assert int(re.search(r":-(\d+)}", env["SPYGLASS_WORKERS"]).group(1)) > 1
    assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    ui_port = _serve_ports()[1]
    assert service["ports"] == [f"${{SPYGLASS_UI_PUBLISH:-{ui_port}:{ui_port}}}"]


def test_the_readme_names_the_images_compose_runs():
    readme = (ROOT / "README.md").read_text()
    for name, service in _raw()["services"].items():
        if service["image"] != "spyglass:local":
            assert f"`{service['image']}`" in readme, name
    runtime = re.findall(r"^FROM (\S+) AS runtime", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert runtime and f"`{runtime[0]}`" in readme


# -- the image ------------------------------------------------------------------------------


def test_the_image_command_is_one_the_real_command_line_accepts():
    argv = _dockerfile_cmd()
    assert argv[:2] == ["spyglass", "serve"]
    context = serve.make_context("serve", argv[2:])
    settings = Settings.from_env({}, **context.params)
    # Every listener is beyond loopback: it serves only with the token compose sets.
    assert settings.exposed_without_auth()
    assert not settings.replace(auth_token="from .env").exposed_without_auth()


def test_the_dockerfile_is_multi_stage_pinned_and_runs_unprivileged():
    text = (ROOT / "Dockerfile").read_text()
    images = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(images) >= 3
    for image in images:
        name, _, tag = image.partition(":")
        assert re.match(r"\d+\.\d+\.\d+-", tag), f"{image} is not pinned to a version"
    assert "npm ci" in text and "package-lock.json" in text  # htmx as `make setup` gets it
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in text
    for copied in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.MULTILINE):
        for source in copied.split():
            assert (ROOT / source).exists(), source


# -- the Collector --------------------------------------------------------------------------


@pytest.mark.parametrize("name", COLLECTOR_CONFIGS)
def test_the_collector_config_is_whole_and_limits_memory_first(name):
    config = yaml.safe_load((DEPLOY / name).read_text())
    (pipeline,) = config["service"]["pipelines"].values()
    for kind in ("receivers", "processors", "exporters"):
        for component in pipeline[kind]:
            assert component in config[kind], f"{name}: {component} is not defined"
    assert pipeline["processors"][0] == "memory_limiter" and "batch" in pipeline["processors"]
    assert "otlp" in pipeline["receivers"]
    for extension in config["service"].get("extensions", []):
        assert extension in config["extensions"]


def test_the_collector_sends_otlp_http_where_spyglass_serves_it():
    config = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    (exporter,) = config["exporters"].values()
    otlp_port = _serve_ports()[0]
    # otlphttp appends /v1/traces to the endpoint: the path Spyglass's OTLP port serves.
    assert exporter["endpoint"] == f"http://spyglass:{otlp_port}"
    assert "/v1/traces" in OTLP_PATHS
    assert exporter["headers"]["Authorization"] == "Bearer ${env:SPYGLASS_AUTH_TOKEN}"


def test_the_load_balancing_collector_routes_by_trace_id_to_every_replica():
    config = yaml.safe_load((DEPLOY / "otel-collector-loadbalancing.yaml").read_text())
    (exporter,) = config["exporters"].values()
    assert exporter["routing_key"] == "traceID"
    assert exporter["resolver"]["dns"]["hostname"] == "spyglass"
    grpc_addr = _raw()["services"]["spyglass"]["environment"]["SPYGLASS_OTLP_GRPC_ADDR"]
    assert int(exporter["resolver"]["dns"]["port"]) == split_addr(grpc_addr)[1]
    assert _raw()["services"]["spyglass"]["environment"]["SPYGLASS_OTLP_GRPC_ENABLED"] == "true"
    assert exporter["protocol"]["otlp"]["headers"]["authorization"] == "Bearer ${env:SPYGLASS_AUTH_TOKEN}"


def test_the_collector_container_mounts_the_config_it_is_told_to_use():
    service = _raw()["services"]["otel-collector"]
    mounted = {v.split(":")[1] for v in service["volumes"]}
    for name in COLLECTOR_CONFIGS:
        assert f"./deploy/{name}:/etc/otelcol-contrib/{name}:ro" in service["volumes"]
    (command,) = service["command"]
    assert command.replace("${SPYGLASS_COLLECTOR_CONFIG:-otel-collector.yaml}", "otel-collector.yaml")[9:] in mounted
    assert "SPYGLASS_AUTH_TOKEN" in service["environment"]
    assert re.match(r"otel/opentelemetry-collector-contrib:\d+\.\d+\.\d+$", service["image"])


# -- Grafana --------------------------------------------------------------------------------


def test_grafana_reads_spyglass_as_a_jaeger_data_source_at_its_dashboard_url():
    provisioning = DEPLOY / "grafana" / "provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "spyglass.yaml").read_text())["datasources"]
    assert source["type"] == "jaeger"
    assert source["url"] == f"http://spyglass:{_serve_ports()[1]}"
    assert source["jsonData"]["httpHeaderName1"] == "Authorization"
    assert source["secureJsonData"]["httpHeaderValue1"] == "Bearer ${SPYGLASS_AUTH_TOKEN}"
    service = _raw()["services"]["grafana"]
    assert "SPYGLASS_AUTH_TOKEN" in service["environment"]
    assert re.match(r"grafana/grafana:\d+\.\d+\.\d+$", service["image"])

    (provider,) = yaml.safe_load((provisioning / "dashboards" / "spyglass.yaml").read_text())["providers"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in service["volumes"] if v.startswith("./"))
    dashboards_dir = {target: source for source, target in mounts.items()}[provider["options"]["path"]]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    (dashboard_file,) = (ROOT / dashboards_dir).glob("*.json")
    dashboard = json.loads(dashboard_file.read_text())
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "jaeger", "uid": source["uid"]}
        assert panel["targets"], panel["title"]


# -- the README -----------------------------------------------------------------------------


def _readme_compose_commands() -> list[tuple[dict[str, str], list[str]]]:
    """Each `docker compose` command of the README's "Run it for real" section: its
    variable assignments and its arguments."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Run it for real") :]
    section = section[: section.index("\n## ", 1)]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line.split("#", 1)[0])
            if "docker" not in words:
                continue
            at = words.index("docker")
            assert words[at + 1] == "compose", line
            commands.append((dict(w.split("=", 1) for w in words[:at]), words[at + 2 :]))
    for exec_command in re.findall(r"`(docker compose exec [^`]+)`", section):
        commands.append(({}, shlex.split(exec_command)[2:]))
    return commands


def test_the_readme_s_compose_commands_name_what_exists():
    commands = _readme_compose_commands()
    services = _raw()["services"]
    verbs = [args[0] for _env, args in commands]
    assert {"up", "ps", "exec"} <= set(verbs)
    example = ENV_EXAMPLE.read_text()
    for env, args in commands:
        for name, value in env.items():
            assert re.search(rf"^# ?{name}=", example, re.MULTILINE), f"{name} is not in .env.example"
            assert f"${{{name}" in COMPOSE.read_text(), f"{name} is not read by the compose file"
            if name == "SPYGLASS_COLLECTOR_CONFIG":
                assert value in COLLECTOR_CONFIGS
        for option, value in zip(args, args[1:], strict=False):
            if option == "--scale":
                assert value.split("=")[0] in services
        if args[0] == "exec":
            assert args[1] in services
    assert "cp .env.example .env" in (ROOT / "README.md").read_text()


@needs_compose
def test_the_readme_s_compose_commands_validate_with_their_variables():
    for env, _args in _readme_compose_commands():
        result = _compose("config", "-q", env=env)
        assert result.returncode == 0, f"{env}: {result.stderr}"


def _readme_scale_out() -> tuple[dict[str, str], str, int]:
    """The README's scale-out command: its variables, the service it scales, how many."""
    (found,) = [(env, args[args.index("--scale") + 1]) for env, args in _readme_compose_commands() if "--scale" in args]
    name, count = found[1].split("=")
    return found[0], name, int(count)


def _ports(service: dict[str, Any]) -> list[tuple[str, int]]:
    """(host port, container port) of each port a rendered service publishes, the host
    port "" where Docker picks one. docker-compose renders objects (``published``,
    ``target``); a string is ``[host:]container[/protocol]``."""
    pairs = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            pairs.append((str(port.get("published") or ""), int(port["target"])))
        else:
            host, _, container = port.split("/")[0].rpartition(":")
            pairs.append((host.rpartition(":")[2], int(container)))
    return pairs


@needs_compose
def test_the_readme_s_scale_out_publishes_no_fixed_host_port_and_balances_over_every_replica():
    env, name, count = _readme_scale_out()
    assert count > 1
    rendered = _rendered(**env)["services"]
    service = rendered[name]
    # A container name, or a host port, can be had by one container only: replicas 2 to
    # N would fail to start. Host port ranges are handed out unreliably to replicas that
    # start together, so each replica's dashboard port is left to Docker.
    assert "container_name" not in service
    ui_port = _serve_ports()[1]
    assert _ports(service) == [("", ui_port)]
    # Unscaled, the dashboard keeps its fixed host port.
    assert _ports(_rendered()["services"][name]) == [(str(ui_port), ui_port)]
    # The Collector this command runs finds every replica by the service's name in
    # Docker's DNS, at the port each one's OTLP/gRPC receiver listens on beyond loopback.
    (command,) = rendered["otel-collector"]["command"]
    config = yaml.safe_load((DEPLOY / Path(command.split("=", 1)[1]).name).read_text())
    (exporter,) = config["exporters"].values()
    assert exporter["resolver"]["dns"]["hostname"] == name
    assert service["environment"]["SPYGLASS_OTLP_GRPC_ENABLED"] == "true"
    host, grpc_port = split_addr(service["environment"]["SPYGLASS_OTLP_GRPC_ADDR"])
    assert (host, grpc_port) == ("0.0.0.0", int(exporter["resolver"]["dns"]["port"]))
    # Each replica is probed by the image's health check (its dashboard's /health, served
    # once the gRPC receiver is up), which the Collector waits for.
    assert not service.get("healthcheck", {}).get("disable")
    assert f"http://127.0.0.1:{ui_port}/health" in (ROOT / "Dockerfile").read_text()
    assert rendered["otel-collector"]["depends_on"][name]["condition"] == "service_healthy"
