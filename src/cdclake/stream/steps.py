"""Compile the configured steps into plain functions and run them as a chain.

A step function takes an event value (the decoded Debezium row, a dict) and returns the
value to pass on, or ``None`` to drop it (counted as *filtered*). An exception inside a
step marks the event as poison: the processor sends it to the dead-letter topic.

Example:
    >>> from cdclake.stream.configuration import Input
    >>> chain = Chain(Input(topic="cdc.users", steps=[{"filter": {"op": ["c"]}}]),
    ...               default_output="bronze.users", tables={})
    >>> chain.process(b'{"id": 1, "__op": "c"}')
    ('bronze.users', b'{"id": 1, "__op": "c"}')
    >>> chain.process(b'{"id": 1, "__op": "u"}') is None
    True
"""

from __future__ import annotations

import importlib
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from cdclake.stream.codec import Getter, columns_decoder, dict_getter, encoder, object_decoder
from cdclake.stream.configuration import Condition, EnrichStep, FilterStep, Input, ProjectStep, Route, Step
from cdclake.stream.exceptions import HookError, StepFailedError

Value = dict[str, Any]
StepFn = Callable[[Value], Value | None]
Predicate = Callable[[Value], bool]

# Indexes into a step's counter list (a list, not an object: this is the hot path).
IN, OUT, FILTERED, FAILED = range(4)
COUNTER_NAMES = ("in", "out", "filtered", "failed")

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "ge": operator.ge,
    "lt": operator.lt, "le": operator.le,
    "in_": lambda value, options: value in options,
    "not_in": lambda value, options: value not in options,
}


class Lookup(Protocol):
    """The right side of an enrich join: a table's current row for a primary key."""

    def get(self, key: tuple) -> Mapping[str, Any] | None: ...


def load_hook(path: str) -> Callable[..., Any]:
    """Import ``package.module:function``.

    Raises:
        HookError: the module or the function does not exist.
    """
    module_name, _, name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HookError(f"hook {path}: cannot import module {module_name} ({exc}); "
                        "install it or put it on PYTHONPATH", hook=path) from exc
    function = getattr(module, name, None)
    if not callable(function):
        raise HookError(f"hook {path}: module {module_name} has no function {name}", hook=path)
    return function


def condition(cond: Condition, getter: Callable[[str], Getter] = dict_getter) -> Predicate:
    """A predicate for one condition. A null column only satisfies eq/ne/is_null (SQL-like)."""
    get = getter(cond.column)
    name, operand = cond.comparison
    if name == "is_null":
        return lambda value: (get(value) is None) is operand
    compare = _COMPARE[name]
    if name in ("eq", "ne"):
        return lambda value: compare(get(value), operand)

    def check(value: Any) -> bool:
        current = get(value)
        return current is not None and compare(current, operand)

    return check


def all_of(conditions: list[Condition], getter: Callable[[str], Getter] = dict_getter) -> Predicate:
    predicates = [condition(c, getter) for c in conditions]
    if len(predicates) == 1:
        return predicates[0]
    return lambda value: all(p(value) for p in predicates)


def filter_step(spec: FilterStep, getter: Callable[[str], Getter] = dict_getter) -> StepFn:
    predicates: list[Predicate] = []
    if spec.op is not None:
        ops = frozenset(spec.op)
        get_op = getter("__op")
        predicates.append(lambda value: get_op(value) in ops)
    if spec.where:
        predicates.append(all_of(spec.where, getter))
    if spec.hook:
        hook = load_hook(spec.hook)
        predicates.append(lambda value: bool(hook(value)))
    if len(predicates) == 1:
        only = predicates[0]
        return lambda value: value if only(value) else None
    return lambda value: value if all(p(value) for p in predicates) else None


