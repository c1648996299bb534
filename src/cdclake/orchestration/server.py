"""``cdclake airflow up | down``: a local Apache Airflow 3 that runs our DAGs.

Three daemons from Airflow's own virtualenv, supervised like the rest of the stack (pid
files under ``.cdclake/run/``, so ``cdclake down`` stops them too): the api-server (UI and
REST API, and the execution API the tasks report to), the scheduler (LocalExecutor), and
the dag-processor, which Airflow 3 runs apart from the scheduler to parse DAG files.

The metadata database is SQLite in ``.cdclake/airflow/`` or, with
``airflow.metadata_db: postgres``, a database ``airflow`` on the stack's PostgreSQL.
The login is ``admin`` with a password generated once into ``.cdclake/airflow/``.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cdclake.config import Pipeline
from cdclake.install import airflow as install
from cdclake.orchestration.dags import CONFIG_ENV
from cdclake.orchestration.exceptions import OrchestrationError
from cdclake.orchestration.jobs import JOB_PYTHON_ENV, REPO_ROOT
from cdclake.stack import process
from cdclake.stack.stack import stop_pidfiles

DAGS_FOLDER = REPO_ROOT / "dags"
USER = "admin"
COMPONENTS = ("api-server", "scheduler", "dag-processor")
READY_TIMEOUT = 180.0
MIGRATE_TIMEOUT = 600
Progress = Callable[[str], None]


@dataclass
class LocalAirflow:
    """Where the local Airflow of a pipeline keeps its state, and how its daemons are run."""

    pipeline: Pipeline

    @property
    def home(self) -> Path:
        return self.pipeline.state_dir / "airflow"

    @property
    def port(self) -> int:
        return self.pipeline.airflow.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def passwords_file(self) -> Path:
        return self.home / "passwords.json"

    def password(self) -> str:
        """The ``admin`` password, generated on first use (0600, never in the config)."""
        if not self.passwords_file.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            self.passwords_file.write_text(json.dumps({USER: secrets.token_urlsafe(12)}))
            self.passwords_file.chmod(0o600)
        return json.loads(self.passwords_file.read_text())[USER]

    def _secret(self, name: str) -> str:
        path = self.home / name
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def metadata_url(self) -> str:
        """SQLAlchemy URL of Airflow's metadata database (holds a password: never log it)."""
        if self.pipeline.airflow.metadata_db == "sqlite":
            return f"sqlite:///{self.home / 'airflow.db'}"
        from cdclake.source import connection

        if not self.pipeline.source.is_managed:
            raise OrchestrationError("airflow.metadata_db: postgres uses the stack's managed PostgreSQL, but "
                                     "source is external; use metadata_db: sqlite")
        with connection.connect(self.pipeline, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = 'airflow'").fetchone() is None:
                conn.execute("CREATE DATABASE airflow")
        return connection.sqlalchemy_url(self.pipeline, "airflow")

    def env(self) -> dict[str, str]:
        """Airflow's configuration, as ``AIRFLOW__SECTION__KEY`` variables (no airflow.cfg edits)."""
        import os

        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "VIRTUAL_ENV"))}
        return {
            **base,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.metadata_url(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API_AUTH__JWT_SECRET": self._secret("jwt_secret"),
            "AIRFLOW__API__SECRET_KEY": self._secret("api_secret"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
            CONFIG_ENV: str(self.pipeline.path.resolve()),
            JOB_PYTHON_ENV: sys.executable,
        }

    def daemons(self, env: dict[str, str] | None = None) -> list[process.Daemon]:
        """The api-server, scheduler and dag-processor, in start order."""
        airflow = str(install.airflow_bin())
        run, logs = self.pipeline.state_dir / "run", self.pipeline.state_dir / "logs"
        extra = {"api-server": ["--host", "127.0.0.1", "--port", str(self.port)]}
        return [process.Daemon(name=f"airflow-{c}", argv=[airflow, c, *extra.get(c, [])], log=logs / f"airflow-{c}.log",
                               pidfile=run / f"airflow-{c}.pid", ports=[self.port] if c == "api-server" else [],
                               env=env, cwd=self.home) for c in COMPONENTS]

    def health(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as resp:
            return json.load(resp)

    def component_healthy(self, component: str) -> bool:
        key = {"api-server": "metadatabase", "scheduler": "scheduler", "dag-processor": "dag_processor"}[component]
        return self.health().get(key, {}).get("status") == "healthy"


@dataclass
class AirflowReport:
    url: str
    user: str
    password: str
    started: list[str] = field(default_factory=list)
    already_running: list[str] = field(default_factory=list)
    dags_folder: str = str(DAGS_FOLDER)


def up(pipeline: Pipeline, progress: Progress = print) -> AirflowReport:
    """Migrate the metadata database, start the three daemons, wait until healthy.

    Idempotent: running daemons are left alone. A failed ``up`` stops what it started.

    Raises:
        AirflowNotInstalledError: Airflow's virtualenv is missing (run ``cdclake setup --airflow``).
        StartTimeoutError, ComponentDiedError: a daemon did not become healthy (with its log).
    """
    local = LocalAirflow(pipeline)
    install.airflow_bin()
    env = local.env()
    report = AirflowReport(url=local.url, user=USER, password=local.password())
    daemons = local.daemons(env)
    if not all(process.running_pid(d.pidfile) for d in daemons):
        migrate(local, env, progress)
    try:
        for daemon in daemons:
            _start(local, daemon, report, progress)
    except BaseException:
        stop_pidfiles([d.pidfile for d in daemons if d.name in report.started], progress)
        raise
    return report


def migrate(local: LocalAirflow, env: dict[str, str], progress: Progress) -> None:
    """``airflow db migrate`` (creates or upgrades the metadata database; idempotent)."""
    progress("migrating Airflow's metadata database ...")
    local.home.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([str(install.airflow_bin()), "db", "migrate"], env=env, cwd=local.home,
                            capture_output=True, text=True, timeout=MIGRATE_TIMEOUT)
    if result.returncode != 0:
        raise OrchestrationError(f"`airflow db migrate` failed:\n{(result.stdout + result.stderr)[-3000:]}")


def _start(local: LocalAirflow, daemon: process.Daemon, report: AirflowReport, progress: Progress) -> None:
    if process.running_pid(daemon.pidfile):
        report.already_running.append(daemon.name)
        return
    component = daemon.name.removeprefix("airflow-")
    progress(f"starting {daemon.name} ...")
    pid = process.start(daemon)
    report.started.append(daemon.name)
    seconds = process.wait_ready(daemon, pid, lambda: local.component_healthy(component), READY_TIMEOUT,
                                 f"{component} healthy at {local.url}/api/v2/monitor/health")
    progress(f"{daemon.name} ready in {seconds:.1f}s (log: {daemon.log})")


def down(pipeline: Pipeline, progress: Progress = print) -> list[str]:
    """Stop the daemons ``up`` started; returns their names."""
    run = pipeline.state_dir / "run"
    return stop_pidfiles([run / f"airflow-{c}.pid" for c in COMPONENTS], progress)


def status(pipeline: Pipeline) -> dict:
    """Each daemon's state and, when the api-server answers, Airflow's own health report."""
    local = LocalAirflow(pipeline)
    run = pipeline.state_dir / "run"
    out: dict = {"url": local.url, **{c: "up" if process.running_pid(run / f"airflow-{c}.pid") else "down"
                                      for c in COMPONENTS}}
    try:
        out["health"] = {k: v.get("status") for k, v in local.health().items() if isinstance(v, dict)}
    except (urllib.error.URLError, OSError, ValueError):
        pass
    return out

