"""Errors of the lakehouse stage: each names what is wrong and the fix."""

from __future__ import annotations

from cdclake.errors import CdclakeError, ExitCode


class LakehouseError(CdclakeError):
    """A lakehouse job cannot go on."""

    exit_code = ExitCode.LAKEHOUSE

    def __init__(self, message: str, *, table: str | None = None):
        super().__init__(message)
        self.table = table


class SchemaChangeError(LakehouseError):
    """The source changed a column in a way silver cannot follow; only that table stops."""

    def __init__(self, message: str, *, table: str, column: str):
        super().__init__(message, table=table)
        self.column = column


class RefusedValueError(LakehouseError):
    """A change carries a value silver cannot hold exactly; only that table stops, nothing merged."""


class SourceTableError(LakehouseError):
    """A configured source table is missing or has no primary key."""


class WatermarkError(LakehouseError):
    """The bronze snapshot silver stopped at is gone (expired); silver must be rebuilt."""


class ConcurrentCommitError(LakehouseError):
    """Other writers kept committing the table first (Iceberg optimistic concurrency)."""


class CatalogNameError(LakehouseError):
    """lakehouse.catalog names a catalog other than the one holding the tables."""

    exit_code = ExitCode.CONFIG


class ModelError(LakehouseError):
    """A gold model file is invalid or names an unknown table."""


class ModelTestError(ModelError):
    """A gold model's data tests failed: the model was not published."""

    def __init__(self, model: str, failures: list[str]):
        super().__init__(f"{model}: {len(failures)} data test(s) failed, table left as it was: "
                         + "; ".join(failures) + "; fix the model or its data, or the test in the models' YAML",
                         table=model)
        self.model = model
        self.failures = failures


class JobsFailedError(LakehouseError):
    """Some tables failed while the others went on; carries every failure."""

    def __init__(self, failures: dict[str, str]):
        lines = "; ".join(f"{table}: {reason}" for table, reason in failures.items())
        super().__init__(f"{len(failures)} table(s) failed: {lines}")
        self.failures = failures
