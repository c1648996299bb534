"""``cdclake load``: an honest, open-loop workload on the demo tables.

Open loop: transaction *i* is due at ``start + ops_before_i / rate`` whatever happened
before it, so a slow database makes the generator fall behind (reported as lag); it never
lowers the offered load. The mix holds every case CDC pipelines get wrong: multi-row
transactions, the same row updated twice in one transaction, primary-key updates,
TOASTed values changed or left alone, NULLs, unicode, extreme numerics, and deletes of
rows inserted moments before. Deterministic for a seed.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from cdclake.config import Pipeline
from cdclake.progress import Meter
from cdclake.source import DEFAULT_SEED, connection
from cdclake.source.demo import DEPARTMENTS, EXTREME_PRICES, STATUSES, RowGenerator


@dataclass(frozen=True)
class Change:
    """One committed row change, as the source saw it (the ground truth for tests)."""

    table: str
    op: str  # c, u, d
    key: dict[str, Any]
    txid: int


@dataclass
class WorkloadResult:
    target_rate: float
    ops: int = 0
    transactions: int = 0
    seconds: float = 0.0
    max_lag_s: float = 0.0
    by_kind: dict[str, int] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"target_rate": self.target_rate, "ops": self.ops, "transactions": self.transactions,
                "seconds": round(self.seconds, 2), "achieved_rate": self.ops / self.seconds if self.seconds else 0.0,
                "max_lag_s": round(self.max_lag_s, 3), "by_kind": self.by_kind}


# kind -> weight. Each kind is one transaction of one or more row changes.
MIX = {
    "insert_user": 8, "update_user_small": 12, "update_user_toast": 4, "delete_user": 2,
    "insert_orders": 14, "update_order_twice": 10, "delete_order": 5, "insert_then_delete": 4,
    "update_product_price": 6, "pk_update_product": 2, "insert_product": 2, "update_department": 2,
}


class Workload:
    def __init__(self, pipeline: Pipeline, seed: int = DEFAULT_SEED, schema: str = "public", record: bool = False,
                 durable: bool = False):
        self.pipeline, self.schema, self.record, self.durable = pipeline, schema, record, durable
        self.rng = random.Random(seed)
        self.gen = RowGenerator(self.rng)
        self.live: dict[str, list[int]] = {}
        self.result: WorkloadResult | None = None

    def run(self, rate: float, duration: float | None = None, ops: int | None = None,
            progress: Callable[[str], None] = print) -> WorkloadResult:
        """Run until ``duration`` seconds or ``ops`` row changes, whichever is given."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        result = self.result = WorkloadResult(target_rate=rate)
        kinds, weights = list(MIX), list(MIX.values())
        # autocommit: each conn.transaction() below is a real BEGIN/COMMIT, not a savepoint.
        with connection.connect(self.pipeline, autocommit=True) as conn:
            if not self.durable:
                # Commits return before the WAL flush: one client can offer thousands of
                # changes/s. Logical decoding sees exactly the same committed changes.
                conn.execute("SET synchronous_commit = off")
            self._load_keys(conn)
            start = last_report = time.monotonic()
            meter = Meter("load", ops or round(rate * (duration or 0)), "changes", start=start)
            while (ops is None or result.ops < ops) and (duration is None or time.monotonic() - start < duration):
                due = start + result.ops / rate
                now = time.monotonic()
                if due > now:
                    time.sleep(due - now)
                result.max_lag_s = max(result.max_lag_s, time.monotonic() - due)
                kind = self.rng.choices(kinds, weights)[0]
                result.ops += self._transaction(conn, kind)
                result.transactions += 1
                result.by_kind[kind] = result.by_kind.get(kind, 0) + 1
                if time.monotonic() - last_report >= 5:
                    last_report = time.monotonic()
                    progress(meter.line(result.ops))
            result.seconds = time.monotonic() - start
        return result

    # --- plumbing -------------------------------------------------------------------

    def _table(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(name))

    def _load_keys(self, conn: psycopg.Connection) -> None:
        for table in ("departments", "users", "products", "orders"):
            rows = conn.execute(sql.SQL("SELECT id FROM {} ORDER BY id").format(self._table(table))).fetchall()
            self.live[table] = [r[0] for r in rows]

    def _transaction(self, conn: psycopg.Connection, kind: str) -> int:
        if kind == "insert_then_delete":
            # Two transactions, the delete right after the insert committed.
            order_id = self._run(conn, lambda cur: self._insert_order(cur))
            self._run(conn, lambda cur: self._delete(cur, "orders", order_id))
            return 2
        return self._run(conn, getattr(self, f"_{kind}"))

    def _run(self, conn: psycopg.Connection, body: Callable[[psycopg.Cursor], Any]) -> Any:
        self._pending: list[tuple[str, str, dict]] = []
        with conn.transaction(), conn.cursor() as cur:
            value = body(cur)
            txid = cur.execute("SELECT txid_current()").fetchone()[0] if self.record else 0
        if self.record:
            self.result.changes.extend(Change(t, op, key, txid) for t, op, key in self._pending)
        return value if value is not None else len(self._pending)

    def _note(self, table: str, op: str, key: int) -> None:
        self._pending.append((f"{self.schema}.{table}", op, {"id": key}))

    def _pick(self, table: str) -> int | None:
        keys = self.live[table]
        return self.rng.choice(keys) if keys else None

    def _insert(self, cur: psycopg.Cursor, table: str, row: dict) -> int:
        columns = list(row)
        new_id = cur.execute(sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING id").format(
            self._table(table), sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(sql.Placeholder() * len(columns))), [row[c] for c in columns]).fetchone()[0]
        self.live[table].append(new_id)
        self._note(table, "c", new_id)
        return new_id

    def _update(self, cur: psycopg.Cursor, table: str, key: int, values: dict) -> None:
        assignments = sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder())
                                         for c in values)
        cur.execute(sql.SQL("UPDATE {} SET {} WHERE id = %s").format(self._table(table), assignments),
                    [*values.values(), key])
        self._note(table, "u", key)

    def _delete(self, cur: psycopg.Cursor, table: str, key: int) -> None:
        cur.execute(sql.SQL("DELETE FROM {} WHERE id = %s").format(self._table(table)), [key])
        self.live[table].remove(key)
        self._note(table, "d", key)

    # --- the mix ----------------------------------------------------------------------

    def _insert_user(self, cur: psycopg.Cursor) -> None:
        self._insert(cur, "users", self.gen.user(len(DEPARTMENTS)))

    def _update_user_small(self, cur: psycopg.Cursor) -> None:
        """Touches no TOASTed column: PostgreSQL omits bio/profile, Debezium sends placeholders."""
        key = self._pick("users")
        if key is not None:
            self._update(cur, "users", key, {"is_active": self.rng.random() < 0.8,
                                             "department_id": self.rng.choice([None, *range(1, len(DEPARTMENTS) + 1)]),
                                             "email": self.rng.choice([None, f"u{key}@example.org", "ünï@例え.jp"])})

    def _update_user_toast(self, cur: psycopg.Cursor) -> None:
        key = self._pick("users")
        if key is not None:
            big = self.rng.random() < 0.7
            self._update(cur, "users", key, {"bio": self.gen.text(3000, 9000) if big else None,
                                             "profile": json.dumps(self.gen.profile(big)),
                                             "tags": self.rng.sample(["x", "y", "ž", "多"], 2)})

    def _delete_user(self, cur: psycopg.Cursor) -> None:
        key = self._pick("users")
        if key is not None:
            self._delete(cur, "users", key)

    def _insert_order(self, cur: psycopg.Cursor) -> int:
        row = self.gen.order(1, 1)
        row["user_id"] = self._pick("users") or 1
        row["product_id"] = self._pick("products") or 1
        return self._insert(cur, "orders", row)

    def _insert_orders(self, cur: psycopg.Cursor) -> None:
        """A multi-row transaction: 2-4 orders for one user."""
        for _ in range(self.rng.randint(2, 4)):
            self._insert_order(cur)

    def _update_order_twice(self, cur: psycopg.Cursor) -> None:
        """The same row updated twice in one transaction: only the last state may survive."""
        key = self._pick("orders")
        if key is not None:
            self._update(cur, "orders", key, {"status": self.rng.choice(STATUSES)})
            self._update(cur, "orders", key, {"total_amount": self.gen.money(1, 99999),
                                              "status": self.rng.choice(STATUSES),
                                              "updated_at": self.gen.moment()})

    def _delete_order(self, cur: psycopg.Cursor) -> None:
        key = self._pick("orders")
        if key is not None:
            self._delete(cur, "orders", key)

    def _update_product_price(self, cur: psycopg.Cursor) -> None:
        key = self._pick("products")
        if key is not None:
            price = self.rng.choice(EXTREME_PRICES) if self.rng.random() < 0.3 else self.gen.money(1, 5000)
            self._update(cur, "products", key, {"price": price})

    def _pk_update_product(self, cur: psycopg.Cursor) -> None:
        """UPDATE of the primary key: Debezium emits a delete of the old key and a create of the new."""
        key = self._pick("products")
        if key is None:
            return
        new_key = max(self.live["products"]) + self.rng.randint(1, 1000)
        cur.execute(sql.SQL("UPDATE {} SET id = %s WHERE id = %s").format(self._table("products")), [new_key, key])
        self.live["products"].remove(key)
        self.live["products"].append(new_key)
        self._note("products", "d", key)
        self._note("products", "c", new_key)

    def _insert_product(self, cur: psycopg.Cursor) -> None:
        row = self.gen.product(self.rng.randint(1000, 9999))
        new_key = max(self.live["products"], default=0) + 1
        self._insert(cur, "products", {"id": new_key, **row})

    def _update_department(self, cur: psycopg.Cursor) -> None:
        key = self._pick("departments")
        if key is not None:
            self._update(cur, "departments", key, {"name": f"{self.rng.choice(DEPARTMENTS)} {self.rng.randint(1, 99)}",
                                                   "budget": self.gen.money(), "updated_at": self.gen.moment()})
