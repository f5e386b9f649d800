"""JSON endpoints for the browser's uploads: start (or resume), sign parts, complete, abort.

The browser PUTs each part straight to S3 with the URL signed here; this process sees only
these small JSON requests. Every key is checked to lie in the user's inputs/ or configs/.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..api.browse import Backend, Forbidden
from .auth import User, check_csrf
from .common import backend_of, config_of, signed_in


async def _body(request: Request) -> tuple[User, Backend, str, dict[str, Any]]:
    bucket = request.path_params["bucket"]
    user, _ = signed_in(request, bucket)
    await check_csrf(request)
    try:
        doc = await request.json()
    except ValueError as e:
        raise Forbidden("the request is not JSON") from e
    if not isinstance(doc, dict):
        raise Forbidden("the request is not a JSON object")
    return user, backend_of(request), bucket, doc


def _upload_id(doc: dict[str, Any]) -> str:
    value = doc.get("upload_id")
    if not isinstance(value, str) or not value:
        raise Forbidden("upload_id is missing")
    return value


async def start(request: Request) -> Response:
    """{folder, name, size} -> the key, upload id, part size and the parts S3 already has."""
    user, backend, bucket, doc = await _body(request)
    size = doc.get("size")
    if not isinstance(size, int) or size < 0:
        raise Forbidden("size must be a whole number of bytes")
    key = backend.upload_key(user.group, str(doc.get("folder", "")), str(doc.get("name", "")))
    await asyncio.to_thread(backend.allow_browser, bucket, config_of(request).origin)
    upload = await asyncio.to_thread(backend.start_upload, bucket, key, size)
    return JSONResponse(
        {
            "key": upload.key,
            "upload_id": upload.upload_id,
            "part_size": upload.part_size,
            "done": [{"n": p.number, "etag": p.etag, "size": p.size} for p in upload.done],
        }
    )


async def sign(request: Request) -> Response:
    """{key, upload_id, parts: [n...]} -> a presigned PUT URL per part."""
    user, backend, bucket, doc = await _body(request)
    key = backend.check_key(user.group, doc.get("key"))
    numbers = [n for n in doc.get("parts", []) if isinstance(n, int)][:64]
    urls = backend.sign_parts(bucket, key, _upload_id(doc), numbers)
    return JSONResponse({"urls": {str(n): url for n, url in urls.items()}})


async def complete(request: Request) -> Response:
    user, backend, bucket, doc = await _body(request)
    key = backend.check_key(user.group, doc.get("key"))
    parts = [
        (int(p["n"]), str(p["etag"]))
        for p in doc.get("parts", [])
        if isinstance(p, dict) and isinstance(p.get("n"), int) and p.get("etag")
    ]
    size = await asyncio.to_thread(backend.complete, bucket, key, _upload_id(doc), parts)
    return JSONResponse({"key": key, "size": size})


async def abort(request: Request) -> Response:
    user, backend, bucket, doc = await _body(request)
    key = backend.check_key(user.group, doc.get("key"))
    await asyncio.to_thread(backend.abort, bucket, key, _upload_id(doc))
    return JSONResponse({"key": key, "aborted": True})


def routes() -> list[BaseRoute]:
    return [
        Route("/api/a/{bucket}/uploads", start, methods=["POST"]),
        Route("/api/a/{bucket}/uploads/sign", sign, methods=["POST"]),
        Route("/api/a/{bucket}/uploads/complete", complete, methods=["POST"]),
        Route("/api/a/{bucket}/uploads/abort", abort, methods=["POST"]),
    ]
