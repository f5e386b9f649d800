"""Skip a `docker build` that cannot change anything: the build context is as it was.

`ncaas-dev run` builds before every run so a changed analysis never runs as its stale image.
Even fully cached, a build costs a context upload and a pass over every step (0.1-0.3 s on a
2-core machine). This records, per image tag, a fingerprint of what the build reads (every
file's path, size, mode and modification time, the Dockerfile's name, the build arguments)
and the image it produced; the next build is skipped while both still match. Any doubt
(a file touched, the image gone or retagged) means a real build.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from .blueprint import LoadedBlueprint
from .privacy import write_private


def fingerprint(loaded: LoadedBlueprint) -> str:
    spec = loaded.blueprint.image
    context = (loaded.folder / spec.context).resolve()
    digest = hashlib.sha256()
    digest.update(
        json.dumps([spec.dockerfile, spec.build_args, loaded.blueprint.image_tag]).encode()
    )
    for root, dirs, files in os.walk(context):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            relative = os.path.relpath(path, context)
            digest.update(f"{relative}\0{st.st_size}\0{st.st_mode}\0{st.st_mtime_ns}\n".encode())
    dockerfile = (loaded.folder / spec.dockerfile).resolve()
    if not dockerfile.is_relative_to(context) and dockerfile.exists():  # outside the context
        st = dockerfile.stat()
        digest.update(f"{dockerfile}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return digest.hexdigest()


def _record(cache_dir: Path, tag: str) -> Path:
    return cache_dir / "builds" / (hashlib.sha256(tag.encode()).hexdigest()[:24] + ".json")


def cached_build(
    loaded: LoadedBlueprint,
    cache_dir: Path,
    build: Callable[[LoadedBlueprint], str],
    current_id: Callable[[str], str | None],
) -> str:
    """The image id: from the record if the context and the image are unchanged, else built."""
    tag = loaded.blueprint.image_tag
    record = _record(cache_dir, tag)
    current = fingerprint(loaded)
    try:
        doc = json.loads(record.read_text())
        if doc.get("fingerprint") == current and doc.get("image_id") == current_id(tag):
            return str(doc["image_id"])
    except (OSError, ValueError, AttributeError):
        pass
    image_id = build(loaded)
    tmp = record.with_suffix(".tmp")  # under the state folder: private like the rest of it
    write_private(
        tmp, json.dumps({"tag": tag, "fingerprint": current, "image_id": image_id}).encode()
    )
    tmp.replace(record)
    return image_id
