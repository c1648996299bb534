"""The Iceberg catalog from Python, without a JVM: pyiceberg on the same catalog Spark uses
(``SqlCatalog`` over the JDBC catalog's tables, or Glue), so readers see what Spark wrote."""

from __future__ import annotations

from typing import Any

from cdclake.errors import NotInstalledError
from cdclake.lakehouse.configuration import LakehousePlan


def pyiceberg_catalog(plan: LakehousePlan) -> Any:
    """A pyiceberg catalog with the same name and warehouse as Spark's.

    Raises:
        NotInstalledError: pyiceberg is missing, with the install command.
    """
    cat = plan.catalog
    try:
        if cat.backend == "glue":
            from pyiceberg.catalog.glue import GlueCatalog

            props = {"warehouse": cat.warehouse}
            if cat.region:
                props.update({"glue.region": cat.region, "s3.region": cat.region})
            return GlueCatalog(cat.name, **props)
        from pyiceberg.catalog.sql import SqlCatalog
    except ImportError as exc:
        raise NotInstalledError("pyiceberg is not installed; pip install 'cdclake[lakehouse]'") from exc
    return SqlCatalog(cat.name, uri=cat.sqlalchemy_url.get_secret_value(), warehouse=cat.warehouse)
