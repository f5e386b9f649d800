"""Budget arithmetic: projections, refusals with their figures, costs of finished datasets."""

from __future__ import annotations

from ncaas_dev.budget import Ledger, Projection, Reservation, cost_finished, refusal
from ncaas_dev.status import DatasetStatus, JobStatus, State


def projection(datasets: int = 10, timeout: int = 3600, price: float = 0.192) -> Projection:
    return Projection(
        datasets=datasets, instance_type="m5.xlarge", price_per_hour=price, timeout_seconds=timeout
    )


def test_projection_is_datasets_times_price_times_timeout() -> None:
    assert projection(10, 3600).usd == 1.92
    assert projection(1, 1800).per_dataset == 0.096
    assert projection(3, 5).usd == round(3 * 0.192 * 60 / 3600, 4)  # the minute minimum


def test_a_submission_that_fits_is_not_refused() -> None:
    assert refusal(spent=1.0, reserved=0.5, projection=projection(10), limit=3.42) is None


def test_refusal_names_spent_reserved_projected_and_limit() -> None:
    reason = refusal(spent=1.5, reserved=0.25, projection=projection(10), limit=3.0)
    assert reason is not None
    assert reason.startswith("budget exceeded")
    for figure in ("$1.5000", "$0.2500", "$1.9200", "$3.00", "limits.max_cost_usd"):
        assert figure in reason
    assert "10 dataset(s) x m5.xlarge at $0.192/h x run.timeout 3600 s" in reason


def test_a_zero_limit_refuses_everything() -> None:
    assert refusal(0, 0, projection(1, 1), 0) is not None


def test_ledger_totals_come_from_its_entries() -> None:
    ledger = Ledger(group="labA", charges={"j1/a": 0.5, "j1/b": 0.25})
    ledger.reserved["j2/a"] = Reservation(usd=1.0)
    ledger.total()
    assert (ledger.spent_usd, ledger.reserved_usd) == (0.75, 1.0)


def job_with(price: float | None, **datasets: DatasetStatus) -> JobStatus:
    status = JobStatus(job="job_1", analysis="a", group="labA", submission="labA/submissions/x")
    if price is not None:
        status.provenance["price_usd_per_hour"] = price
    status.datasets.update(datasets)
    return status


def test_finished_datasets_are_costed_once_from_their_runtime() -> None:
    ran = DatasetStatus(
        key="k",
        state=State.SUCCEEDED,
        started="2026-11-24T20:00:00Z",
        finished="2026-11-24T20:30:00Z",
    )
    waiting = DatasetStatus(key="k2")
    status = job_with(0.192, a=ran, b=waiting)
    assert cost_finished(status, {"a": False, "b": False}) == {"a": 0.096}
    assert status.datasets["a"].cost_usd == 0.096 and status.cost_usd == 0.096
    assert status.datasets["b"].cost_usd is None
    assert cost_finished(status, {"a": True, "b": False}) == {}  # already terminal before


def test_a_dataset_that_never_started_costs_nothing() -> None:
    never = DatasetStatus(key="k", state=State.FAILED, finished="2026-11-24T20:00:00Z")
    status = job_with(3.06, a=never)
    assert cost_finished(status, {"a": False}) == {"a": 0.0}


def test_jobs_without_a_price_are_not_costed() -> None:
    done = DatasetStatus(key="k", state=State.SUCCEEDED, started="2026-11-24T20:00:00Z")
    assert cost_finished(job_with(None, a=done), {"a": False}) == {}
