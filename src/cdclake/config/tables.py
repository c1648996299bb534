"""A captured table's identity, and the one place its every other name is derived from.

A :class:`TableId` is the (schema, name) pair exactly as PostgreSQL spells it, parsed once
from ``source.tables`` (or a ``-t`` argument) by PostgreSQL's own rules: parts split at
dots outside double quotes, a quoted part taken verbatim (``""`` is one ``"``), an unquoted
part folded to lower case, a missing schema is ``public``. Its text is PostgreSQL's
spelling (``sales."Sales Lines"``), so messages can print it and SQL can use it.

Downstream names derive from it here only (docs/lakehouse.md, "Table names"):

- :func:`lake_name`: the Iceberg/Glue name stem (``silver_<stem>``, the bronze checkpoint):
  ``[a-z0-9_]`` only, and different for any two tables;
- :func:`topic_name`: ``<prefix>.<stem>``, the Kafka topic cdclake routes the table to;
- :func:`include_pattern`: the table as a Debezium ``table.include.list`` regex.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

DEFAULT_SCHEMA = "public"
MAX_TOPIC_LENGTH = 249  # Kafka's limit
# Words PostgreSQL's quote_ident() quotes (pg_get_keywords() with catcode <> 'U', PostgreSQL 15).
KEYWORDS = frozenset("""
all analyse analyze and any array as asc asymmetric authorization between bigint binary bit boolean both case
cast char character check coalesce collate collation column concurrently constraint create cross current_catalog
current_date current_role current_schema current_time current_timestamp current_user dec decimal default
deferrable desc distinct do else end except exists extract false fetch float for foreign freeze from full grant
greatest group grouping having ilike in initially inner inout int integer intersect interval into is isnull join
lateral leading least left like limit localtime localtimestamp national natural nchar none normalize not notnull
null nullif numeric offset on only or order out outer overlaps overlay placing position precision primary real
references returning right row select session_user setof similar smallint some substring symmetric table
tablesample then time timestamp to trailing treat trim true union unique user using values varchar variadic
verbose when where window with xmlattributes xmlconcat xmlelement xmlexists xmlforest xmlnamespaces xmlparse
xmlpi xmlroot xmlserialize xmltable""".split())
PLAIN_SQL = re.compile(r"[a-z_][a-z0-9_]*")
UNQUOTED = re.compile(r"[^\W\d][\w$]*")  # PostgreSQL: a letter or _ first, then letters, digits, _ or $
PLAIN_LAKE = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")  # no leading, trailing or doubled _
SCHEMA_SEPARATOR = "__"


class TableNameError(ValueError):
    """``source.tables`` (or a ``-t`` argument) names a table PostgreSQL could not parse."""


class TableId(str):
    """A table as PostgreSQL names it: ``schema`` and ``name`` verbatim; as text, its SQL spelling.

    Example:
        >>> t = TableId.parse('sales."Sales Lines"')
        >>> t.schema, t.name, str(t)
        ('sales', 'Sales Lines', 'sales."Sales Lines"')
        >>> TableId.parse("Users") == "public.users"
        True
    """

    schema: str
    name: str

    def __new__(cls, schema: str, name: str) -> TableId:
        if not schema or not name:
            raise TableNameError(f"empty schema or table name in {schema!r}.{name!r}")
        self = super().__new__(cls, f"{quote(schema)}.{quote(name)}")
        self.schema, self.name = schema, name
        return self

    def __reduce__(self):  # copy and pickle rebuild from the parts, not the text
        return TableId, (self.schema, self.name)

    @classmethod
    def parse(cls, text: str) -> TableId:
        """``schema.table`` or ``table`` (schema ``public``), quoted parts as in SQL.

        Raises:
            TableNameError: not one or two identifiers, naming the problem and how to write it.
        """
        if isinstance(text, TableId):
            return text
        parts = split_identifiers(text)
        if len(parts) == 1:
            return cls(DEFAULT_SCHEMA, parts[0])
        if len(parts) == 2:
            return cls(*parts)
        raise TableNameError(f"table {text!r} has {len(parts)} dot-separated parts; write schema.table, and "
                             "put a name holding a dot in double quotes: sales.\"a.b\"")


def quote(identifier: str) -> str:
    """PostgreSQL's ``quote_ident``: the identifier as is when it needs no quotes, else quoted."""
    if PLAIN_SQL.fullmatch(identifier) and identifier not in KEYWORDS:
        return identifier
    return '"' + identifier.replace('"', '""') + '"'


def split_identifiers(text: str) -> list[str]:
    """``a."B.c"`` -> ``['a', 'B.c']``: dots outside quotes split, unquoted parts fold to lower case."""
    parts, i = [], 0
    while True:
        if text.startswith('"', i):
            part, i = _quoted(text, i)
        else:
            end = text.find(".", i)
            end = len(text) if end < 0 else end
            part, i = _unquoted(text, text[i:end]), end
        parts.append(part)
        if i == len(text):
            return parts
        if text[i] != ".":
            raise TableNameError(f"table {text!r}: unexpected {text[i]!r} after a quoted name; "
                                 "separate schema and table with a dot")
        i += 1


def split_list(text: str) -> list[str]:
    """``users,sales."a,b"`` -> ``['users', 'sales."a,b"']``: a comma-separated list of tables,
    commas inside double quotes kept (the job script's ``--tables``)."""
    return [t.strip() for t in re.split(r',(?=(?:[^"]*"[^"]*")*[^"]*$)', text) if t.strip()]


