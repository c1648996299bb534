"""How cdclake reaches the source database as an administrator.

A managed cluster uses the superuser whose password ``up`` generated into the state dir;
an external one uses ``source.dsn`` with the password from the environment or a file.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import psycopg
from pydantic import SecretStr

from cdclake.config import Pipeline, mask_dsn, with_password


def admin_dsn(pipeline: Pipeline, database: str | None = None) -> str:
    """The source DSN without a password (safe to print)."""
    src = pipeline.source
    if src.is_managed:
        return _local(pipeline).dsn(database or src.database)
    dsn = src.dsn
    if database:
        dsn = urlsplit(dsn)._replace(path=f"/{database}").geturl()
    return dsn


def admin_password(pipeline: Pipeline) -> SecretStr | None:
    src = pipeline.source
    if src.is_managed:
        pg = _local(pipeline)
        return SecretStr(pg.password()) if pg.password_file.exists() else None
    return src.password


def _local(pipeline: Pipeline):
    # Imported here: a job on AWS Glue reaches its source by address and has no local stack.
    from cdclake.stack.postgres import LocalPostgres

    return LocalPostgres(pipeline.state_dir, pipeline.source.port)


def connect(pipeline: Pipeline, database: str | None = None, **kwargs) -> psycopg.Connection:
    """A psycopg connection to the source (or another database on the same server)."""
    password = admin_password(pipeline)
    return psycopg.connect(admin_dsn(pipeline, database),
                           password=password.get_secret_value() if password else None,
                           connect_timeout=5, **kwargs)


def connect_or_explain(pipeline: Pipeline, **kwargs) -> psycopg.Connection:
    """:func:`connect`, or a one-line SourceError naming the cause and the fix (init, check)."""
    from cdclake.source.exceptions import SourceError

    try:
        return connect(pipeline, **kwargs)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SourceError(f"cannot connect to the source database: {reason}; check source.dsn and the password "
                          "(CDCLAKE__SOURCE__PASSWORD), or run `cdclake up`") from exc


def sqlalchemy_url(pipeline: Pipeline, database: str) -> str:
    """``postgresql+psycopg://`` URL with the password, for pyiceberg's SqlCatalog. Never log it."""
    url = with_password(admin_dsn(pipeline, database), admin_password(pipeline))
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


__all__ = ["admin_dsn", "admin_password", "connect", "mask_dsn", "sqlalchemy_url"]
