"""The ``stream:`` section of pipeline.yaml: the optional stream-processing layer.

Kept free of heavy imports (no Kafka client): ``cdclake.config.models`` imports it, and
the CLI must start fast. Example (the reference's Kafka Streams step)::

    stream:
      enabled: true
      tables:
        departments: {topic: cdc.departments}
      inputs:
        - topic: cdc.users
          steps:
            - filter: {op: [c]}
            - enrich: {table: departments, key: department_id, fields: [name], prefix: department_}
            - route: [{to: bronze.users}]
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

TOPIC = re.compile(r"^[A-Za-z0-9._-]+$")
HOOK = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
OPS = ("r", "c", "u", "d")


def _check_hook(value: str | None) -> str | None:
    if value is not None and not HOOK.match(value):
        raise ValueError(f"hook {value!r} must be 'package.module:function'")
    return value


# A hook named by function path, checked for the ``module:function`` shape where it is declared.
HookPath = Annotated[str | None, AfterValidator(_check_hook)]


class _Model(BaseModel):
    # Unknown keys are rejected: a typo must never pass silently.
    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)


def _check_topic(value: str) -> str:
    if not TOPIC.match(value) or len(value) > 249:
        raise ValueError(f"topic {value!r} is not a valid Kafka topic name (letters, digits, '.', '_', '-')")
    return value


class Condition(_Model):
    """One test on a column; a list of conditions holds when all of them hold.

    Exactly one comparison is given: ``{column: salary, gt: 1000}``.
    """

    column: str
    eq: Any = None
    ne: Any = None
    gt: Any = None
    ge: Any = None
    lt: Any = None
    le: Any = None
    in_: list[Any] | None = Field(None, alias="in")
    not_in: list[Any] | None = None
    is_null: bool | None = None

    @model_validator(mode="after")
    def _one_comparison(self) -> Condition:
        given = [name for name in self.comparisons() if name in self.model_fields_set]
        if len(given) != 1:
            raise ValueError(f"condition on {self.column!r} needs exactly one of "
                             "eq, ne, gt, ge, lt, le, in, not_in, is_null")
        return self

    @staticmethod
    def comparisons() -> tuple[str, ...]:
        return ("eq", "ne", "gt", "ge", "lt", "le", "in_", "not_in", "is_null")

    @property
    def comparison(self) -> tuple[str, Any]:
        """The (operator, operand) pair that was given."""
        for name in self.comparisons():
            if name in self.model_fields_set:
                return name, getattr(self, name)
        raise AssertionError("validated to have one comparison")


class FilterStep(_Model):
    """Keep only events whose op is listed and whose columns satisfy every condition."""

    op: list[Literal["r", "c", "u", "d"]] | None = Field(None, description="keep these Debezium ops")
    where: list[Condition] = Field(default_factory=list)
    hook: HookPath = Field(None, description="module:function(value) -> bool, for what `where` cannot say")

    @model_validator(mode="after")
    def _something(self) -> FilterStep:
        if self.op is None and not self.where and self.hook is None:
            raise ValueError("filter needs op, where or hook")
        return self


class EnrichStep(_Model):
    """Left join each event with a table kept from another CDC topic (KTable semantics)."""

    table: str = Field(description="a name under stream.tables")
    key: list[str] = Field(description="event column(s) matching the table's primary key, in key order")
    fields: list[str] | None = Field(None, description="table columns to add (default: all but __ metadata)")
    prefix: str | None = Field(None, description="prefix of the added columns (default: '<table>_')")

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: Any) -> Any:
        if isinstance(data, dict) and True in data:
            raise ValueError("YAML reads the key `on` as true; name the join column(s) with `key:` instead")
        return data

    @field_validator("key", mode="before")
    @classmethod
    def _as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ProjectStep(_Model):
    """Keep, drop and rename columns. Debezium's ``__`` metadata is kept unless listed in drop."""

    keep: list[str] | None = None
    drop: list[str] = Field(default_factory=list)
    rename: dict[str, str] = Field(default_factory=dict)
    keep_metadata: bool = True


class Route(_Model):
    """Send the event to ``to`` when every condition holds (no condition: always)."""

    to: str
    when: list[Condition] = Field(default_factory=list)

    @field_validator("to")
    @classmethod
    def _topic(cls, value: str) -> str:
        return _check_topic(value)


class Step(_Model):
    """One step of a chain: exactly one of filter, enrich, project, hook, route."""

    filter: FilterStep | None = None
    enrich: EnrichStep | None = None
    project: ProjectStep | None = None
    hook: HookPath = Field(None, description="module:function(value) -> value | None (None drops it)")
    route: list[Route] | None = Field(None, description="first matching route wins; unmatched are filtered")

    @model_validator(mode="after")
    def _exactly_one(self) -> Step:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"a step is exactly one of filter, enrich, project, hook, route (got {given or 'none'})")
        return self

    @property
    def kind(self) -> str:
        return next(name for name in type(self).model_fields if getattr(self, name) is not None)

    @property
    def spec(self) -> Any:
        return getattr(self, self.kind)