def _quoted(text: str, start: int) -> tuple[str, int]:
    out, i = [], start + 1
    while i < len(text):
        if text[i] == '"':
            if text.startswith('""', i):
                out.append('"')
                i += 2
                continue
            if not out:
                raise TableNameError(f"table {text!r}: a quoted name cannot be empty")
            return "".join(out), i + 1
        out.append(text[i])
        i += 1
    raise TableNameError(f"table {text!r}: a double quote is not closed")


def _unquoted(text: str, part: str) -> str:
    if not UNQUOTED.fullmatch(part):
        raise TableNameError(
            f"table {text!r}: {part!r} is not a plain identifier; write it in double quotes as PostgreSQL "
            f"does (in YAML: - '{_suggest(text)}')")
    # PostgreSQL folds only ASCII letters of an unquoted name in a multibyte encoding.
    return part.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _suggest(text: str) -> str:
    if "." in text and '"' not in text and text.count(".") == 1:
        schema, name = text.split(".")
        return f'{schema}."{name}"' if UNQUOTED.fullmatch(schema) else f'"{schema}"."{name}"'
    return '"' + text.replace('"', '""') + '"'


def lake_name(table: TableId) -> str:
    """The stem of the table's Iceberg names: ``users`` for public.users, ``sales__orders`` for
    sales.orders, ``sales__sales_lines_1f0e3dad`` for sales."Sales Lines".

    A part that is a plain lower-case name (``[a-z0-9]`` words joined by single ``_``) is kept
    as is; any other part becomes its readable ASCII form plus ``_`` and 8 hex digits of the
    SHA-256 of the exact name. A schema other than public comes first, joined by ``__``,
    which no part contains: so two tables get one stem only if two different quoted names
    share 32 hash bits, and :func:`check_unique` refuses that at config load.
    """
    table = TableId.parse(table)  # a no-op for a TableId; text is read as source.tables reads it
    stem = _lake_part(table.name)
    return stem if table.schema == DEFAULT_SCHEMA else f"{_lake_part(table.schema)}{SCHEMA_SEPARATOR}{stem}"


def _lake_part(identifier: str) -> str:
    if PLAIN_LAKE.fullmatch(identifier):
        return identifier
    ascii_text = unicodedata.normalize("NFKD", identifier.casefold()).encode("ascii", "ignore").decode()
    readable = "_".join(re.findall(r"[a-z0-9]+", ascii_text)) or "t"
    return f"{readable}_{hashlib.sha256(identifier.encode()).hexdigest()[:8]}"


def topic_name(prefix: str, table: TableId) -> str:
    """``<prefix>.<lake_name>``: the table's topic (``cdc.users``, ``cdc.sales__orders``).

    One segment after the prefix, whatever dots the prefix or the names hold; and, the stem
    being unique and dot-free, no two tables' topics collide even where Kafka treats ``.``
    and ``_`` alike.
    """
    return f"{prefix}.{lake_name(table)}"


def include_pattern(table: TableId) -> str:
    r"""The table as a Debezium ``table.include.list`` / signal ``data-collections`` regex.

    Debezium matches ``schema.table`` against comma-separated, trimmed, case-insensitive
    patterns; so the pattern turns case-sensitivity on (``(?-i)``) and writes every
    character but ASCII letters, digits and ``_`` as ``\x{hex}``: no comma, blank or
    metacharacter is ever literal. The schema and name are joined by ``\.``.

    Example:
        >>> include_pattern(TableId("sales", "Sales Lines"))
        '(?-i)sales\\.Sales\\x{20}Lines'
    """
    table = TableId.parse(table)
    return f"(?-i){regex_literal(table.schema)}\\.{regex_literal(table.name)}"


def from_include_pattern(pattern: str) -> TableId:
    """The table an :func:`include_pattern` (or a plain ``re.escape``\\ d ``schema\\.table``) names."""
    body = pattern.removeprefix("(?-i)")
    schema, name = re.split(r"(?<!\\)\\\.", body, maxsplit=1) if re.search(r"(?<!\\)\\\.", body) \
        else body.split(".", 1)
    return TableId(_unescape(schema), _unescape(name))


def regex_literal(identifier: str) -> str:
    """``identifier`` as a Java regex matching exactly it, with no literal comma, blank or metacharacter."""
    return "".join(c if c.isascii() and (c.isalnum() or c == "_") else f"\\x{{{ord(c):x}}}" for c in identifier)


def _unescape(text: str) -> str:
    text = re.sub(r"\\x\{([0-9a-fA-F]+)\}", lambda m: chr(int(m.group(1), 16)), text)
    return re.sub(r"\\(.)", r"\1", text)


def check_unique(tables: list[TableId], topic_prefix: str | None = None) -> None:
    """Refuse two tables that would share a lake name, or (given the prefix) a topic too long for Kafka.

    Raises:
        TableNameError: naming both tables and the fix.
    """
    seen: dict[str, TableId] = {}
    for table in tables:
        stem = lake_name(table)
        if stem in seen and seen[stem] != table:
            raise TableNameError(f"tables {seen[stem]} and {table} would both be stored as {stem!r}; "
                                 "rename one of them in PostgreSQL (ALTER TABLE ... RENAME TO ...)")
        seen[stem] = table
        topic = topic_name(topic_prefix, table) if topic_prefix is not None else ""
        if len(topic) > MAX_TOPIC_LENGTH:
            raise TableNameError(f"table {table}: its topic {topic} is longer than Kafka's {MAX_TOPIC_LENGTH} "
                                 "characters; shorten kafka.topic_prefix or the table's name")
