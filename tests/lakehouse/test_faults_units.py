"""Unit tests of the lakehouse's fault handling: the commit-conflict classifier, silver's
retry after a lost commit race, the catalog-name check, the crash points when unarmed."""

from __future__ import annotations

import dataclasses

import pytest

from cdclake.lakehouse import catalog, faults, silver
from cdclake.lakehouse.exceptions import CatalogNameError, ConcurrentCommitError
from cdclake.lakehouse.spark import commit_conflict
from tests.lakehouse.test_units import plan


class JavaThrowable:
    """What py4j hands over for a Java exception: getClass().getName(), getMessage(), getCause()."""

    def __init__(self, name: str, message: str | None = None, cause: JavaThrowable | None = None):
        self.name, self.message, self.cause = name, message, cause

    def getClass(self):  # noqa: N802 - the Java API's name
        return type("Class", (), {"getName": lambda _: self.name})()

    def getMessage(self):  # noqa: N802
        return self.message

    def getCause(self):  # noqa: N802
        return self.cause


class Py4JJavaError(Exception):
    def __init__(self, java_exception: JavaThrowable):
        super().__init__("An error occurred while calling o42.sql")
        self.java_exception = java_exception


VALIDATION = JavaThrowable("org.apache.iceberg.exceptions.ValidationException",
                           "Found conflicting files that can contain records matching true:\n[file:/x.parquet]")


def test_commit_conflict_is_found_in_the_java_cause_chain_behind_python_causes():
    wrapped = JavaThrowable("org.apache.spark.SparkException", "Writing job aborted", VALIDATION)
    try:
        try:
            raise Py4JJavaError(wrapped)
        except Py4JJavaError as inner:
            raise RuntimeError("merge failed") from inner
    except RuntimeError as outer:
        assert commit_conflict(outer) == ("ValidationException: Found conflicting files that can contain records "
                                          "matching true:")
    assert commit_conflict(Py4JJavaError(JavaThrowable("org.apache.iceberg.exceptions.CommitFailedException"))) \
        == "CommitFailedException"


def test_other_errors_are_no_commit_conflict():
    assert commit_conflict(Py4JJavaError(JavaThrowable("java.lang.OutOfMemoryError", "heap"))) is None
    assert commit_conflict(ValueError("plain")) is None


def test_silver_starts_over_after_a_lost_commit_race_then_stops_with_one_line(monkeypatch):
    ref = plan().tables[0]
    attempts = []

    def lose(times: int):
        def run_once(spark, p, r):
            attempts.append(r)
            if len(attempts) <= times:
                raise Py4JJavaError(VALIDATION)
            return silver.SilverResult(r.source, merged=False)
        return run_once

    monkeypatch.setattr(silver, "_run_once", lose(2))
    assert silver.run(None, plan(), ref).conflicts == 2 and len(attempts) == 3

    attempts.clear()
    monkeypatch.setattr(silver, "_run_once", lose(silver.COMMIT_ATTEMPTS))
    with pytest.raises(ConcurrentCommitError) as raised:
        silver.run(None, plan(), ref)
    message = str(raised.value)
    assert "\n" not in message and "another writer committed first 3 times" in message
    assert "ValidationException" in message and "one silver job per table" in message

    def broken(spark, p, r):
        raise Py4JJavaError(JavaThrowable("java.io.IOException", "disk full"))

    monkeypatch.setattr(silver, "_run_once", broken)
    with pytest.raises(Py4JJavaError):
        silver.run(None, plan(), ref)


class CatalogDatabase:
    """The JDBC catalog's database answering the check's one query with ``rows``."""

    def __init__(self, rows):
        self.rows, self.queries = rows, []

    def __call__(self, p, **kwargs):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, query, params):
        self.queries.append(params)
        return type("Cursor", (), {"fetchall": lambda _: self.rows})()


def test_a_catalog_name_that_holds_none_of_the_tables_is_refused_naming_the_one_that_does(monkeypatch):
    other = plan()
    renamed = dataclasses.replace(other, catalog=dataclasses.replace(other.catalog, name="lakehouse"))
    database = CatalogDatabase([("lake", 4)])
    monkeypatch.setattr(catalog, "connect_database", database)
    with pytest.raises(CatalogNameError) as raised:
        catalog.check_catalog_name(renamed)
    assert str(raised.value) == ("lakehouse.catalog is 'lakehouse', but the tables of namespace 'cdc_db' were "
                                 "created in catalog 'lake' (jdbc:postgresql://127.0.0.1:5/cat); set "
                                 "lakehouse.catalog: lake in pipeline.yaml")
    assert raised.value.exit_code == 2
    assert "silver_sales__orders" in database.queries[0]["tables"]


@pytest.mark.parametrize("rows", [[], [("lake", 2), ("lakehouse", 1)]])
def test_a_fresh_namespace_or_one_the_catalog_holds_passes(monkeypatch, rows):
    p = plan()
    p = dataclasses.replace(p, catalog=dataclasses.replace(p.catalog, name="lakehouse"))
    monkeypatch.setattr(catalog, "connect_database", CatalogDatabase(rows))
    catalog.check_catalog_name(p)


def test_glue_catalogs_are_not_checked(monkeypatch):
    p = plan()
    monkeypatch.setattr(catalog, "connect_database", None)  # would fail if called
    catalog.check_catalog_name(dataclasses.replace(p, catalog=dataclasses.replace(p.catalog, backend="glue")))


def test_unarmed_crash_points_do_nothing(monkeypatch):
    monkeypatch.delenv(faults.ENV, raising=False)
    faults.point("bronze.after_commit")
    with faults.commit("silver.before_commit", None, "lake.cdc_db.silver_users"):
        pass
    monkeypatch.setenv(faults.ENV, "silver.after_commit")
    faults.point("bronze.after_commit")  # another point is armed: not this one
    assert faults._split("lake.cdc_db.silver_users") == ("lake", "cdc_db", "silver_users")
