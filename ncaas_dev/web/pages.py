"""The pages: analyses, one analysis (upload, pick, validate, submit), history, job."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..api.browse import MAX_OBJECT, Backend, NotVisible, submission_id
from ..api.records import JobStatus, State
from . import signin
from .auth import check_csrf
from .checking import check_config
from .common import backend_of, config_of, render, signed_in
from .datasets import Choice, dataset_choices
from .params import page_number

PAGE_SIZE = 50
FIGURES = (".png", ".jpg", ".jpeg", ".svg")


def _run(func: Any, *args: Any) -> Any:
    return asyncio.to_thread(func, *args)


async def _inputs(backend: Backend, bucket: str, group: str) -> list[Choice]:
    """The group's datasets: files, and folders as one dataset each."""
    listed = await _run(backend.files, bucket, group, "inputs")
    return dataset_choices(listed, f"{group}/inputs/")


async def index(request: Request) -> Response:
    user, _ = signed_in(request)
    analyses = await _run(backend_of(request).analyses)
    mine = [
        a for a in analyses.values() if user.group in a.groups and user.analysis in (None, a.name)
    ]
    return render(request, "analyses.html", analyses=sorted(mine, key=lambda a: a.name))


async def analysis_page(request: Request) -> Response:
    bucket = request.path_params["bucket"]
    user, analysis = signed_in(request, bucket)
    backend = backend_of(request)
    inputs = await _inputs(backend, bucket, user.group)
    configs = await _run(backend.files, bucket, user.group, "configs")
    return render(
        request,
        "analysis.html",
        analysis=analysis,
        inputs=inputs,
        configs=configs,
        picked=set(request.query_params.getlist("data")),
        picked_config=request.query_params.get("config", ""),
        max_object=MAX_OBJECT,
        problem="",
    )


async def files_partial(request: Request) -> Response:
    bucket = request.path_params["bucket"]
    user, analysis = signed_in(request, bucket)
    backend = backend_of(request)
    inputs = await _inputs(backend, bucket, user.group)
    configs = await _run(backend.files, bucket, user.group, "configs")
    picked = set(request.query_params.getlist("data"))
    return render(
        request,
        "files.html",
        analysis=analysis,
        inputs=inputs,
        configs=configs,
        picked=picked,
        picked_config=request.query_params.get("config", ""),
    )


async def validate(request: Request) -> Response:
    """htmx: the chosen config parses (YAML or JSON), or the line and the problem."""
    bucket = request.path_params["bucket"]
    user, _ = signed_in(request, bucket)
    form = await check_csrf(request)
    key = str(form.get("config", ""))
    if not key:
        return render(request, "validation.html", ok=True, message="no config: none is needed")
    body = await _run(backend_of(request).read_config, bucket, user.group, key)
    problem = await check_config(key, body)  # in a worker process: a config can be hostile
    return render(request, "validation.html", ok=problem is None, message=problem or "config OK")


async def submit(request: Request) -> Response:
    bucket = request.path_params["bucket"]
    user, analysis = signed_in(request, bucket)
    form = await check_csrf(request)
    data = form.get("data", [])
    data = [data] if isinstance(data, str) else [str(d) for d in data]
    config = str(form.get("config", "")) or None
    backend = backend_of(request)
    problem = "" if data else "Pick at least one dataset."
    if config and not problem:
        body = await _run(backend.read_config, bucket, user.group, config)
        found = await check_config(config, body)
        problem = f"Config {config}: {found}" if found else ""
    if problem:
        inputs = await _inputs(backend, bucket, user.group)
        configs = await _run(backend.files, bucket, user.group, "configs")
        return render(
            request,
            "analysis.html",
            400,
            analysis=analysis,
            inputs=inputs,
            configs=configs,
            picked=set(data),
            picked_config=config or "",
            max_object=MAX_OBJECT,
            problem=problem,
        )
    submitted = await _run(backend.submit, bucket, user.group, data, config)
    return RedirectResponse(f"/a/{bucket}/submitted/{submission_id(submitted.key)}", 303)


async def _pickup(request: Request) -> dict[str, Any]:
    bucket, sub_id = request.path_params["bucket"], request.path_params["sub"]
    user, _ = signed_in(request, bucket)
    backend = backend_of(request)
    found = await _run(backend.submission, bucket, user.group, sub_id)
    if found is None:
        raise NotVisible(f"no submission {sub_id}")
    submitted, sent_at = found
    job = await _run(backend.job_of, bucket, submitted)
    waited = max(0.0, time.time() - sent_at)
    return {
        "job": job,
        "url": f"/a/{bucket}/jobs/{job}" if job else None,
        "waited": round(waited, 1),
        "lost": job is None and waited > config_of(request).pickup_seconds,
        "key": submitted.key,
    }


async def pending(request: Request) -> Response:
    state = await _pickup(request)
    if state["url"]:
        return RedirectResponse(state["url"], 303)
    return render(
        request,
        "pending.html",
        state=state,
        bucket=request.path_params["bucket"],
        sub=request.path_params["sub"],
        pickup_seconds=int(config_of(request).pickup_seconds),
    )


async def pending_state(request: Request) -> Response:
    return JSONResponse(await _pickup(request))


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start:
        return None
    begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
    stop = datetime.fromisoformat(end.replace("Z", "+00:00")) if end else datetime.now(begin.tzinfo)
    return max(0.0, (stop - begin).total_seconds())