class Input(_Model):
    """A ``cdc.<table>`` topic and its chain of steps.

    Without a route step, events go to ``<output_prefix>.<table>`` (``cdc.users`` → ``bronze.users``).
    """

    topic: str
    steps: list[Step] = Field(default_factory=list)

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        return _check_topic(value)

    @property
    def routes(self) -> list[Route]:
        for step in self.steps:
            if step.route is not None:
                return step.route
        return []


class TableConfig(_Model):
    """A table materialized from a CDC topic, the right side of enrich joins."""

    topic: str

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        return _check_topic(value)


class StreamConfig(_Model):
    """The stream processor run by ``cdclake stream``."""

    enabled: bool = Field(False, description="when on, bronze reads the output topics (bronze.*) instead of cdc.*")
    group_id: str = "cdclake-stream"
    instance_id: str | None = Field(
        None, description="stable id of one process (static group membership, transactional.id); "
                          "usually given as `cdclake stream --instance-id`")
    processing_guarantee: Literal["at-least-once", "exactly-once"] = "at-least-once"
    output_prefix: str = "bronze"
    dead_letter_topic: str = "cdclake.stream.dlq"
    changelog_prefix: str | None = Field(None, description="default: '<group_id>.' ; changelog '<prefix><table>-changelog'")
    commit_interval_ms: int = Field(1000, ge=10)
    batch_size: int = Field(1000, ge=1, le=100_000)
    session_timeout_ms: int = Field(10_000, ge=6000)
    transaction_timeout_ms: int = Field(10_000, ge=1000)
    metrics_interval_ms: int = Field(2000, ge=100)
    tables: dict[str, TableConfig] = Field(default_factory=dict)
    inputs: list[Input] = Field(default_factory=list)

    @field_validator("group_id", "dead_letter_topic", "output_prefix")
    @classmethod
    def _names(cls, value: str) -> str:
        return _check_topic(value)

    @model_validator(mode="after")
    def _references(self) -> StreamConfig:
        for item in self.inputs:
            for step in item.steps:
                if step.enrich and step.enrich.table not in self.tables:
                    known = ", ".join(self.tables) or "none"
                    raise ValueError(f"input {item.topic}: enrich table {step.enrich.table!r} is not declared "
                                     f"under stream.tables (declared: {known}); add it there")
            kinds = [step.kind for step in item.steps]
            if "route" in kinds and kinds.index("route") != len(kinds) - 1:
                raise ValueError(f"input {item.topic}: route must be the last step")
        topics = [item.topic for item in self.inputs]
        if len(set(topics)) != len(topics):
            raise ValueError("each input topic may appear once; put all its steps in one chain")
        if self.enabled and not self.inputs:
            raise ValueError("stream.enabled is true but no stream.inputs are given; add one or disable the layer")
        return self

    def default_output(self, topic: str) -> str:
        """``cdc.users`` → ``bronze.users``: a table topic's last segment (its lake name, which
        holds no dot, config/tables.py) after ``output_prefix``, whatever dots the CDC prefix holds."""
        return f"{self.output_prefix}.{topic.rsplit('.', 1)[-1]}"

    def changelog_topic(self, table: str) -> str:
        prefix = self.changelog_prefix if self.changelog_prefix is not None else f"{self.group_id}."
        return f"{prefix}{table}-changelog"

    def input_for(self, topic: str) -> Input | None:
        return next((item for item in self.inputs if item.topic == topic), None)

    def bronze_topic(self, topic: str) -> str:
        """The topic bronze reads for a table whose CDC topic is ``topic``.

        An input's single route target, or among several the default ``<output_prefix>.<table>``;
        a table the processor does not read goes to bronze straight from its CDC topic.

        Raises:
            ValueError: the input routes to several topics, none of them the default.
        """
        item = self.input_for(topic)
        if item is None:
            return topic
        targets = list(dict.fromkeys(route.to for route in item.routes)) or [self.default_output(topic)]
        if len(targets) == 1 or self.default_output(topic) in targets:
            return targets[0] if len(targets) == 1 else self.default_output(topic)
        raise ValueError(f"stream input {topic} routes to {', '.join(targets)}; bronze reads one topic per table: "
                         f"route the table's events to {self.default_output(topic)} (or to one topic)")

    def transforms(self, topic: str) -> bool:
        """Whether bronze gets less or other than the source's changes for this CDC topic: a filter,
        project or hook step, or a route with conditions. (An enrich step only adds columns.)"""
        item = self.input_for(topic)
        if item is None:
            return False
        kinds = {step.kind for step in item.steps}
        return bool(kinds & {"filter", "project", "hook"}) or any(route.when for route in item.routes) \
            or len({route.to for route in item.routes}) > 1

    def output_topics(self) -> list[str]:
        """Every topic the processor may write events to (what bronze reads when the layer is on)."""
        out: list[str] = []
        for item in self.inputs:
            targets = [route.to for route in item.routes] or [self.default_output(item.topic)]
            out.extend(t for t in targets if t not in out)
        return out
