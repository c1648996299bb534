"""``cdclake cost``: the reference's monthly cost table, computed from pipeline.yaml's sizing.

Every line carries its arithmetic, so a reader can check it by hand; prices come from the
dated table in ``prices.yaml`` (each with its source page). Where the reference's own
figure differs from the computation by more than 5 %, the result says so and why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cdclake.config import Pipeline
from cdclake.deploy.exceptions import DeployError

BUNDLED_PRICES = Path(__file__).resolve().parent / "prices.yaml"
MSK, SELF = "msk", "self_managed"
HOURLY_JOBS = ("bronze", "silver", "gold", "verify")
RUNS_PER_HOUR = {"@hourly": 1.0, "@daily": 1 / 24, "@weekly": 1 / 168}
CROSS_AZ_SHARE = 2 / 3  # with 3 AZs, a consumer's partition leader sits in another AZ 2 times in 3
AIRFLOW_ROOT_GB = 50
TOLERANCE = 0.05


@dataclass(frozen=True)
class Prices:
    region: str
    hours: float
    values: dict[str, float]
    sources: dict[str, str]
    reference: dict[str, dict[str, float]]

    def __getitem__(self, key: str) -> float:
        if key not in self.values:
            raise DeployError(f"no price {key!r} in the price table; add it to prices.yaml "
                              "(or the file given with --prices) with its source and date", key=key)
        return self.values[key]


@dataclass
class Line:
    component: str
    option: str           # msk, self_managed or both
    amount: float
    arithmetic: str
    reference: float | None = None
    note: str = ""


@dataclass
class Estimate:
    region: str
    lines: list[Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def total(self, option: str) -> float:
        return sum(line.amount for line in self.lines if line.option in (option, "both"))

    def as_dict(self) -> dict[str, Any]:
        return {"region": self.region, "lines": [asdict(line) for line in self.lines],
                "total": {MSK: round(self.total(MSK), 2), SELF: round(self.total(SELF), 2)}, "notes": self.notes}


def load_prices(path: str | Path | None = None) -> Prices:
    """The price table (the bundled one by default).

    Raises:
        DeployError: the file is missing or a price lacks its value, source or date.
    """
    path = Path(path) if path else BUNDLED_PRICES
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise DeployError(f"cannot read the price table {path}: {exc.strerror}; check deploy.cost.price_file") from exc
    for key, price in raw["prices"].items():
        if not {"value", "source", "date"} <= set(price):
            raise DeployError(f"{path}: price {key} needs value, source and date", key=key)
    return Prices(raw["region"], float(raw["hours_per_month"]),
                  {k: float(p["value"]) for k, p in raw["prices"].items()},
                  {k: f"{p['source']} ({p['date']})" for k, p in raw["prices"].items()}, raw.get("reference", {}))


def estimate(pipeline: Pipeline, prices: Prices) -> Estimate:
    """The monthly cost of MSK and of the self-managed layout, line by line."""
    result = Estimate(prices.region)
    for build in (_brokers, _storage, _transfer, _debezium, _glue, _airflow, _management):
        result.lines += build(pipeline, prices)
    result.notes += _storage_notes(pipeline)
    result.notes += _total_notes(result, prices)
    return result


def _ref(prices: Prices, component: str, option: str) -> float | None:
    return prices.reference.get(component, {}).get(option)


def _brokers(pipeline: Pipeline, prices: Prices) -> list[Line]:
    aws, cost, h = pipeline.deploy.aws, pipeline.deploy.cost, prices.hours
    ec2_key = "ec2_" + aws.kafka_instance_type.replace(".", "_")
    msk = cost.msk_brokers * prices["msk_kafka_m5_large"] * h
    ec2 = 3 * prices[ec2_key] * h
    return [
        Line("brokers", MSK, msk, f"{cost.msk_brokers} x kafka.m5.large x ${prices['msk_kafka_m5_large']}/h x {h:g} h",
             _ref(prices, "brokers", MSK)),
        Line("brokers", SELF, ec2, f"3 x {aws.kafka_instance_type} x ${prices[ec2_key]}/h x {h:g} h",
             _ref(prices, "brokers", SELF)),
    ]


def _stored_gb(pipeline: Pipeline) -> float:
    return pipeline.deploy.cost.retained_tb * 1000 * pipeline.deploy.aws.kafka_replication_factor


def _storage(pipeline: Pipeline, prices: Prices) -> list[Line]:
    cost, rf = pipeline.deploy.cost, pipeline.deploy.aws.kafka_replication_factor
    gb = _stored_gb(pipeline)
    how = f"{cost.retained_tb:g} TB x 1000 GB x RF {rf} = {gb:g} GB"
    return [
        Line("storage", MSK, gb * prices["msk_storage"], f"{how} x ${prices['msk_storage']}/GB-month",
             _ref(prices, "storage", MSK)),
        Line("storage", SELF, gb * prices["ebs_gp3"], f"{how} x ${prices['ebs_gp3']}/GB-month gp3",
             _ref(prices, "storage", SELF)),
    ]


def _transfer(pipeline: Pipeline, prices: Prices) -> list[Line]:
    produced, rf = pipeline.deploy.cost.produced_gb, pipeline.deploy.aws.kafka_replication_factor
    rate = prices["cross_az_transfer"]
    consume = produced * CROSS_AZ_SHARE * rate
    replicate = produced * (rf - 1) * rate
    reads = f"{produced:g} GB x 2/3 cross-AZ reads x ${rate}/GB"
    return [
        Line("transfer", MSK, consume, f"{reads} (MSK replication traffic is free)", _ref(prices, "transfer", MSK)),
        Line("transfer", SELF, consume + replicate, f"{reads} + {produced:g} GB x {rf - 1} replicas x ${rate}/GB",
             _ref(prices, "transfer", SELF)),
    ]


def _debezium(pipeline: Pipeline, prices: Prices) -> list[Line]:
    aws, h = pipeline.deploy.aws, prices.hours
    vcpu, gb = aws.connect_cpu / 1024, aws.connect_memory / 1024
    per_hour = vcpu * prices["fargate_vcpu"] + gb * prices["fargate_memory"]
    return [Line("debezium", "both", aws.connect_tasks * per_hour * h,
                 f"{aws.connect_tasks} tasks x ({vcpu:g} vCPU x ${prices['fargate_vcpu']} + {gb:g} GB x "
                 f"${prices['fargate_memory']}) x {h:g} h", note="not in the reference's table")]


def _runs_per_hour(schedule: str, key: str) -> float:
    if schedule not in RUNS_PER_HOUR:
        raise DeployError(f"cdclake cost knows the schedules {', '.join(RUNS_PER_HOUR)}, not {schedule!r}; "
                          f"set {key} to one of them for the estimate", key=key)
    return RUNS_PER_HOUR[schedule]


def _glue(pipeline: Pipeline, prices: Prices) -> list[Line]:
    airflow, minutes, h = pipeline.airflow, pipeline.deploy.cost.glue_job_minutes, prices.hours
    workers = airflow.aws.number_of_workers
    runs = (len(HOURLY_JOBS) * _runs_per_hour(airflow.schedule, "airflow.schedule")
            + _runs_per_hour(airflow.maintenance_schedule, "airflow.maintenance_schedule")) * h
    dpu_hours = runs * workers * minutes / 60
    return [Line("glue", "both", dpu_hours * prices["glue_dpu"],
                 f"{runs:.1f} runs x {workers} DPU x {minutes:g} min / 60 = {dpu_hours:.1f} DPU-h x "
                 f"${prices['glue_dpu']}", note="not in the reference's table")]


def _airflow(pipeline: Pipeline, prices: Prices) -> list[Line]:
    itype, h = pipeline.deploy.aws.airflow_instance_type, prices.hours
    key = "ec2_" + itype.replace(".", "_")
    amount = prices[key] * h + AIRFLOW_ROOT_GB * prices["ebs_gp3"]
    return [Line("airflow", "both", amount,
                 f"1 x {itype} x ${prices[key]}/h x {h:g} h + {AIRFLOW_ROOT_GB} GB gp3 x ${prices['ebs_gp3']}",
                 note="not in the reference's table")]


def _management(pipeline: Pipeline, prices: Prices) -> list[Line]:
    ref = _ref(prices, "management", SELF)
    return [Line("management", SELF, 0.0, "operator time is not priced here", ref,
                 "the reference adds $200/month of your time for self-managed Kafka")]


def _storage_notes(pipeline: Pipeline) -> list[str]:
    aws = pipeline.deploy.aws
    provisioned, needed = 3 * aws.kafka_volume_gb, _stored_gb(pipeline)
    if provisioned >= needed:
        return []
    per_node = -(-needed // 3)
    return [f"deploy.aws.kafka_volume_gb {aws.kafka_volume_gb} gives 3 x {aws.kafka_volume_gb} = {provisioned:g} GB, "
            f"less than the {needed:g} GB that {pipeline.deploy.cost.retained_tb:g} TB at RF "
            f"{aws.kafka_replication_factor} needs: set kafka_volume_gb to {per_node:g} or lower deploy.cost.retained_tb"]


def _total_notes(result: Estimate, prices: Prices) -> list[str]:
    notes = [_differs(line) for line in result.lines if _differs(line)]
    for option in (MSK, SELF):
        ref = _ref(prices, "total", option)
        if ref:
            notes.append(f"total {option}: computed ${result.total(option):,.0f} vs the reference's ${ref:,.0f}; "
                         "the reference leaves out Debezium, Glue and Airflow")
    return notes


def _differs(line: Line) -> str:
    if line.reference is None or abs(line.amount - line.reference) <= TOLERANCE * max(line.reference, 1):
        return ""
    why = {("brokers", MSK): "3 x kafka.m5.large at $0.21/h is $460; the reference's $1,200 is 2.6 times that",
           ("storage", MSK): "the reference stores 6 TB once; brokers keep RF copies",
           ("storage", SELF): "the reference stores 6 TB once; brokers keep RF copies",
           ("transfer", MSK): "MSK does not bill replication; only cross-AZ consumer reads remain",
           ("transfer", SELF): "self-managed pays cross-AZ replication, so it costs more than MSK here, not less",
           ("management", SELF): "labour, not an AWS price"}.get((line.component, line.option), "")
    return (f"{line.component} {line.option}: computed ${line.amount:,.2f} vs the reference's "
            f"${line.reference:,.0f}" + (f" ({why})" if why else ""))


def render_table(result: Estimate) -> str:
    """The table for humans: one row per line with its arithmetic, totals, then the differences."""
    rows = [f"monthly cost, {result.region} on-demand list prices (cdclake/deploy/prices.yaml)", ""]
    rows += [f"{line.component:<11} {_label(line.option):<13} ${line.amount:>10,.2f}  {line.arithmetic}"
             for line in result.lines]
    rows += ["", f"{'total':<11} {'MSK':<13} ${result.total(MSK):>10,.2f}",
             f"{'total':<11} {'self-managed':<13} ${result.total(SELF):>10,.2f}"]
    if result.notes:
        rows += ["", "notes (sizing, and where the reference's figures differ):"] + [f"  - {note}" for note in result.notes]
    return "\n".join(rows)


def _label(option: str) -> str:
    return {MSK: "MSK", SELF: "self-managed", "both": "both"}[option]