def summary(status: JobStatus) -> dict[str, Any]:
    starts = [d.started for d in status.datasets.values() if d.started]
    start = min(starts) if starts else None
    end = status.finished if status.state.terminal else None
    return {
        "job": status.job,
        "state": status.state.value,
        "datasets": list(status.datasets),
        "start": (start or status.created)[:19].replace("T", " "),
        "duration": _seconds(start, end),
        "cost": status.cost_usd,
        "reason": status.reason,
    }


async def history(request: Request) -> Response:
    """Newest first, 50 a page, however many jobs (S3 lists past 1000 keys by pages)."""
    bucket = request.path_params["bucket"]
    user, analysis = signed_in(request, bucket)
    backend = backend_of(request)
    wanted = request.query_params.get("state", "")
    page = page_number(request)
    names = await _run(backend.job_names, bucket, user.group)
    rows: list[dict[str, Any]] = []
    if not wanted:
        chosen = names[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        statuses = await _run(backend.statuses, bucket, user.group, chosen)
        rows = [
            summary(s) if s else {"job": n, "state": "waiting"}
            for n, s in zip(chosen, statuses, strict=True)
        ]
        more = len(names) > page * PAGE_SIZE
    else:  # read statuses newest first, a batch at a time, until the page is full
        skip, index, matched = (page - 1) * PAGE_SIZE, 0, 0
        while index < len(names) and len(rows) <= PAGE_SIZE:
            batch = names[index : index + PAGE_SIZE]
            index += len(batch)
            for status in await _run(backend.statuses, bucket, user.group, batch):
                if status is None or status.state.value != wanted:
                    continue
                matched += 1
                if matched > skip:
                    rows.append(summary(status))
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]

    def link(n: int) -> str:
        return f"/a/{bucket}/jobs?" + urlencode(
            {"page": n, **({"state": wanted} if wanted else {})}
        )

    return render(
        request,
        "history.html",
        analysis=analysis,
        rows=rows,
        total=len(names),
        page=page,
        states=[s.value for s in State],
        wanted=wanted,
        prev_url=link(page - 1) if page > 1 else None,
        next_url=link(page + 1) if more else None,
    )


async def job_page(request: Request) -> Response:
    bucket, job = request.path_params["bucket"], request.path_params["job"]
    user, analysis = signed_in(request, bucket)
    backend = backend_of(request)
    status = await _run(backend.status, bucket, user.group, job)
    ncaas_cmd, aws_cmd = backend.download_commands(bucket, user.group, job)
    again = ""
    if status is not None:
        params = [("data", ds.key) for ds in status.datasets.values()]
        if status.configname:
            params.append(("config", status.configname))
        again = f"/a/{bucket}?{urlencode(params)}"
    return render(
        request,
        "job.html",
        analysis=analysis,
        job=job,
        status=status,
        summary=summary(status) if status else None,
        certificate=await _run(backend.certificate, bucket, user.group, job),
        ncaas_cmd=ncaas_cmd,
        aws_cmd=aws_cmd,
        again=again,
    )


def _tree(files: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """Folders (with their total size) and files, in path order, each with its depth."""
    totals: dict[str, int] = {}
    for path, size in files:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folder = "/".join(parts[:depth])
            totals[folder] = totals.get(folder, 0) + size
    rows: list[dict[str, Any]] = []
    shown: set[str] = set()
    for path, size in sorted(files):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder not in shown:
                shown.add(folder)
                rows.append(
                    {
                        "folder": True,
                        "name": parts[depth - 1] + "/",
                        "depth": depth - 1,
                        "size": totals[folder],
                        "path": folder,
                    }
                )
        rows.append(
            {
                "folder": False,
                "path": path,
                "depth": len(parts) - 1,
                "name": parts[-1],
                "size": size,
                "figure": path.lower().endswith(FIGURES),
            }
        )
    return rows


async def results_partial(request: Request) -> Response:
    bucket, job = request.path_params["bucket"], request.path_params["job"]
    user, _ = signed_in(request, bucket)
    backend = backend_of(request)
    await _run(backend.status, bucket, user.group, job)  # 404 for another group's job
    files = await _run(backend.job_files, bucket, user.group, job)
    return render(request, "results.html", bucket=bucket, job=job, files=_tree(files))


async def job_file(request: Request) -> Response:
    """A redirect to a presigned GET: the browser downloads from S3, not through here."""
    bucket, job = request.path_params["bucket"], request.path_params["job"]
    user, _ = signed_in(request, bucket)
    path = request.query_params.get("path", "")
    url = await _run(backend_of(request).file_url, bucket, user.group, job, path)
    return RedirectResponse(url, 302)


def routes() -> list[BaseRoute]:
    return [
        Route("/", index),
        *signin.routes(),
        Route("/a/{bucket}", analysis_page),
        Route("/a/{bucket}/files", files_partial),
        Route("/a/{bucket}/validate", validate, methods=["POST"]),
        Route("/a/{bucket}/submit", submit, methods=["POST"]),
        Route("/a/{bucket}/submitted/{sub}", pending),
        Route("/a/{bucket}/submitted/{sub}/state", pending_state),
        Route("/a/{bucket}/jobs", history),
        Route("/a/{bucket}/jobs/{job}", job_page),
        Route("/a/{bucket}/jobs/{job}/results", results_partial),
        Route("/a/{bucket}/jobs/{job}/file", job_file),
    ]