class Enricher:
    """Left join: the table's columns (prefixed) are added; null when no row matches.

    Called with a value it adds the columns to it. :meth:`suffix` gives the same columns
    as JSON members to append to the input bytes, cached per table row (a row object is
    replaced, never changed, when the table is updated).
    """

    def __init__(self, spec: EnrichStep, table: Lookup, encode: Callable[[Any], bytes],
                 getter: Callable[[str], Getter] = dict_getter):
        getters = [getter(column) for column in spec.key]
        self._key = (lambda value, get=getters[0]: (get(value),)) if len(getters) == 1 else (
            lambda value: tuple(get(value) for get in getters))
        self.prefix = spec.prefix if spec.prefix is not None else f"{spec.table}_"
        self.fields = spec.fields
        self._lookup = table.get
        self._encode = encode
        self._suffixes: dict[tuple, tuple[Any, bytes]] = {}

    @property
    def added(self) -> list[str] | None:
        """The columns added, or None when they depend on the row (``fields`` not given)."""
        return None if self.fields is None else [self.prefix + field for field in self.fields]

    def __call__(self, value: Value) -> Value:
        row = self._lookup(self._key(value))
        if self.fields is not None:
            for field in self.fields:
                value[self.prefix + field] = None if row is None else row.get(field)
        elif row is not None:
            for field, column_value in row.items():
                if not field.startswith("__"):
                    value[self.prefix + field] = column_value
        return value

    def suffix(self, value: Value) -> bytes:
        """``,"<prefix><field>":<value>...`` for the row joined to ``value`` (needs ``fields``)."""
        key = self._key(value)
        row = self._lookup(key)
        cached = self._suffixes.get(key)
        if cached is not None and cached[0] is row:
            return cached[1]
        members = {self.prefix + field: None if row is None else row.get(field) for field in self.fields}
        suffix = b"," + self._encode(members)[1:-1] if members else b""
        self._suffixes[key] = (row, suffix)
        return suffix


def project_step(spec: ProjectStep) -> StepFn:
    keep = spec.keep
    drop = frozenset(spec.drop)
    rename = dict(spec.rename)
    keep_metadata = spec.keep_metadata

    def project(value: Value) -> Value:
        if keep is not None:
            out = {k: value[k] for k in keep if k in value}
            if keep_metadata:
                out.update((k, v) for k, v in value.items() if k.startswith("__"))
        else:
            out = value
        out = {k: v for k, v in out.items() if k not in drop} if drop else out
        return {rename.get(k, k): v for k, v in out.items()} if rename else out

    return project


def hook_step(path: str) -> StepFn:
    hook = load_hook(path)

    def run_hook(value: Value) -> Value | None:
        result = hook(value)
        if result is not None and not isinstance(result, dict):
            raise TypeError(f"hook {path} returned {type(result).__name__}; return a dict or None")
        return result

    return run_hook


def router(routes: list[Route], default: str,
           getter: Callable[[str], Getter] = dict_getter) -> Callable[[Value], str | None]:
    """The topic of the first route whose conditions hold; no routes: the default output."""
    if not routes:
        return lambda value: default
    table = [(all_of(r.when, getter) if r.when else None, r.to) for r in routes]

    def route(value: Value) -> str | None:
        for predicate, topic in table:
            if predicate is None or predicate(value):
                return topic
        return None

    return route


