"""Apache Airflow 3 in its own virtualenv, ``.venv-airflow/`` beside the project's ``.venv/``.

Why a second virtualenv: Airflow brings ~160 packages whose bounds move with every Airflow
release; the lakehouse needs exact PySpark, pyiceberg and DuckDB pins. Kept apart, an
Airflow upgrade can never move the jobs' libraries (and vice versa), as on the reference's
Airflow EC2 host, where the jobs run elsewhere (Glue). The DAG tasks import cdclake
(health checks, job rendering), so cdclake is installed into it ``--no-deps``: its core
dependencies are in the pinned set at the project's own versions; PySpark is not, and the
Spark jobs run as child processes of the project's interpreter.

The pinned set (``airflow-requirements.txt``) replaces Airflow's constraints file, which is
not published on PyPI. A stamp records its hash: a second ``setup`` is a no-op.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from cdclake.errors import CdclakeError, ExitCode
from cdclake.orchestration.exceptions import AirflowNotInstalledError

REPO_ROOT = Path(__file__).resolve().parents[3]  # in a source checkout
REQUIREMENTS = Path(__file__).resolve().parent / "airflow-requirements.txt"
VENV = REPO_ROOT / ".venv-airflow"
STAMP = ".cdclake-installed"
PIP_TIMEOUT = 1800


class AirflowInstallError(CdclakeError):
    exit_code = ExitCode.NOT_INSTALLED


def venv_python(venv: Path = VENV) -> Path:
    return venv / "bin" / "python"


def airflow_bin(venv: Path = VENV) -> Path:
    """The ``airflow`` command of Airflow's virtualenv.

    Raises:
        AirflowNotInstalledError: the virtualenv is missing or incomplete, with the fix.
    """
    path = venv / "bin" / "airflow"
    if not path.exists() or not installed(venv):
        raise AirflowNotInstalledError(f"Airflow is not installed in {venv}; run `cdclake setup --airflow` (or `make airflow`)")
    return path


def fingerprint() -> str:
    """Hash of the pinned set and of cdclake's pyproject (either changing means reinstall)."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes())
    digest.update((REPO_ROOT / "pyproject.toml").read_bytes())
    return digest.hexdigest()[:16]


def installed(venv: Path = VENV) -> bool:
    stamp = venv / STAMP
    return stamp.exists() and stamp.read_text().strip() == fingerprint()


def ensure_airflow(progress=print, venv: Path = VENV) -> str:
    """Create ``venv`` with the pinned Airflow and cdclake (editable, no deps); idempotent.

    Returns:
        One line for setup's report.

    Raises:
        AirflowInstallError: venv or pip failed, with pip's output.
    """
    if installed(venv):
        return f"present in {venv}"
    if not venv_python(venv).exists():
        progress(f"creating Airflow's virtualenv {venv} ...")
        _run([sys.executable, "-m", "venv", str(venv)], "creating the virtualenv")
    pip = [str(venv_python(venv)), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    progress("installing Apache Airflow 3 (pinned set, a few minutes the first time) ...")
    _run([*pip, "-r", str(REQUIREMENTS)], "installing Airflow")
    _run([*pip, "--no-deps", "-e", str(REPO_ROOT)], "installing cdclake into Airflow's virtualenv")
    (venv / STAMP).write_text(fingerprint() + "\n")
    return f"installed into {venv}"


def freeze(venv: Path = VENV) -> str:
    """The venv's packages, pinned, without cdclake (to refresh ``airflow-requirements.txt``)."""
    result = subprocess.run([str(venv_python(venv)), "-m", "pip", "freeze", "--exclude-editable"],
                            capture_output=True, text=True, check=True)
    return "".join(line + "\n" for line in result.stdout.splitlines() if not line.startswith("cdclake"))


def _run(argv: list[str], what: str) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise AirflowInstallError(f"{what} took over {PIP_TIMEOUT}s; check the network to PyPI and rerun "
                                  "`cdclake setup --airflow`") from exc
    if result.returncode != 0:
        raise AirflowInstallError(f"{what} failed ({' '.join(argv[:6])} ...):\n"
                                  f"{result.stdout[-2000:]}{result.stderr[-3000:]}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--freeze"]:
        sys.stdout.write(freeze())
    else:
        print(ensure_airflow())
