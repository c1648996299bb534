"""The DAG's ``verify`` step: silver reconciled with the source, within a tolerance."""

from __future__ import annotations

from cdclake.lakehouse.configuration import LakehousePlan
from cdclake.verify.exceptions import VerifyError
from cdclake.verify.silver import TableReport


def reconcile(plan: LakehousePlan, tolerance: float = 0.0, progress=print) -> list[TableReport]:
    """Verify every silver table; fail if one differs in more than ``tolerance`` of its rows.

    Args:
        plan: the lakehouse plan.
        tolerance: fraction of a table's source rows allowed to be missing, extra or different.
        progress: receives one line per table.

    Returns:
        The per-table reports.

    Raises:
        VerifyError: naming each table over the tolerance and the fix.
    """
    from cdclake.verify.verify import verify

    report = verify(plan, gold=False, progress=progress)
    over = [t for t in report.tables if not within(t, tolerance)]
    if over:
        details = "; ".join(t.error or f"{t.table}: {differing(t)} of {t.source_rows} rows differ" for t in over)
        raise VerifyError(f"silver differs from the source beyond the tolerance of {tolerance:.2%}: {details}; "
                          "rerun the DAG, or `cdclake rebuild silver TABLE`")
    return report.tables


def differing(table: TableReport) -> int:
    return table.missing + table.extra + table.different


def within(table: TableReport, tolerance: float) -> bool:
    if table.error:
        return False
    if tolerance == 0:
        return table.ok
    return differing(table) <= tolerance * max(table.source_rows, 1)
