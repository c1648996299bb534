"""Exporter overhead: bench.capture on a stack without, then with, the monitoring exporters.

    python -m bench.monitoring [-c pipeline.yaml] [--rows 50000]

Same run, same config: (1) ``cdclake up`` without the JMX agents, ``bench.capture``,
``down --purge``; (2) ``up`` with ``monitoring.jmx_exporter`` on, ``cdclake metrics serve``
and a real Prometheus scraping the exporter and both agents every 5 s, ``bench.capture``,
``down --purge``. Prints each run's Debezium rate, its ratio to pg_recvlogical on the same
WAL (which normalises machine load), p99 latency, and with/without ratios. The config's
stack must not be running; its ports must be free.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from cdclake.config import load


def cdclake(config: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "cdclake", "-c", str(config), *args], check=True)


def capture(config: Path, rows: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.capture", "-c", str(config), "--rows", str(rows),
                          "--latency-seconds", "10"], capture_output=True, text=True, check=True).stdout
    docs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {k: v for doc in docs for k, v in doc.items()}


def variant(source: Path, directory: Path, jmx: bool) -> Path:
    doc = yaml.safe_load(source.read_text()) or {}
    doc.setdefault("monitoring", {})["jmx_exporter"] = jmx
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def prometheus(config: Path, work: Path) -> subprocess.Popen:
    mon = load(config).monitoring
    targets = [mon.metrics_port, mon.jmx_port, mon.jmx_port + 10]
    (work / "prom.yml").write_text(json.dumps({
        "global": {"scrape_interval": "5s", "scrape_timeout": "5s"},
        "scrape_configs": [{"job_name": f"t{port}", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                           for port in targets]}))
    return subprocess.Popen(["prometheus", f"--config.file={work / 'prom.yml'}", f"--storage.tsdb.path={work / 'tsdb'}",
                             "--web.listen-address=127.0.0.1:0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run(config: Path, rows: int, monitored: bool, work: Path) -> dict:
    cdclake(config, "up")
    helpers = []
    try:
        if monitored:
            helpers = [subprocess.Popen([sys.executable, "-m", "cdclake", "-c", str(config), "metrics", "serve"]),
                       prometheus(config, work)]
            time.sleep(10)
        return capture(config, rows)
    finally:
        for proc in helpers:
            proc.terminate()
            proc.wait(timeout=30)
        cdclake(config, "down", "--purge")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default="pipeline.yaml")
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cdclake-bench-mon-"))
    work.chmod(0o755)  # PostgreSQL runs as the postgres user and must enter the state dir
    try:
        results = {name: run(variant(Path(args.config), work / name, jmx), args.rows, jmx, work / name)
                   for name, jmx in (("without", False), ("with", True))}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results), flush=True)
    bare, mon = results["without"], results["with"]
    for name, res in results.items():
        print(f"{name:>7} exporters: Debezium {res['capture']['debezium_rate']:,} changes/s, ratio to pg_recvlogical "
              f"{res['capture']['ratio']}, p99 {res['latency_at_80pct']['p99_ms']} ms")
    print(f"with/without: rate {mon['capture']['debezium_rate'] / bare['capture']['debezium_rate']:.2f}, "
          f"pg_recvlogical-normalised {mon['capture']['ratio'] / bare['capture']['ratio']:.2f}")
