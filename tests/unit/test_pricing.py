"""The price table and the billing rule: per second, one-minute minimum, unknown types named."""

from __future__ import annotations

import json

import pytest

from ncaas_dev.blueprint import DEFAULT_GPU_INSTANCE_TYPE, Blueprint
from ncaas_dev.pricing import (
    PRICE_TABLE,
    UnknownInstanceType,
    _on_demand_price,
    billed_seconds,
    hourly_price,
    price_table,
    run_cost,
    runtime_seconds,
)


def test_table_is_us_east_1_usd_per_hour_with_cpu_and_gpu_types() -> None:
    doc = json.loads(PRICE_TABLE.read_text())
    assert (doc["region"], doc["currency"], doc["unit"]) == ("us-east-1", "USD", "hour")
    prices = price_table()
    assert len(prices) >= 40
    assert all(0 < p < 100 for p in prices.values())
    for cpu_type in ("t3.micro", "m5.xlarge", "c5.2xlarge", "r5.large"):
        assert cpu_type in prices
    for gpu_type in ("g4dn.xlarge", "g5.xlarge", "p3.2xlarge"):
        assert gpu_type in prices


def test_the_blueprint_defaults_have_prices() -> None:
    bp = Blueprint.model_validate({"analysis": "a-b-c", "groups": [{"name": "labA"}]})
    assert hourly_price(bp.cloud.instance_type) == 0.192  # m5.xlarge
    assert hourly_price(DEFAULT_GPU_INSTANCE_TYPE) > hourly_price(bp.cloud.instance_type)


def test_bigger_sizes_cost_more_within_a_family() -> None:
    prices = price_table()
    for family in ("m5", "c5", "r5", "g4dn", "t3"):
        sizes = ["large", "xlarge", "2xlarge", "4xlarge"]
        known = [prices[f"{family}.{s}"] for s in sizes if f"{family}.{s}" in prices]
        assert known == sorted(known) and len(known) >= 3


def test_unknown_instance_type_is_named_with_a_hint() -> None:
    with pytest.raises(UnknownInstanceType) as caught:
        hourly_price("x9.huge")
    assert "x9.huge" in caught.value.message and caught.value.hint
    assert caught.value.exit_code == 1


@pytest.mark.parametrize(
    ("runtime", "billed"), [(0, 60), (1.2, 60), (59.9, 60), (60, 60), (60.01, 61), (3600, 3600)]
)
def test_billing_is_per_second_with_a_one_minute_minimum(runtime: float, billed: int) -> None:
    assert billed_seconds(runtime) == billed


def test_run_cost_is_price_times_billed_hours() -> None:
    assert run_cost(0.192, 3600) == 0.192
    assert run_cost(0.192, 1800) == 0.096
    assert run_cost(3.6, 10) == 0.06  # the minute minimum


def test_runtime_from_status_stamps_with_and_without_milliseconds() -> None:
    assert runtime_seconds("2026-11-24T20:31:05Z", "2026-11-24T20:32:05.500Z") == 60.5
    assert runtime_seconds(None, "2026-11-24T20:31:05Z") == 0
    assert runtime_seconds("2026-11-24T20:31:05Z", "2026-11-24T20:31:04Z") == 0


def test_price_list_api_answers_are_parsed() -> None:
    product = {
        "product": {"attributes": {"instanceType": "m5.xlarge"}},
        "terms": {
            "OnDemand": {
                "X.Y": {"priceDimensions": {"X.Y.Z": {"pricePerUnit": {"USD": "0.1920000000"}}}}
            }
        },
    }
    assert _on_demand_price(json.dumps(product)) == 0.192
    assert _on_demand_price(json.dumps({"terms": {}})) is None
