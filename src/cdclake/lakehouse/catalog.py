"""The Iceberg catalog from Python, without a JVM: pyiceberg on the same catalog Spark uses
(``SqlCatalog`` over the JDBC catalog's tables, or Glue), so readers see what Spark wrote."""

from __future__ import annotations

from typing import Any

from cdclake.errors import NotInstalledError
from cdclake.lakehouse.configuration import LakehousePlan
from cdclake.lakehouse.exceptions import LakehouseError


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
