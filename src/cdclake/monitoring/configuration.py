"""``monitoring:`` in pipeline.yaml: freshness objectives, the exporter, the JMX agent.

Freshness objectives work like ``dbt source freshness``: past ``warn_after_seconds`` a
layer of a table is ``warn``, past ``error_after_seconds`` it is ``error`` and
``cdclake status`` exits non-zero. ``tables`` overrides the default per source table.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class FreshnessObjective(BaseModel):
    model_config = ConfigDict(extra="forbid")

    warn_after_seconds: float = Field(300, gt=0)
    error_after_seconds: float = Field(900, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> FreshnessObjective:
        if self.error_after_seconds < self.warn_after_seconds:
            raise ValueError("error_after_seconds must be >= warn_after_seconds")
        return self

    def evaluate(self, freshness_seconds: float | None) -> str:
        """``ok``, ``warn``, ``error``, or ``unknown`` when the layer has no data yet."""
        if freshness_seconds is None:
            return "unknown"
        if freshness_seconds > self.error_after_seconds:
            return "error"
        return "warn" if freshness_seconds > self.warn_after_seconds else "ok"


class MonitoringConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    freshness: FreshnessObjective = Field(default_factory=FreshnessObjective)
    tables: dict[str, FreshnessObjective] = Field(default_factory=dict,
                                                  description="per source table (public.users or users)")
    metrics_port: int = Field(9464, ge=1, le=65535, description="cdclake metrics serve: the exporter's port")
    dashboard_port: int = Field(8765, ge=1, le=65535, description="the dashboard's port when `up` serves it")
    serve: bool = Field(False, description="`cdclake up` also serves the dashboard and the metrics exporter in "
                                           "the background; `cdclake down` stops them")
    jmx_exporter: bool = Field(False, description="managed Kafka and Connect: attach the Prometheus JMX agent")
    jmx_port: int = Field(9404, ge=1024, le=65000, description="first JMX exporter port (broker i: +i-1, Connect: +10)")

    @field_validator("tables")
    @classmethod
    def _table_names(cls, tables: dict[str, FreshnessObjective]) -> dict[str, FreshnessObjective]:
        from cdclake.config.tables import TableId  # here: cdclake.config imports this module

        return {TableId.parse(name): objective for name, objective in tables.items()}

    def objective(self, table: str) -> FreshnessObjective:
        """The objective of a table (configured as ``public.users`` or ``users``, as source.tables)."""
        return self.tables.get(table) or self.freshness
