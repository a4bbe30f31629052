"""docker-compose.yml, Dockerfile and .env.example agree with each other and with the security rules.

No Docker engine runs here, so the file is checked statically: it parses, every service has an image or a
valid build, published ports are loopback-only, every ``${VAR}`` is documented, healthchecks gate
``depends_on``, Ray services set ``shm_size``. When the ``docker compose`` plugin exists, ``docker compose
config`` (client-side) must accept the file with ``.env.example`` too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}")
SECRETS = ("RAY_AUTH_TOKEN", "POSTGRES_PASSWORD")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    out = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def test_expected_services(compose):
    assert {"ray-head", "ray-worker", "mlflow", "postgres"} <= set(compose["services"])
    assert set(compose["volumes"]) >= {"mixopt-data", "mlflow-artifacts", "postgres-data"}


def test_every_service_has_an_image_or_a_valid_build(compose):
    for name, svc in compose["services"].items():
        assert "image" in svc or "build" in svc, name
        if "build" in svc:
            build = svc["build"] if isinstance(svc["build"], dict) else {"context": svc["build"]}
            context = (ROOT / build.get("context", ".")).resolve()
            assert context.is_dir(), name
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name


def test_dockerfile_copies_existing_paths_and_pins_cpu_torch():
    text = (ROOT / "Dockerfile").read_text()
    # a local CPU wheel (docker/wheels/) when there is one, else the CPU index: never a bare `torch`
    assert "pip install /tmp/wheels/torch-2.13.0*.whl" in text
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in text
    assert "ARG BASE_IMAGE=python:3.11-slim-bookworm" in text and "FROM ${BASE_IMAGE}" in text
    # torch is installed before the package, so the package's `torch>=...` is already satisfied
    assert text.index("torch==2.13.0") < text.index("tomllib") < text.index("pip install --no-deps .")
    copies = re.findall(r"^COPY\s+(.+?)\s+\S+$", text, flags=re.M)
    assert copies
    for srcs in copies:
        for src in srcs.split():
            assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored and ".venv" in ignored and ".git" in ignored


def test_published_ports_are_loopback_only(compose):
    published = 0
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            published += 1
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", (name, port)
            else:
                assert str(port).startswith("127.0.0.1:"), (name, port)
                assert str(port).count(":") == 2, (name, port)
    assert published >= 2  # the dashboard/Jobs API and MLflow
    assert "ports" not in compose["services"]["postgres"]
    assert "ports" not in compose["services"]["ray-worker"]  # so --scale never collides


def test_env_vars_are_documented_and_secrets_are_required(compose, env_example):
    text = COMPOSE.read_text()
    used = set(VAR_RE.findall(text))
    assert set(SECRETS) <= used
    docs = (ROOT / "docs" / "cluster.md").read_text()
    for var in used:
        assert var in env_example, f"${{{var}}} missing from .env.example"
        assert var in docs, f"${{{var}}} not documented in docs/cluster.md"
    for secret in SECRETS:
        # compose refuses to start without it ...
        assert re.search(r"\$\{" + secret + r":\?", text), secret
        # ... and the example never ships a usable value
        assert env_example[secret].startswith("change-me"), secret


def test_env_file_is_not_committable():
    ignore = (ROOT / ".gitignore").read_text().split()
    assert ".env" in ignore, "add .env to .gitignore"


def test_healthchecks_gate_depends_on(compose):
    services = compose["services"]
    for name, svc in services.items():
        assert "healthcheck" in svc and svc["healthcheck"]["test"], f"{name} has no healthcheck"
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on needs conditions"
        for dep, cond in deps.items():
            assert dep in services, (name, dep)
            assert cond["condition"] == "service_healthy", (name, dep)
            assert "healthcheck" in services[dep], (name, dep)
    assert set(services["ray-worker"]["depends_on"]) == {"ray-head"}
    assert set(services["mlflow"]["depends_on"]) == {"postgres"}


def _bytes(size: str) -> int:
    m = re.fullmatch(r"(\d+)\s*([kmg]?)b?", str(size).lower())
    assert m, size
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2)]


def test_ray_nodes_have_shm_and_token_auth(compose, env_example):
    for name in ("ray-head", "ray-worker"):
        svc = compose["services"][name]
        shm = _bytes(svc["shm_size"])
        assert shm >= 512 * 1024**2, name
        assert int(env_example["RAY_OBJECT_STORE_BYTES"]) < shm  # the object store fits in /dev/shm
        env = svc["environment"]
        assert env["RAY_AUTH_MODE"] == "token"
        assert env["RAY_AUTH_TOKEN"].startswith("${RAY_AUTH_TOKEN")
        cmd = " ".join(svc["command"])
        assert "ray start" in cmd and "--block" in cmd
        assert "change-me*" in cmd  # refuses the placeholder token
        assert "mixopt-data:/data" in svc["volumes"]


def test_mlflow_server_flags(compose):
    svc = compose["services"]["mlflow"]
    cmd = svc["command"]
    assert cmd[:2] == ["mlflow", "server"]
    assert "--workers=1" in cmd and "--serve-artifacts" in cmd and "--host=0.0.0.0" in cmd
    assert any(c.startswith("--allowed-hosts=") for c in cmd)
    assert any(c.startswith("--artifacts-destination=") for c in cmd)
    # the database password stays out of the command line (visible in `ps`)
    assert "POSTGRES_PASSWORD" not in " ".join(cmd)
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which the image does not have
    assert svc["environment"]["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://")


def test_host_network_override_binds_loopback_only():
    """docker/compose.host.yml: the same services and volumes as docker-compose.yml, every one on the host's
    network, listening on 127.0.0.1 only, nothing published."""
    text = (ROOT / "docker" / "compose.host.yml").read_text()
    host = yaml.safe_load(text)
    base = yaml.safe_load(COMPOSE.read_text())
    services = host["services"]
    assert set(services) == set(base["services"]) and set(host["volumes"]) == set(base["volumes"])
    for name, svc in services.items():
        assert svc["network_mode"] == "host" and "ports" not in svc, name
        assert "healthcheck" in svc, name
        assert svc.get("depends_on", {}).keys() == base["services"][name].get("depends_on", {}).keys(), name
        build = svc["build"]
        context = (ROOT / "docker" / build["context"]).resolve()
        assert build["network"] == "host" and (context / build["dockerfile"]).is_file(), name
    for name in ("ray-head", "ray-worker"):
        assert services[name]["environment"]["RAY_AUTH_MODE"] == "token"
        assert "change-me*" in " ".join(services[name]["command"])
    assert "listen_addresses=127.0.0.1" in services["postgres"]["command"]
    assert "--host=127.0.0.1" in services["mlflow"]["command"]
    head = " ".join(services["ray-head"]["command"])
    assert "--node-ip-address=127.0.0.1" in head and "--dashboard-host=127.0.0.1" in head
    worker = " ".join(services["ray-worker"]["command"])
    assert "--node-ip-address=127.0.0.1" in worker
    # several workers on one host: Ray picks their ports
    assert "--dashboard-agent-listen-port=0" in worker and "--min-worker-port=0" in worker
    assert "0.0.0.0" not in text
    env_example = (ROOT / ".env.example").read_text()
    for var in set(VAR_RE.findall(text)):
        assert var in env_example, f"${{{var}}} missing from .env.example"


def test_cluster_script_is_valid_bash():
    script = ROOT / "scripts" / "cluster.sh"
    assert "set -euo pipefail" in script.read_text()
    out = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    out = subprocess.run(["bash", "-n", str(ROOT / "docker" / "postgres-entrypoint.sh")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def _compose_cli() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _compose_cli(), reason="the docker compose plugin is not installed")
def test_docker_compose_config_accepts_the_file():
    out = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "--env-file", str(ROOT / ".env.example"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose (v1) is not installed")
@pytest.mark.parametrize("file", ["docker-compose.yml", "docker/compose.host.yml"])
def test_docker_compose_v1_config_accepts_the_files(file):
    """docker-compose 1.29 (Debian's; what scripts/cluster.sh ran) parses both files (client-side only)."""
    out = subprocess.run(
        ["docker-compose", "-p", "mixopt", "--env-file", str(ROOT / ".env.example"), "-f", str(ROOT / file),
         "config", "--quiet"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
