"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): it shows every
table with the numbers of `cdclake --output json status`, and updates after a change flows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from psycopg import sql

from cdclake.monitoring.dashboard import serve
from cdclake.source import connection
from tests.conftest import capture_pipeline, unique
from tests.lakehouse.conftest import cleanup, start_capture, wait_captured, write_pipeline  # noqa: F401 - fixture

pytestmark = pytest.mark.integration
SCREENSHOT = Path(os.environ.get("CDCLAKE_TEST_ARTIFACTS", tempfile.gettempdir())) / "cdclake-dashboard.png"


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium, installed through the setup path's apt_install when missing."""
    if not shutil.which("chromium"):
        from cdclake.install.setup import apt_install

        apt_install("chromium")
    return shutil.which("chromium")


def cli_status(config: Path) -> dict:
    result = subprocess.run([sys.executable, "-m", "cdclake", "-c", str(config), "--output", "json", "status"],
                            capture_output=True, text=True, timeout=120)
    return json.loads(result.stdout)


def page_rows(page) -> dict[str, dict[str, str]]:
    rows = {}
    for row in page.query_selector_all("#tables tbody tr"):
        rows[row.get_attribute("data-table")] = {
            cell.get_attribute("data-field"): cell.inner_text() for cell in row.query_selector_all("td")}
    return rows


def insert(pipeline, tag: str, ids: range) -> None:
    with connection.connect(pipeline, autocommit=True) as conn:
        for table in ("items", "notes"):
            conn.execute(sql.SQL("INSERT INTO {}.{} SELECT g, 'x' || g FROM generate_series(%s::int, %s::int) g").format(
                sql.Identifier(tag), sql.Identifier(table)), (ids.start, ids.stop - 1))


def test_dashboard_shows_each_table_like_status_and_updates(stack, cleanup, chromium):  # noqa: F811
    from playwright.sync_api import sync_playwright

    from cdclake.lakehouse.configuration import plan_from_pipeline

    tag = unique("dash")
    pipeline = capture_pipeline(stack, tag, ["items", "notes"])
    cleanup(pipeline)
    with connection.connect(pipeline, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(tag)))
        for table in ("items", "notes"):
            conn.execute(sql.SQL("CREATE TABLE {}.{} (id int PRIMARY KEY, name text)").format(
                sql.Identifier(tag), sql.Identifier(table)))
    insert(pipeline, tag, range(1, 21))
    start_capture(pipeline)
    plan = plan_from_pipeline(pipeline)
    wait_captured(pipeline, plan)
    config = write_pipeline(pipeline, tag)
    server = serve(pipeline, 0)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
            page.wait_for_function("document.body.dataset.updates >= 1", timeout=60_000)
            expected = cli_status(config)["layers"]["tables"]
            shown = page_rows(page)
            assert set(shown) == set(expected) == {f"{tag}.items", f"{tag}.notes"}
            for table, entry in expected.items():
                assert shown[table]["end_offset"] == str(entry["end_offset"]) == "20"
                assert shown[table]["lag_events"] == str(entry["bronze"]["lag_events"]) == "20"
            assert page.query_selector('[data-box="Debezium"]').inner_text().split("\n")[1] == "RUNNING"

            insert(pipeline, tag, range(21, 31))
            wait_captured(pipeline, plan)
            page.wait_for_function(
                f"document.querySelector('tr[data-table=\"{tag}.items\"] td[data-field=\"end_offset\"]')"
                ".textContent === '30'", timeout=60_000)
            after = cli_status(config)["layers"]["tables"]
            time.sleep(2.5)  # one more poll, so the charts hold two samples
            assert {t: r["end_offset"] for t, r in page_rows(page).items()} == {
                t: str(e["end_offset"]) for t, e in after.items()}
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            browser.close()
    finally:
        server.shutdown()
    assert SCREENSHOT.stat().st_size > 10_000
