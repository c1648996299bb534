"""The reference's ``cdc_demo`` database: departments, users, products, orders.

Columns cover what CDC pipelines get wrong: numeric(p,s), timestamptz, jsonb, arrays,
large TOASTed text (stored out of line, uncompressed, so an update that leaves it alone
really omits it from the WAL), NULLs and unicode. Seed data is reproducible from a seed.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

from psycopg import sql

from cdclake.config import Pipeline
from cdclake.source import DEFAULT_SEED, connection

DEMO_TABLES = ["public.departments", "public.users", "public.products", "public.orders"]

DDL = [
    """CREATE TABLE IF NOT EXISTS {schema}.departments (
        id serial PRIMARY KEY,
        name varchar(100) NOT NULL,
        budget numeric(14,2),
        updated_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS {schema}.users (
        id serial PRIMARY KEY,
        name varchar(100),
        email varchar(100),
        created_at timestamp DEFAULT CURRENT_TIMESTAMP,
        is_active boolean NOT NULL DEFAULT true,
        department_id int,
        bio text,
        profile jsonb,
        tags text[])""",
    """CREATE TABLE IF NOT EXISTS {schema}.products (
        id serial PRIMARY KEY,
        sku varchar(32) NOT NULL,
        name varchar(200) NOT NULL,
        description text,
        price numeric(12,2) NOT NULL,
        weight_kg double precision,
        attributes jsonb,
        created_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS {schema}.orders (
        id bigserial PRIMARY KEY,
        user_id int NOT NULL,
        product_id int NOT NULL,
        quantity int NOT NULL,
        total_amount numeric(12,2) NOT NULL,
        status varchar(20) NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        notes text)""",
    # Out-of-line and uncompressed: big values are TOASTed for sure, and an UPDATE that
    # does not touch them leaves them out of the WAL record (Debezium's placeholder case).
    "ALTER TABLE {schema}.users ALTER COLUMN bio SET STORAGE EXTERNAL",
    "ALTER TABLE {schema}.users ALTER COLUMN profile SET STORAGE EXTERNAL",
    "ALTER TABLE {schema}.products ALTER COLUMN description SET STORAGE EXTERNAL",
]

FIRST = ["Ana", "Björn", "Chloé", "Dmitri", "Eşref", "Fatima", "Gö", "Hiroshi", "Inés", "Jürgen", "Kwame",
         "Łucja", "Mårten", "Nguyễn", "Olu", "Priya", "Quentin", "Rūta", "Søren", "Tomás", "Ümit", "Zoë",
         "李", "Σοφία", "Владимир", "محمد", "🙂 Emoji"]
LAST = ["Smith", "Müller", "García", "Kowalski", "O'Brien", "Nakamura", "Østergaard", "Šimić", "Dubois", "王"]
DEPARTMENTS = ["Engineering", "Sales", "Marketing", "Finance", "Support", "Operations", "R&D", "Légal"]
STATUSES = ["pending", "paid", "shipped", "delivered", "cancelled"]
TAGS = ["vip", "beta", "newsletter", "é", "多语言", "null-ish", "quote\"d", "comma,sep"]
EXTREME_PRICES = ["9999999999.99", "0.01", "0.00", "1234567890.12", "-9999999999.99"]
EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)


def create_demo(pipeline: Pipeline, seed: int = DEFAULT_SEED, users: int = 200, products: int = 50, orders: int = 500,
                schema: str = "public") -> str:
    """Create the demo tables if missing and seed them once (idempotent)."""
    with connection.connect(pipeline) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        for ddl in DDL:
            conn.execute(sql.SQL(ddl).format(schema=sql.Identifier(schema)))
        seeded = conn.execute(sql.SQL("SELECT count(*) FROM {}.departments").format(sql.Identifier(schema))
                              ).fetchone()[0]
        if seeded:
            return f"tables present in {schema}, already seeded"
        rng = random.Random(seed)
        gen = RowGenerator(rng)
        _insert(conn, schema, "departments", [gen.department(i) for i in range(len(DEPARTMENTS))])
        _insert(conn, schema, "users", [gen.user(len(DEPARTMENTS)) for _ in range(users)])
        _insert(conn, schema, "products", [gen.product(i) for i in range(products)])
        _insert(conn, schema, "orders", [gen.order(users, products) for _ in range(orders)])
    return f"created and seeded {len(DEPARTMENTS)} departments, {users} users, {products} products, {orders} orders"


class RowGenerator:
    """Deterministic rows for the demo tables (given the same Random)."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def text(self, low: int, high: int) -> str:
        # Random letters barely compress, so the value really is stored out of line.
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 äöüßçñ€"
        return "".join(self.rng.choices(alphabet, k=self.rng.randint(low, high)))

    def department(self, index: int) -> dict:
        return {"name": DEPARTMENTS[index % len(DEPARTMENTS)], "budget": self.money(),
                "updated_at": self.moment()}

    def user(self, departments: int) -> dict:
        first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
        big = self.rng.random() < 0.3
        return {
            "name": f"{first} {last}",
            "email": None if self.rng.random() < 0.1 else f"{first.lower()}.{self.rng.randint(1, 10**6)}@example.com",
            "created_at": self.moment().replace(tzinfo=None),
            "is_active": self.rng.random() < 0.85,
            "department_id": None if self.rng.random() < 0.05 else self.rng.randint(1, departments),
            "bio": self.text(3000, 9000) if big else (None if self.rng.random() < 0.3 else self.text(5, 80)),
            "profile": json.dumps(self.profile(big)),
            "tags": self.rng.sample(TAGS, self.rng.randint(0, 3)) if self.rng.random() < 0.9 else None,
        }

    def profile(self, big: bool) -> dict:
        profile = {"level": self.rng.randint(1, 5), "score": round(self.rng.uniform(-1e6, 1e6), 3),
                   "langs": self.rng.sample(["en", "de", "ja", "ar", "hi"], 2), "nested": {"ok": True, "n": None}}
        if big:
            profile["history"] = [self.text(40, 80) for _ in range(60)]
        return profile

    def product(self, index: int) -> dict:
        return {
            "sku": f"SKU-{index:05d}-{self.rng.randint(100, 999)}",
            "name": f"{self.rng.choice(['Widget', 'Gadget', 'Gizmo', 'Ding', 'Ökoprodukt'])} {index}",
            "description": self.text(2500, 7000) if self.rng.random() < 0.5 else self.text(10, 100),
            "price": self.rng.choice(EXTREME_PRICES) if self.rng.random() < 0.1 else self.money(5, 2000),
            "weight_kg": self.rng.choice([None, 0.0, 1e-300, 1.7976931348623157e308, -2.5, 0.1 + 0.2]),
            "attributes": json.dumps({"color": self.rng.choice(["red", "blue", "grün"]), "size": self.rng.randint(1, 9)}),
            "created_at": self.moment(),
        }

    def order(self, users: int, products: int) -> dict:
        quantity = self.rng.randint(1, 5)
        created = self.moment()
        return {
            "user_id": self.rng.randint(1, users),
            "product_id": self.rng.randint(1, products),
            "quantity": quantity,
            "total_amount": self.money(5, 5000),
            "status": self.rng.choice(STATUSES),
            "created_at": created,
            "updated_at": created + timedelta(minutes=self.rng.randint(0, 600)),
            "notes": None if self.rng.random() < 0.6 else self.rng.choice(["gift 🎁", "leave at door", "", "ça va"]),
        }

    def money(self, low: float = 100, high: float = 100000) -> str:
        return f"{self.rng.uniform(low, high):.2f}"

    def moment(self) -> datetime:
        return EPOCH + timedelta(seconds=self.rng.randint(0, 300 * 86400), microseconds=self.rng.randint(0, 999999))


def _insert(conn, schema: str, table: str, rows: list[dict]) -> None:
    columns = list(rows[0])
    statement = sql.SQL("INSERT INTO {}.{} ({}) VALUES ({})").format(
        sql.Identifier(schema), sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)))
    with conn.cursor() as cur:
        cur.executemany(statement, [tuple(r[c] for c in columns) for r in rows])
