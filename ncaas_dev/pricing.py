"""What an instance costs: the price table in the package, and the billing rule (pure).

The table (``prices.json``) holds us-east-1 on-demand Linux prices per hour. A local run is
costed as if it ran on the blueprint's ``cloud.instance_type``, so one accounting serves both
the local stack and the cloud. ``python -m ncaas_dev.pricing --refresh`` rewrites the table
from the AWS Price List API (needs AWS credentials; the API answers in us-east-1 only).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import NcaasError

if TYPE_CHECKING:
    from .blueprint import Blueprint

PRICE_TABLE = Path(__file__).with_name("prices.json")
# EC2 bills Linux on-demand instances per second with a one-minute minimum.
MINIMUM_BILLED_SECONDS = 60
PRICE_LIST_LOCATION = "US East (N. Virginia)"


class UnknownInstanceType(NcaasError):
    """The price table has no price for this instance type."""


def launcher_price(
    blueprint: Blueprint, launcher: str, instance_type: str | None = None
) -> tuple[str, float]:
    """What one dataset is costed as, and its USD per hour: on SLURM, the cores it asks for at
    ``slurm.price_per_cpu_hour``; elsewhere ``instance_type`` (a submission's own choice) or
    the blueprint's instance type."""
    if launcher == "slurm":
        cores = math.ceil(blueprint.resources.cpus)
        return f"slurm ({cores} core(s))", blueprint.slurm.price_per_cpu_hour * cores
    chosen = instance_type or blueprint.cloud.instance_type
    return chosen, hourly_price(chosen)


@cache
def price_table(path: Path = PRICE_TABLE) -> dict[str, float]:
    doc = json.loads(path.read_text())
    return {str(k): float(v) for k, v in doc["prices"].items()}


def hourly_price(instance_type: str, table: dict[str, float] | None = None) -> float:
    """USD per hour of ``instance_type``; raises ``UnknownInstanceType`` if it is not listed."""
    prices = price_table() if table is None else table
    try:
        return prices[instance_type]
    except KeyError:
        raise UnknownInstanceType(
            f"no price for instance type '{instance_type}' in {PRICE_TABLE.name}",
            hint="use a listed cloud.instance_type, or add its price "
            "(`python -m ncaas_dev.pricing --refresh --type TYPE`)",
        ) from None


def billed_seconds(runtime_seconds: float) -> int:
    """Seconds EC2 would bill for a run this long (per second, one-minute minimum)."""
    return max(MINIMUM_BILLED_SECONDS, math.ceil(max(0.0, runtime_seconds)))


def run_cost(price_per_hour: float, runtime_seconds: float) -> float:
    """USD for one run, rounded to a hundredth of a cent."""
    return round(price_per_hour * billed_seconds(runtime_seconds) / 3600, 4)


def parse_time(stamp: str) -> datetime:
    """An ISO 8601 UTC stamp as status.json writes it (with or without milliseconds)."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)


def runtime_seconds(started: str | None, finished: str | None) -> float:
    """Seconds between two status.json stamps; 0 when the run never started."""
    if not started or not finished:
        return 0.0
    return max(0.0, (parse_time(finished) - parse_time(started)).total_seconds())


# -- refreshing the table from the AWS Price List API ------------------------------------------
def _on_demand_price(product_json: str) -> float | None:
    doc: Any = json.loads(product_json)
    for term in doc.get("terms", {}).get("OnDemand", {}).values():
        for dimension in term.get("priceDimensions", {}).values():
            usd = dimension.get("pricePerUnit", {}).get("USD")
            if usd is not None and float(usd) > 0:
                return float(usd)
    return None


def fetch_price(client: Any, instance_type: str) -> float | None:
    """The on-demand Linux price of ``instance_type`` in us-east-1, from the Price List API."""
    filters = {
        "instanceType": instance_type,
        "location": PRICE_LIST_LOCATION,
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
    }
    reply = client.get_products(
        ServiceCode="AmazonEC2",
        Filters=[{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()],
        MaxResults=10,
    )
    for product in reply.get("PriceList", []):
        price = _on_demand_price(product)
        if price is not None:
            return price
    return None


def refresh(types: list[str], path: Path = PRICE_TABLE) -> dict[str, float]:
    from .aws import client as aws_client
    from .settings import Settings

    # Real AWS (the Price List API lives in us-east-1), from the one client factory.
    client = aws_client(Settings(endpoint_url=None, region="us-east-1"), "pricing")
    doc = json.loads(path.read_text())
    for instance_type in types or sorted(doc["prices"]):
        price = fetch_price(client, instance_type)
        if price is None:
            print(f"{instance_type}: no on-demand Linux price found; kept", file=sys.stderr)
            continue
        doc["prices"][instance_type] = price
    doc["as_of"] = datetime.now(UTC).strftime("%Y-%m-%d") + ": AWS Price List API"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return {str(k): float(v) for k, v in doc["prices"].items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ncaas_dev.pricing", description=__doc__)
    parser.add_argument("--refresh", action="store_true", help="fetch prices from AWS")
    parser.add_argument("--type", action="append", default=[], help="add or refresh one type")
    args = parser.parse_args(argv)
    prices = refresh(args.type) if args.refresh else price_table()
    for name, price in sorted(prices.items()):
        print(f"{name}\t{price}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