class Chain:
    """The compiled steps of one input topic, with their counters.

    Two ways to run an event, same results and counters:

    * on the whole decoded value (any chain): :meth:`run`;
    * on the referenced columns alone, when every step is a filter without hook, an
      enrich with ``fields``, or a route: the input bytes are forwarded with the joined
      columns appended, and nothing else is decoded or encoded (:attr:`columns` is set).

    Attributes:
        topic: the input topic.
        names: the step names, e.g. ``["1:filter", "2:enrich", "3:route"]``.
        rewrites: whether a step changes the value (else the input bytes are forwarded).
        columns: the columns the column path needs, or None when it does not apply.
    """

    def __init__(self, spec: Input, default_output: str, tables: Mapping[str, Lookup]):
        self.topic = spec.topic
        encode = encoder()
        kinds = [step for step in spec.steps if step.kind != "route"]
        self.names = [f"{n}:{step.kind}" for n, step in enumerate(kinds, 1)]
        self.names.append(f"{len(self.names) + 1}:route")
        self.functions = [_compile(step, tables, encode, dict_getter) for step in kinds]
        self.route = router(spec.routes, default_output)
        self.rewrites = any(step.kind in ("enrich", "project", "hook") for step in spec.steps)
        self.columns = _columns(spec)
        self._decode_object = object_decoder()
        self._encode = encode
        self._fast = self.columns is not None
        if self._fast:
            self._column_decode, self._appenders, self._column_route, self._collides = self._column_path(
                spec, default_output, kinds, tables, encode)
        # Per step, the events it dropped and the events it failed; "in" and "out" follow
        # from them and the number that passed every step (one increment per event).
        self.filtered = [0] * len(self.names)
        self.failed = [0] * len(self.names)
        self.passed = 0

    def _column_path(self, spec: Input, default_output: str, kinds: list[Step], tables: Mapping[str, Lookup],
                     encode: Callable[[Any], bytes]) -> tuple:
        """``(decode, step functions, route, collision check)`` working on the referenced columns."""
        decode, getter = columns_decoder(self.columns)
        functions = [_compile(step, tables, encode, getter) for step in kinds]
        appenders = [fn.suffix if isinstance(fn, Enricher) else fn for fn in functions]
        added = [name for fn in functions if isinstance(fn, Enricher) for name in fn.added or []]
        collides = re.compile(b'"(?:' + b"|".join(re.escape(n.encode()) for n in added) + b')"').search \
            if added else None
        return decode, appenders, router(spec.routes, default_output, getter), collides

    def process(self, raw: bytes) -> tuple[str, bytes] | None:
        """Decode an event value, run the chain, and give the output topic and bytes.

        Returns:
            ``(topic, value bytes)``, or None when a step dropped the event.

        Raises:
            StepFailedError: the value is not a JSON object, or a step raised.
        """
        if self._fast and len(raw) > 2 and raw[-1] == 0x7D and raw[-2] not in b"{ \t\r\n" \
                and not (self._collides and self._collides(raw)):
            return self._run_columns(raw)
        result = self.run(self._decode(self._decode_object, raw))
        if result is None:
            return None
        topic, value = result
        return topic, (self._encode(value) if self.rewrites else raw)

    def run(self, value: Value) -> tuple[str, Value] | None:
        """Run every step on the whole value, then route.

        Returns:
            ``(topic, value)``, or None when a step dropped the event.

        Raises:
            StepFailedError: a step raised; the event is poison.
        """
        index = 0
        try:
            for index, function in enumerate(self.functions):
                value = function(value)
                if value is None:
                    self.filtered[index] += 1
                    return None
            index = len(self.functions)
            topic = self.route(value)
        except Exception as exc:  # noqa: BLE001 - any error of a user step makes the event poison, never a crash
            raise self._fail(index, exc) from exc
        return None if self._dropped(topic) else (topic, value)

    def _run_columns(self, raw: bytes) -> tuple[str, bytes] | None:
        try:
            record = self._column_decode(raw)
        except ValueError as exc:  # as in _decode()
            raise self.fail_decode(exc) from exc
        suffix = b""
        index = 0
        try:
            for index, function in enumerate(self._appenders):
                result = function(record)
                if result is None:
                    self.filtered[index] += 1
                    return None
                if result is not record:
                    suffix += result
            index = len(self._appenders)
            topic = self._column_route(record)
        except Exception as exc:  # noqa: BLE001 - as in run()
            raise self._fail(index, exc) from exc
        if self._dropped(topic):
            return None
        return topic, (raw[:-1] + suffix + b"}" if suffix else raw)

    def _decode(self, decode: Callable[[bytes], Any], raw: bytes) -> Any:
        try:
            return decode(raw)
        except ValueError as exc:  # msgspec's DecodeError, JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise self.fail_decode(exc) from exc

    def _dropped(self, topic: str | None) -> bool:
        if topic is None:
            self.filtered[-1] += 1
            return True
        self.passed += 1
        return False

    def _fail(self, index: int, exc: Exception) -> StepFailedError:
        self.failed[index] += 1
        return StepFailedError(self.names[index], exc)

    def fail_decode(self, cause: BaseException) -> StepFailedError:
        """Count an undecodable event as failed in the first step and wrap the error."""
        self.failed[0] += 1
        return StepFailedError("decode", cause)

    @property
    def counters(self) -> list[list[int]]:
        """Per step ``[in, out, filtered, failed]``."""
        rows = []
        entered = self.passed + sum(self.filtered) + sum(self.failed)
        for filtered, failed in zip(self.filtered, self.failed):
            rows.append([entered, entered - filtered - failed, filtered, failed])
            entered -= filtered + failed
        return rows

    def snapshot(self) -> list[dict[str, Any]]:
        """The counters as JSON-ready rows."""
        return [{"step": name, **dict(zip(COUNTER_NAMES, count))} for name, count in zip(self.names, self.counters)]


def _columns(spec: Input) -> list[str] | None:
    """The columns the chain reads, when it can run on them alone (the column path)."""
    columns: list[str] = []
    for step in spec.steps:
        if step.kind == "filter" and step.filter.hook is None:
            columns += (["__op"] if step.filter.op is not None else []) + [c.column for c in step.filter.where]
        elif step.kind == "enrich" and step.enrich.fields is not None:
            columns += step.enrich.key
        elif step.kind == "route":
            columns += [c.column for route in step.route for c in route.when]
        else:
            return None
    return list(dict.fromkeys(columns))


def _compile(step: Step, tables: Mapping[str, Lookup], encode: Callable[[Any], bytes],
             getter: Callable[[str], Getter]) -> StepFn:
    kind, spec = step.kind, step.spec
    if kind == "filter":
        return filter_step(spec, getter)
    if kind == "enrich":
        return Enricher(spec, tables[spec.table], encode, getter)
    if kind == "project":
        return project_step(spec)
    if kind == "hook":
        return hook_step(spec)
    raise AssertionError(f"unknown step kind {kind}")
