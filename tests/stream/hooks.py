"""Hooks named by function path in the tests' stream configs."""


def shout(value: dict) -> dict:
    value["name"] = value["name"].upper()
    return value


def drop_odd(value: dict) -> dict | None:
    return None if value["id"] % 2 else value


def explode(value: dict) -> dict:
    raise RuntimeError(f"cannot handle user {value['id']}")


def is_admin(value: dict) -> bool:
    return value.get("role") == "admin"
