"""The Iceberg catalog from Python, without a JVM: pyiceberg on the same catalog Spark uses
(``SqlCatalog`` over the JDBC catalog's tables, or Glue), so readers see what Spark wrote."""

from __future__ import annotations

from typing import Any

from cdclake.errors import NotInstalledError
from cdclake.lakehouse.configuration import LakehousePlan
from cdclake.lakehouse.exceptions import CatalogNameError, LakehouseError

# Iceberg's JdbcCatalog keys every table by the catalog's name: under another name the same
# database holds a different (empty) catalog, so each layer would silently start from scratch.
OTHER_NAMES = """SELECT catalog_name, count(*) FROM iceberg_tables
                 WHERE table_namespace = %(namespace)s AND table_name = ANY(%(tables)s)
                 GROUP BY catalog_name ORDER BY count(*) DESC, catalog_name"""


def pyiceberg_catalog(plan: LakehousePlan) -> Any:
    """A pyiceberg catalog with the same name and warehouse as Spark's.

    Raises:
        NotInstalledError: pyiceberg is missing, with the install command.
        LakehouseError: the JDBC catalog's database cannot be reached.
    """
    cat = plan.catalog
    try:
        if cat.backend == "glue":
            from pyiceberg.catalog.glue import GlueCatalog

            return GlueCatalog(cat.name, **glue_properties(cat))
        from pyiceberg.catalog.sql import SqlCatalog
    except ImportError as exc:
        raise NotInstalledError("pyiceberg is not installed; pip install 'cdclake[lakehouse]'") from exc
    from sqlalchemy.exc import OperationalError

    check_catalog_name(plan)
    try:
        return SqlCatalog(cat.name, uri=cat.sqlalchemy_url.get_secret_value(), warehouse=cat.warehouse)
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise LakehouseError(f"cannot reach the Iceberg catalog database ({cat.jdbc_url}): {reason}; "
                             "start the stack with `cdclake up`, or check lakehouse.catalog_database") from exc


def glue_properties(cat) -> dict[str, str]:
    """pyiceberg's GlueCatalog properties: the warehouse, region and endpoint overrides.

    pyarrow's S3 filesystem uses path-style URLs whenever an endpoint is overridden, so
    ``s3_path_style_access`` needs no key of its own here.
    """
    props = {"warehouse": cat.warehouse, "glue.region": cat.region, "s3.region": cat.region,
             "glue.endpoint": cat.glue_endpoint, "s3.endpoint": cat.s3_endpoint}
    return {key: value for key, value in props.items() if value}


def connect_database(plan: LakehousePlan, **kwargs) -> Any:
    """A psycopg connection to the JDBC catalog's database (``lakehouse.catalog_database``)."""
    import psycopg

    url = plan.catalog.sqlalchemy_url.get_secret_value().replace("postgresql+psycopg://", "postgresql://", 1)
    return psycopg.connect(url, connect_timeout=5, **kwargs)


def check_catalog_name(plan: LakehousePlan) -> None:
    """Refuse a JDBC catalog name that differs from the one the plan's tables were created under.

    Raises:
        CatalogNameError: none of the plan's tables exists under ``lakehouse.catalog`` while
            some exist in the same namespace under another name; names both and the fix.
    """
    cat = plan.catalog
    if cat.backend != "jdbc" or not plan.tables:
        return
    import psycopg

    tables = [name.rsplit(".", 1)[1] for ref in plan.tables for name in (ref.bronze, ref.silver, ref.tombstones)]
    try:
        with connect_database(plan, autocommit=True) as conn:
            found = dict(conn.execute(OTHER_NAMES, {"namespace": plan.namespace, "tables": tables}).fetchall())
    except psycopg.errors.UndefinedTable:
        return  # a fresh catalog database: Iceberg creates its tables on first use
    except psycopg.OperationalError:
        return  # unreachable: the caller's own connection reports it with the fix
    if found and cat.name not in found:
        other = next(iter(found))
        raise CatalogNameError(
            f"lakehouse.catalog is {cat.name!r}, but the tables of namespace {plan.namespace!r} were created in "
            f"catalog {other!r} ({cat.jdbc_url}); set lakehouse.catalog: {other} in pipeline.yaml")
