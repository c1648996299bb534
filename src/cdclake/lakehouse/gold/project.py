"""The gold project: model files, their ``ref()``/``source()`` graph, and their YAML properties.

A model is ``<models_dir>/gold/<name>.sql``, one SELECT (its table is ``gold_<name>``).
Inside it, dbt's two functions name its inputs:

- ``{{ ref('user_stats') }}``: another gold model (built first; ``gold_`` may be left off);
- ``{{ source('public', 'users') }}`` or ``{{ source('users') }}``: the silver table of a
  captured source table (``{{ users }}``, the older placeholder, means the same).

Properties live beside the models in any ``*.yml`` file, in dbt's ``schema.yml`` shape::

    version: 2
    models:
      - name: gold_user_stats
        description: Order count and lifetime value of each active user.
        columns:
          - name: user_id
            data_tests: [not_null, unique]
          - name: segment
            data_tests:
              - accepted_values: {values: [VIP, Gold, Silver]}

This module only reads and checks files: it needs no Spark. An unknown ref or source,
a cycle, an unknown test: a ModelError naming the file, the line and the known names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cdclake.lakehouse.configuration import BUNDLED_MODELS, LakehousePlan
from cdclake.lakehouse.exceptions import LakehouseError, ModelError

EXPRESSION = re.compile(r"\{\{(.*?)\}\}|\{%(.*?)%\}", re.S)
REF_CALL = re.compile(r"""ref\(\s*(['"])(\w+)\1\s*\)""")
SOURCE_CALL = re.compile(r"""source\(\s*(['"])([\w$]+)\1\s*(?:,\s*(['"])([\w$]+)\3\s*)?\)""")
BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
TESTS = ("not_null", "unique", "accepted_values", "relationships")
PREFIX = "gold_"


def model_name(name: str) -> str:
    """``user_stats`` and ``gold_user_stats`` both name the model ``gold_user_stats``."""
    return name if name.startswith(PREFIX) else PREFIX + name


@dataclass(frozen=True)
class Reference:
    """One ``{{ ref(...) }}`` or ``{{ source(...) }}`` in a model, where it was written."""

    kind: str  # "ref" or "source"
    name: str  # the model (gold_x), or the source table as written (users, public.users)
    line: int
    text: str  # the whole {{ ... }}, replaced when the model renders


@dataclass(frozen=True)
class ColumnTest:
    """A data test on one column: its failing rows must be none."""

    test: str  # one of TESTS
    column: str
    values: tuple[Any, ...] = ()  # accepted_values
    to: Reference | None = None  # relationships: the parent relation ...
    field: str = ""  # ... and its column

    @property
    def label(self) -> str:
        return f"{self.test}({self.column})"


@dataclass(frozen=True)
class Model:
    name: str
    path: Path
    sql: str
    references: tuple[Reference, ...] = ()
    description: str = ""
    columns: dict[str, str] = field(default_factory=dict)  # column -> description
    tests: tuple[ColumnTest, ...] = ()

    @property
    def refs(self) -> list[str]:
        """The gold models this one reads (its tests' relationships included)."""
        found = [r.name for r in self.references if r.kind == "ref"]
        found += [t.to.name for t in self.tests if t.to is not None and t.to.kind == "ref"]
        return sorted(set(found) - {self.name})

    @property
    def inputs(self) -> list[str]:
        """The source tables this model reads directly, as written."""
        return sorted({r.name for r in self.references if r.kind == "source"})

    def table(self, plan: LakehousePlan) -> str:
        return f"{plan.catalog.name}.{plan.namespace}.{self.name}"

    def render(self, lookup: Callable[[Reference], str]) -> str:
        """The SQL with each reference replaced by ``lookup(reference)``."""
        sql = self.sql
        for reference in sorted(set(self.references), key=lambda r: -len(r.text)):
            sql = sql.replace(reference.text, lookup(reference))
        return sql


@dataclass
class Project:
    """The runnable models in dependency order, and those left out of this run (with why)."""

    models: dict[str, Model]
    skipped: dict[str, str] = field(default_factory=dict)

    def ancestors(self, name: str) -> list[str]:
        seen: list[str] = []
        stack = list(self.models[name].refs)
        while stack:
            parent = stack.pop()
            if parent not in seen:
                seen.append(parent)
                stack.extend(self.models[parent].refs)
        return seen

    def descendants(self, name: str) -> list[str]:
        return [m for m in self.models if name in self.ancestors(m)]

    def select(self, selectors: Iterable[str] = ()) -> list[Model]:
        """The models ``selectors`` name (all when none), in build order.

        ``gold_x`` (or ``x``) is that model, ``+x`` it and its ancestors, ``x+`` it and
        its descendants, as dbt's ``--select`` reads them.
        """
        selectors = list(selectors)
        if not selectors:
            return list(self.models.values())
        chosen: set[str] = set()
        for selector in selectors:
            name = self._known(selector.strip("+"))
            chosen.add(name)
            if selector.startswith("+"):
                chosen.update(self.ancestors(name))
            if selector.endswith("+"):
                chosen.update(self.descendants(name))
        return [m for m in self.models.values() if m.name in chosen]

    def _known(self, name: str) -> str:
        name = model_name(name)
        if name in self.models:
            return name
        if name in self.skipped:
            raise ModelError(f"gold model {name} cannot run: {self.skipped[name]}")
        raise ModelError(f"unknown gold model {name!r} in --select; models: {', '.join(sorted(self.models)) or 'none'}")


def load_project(plan: LakehousePlan) -> Project:
    """Every model of ``<models_dir>/gold``, checked, in dependency order.

    Raises:
        ModelError: no models folder, an unknown ref/source/test, a cycle, a bad YAML file.
    """
    folder = plan.models_dir / "gold"
    if not folder.is_dir():
        raise ModelError(f"no gold models: {folder} does not exist; set lakehouse.models_dir to a folder "
                         "holding gold/<model>.sql files")
    models = _parse_models(folder)
    models = _with_properties(models, folder)
    for model in models.values():
        _check_refs(model, models)
    skipped = _unavailable(plan, models)
    order = _build_order(models)
    runnable = {n: models[n] for n in order if n not in skipped}
    return Project(runnable, skipped)


def _parse_models(folder: Path) -> dict[str, Model]:
    models: dict[str, Model] = {}
    for path in sorted(folder.glob("*.sql")):
        sql = _strip(path)
        model = Model(model_name(path.stem), path, sql, _references(path, sql), _leading_comment(path))
        if model.name in models:
            raise ModelError(f"{path} and {models[model.name].path} are both model {model.name}; rename one")
        if not model.references:
            raise ModelError(f"{path}: names no input; refer to silver tables as {{{{ source('users') }}}} "
                             "and to other models as {{ ref('model') }}")
        models[model.name] = model
    return models


def _strip(path: Path) -> str:
    """The SQL without ``--`` comment lines (blanked, so line numbers stay) or a final ``;``."""
    lines = path.read_text().rstrip().rstrip(";").splitlines()
    return "\n".join("" if line.lstrip().startswith("--") else line for line in lines)


def _leading_comment(path: Path) -> str:
    lines = []
    for line in path.read_text().splitlines():
        if not line.lstrip().startswith("--"):
            break
        lines.append(line.lstrip()[2:].strip())
    return " ".join(lines)


def _references(path: Path, sql: str) -> tuple[Reference, ...]:
    found = []
    for match in EXPRESSION.finditer(sql):
        line = sql.count("\n", 0, match.start()) + 1
        found.append(parse_reference(match.group(0), line, where=f"{path}:{line}"))
    return tuple(found)


def parse_reference(text: str, line: int = 0, where: str = "") -> Reference:
    """``{{ ref('x') }}``, ``{{ source('s', 't') }}``, ``{{ source('t') }}`` or ``{{ t }}``."""
    inner = text.strip()[2:-2].strip()
    if text.strip().startswith("{%"):
        raise ModelError(f"{where}: {text.strip()} is not supported: gold models take {{{{ ref('model') }}}} and "
                         "{{ source('schema', 'table') }} only (no Jinja blocks)")
    if match := REF_CALL.fullmatch(inner):
        return Reference("ref", model_name(match.group(2)), line, text)
    if match := SOURCE_CALL.fullmatch(inner):
        name = f"{match.group(2)}.{match.group(4)}" if match.group(4) else match.group(2)
        return Reference("source", name, line, text)
    if BARE_NAME.fullmatch(inner):
        return Reference("source", inner, line, text)
    raise ModelError(f"{where}: cannot read {text.strip()}; write {{{{ ref('model') }}}} or "
                     "{{ source('schema', 'table') }}")


def _check_refs(model: Model, models: dict[str, Model]) -> None:
    references = [*model.references, *(t.to for t in model.tests if t.to is not None)]
    for reference in references:
        if reference.kind == "ref" and reference.name not in models:
            where = f"{model.path}:{reference.line}" if reference.line else str(model.path)
            raise ModelError(f"{where}: model {model.name} refs unknown model {reference.name!r}; "
                             f"known models: {', '.join(sorted(models))}")


def _unavailable(plan: LakehousePlan, models: dict[str, Model]) -> dict[str, str]:
    """Models left out of this run: their source tables are not in it (and their descendants)."""
    skipped: dict[str, str] = {}
    for model in models.values():
        references = [*model.references, *(t.to for t in model.tests if t.to is not None)]
        missing = [r for r in references if r.kind == "source" and not _in_plan(plan, r.name)]
        for reference in missing:
            if not _configured(plan, reference.name) and plan.models_dir != BUNDLED_MODELS:
                known = ", ".join(plan.configured_tables or [r.source for r in plan.tables]) or "none"
                where = f"{model.path}:{reference.line}" if reference.line else str(model.path)
                raise ModelError(f"{where}: model {model.name} reads unknown source {reference.name!r}; "
                                 f"configured tables (source.tables): {known}")
        if missing:
            skipped[model.name] = (f"its source table(s) {', '.join(sorted({r.name for r in missing}))} are not "
                                   "in this run (source.tables, or -t)")
    changed = True
    while changed:  # a model reading a skipped model is skipped too
        changed = False
        for model in models.values():
            late = [r for r in model.refs if r in skipped]
            if late and model.name not in skipped:
                skipped[model.name] = f"it refs {', '.join(late)}, which cannot run: {skipped[late[0]]}"
                changed = True
    return skipped


def _in_plan(plan: LakehousePlan, name: str) -> bool:
    try:
        plan.table(name)
        return True
    except LakehouseError:
        return False


def _configured(plan: LakehousePlan, name: str) -> bool:
    """``name`` is one of the pipeline's tables, though perhaps not one this run selected."""
    return any(name in (source, source.name if source.schema == "public" else source)
               for source in plan.configured_tables)


def _build_order(models: dict[str, Model]) -> list[str]:
    """Parents before children (ties by name); a cycle is an error naming it."""
    order: list[str] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            cycle = visiting[visiting.index(name):] + [name]
            raise ModelError(f"gold models form a cycle: {' -> '.join(cycle)}; remove one of these ref()s")
        visiting.append(name)
        for parent in models[name].refs:
            visit(parent)
        visiting.pop()
        order.append(name)

    for name in sorted(models):
        visit(name)
    return order


# --- properties (schema.yml) -------------------------------------------------------------

def _with_properties(models: dict[str, Model], folder: Path) -> dict[str, Model]:
    result = dict(models)
    for path in sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")]):
        for entry in _yaml_models(path):
            name = model_name(str(entry.get("name", "")))
            if name not in result:
                raise ModelError(f"{path}: describes unknown model {entry.get('name')!r}; "
                                 f"models: {', '.join(sorted(models))}")
            result[name] = _described(result[name], entry, path)
    return result


def _yaml_models(path: Path) -> list[dict]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ModelError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from exc
    entries = data.get("models", []) if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and e.get("name") for e in entries):
        raise ModelError(f"{path}: expected `models:` as a list of entries with a `name` (dbt's schema.yml shape)")
    return entries


def _described(model: Model, entry: dict, path: Path) -> Model:
    columns, tests = {}, []
    for column in entry.get("columns") or []:
        name = str(column.get("name", ""))
        columns[name] = str(column.get("description", ""))
        for spec in column.get("data_tests", column.get("tests")) or []:
            tests.append(_column_test(spec, name, f"{path}: model {model.name} column {name}"))
    return Model(model.name, model.path, model.sql, model.references,
                 str(entry.get("description") or model.description), columns, tuple(tests))


def _column_test(spec: Any, column: str, where: str) -> ColumnTest:
    name, args = (spec, {}) if isinstance(spec, str) else (next(iter(spec), None), next(iter(spec.values()), {}))
    if name not in TESTS or (isinstance(spec, dict) and len(spec) != 1):
        raise ModelError(f"{where}: unknown test {spec!r}; known tests: {', '.join(TESTS)}")
    args = (args or {}).get("arguments", args or {})  # dbt 1.10 nests them under arguments:
    if name == "accepted_values":
        if not args.get("values"):
            raise ModelError(f"{where}: accepted_values needs `values: [...]`")
        return ColumnTest(name, column, values=tuple(args["values"]))
    if name == "relationships":
        if not args.get("to") or not args.get("field"):
            raise ModelError(f"{where}: relationships needs `to: ref('model')` (or source('table')) and `field:`")
        return ColumnTest(name, column, to=parse_reference("{{ " + str(args["to"]) + " }}", where=where),
                          field=str(args["field"]))
    return ColumnTest(name, column)
