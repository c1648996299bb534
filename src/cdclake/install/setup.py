"""``cdclake setup``: everything cdclake needs on a fresh machine, idempotently.

- the PostgreSQL server and Prometheus (for ``promtool``), from Debian's packages, if missing;
- the JVM engines, resolved by Maven from the pinned poms into ``~/.cache/cdclake/jvm``;
- the Python extras for the lakehouse (PySpark, pyiceberg, DuckDB), from PyPI;
- with ``--airflow`` only, Apache Airflow into its own virtualenv (``.venv-airflow``).

After the first run everything comes from caches: a second run makes no network call.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from cdclake.errors import CdclakeError, NotInstalledError
from cdclake.install import jvm
from cdclake.stack.postgres import PG_VERSION, pg_bin

PYTHON_EXTRAS = {"pyspark": "pyspark", "pyiceberg": "pyiceberg", "duckdb": "duckdb"}


def run_setup(progress=print, airflow: bool = False) -> dict[str, str]:
    """Install what the pipeline needs; Airflow (its own virtualenv, the longest step) only if asked."""
    report = {"postgresql": ensure_postgres(progress), "promtool": ensure_promtool(progress)}
    jvm.java_bin()
    for engine in jvm.ENGINES:
        fetched = jvm.resolve(engine, progress)
        report[f"jars.{engine}"] = f"{'fetched into' if fetched else 'cached in'} {jvm.ENGINES[engine].jars}"
    report["python"] = ensure_python_extras(progress)
    if not airflow:
        report["airflow"] = "skipped (cdclake setup --airflow, or make airflow, installs it)"
        return report
    from cdclake.install.airflow import ensure_airflow

    report["airflow"] = ensure_airflow(progress)
    return report


def ensure_postgres(progress=print) -> str:
    try:
        return f"present ({pg_bin('postgres')})"
    except NotInstalledError:
        pass
    apt_install(f"postgresql-{PG_VERSION}", progress)
    return f"installed ({pg_bin('postgres')})"


def ensure_promtool(progress=print) -> str:
    """``promtool`` (Debian's ``prometheus`` package): validates and unit-tests the alert rules."""
    if shutil.which("promtool"):
        return f"present ({shutil.which('promtool')})"
    apt_install("prometheus", progress)
    return f"installed ({shutil.which('promtool')})"


def apt_install(package: str, progress=print) -> None:
    """Install one Debian package with apt-get (root only), without starting its service.

    Raises:
        NotInstalledError: not root or no apt-get, with the command to run.
        CdclakeError: apt-get failed, with its output.
    """
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise NotInstalledError(f"{package} is missing; install it with "
                                f"`sudo apt-get install -y {package}` and rerun setup")
    progress(f"installing {package} from Debian's packages ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"],
                 ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]):
        result = subprocess.run(argv, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise CdclakeError(f"{' '.join(argv)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")


def ensure_python_extras(progress=print) -> str:
    missing = [mod for mod in PYTHON_EXTRAS if importlib.util.find_spec(mod) is None]
    if not missing:
        return "lakehouse extras present"
    root = Path(__file__).resolve().parents[3]
    if not (root / "pyproject.toml").exists():
        raise NotInstalledError(f"missing Python packages {', '.join(missing)}; "
                                "pip install 'cdclake[lakehouse]'")
    progress(f"installing Python extras ({', '.join(missing)}) with pip ...")
    result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", f"{root}[lakehouse]"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise CdclakeError(f"pip could not install the lakehouse extras:\n{result.stderr[-3000:]}")
    return "lakehouse extras installed"
