"""``cdclake verify [TABLE]``: every configured table (or one), then every gold model."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from cdclake.lakehouse.catalog import pyiceberg_catalog
from cdclake.lakehouse.configuration import LakehousePlan
from cdclake.lakehouse.gold import load_project
from cdclake.monitoring.runs import record_verify
from cdclake.verify.exceptions import VerifyError
from cdclake.verify.gold import GoldReport, verify_model
from cdclake.verify.silver import TableReport, verify_table


@dataclass
class VerifyReport:
    tables: list[TableReport] = field(default_factory=list)
    gold: list[GoldReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables) and all(g.ok for g in self.gold)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "tables": [{**asdict(t), "ok": t.ok} for t in self.tables],
                "gold": [{**asdict(g), "ok": g.ok} for g in self.gold]}

    def raise_on_difference(self) -> None:
        if not self.ok:
            bad = [t.table for t in self.tables if not t.ok] + [g.model for g in self.gold if not g.ok]
            raise VerifyError(f"the lakehouse differs from the source in: {', '.join(bad)} "
                              "(details above); rerun `cdclake run all`, or `cdclake rebuild silver TABLE`")


def verify(plan: LakehousePlan, table: str | None = None, gold: bool = True, progress=print) -> VerifyReport:
    """Reconcile silver (and gold, unless one table is asked for) with the source."""
    catalog = pyiceberg_catalog(plan)
    report = VerifyReport()
    for ref in ([plan.table(table)] if table else plan.tables):
        result = _verify_isolated(plan, ref, catalog)
        report.tables.append(result)
        progress(render_table(result))
    if gold and not table:
        project = load_project(plan)
        for model in project.models.values():
            result = verify_model(plan, project, model, catalog)
            report.gold.append(result)
            progress(render_gold(result))
    if plan.state_dir is not None:
        record_verify(plan.state_dir, report.as_dict(), time.time())
    return report


def _verify_isolated(plan: LakehousePlan, ref, catalog) -> TableReport:
    """One table that cannot be read is reported as such; the others are still verified."""
    if ref.transformed:
        return TableReport(ref.source, skipped="filtered or reshaped by the stream layer (stream.inputs): silver "
                                               "holds what the stream passes, not the source table; not compared")
    try:
        return verify_table(plan, ref, catalog)
    except Exception as exc:  # any reader's error (psycopg, pyiceberg, arrow) belongs to this table only
        return TableReport(ref.source, error=f"cannot be verified: {type(exc).__name__}: {str(exc).splitlines()[0]}")


def render_table(r: TableReport) -> str:
    if r.error:
        return f"FAIL {r.table}: {r.error}"
    if r.skipped:
        return f"skip {r.table}: {r.skipped}"
    head = (f"{'ok  ' if r.ok else 'FAIL'} {r.table}: source {r.source_rows} rows, silver {r.silver_rows} rows, "
            f"missing {r.missing}, extra {r.extra}, different {r.different}")
    lines = [head] + [f"     {kind} e.g. {examples}" for kind, examples in r.examples.items() if examples]
    return "\n".join(lines)


def render_gold(r: GoldReport) -> str:
    if r.error:
        return f"FAIL {r.model}: {r.error}"
    head = f"{'ok  ' if r.ok else 'FAIL'} {r.model}: PostgreSQL {r.source_rows} rows, gold {r.gold_rows} rows"
    extra = [f"     only in PostgreSQL e.g. {r.only_in_source}"] if r.only_in_source else []
    extra += [f"     only in gold e.g. {r.only_in_gold}"] if r.only_in_gold else []
    return "\n".join([head, *extra])
