"""``cdclake verify``: prove silver equals the source and gold equals its SQL on PostgreSQL."""
