"""cdclake cost: each line's arithmetic, and the comparison with the reference's table."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cdclake.config import load
from cdclake.deploy.cost import BUNDLED_PRICES, MSK, SELF, estimate, load_prices, render_table
from cdclake.deploy.exceptions import DeployError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def result():
    return estimate(load(ROOT / "pipeline.yaml", environ={}), load_prices())


def _line(result, component, option):
    return next(line for line in result.lines if line.component == component and line.option == option)


@pytest.mark.parametrize(("component", "option", "amount"), [
    ("brokers", MSK, 3 * 0.21 * 730),
    ("brokers", SELF, 3 * 0.192 * 730),                     # the reference's $420
    ("storage", MSK, 6 * 1000 * 3 * 0.10),
    ("storage", SELF, 6 * 1000 * 3 * 0.08),
    ("transfer", MSK, 2000 * 2 / 3 * 0.02),
    ("transfer", SELF, 2000 * 2 / 3 * 0.02 + 2000 * 2 * 0.02),
    ("debezium", "both", 2 * (2 * 0.04048 + 4 * 0.004445) * 730),
    ("glue", "both", (4 * 730 + 730 / 168) * 2 * 5 / 60 * 0.44),
    ("airflow", "both", 0.0832 * 730 + 50 * 0.08),
])
def test_line_amounts(result, component, option, amount):
    assert _line(result, component, option).amount == pytest.approx(amount)


def test_totals_add_the_shared_lines_to_each_option(result):
    shared = sum(line.amount for line in result.lines if line.option == "both")
    msk = sum(line.amount for line in result.lines if line.option == MSK)
    assert result.total(MSK) == pytest.approx(msk + shared)
    assert result.as_dict()["total"][SELF] == round(result.total(SELF), 2)


def test_reference_differences_are_named(result):
    notes = "\n".join(result.notes)
    assert "brokers msk: computed $459.90 vs the reference's $1,200" in notes
    assert "storage self_managed: computed $1,440.00 vs the reference's $480" in notes
    assert "brokers self_managed" not in notes  # $420.48 vs $420: within 5 %
    assert "kafka_volume_gb 500 gives 3 x 500 = 1500 GB, less than the 18000 GB" in notes


def test_table_shows_each_lines_arithmetic(result):
    text = render_table(result)
    assert "3 x m5.xlarge x $0.192/h x 730 h" in text
    assert "6 TB x 1000 GB x RF 3 = 18000 GB x $0.08/GB-month gp3" in text


def test_every_bundled_price_has_a_source_and_date():
    for key, price in yaml.safe_load(BUNDLED_PRICES.read_text())["prices"].items():
        assert price["source"].startswith("https://aws.amazon.com/") and price["date"], key


def test_unpriced_instance_type_names_the_fix(tmp_path):
    config = tmp_path / "pipeline.yaml"
    config.write_text("deploy: {aws: {kafka_instance_type: r7g.large}}\n")
    with pytest.raises(DeployError, match="no price 'ec2_r7g_large' in the price table; add it to prices.yaml"):
        estimate(load(config, environ={}), load_prices())


def test_unknown_schedule_names_the_key(tmp_path):
    config = tmp_path / "pipeline.yaml"
    config.write_text("airflow: {schedule: '*/15 * * * *'}\n")
    with pytest.raises(DeployError, match="set airflow.schedule to one of them"):
        estimate(load(config, environ={}), load_prices())
