"""Runs inside Airflow's virtualenv (the tests run in the project's): loads the DAGs and
prints one JSON document on the last line of stdout.

    python airflow_helper.py dagbag DAGS_FOLDER
    python airflow_helper.py test CONFIG DAG_ID
"""

from __future__ import annotations

import json
import logging
import sys


class Failures(logging.Handler):
    """Collects the failure lines of cdclake's ``on_failure_callback``."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def dagbag(folder: str) -> dict:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=folder)
    return {"import_errors": {k: str(v) for k, v in bag.import_errors.items()},
            "dags": {dag_id: describe(dag) for dag_id, dag in bag.dags.items()}}


def describe(dag) -> dict:
    return {
        "schedule": str(dag.schedule), "catchup": dag.catchup, "retries": dag.default_args.get("retries"),
        "callbacks": [getattr(c, "__name__", type(c).__name__) for c in dag.default_args["on_failure_callback"]],
        "tasks": {t.task_id: {"type": type(t).__name__, "upstream": sorted(t.upstream_task_ids),
                              **({"script_location": t.script_location, "script_args": t.script_args,
                                  "job_name": t.job_name} if type(t).__name__ == "GlueJobOperator" else {}),
                              **({"op_kwargs": t.op_kwargs} if type(t).__name__ == "PythonOperator" else {})}
                  for t in dag.tasks},
    }


def run_test(config: str, dag_id: str) -> dict:
    from cdclake.orchestration.dags import build_dags

    failures = Failures()
    logging.getLogger("cdclake.orchestration").addHandler(failures)
    run = build_dags(config)[dag_id].test()
    return {"state": str(run.state), "failures": failures.messages,
            "tasks": {ti.task_id: str(ti.state) for ti in run.get_task_instances()},
            "seconds": {ti.task_id: ti.duration for ti in run.get_task_instances()}}


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    result = dagbag(*args) if mode == "dagbag" else run_test(*args)
    print(json.dumps(result, default=str))
