"""The production deployment, run natively: PostgreSQL, code server, webserver and daemon.

The processes are started with the same commands, instance file (docker/dagster.yaml) and workspace
file (docker/workspace.yaml) as the compose services, against a throwaway database on the local
PostgreSQL server, with the sensor pointed at a local HTTP server that replays a recorded GBFS feed.
Everything started here is stopped, and the database dropped, when the `Deployment` context exits.
"""

import gzip
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import psutil
import psycopg2
import requests

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DOCKER_DIR = PROJECT_ROOT / "docker"
VENV_BIN = Path(sys.executable).parent
LOCATION_NAME = "velib_assets"
# Command that restarts the PostgreSQL server the tests use (e.g. `docker restart <id>` in CI);
# by default the local cluster listening on the port is restarted with pg_ctlcluster.
PG_RESTART_ENV = "VELIB_TEST_PG_RESTART"

T = TypeVar("T")


class DeploymentError(AssertionError):
    """A bounded wait ran out or a process misbehaved; the message carries the process logs."""


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- PostgreSQL -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresServer:
    """Where the tests find PostgreSQL; the same DAGSTER_POSTGRES_* names the instance file reads."""

    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: str = ""

    @classmethod
    def from_env(cls) -> "PostgresServer":
        return cls(
            host=os.environ.get("DAGSTER_POSTGRES_HOST", "127.0.0.1"),
            port=int(os.environ.get("DAGSTER_POSTGRES_PORT", "5432")),
            user=os.environ.get("DAGSTER_POSTGRES_USER", "postgres"),
            password=os.environ.get("DAGSTER_POSTGRES_PASSWORD", ""),
        )

    def connect(self, dbname: str = "postgres") -> Any:
        conn = psycopg2.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=dbname,
            connect_timeout=5,
        )
        conn.autocommit = True
        return conn

    def check_reachable(self) -> None:
        try:
            self.connect().close()
        except psycopg2.OperationalError as exc:
            raise DeploymentError(
                f"PostgreSQL is not reachable at {self.host}:{self.port} as {self.user!r} ({exc}). "
                "Start it (e.g. `pg_ctlcluster --skip-systemctl-redirect 15 main start`) or set "
                "DAGSTER_POSTGRES_HOST/PORT/USER/PASSWORD."
            ) from exc

    def create_database(self, prefix: str = "velib_deploy") -> str:
        name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop `name` after ending every session on it (a killed process may leave some open)."""
        with closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')

    def drop_orphaned_databases(self, prefix: str = "velib_deploy") -> list[str]:
        """Drop databases left by test sessions that were killed before their teardown ran."""
        with closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{prefix}\\_%",))
            names = [row[0] for row in cur.fetchall()]
        orphans = []
        for name in names:
            pid = name.removeprefix(f"{prefix}_").split("_")[0]
            if pid.isdigit() and not psutil.pid_exists(int(pid)):
                self.drop_database(name)
                orphans.append(name)
        return orphans

    def database_exists(self, name: str) -> bool:
        with closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            return cur.fetchone() is not None

    def restart_command(self) -> list[str]:
        configured = os.environ.get(PG_RESTART_ENV, "").strip()
        if configured:
            return shlex.split(configured)
        listing = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True)
        for line in listing.stdout.splitlines():
            version, cluster, port = line.split()[:3]
            if int(port) == self.port:
                command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, "restart"]
                return command if os.geteuid() == 0 else ["sudo", "-n", *command]
        raise DeploymentError(f"no local PostgreSQL cluster on port {self.port}; set {PG_RESTART_ENV}")

    def restart(self, timeout_s: float = 60.0) -> None:
        """Restart the server and wait until it accepts connections again."""
        subprocess.run(self.restart_command(), check=True, capture_output=True, timeout=timeout_s)
        wait_for(lambda: _accepts(self), timeout_s, "PostgreSQL to accept connections after restart")


def _accepts(server: PostgresServer) -> bool:
    try:
        server.connect().close()
    except psycopg2.OperationalError:
        return False
    return True


# --- the recorded feed ----------------------------------------------------------------------------


class FeedServer:
    """A GBFS system on 127.0.0.1 replaying recorded files; its clock advances `step` per status read.

    Every `station_status.json` answer is the recorded document with `lastUpdatedOther` set to the
    next tick of the feed clock (and each station's `last_reported` shifted by the same amount, so
    stations stay as fresh as they were when recorded). `served` lists the feed times handed out.
    """

    def __init__(self, status_file: Path, information_file: Path, start: datetime, step: timedelta) -> None:
        self._status = json.loads(status_file.read_bytes())
        self._information = information_file.read_bytes()
        self._recorded_time = int(self._status["lastUpdatedOther"])
        self._next = int(start.timestamp())
        self._step = int(step.total_seconds())
        self._lock = threading.Lock()
        self._last_read = time.monotonic()
        self.served: list[int] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def discovery_url(self) -> str:
        return f"{self.base_url}/gbfs.json"

    def served_times(self) -> list[int]:
        with self._lock:
            return list(self.served)

    def idle_seconds(self) -> float:
        """Seconds since the last request of any kind (a sensor tick reads at its start)."""
        with self._lock:
            return time.monotonic() - self._last_read

    def _touch(self) -> None:
        with self._lock:
            self._last_read = time.monotonic()

    def close_hour(self) -> None:
        """Make the next read the first capture of the following hour, which closes the current one."""
        with self._lock:
            last = self.served[-1] if self.served else self._next - self._step
            self._next = (last // 3600 + 1) * 3600

    def __enter__(self) -> "FeedServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _discovery(self) -> bytes:
        feeds = [
            {"name": name, "url": f"{self.base_url}/{name}.json"}
            for name in ("station_information", "station_status")
        ]
        return json.dumps({"lastUpdatedOther": self._recorded_time, "ttl": 3600,
                           "data": {"en": {"feeds": feeds}}}).encode()

    def _next_status(self) -> bytes:
        with self._lock:
            feed_time = self._next
            self._next += self._step
            self.served.append(feed_time)
        shift = feed_time - self._recorded_time
        document = dict(self._status)
        document["lastUpdatedOther"] = feed_time
        document["data"] = {
            "stations": [
                {**station, "last_reported": station["last_reported"] + shift}
                if isinstance(station.get("last_reported"), int) else station
                for station in self._status["data"]["stations"]
            ]
        }
        return json.dumps(document, separators=(",", ":")).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                routes: dict[str, Callable[[], bytes]] = {
                    "/gbfs.json": feed._discovery,
                    "/station_status.json": feed._next_status,
                    "/station_information.json": lambda: feed._information,
                }
                feed._touch()
                route = routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_error(404)
                    return
                body = route()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler


# --- processes ------------------------------------------------------------------------------------


@dataclass
class ManagedProcess:
    """One long-running command in its own process group, output captured to a log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.log_path, "ab")  # the child keeps writing to it after we close our copy
        log.write(f"\n===== start {self.starts}: {shlex.join(self.argv)}\n".encode())
        log.flush()
        self.popen = subprocess.Popen(
            self.argv, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise DeploymentError(f"{self.name} was never started")
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group, as a container crash would."""
        if self.popen is None:
            return
        _signal_group(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left after `grace_s`."""
        if self.popen is None:
            return
        group = self.popen.pid
        if self.popen.poll() is None:
            _signal_group(group, signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(group, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no output)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_process_tree(pid: int) -> list[int]:
    """SIGKILL `pid` and its descendants (a run worker and its step processes); returns the pids."""
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return []
    victims = [root, *root.children(recursive=True)]
    for proc in victims:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(victims, timeout=10)
    return [proc.pid for proc in victims]


def wait_for(
    probe: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 0.5,
    diagnostics: Callable[[], str] = lambda: "",
) -> T:
    """Poll `probe` until it returns something truthy; else fail naming `what`, with `diagnostics()`."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except Exception as exc:  # a probe may fail while a service is coming up
            last_error = exc
        else:
            if value:
                return value
        time.sleep(interval_s)
    detail = f"; last error: {last_error!r}" if last_error else ""
    raise DeploymentError(f"timed out after {timeout_s:.0f}s waiting for {what}{detail}\n{diagnostics()}")


# --- the deployment -------------------------------------------------------------------------------

RUN_WORKER_PID = re.compile(r"Started process for run \(pid: (\d+)\)")

DAEMON_HEALTH = """
{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }
"""
WORKSPACE = """
{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""
START_SENSOR = """
mutation StartSensor($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status } }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
    ... on SensorNotFoundError { message }
  }
}
"""
ASSET_GRAPH = "{ assetNodes { assetKey { path } dependencyKeys { path } groupName } }"


@dataclass
class Deployment:
    """Code server, webserver and daemon on a fresh PostgreSQL database, as docker-compose runs them."""

    workdir: Path
    postgres: PostgresServer
    extra_env: dict[str, str]
    module: str = "velib_assets.definitions"
    attribute: str = "defs"
    pythonpath: list[Path] = field(default_factory=list)
    database: str = ""
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    grpc_port: int = 0
    webserver_port: int = 0

    @property
    def dagster_home(self) -> Path:
        return self.workdir / "dagster_home"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def logs_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.webserver_port}"

    # lifecycle

    def __enter__(self) -> "Deployment":
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        self.postgres.check_reachable()
        for directory in (self.dagster_home, self.data_dir, self.logs_dir):
            directory.mkdir(parents=True, exist_ok=True)
        shutil.copy(DOCKER_DIR / "dagster.yaml", self.dagster_home / "dagster.yaml")
        shutil.copy(DOCKER_DIR / "workspace.yaml", self.dagster_home / "workspace.yaml")
        self.postgres.drop_orphaned_databases()
        self.database = self.postgres.create_database()
        self.grpc_port, self.webserver_port = free_port(), free_port()
        workspace = str(self.dagster_home / "workspace.yaml")
        self._add("user-code", [
            str(VENV_BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(self.grpc_port),
            "-m", self.module, "-a", self.attribute, "--location-name", LOCATION_NAME,
        ])
        self._add("webserver", [
            str(VENV_BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(self.webserver_port),
            "-w", workspace,
        ])
        self._add("daemon", [str(VENV_BIN / "dagster-daemon"), "run", "-w", workspace])
        # Compose order: the webserver and the daemon start once the code server is healthy.
        self.processes["user-code"].start()
        self.wait_for(self._code_server_healthy, 120, "the code server's gRPC health check")
        self.processes["webserver"].start()
        self.processes["daemon"].start()
        self.wait_for(self._location_loaded, 120, "the webserver to load the code location")
        self.wait_for(self.daemons_healthy, 120, "every required daemon to report healthy")

    def close(self) -> None:
        """Stop every process (daemon first, so it launches nothing more) and drop the database."""
        errors: list[str] = []
        for name in ("daemon", "webserver", "user-code"):
            process = self.processes.get(name)
            if process is not None:
                try:
                    process.stop()
                except Exception as exc:  # keep tearing down the rest
                    errors.append(f"{name}: {exc!r}")
        if self.database:
            try:
                self.postgres.drop_database(self.database)
            except Exception as exc:
                errors.append(f"drop {self.database}: {exc!r}")
        if errors:
            raise DeploymentError("teardown failed: " + "; ".join(errors))

    def _add(self, name: str, argv: list[str]) -> None:
        self.processes[name] = ManagedProcess(
            name, argv, self._env(), self.workdir, self.logs_dir / f"{name}.log"
        )

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "VELIB_"))}
        pythonpath = [str(p) for p in (*self.pythonpath, PROJECT_ROOT)]
        if env.get("PYTHONPATH"):
            pythonpath.append(env["PYTHONPATH"])
        env.update({
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": os.pathsep.join(pythonpath),
            "PYTHONUNBUFFERED": "1",
            "DAGSTER_HOME": str(self.dagster_home),
            "DAGSTER_POSTGRES_HOST": self.postgres.host,
            "DAGSTER_POSTGRES_PORT": str(self.postgres.port),
            "DAGSTER_POSTGRES_USER": self.postgres.user,
            "DAGSTER_POSTGRES_PASSWORD": self.postgres.password,
            "DAGSTER_POSTGRES_DB": self.database,
            "DAGSTER_USER_CODE_HOST": "127.0.0.1",
            "DAGSTER_USER_CODE_PORT": str(self.grpc_port),
            "VELIB_DATA_DIR": str(self.data_dir),
        })
        env.update(self.extra_env)
        return env

    def crash(self, name: str) -> None:
        """SIGKILL a service and everything it started, as if its container died."""
        self.processes[name].kill()

    def restart(self, name: str) -> None:
        self.processes[name].start()

    def descendants(self, name: str) -> set[int]:
        try:
            return {p.pid for p in psutil.Process(self.processes[name].pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            return set()

    # waiting and diagnostics

    def diagnostics(self) -> str:
        parts = [f"(logs in {self.logs_dir})"]
        for name, process in self.processes.items():
            state = "running" if process.alive() else "not running"
            parts.append(f"--- {name} ({state}), last lines:\n{process.tail()}")
        return "\n".join(parts)

    def wait_for(
        self, probe: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 0.5
    ) -> T:
        return wait_for(probe, timeout_s, what, interval_s, self.diagnostics)

    def _code_server_healthy(self) -> bool:
        process = self.processes["user-code"]
        if not process.alive():
            raise DeploymentError(f"the code server exited\n{self.diagnostics()}")
        check = subprocess.run(
            [str(VENV_BIN / "dagster"), "api", "grpc-health-check", "-h", "127.0.0.1",
             "-p", str(self.grpc_port)],
            capture_output=True, env=self._env(), cwd=self.workdir, timeout=60,
        )
        return check.returncode == 0

    def _location_loaded(self) -> bool:
        entries = self.graphql(WORKSPACE)["workspaceOrError"]["locationEntries"]
        entry = next(e for e in entries if e["name"] == LOCATION_NAME)
        loaded = entry["locationOrLoadError"]
        if loaded["__typename"] == "PythonError":
            raise DeploymentError(f"code location failed to load: {loaded['message']}")
        return entry["loadStatus"] == "LOADED" and loaded["__typename"] == "RepositoryLocation"

    def daemons_healthy(self) -> list[str]:
        """The required daemon types, once every one of them reports healthy (else an empty list)."""
        statuses = self.graphql(DAEMON_HEALTH)["instance"]["daemonHealth"]["allDaemonStatuses"]
        required = [s for s in statuses if s["required"]]
        return [s["daemonType"] for s in required] if all(s["healthy"] for s in required) else []

    # the webserver's GraphQL API

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
        )
        response.raise_for_status()
        payload = response.json()
        if payload.get("errors"):
            raise DeploymentError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def start_sensor(self, sensor_name: str) -> str:
        selector = {"repositoryLocationName": LOCATION_NAME, "repositoryName": "__repository__",
                    "sensorName": sensor_name}
        result = self.graphql(START_SENSOR, {"selector": selector})["startSensor"]
        if result["__typename"] != "Sensor":
            raise DeploymentError(f"startSensor answered {result}")
        return result["sensorState"]["status"]

    def asset_graph(self) -> dict[str, set[str]]:
        """Asset key (slash-joined) -> keys of its upstream assets, as the webserver serves it."""
        nodes = self.graphql(ASSET_GRAPH)["assetNodes"]
        return {
            "/".join(node["assetKey"]["path"]): {"/".join(dep["path"]) for dep in node["dependencyKeys"]}
            for node in nodes
        }

    # Dagster's tables in PostgreSQL

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with closing(self.postgres.connect(self.database)) as conn, conn.cursor() as cur:
            cur.execute(query, params or None)
            return list(cur.fetchall())

    def runs(self) -> list["RunRow"]:
        rows = self.sql(
            "SELECT r.run_id, r.pipeline_name, r.status, r.partition, "
            "COALESCE(json_object_agg(t.key, t.value) FILTER (WHERE t.key IS NOT NULL), '{}') "
            "FROM runs r LEFT JOIN run_tags t ON t.run_id = r.run_id "
            "GROUP BY r.id, r.run_id, r.pipeline_name, r.status, r.partition ORDER BY r.id"
        )
        return [RunRow(*row) for row in rows]

    def run(self, run_id: str) -> "RunRow":
        return next(r for r in self.runs() if r.run_id == run_id)

    def event_types(self, run_id: str) -> list[str]:
        rows = self.sql("SELECT dagster_event_type FROM event_logs WHERE run_id = %s ORDER BY id", (run_id,))
        return [r[0] for r in rows if r[0]]

    def materializations(self, run_id: str) -> set[tuple[str, str | None]]:
        """(asset key, partition) of the asset materializations a run stored."""
        rows = self.sql(
            "SELECT asset_key, partition FROM event_logs "
            "WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
            (run_id,),
        )
        return {("/".join(json.loads(key)), partition) for key, partition in rows}

    def asset_event_count(self, asset_key: str) -> int:
        rows = self.sql(
            "SELECT count(*) FROM event_logs WHERE asset_key = %s "
            "AND dagster_event_type IN ('ASSET_MATERIALIZATION', 'ASSET_OBSERVATION')",
            (json.dumps([asset_key]),),
        )
        return int(rows[0][0])

    def run_worker_pid(self, run_id: str) -> int | None:
        rows = self.sql(
            "SELECT event FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ENGINE_EVENT' "
            "AND event LIKE %s",
            (run_id, "%Started process for run%"),
        )
        for (event,) in rows:
            match = RUN_WORKER_PID.search(event)
            if match:
                return int(match.group(1))
        return None

    def sensor_cursor(self, sensor_name: str) -> str | None:
        rows = self.sql("SELECT instigator_body FROM instigators WHERE instigator_body LIKE %s",
                        (f'%"{sensor_name}"%',))
        for (body,) in rows:
            match = re.search(r'"cursor":\s*("(?:[^"\\]|\\.)*"|null)', body)
            if match:
                return json.loads(match.group(1))
        return None

    # the landing zone

    def landed_feed_times(self) -> list[int]:
        """Feed time (`lastUpdatedOther`/`last_updated`) of every station-status capture landed."""
        times = []
        for path in sorted((self.data_dir / "landing").rglob("*")):
            if not path.is_file() or path.name.startswith(".") or "status" not in path.name:
                continue
            body = path.read_bytes()
            if body[:2] == b"\x1f\x8b":
                body = gzip.decompress(body)
            document = json.loads(body)
            times.append(int(document.get("lastUpdatedOther") or document["last_updated"]))
        return sorted(times)


@dataclass(frozen=True)
class RunRow:
    run_id: str
    job_name: str
    status: str
    partition: str | None
    tags: dict[str, str]

    @property
    def parent_run_id(self) -> str | None:
        return self.tags.get("dagster/parent_run_id")


@contextmanager
def recorded_feed(start: datetime, step: timedelta) -> Iterator[FeedServer]:
    """The Vélib' GBFS feed recorded on 2025-10-18 (bundled sample), replayed on a local port."""
    recorded = recorded_gbfs_dir()
    status, information = recorded / "station_status.json", recorded / "station_information.json"
    with FeedServer(status, information, start, step) as feed:
        yield feed


def recorded_gbfs_dir() -> Path:
    directory = PROJECT_ROOT / "velib_assets" / "sample" / "gbfs-2025-10"
    if not (directory / "station_status.json").exists():
        raise DeploymentError(f"recorded GBFS feed missing: {directory}/station_status.json")
    return directory


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)
