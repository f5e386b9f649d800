"""The dispatcher as an AWS Lambda function: the same core the local SQS loop runs.

S3 submission events go to ``Dispatcher.handle``, one record at a time; the scheduled sweep
(EventBridge, every minute) runs ``recover()`` then ``pump()`` so datasets that waited for a
concurrency slot get launched. The function keeps nothing between invocations: claims and
statuses live in the bucket, running instances are counted in EC2 by their tags.

A function serves one analysis (``NCAAS_ANALYSIS``) in one bucket (``NCAAS_BUCKET``: the
blueprint's ``cloud.bucket``, else the analysis name): its role may read no other bucket, so
the sweep's bucket listing is answered with that one bucket, without asking S3.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.awsrequest import AWSResponse

from ...events import records_from_s3_event
from .template import SWEEP_EVENT

if TYPE_CHECKING:
    from ...dispatch.dispatcher import Dispatcher

log = logging.getLogger(__name__)
logging.getLogger().setLevel(logging.INFO)  # Lambda's root logger starts at WARNING


def is_sweep(event: Any) -> bool:
    """The sweep rule's own input, or any EventBridge schedule event."""
    if not isinstance(event, dict):
        return False
    return all(event.get(k) == v for k, v in SWEEP_EVENT.items()) or (
        event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event"
    )


def _only_bucket(bucket: str) -> Any:
    """A botocore ``before-call`` hook answering ListBuckets with the analysis's bucket."""

    def answer(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        reply = AWSResponse(url="", status_code=200, headers={}, raw=None)  # type: ignore[arg-type]
        return reply, {"Buckets": [{"Name": bucket}], "ResponseMetadata": {}}

    return answer


def build_dispatcher(environ: dict[str, str] | None = None) -> Dispatcher:
    """The dispatcher of the function's analysis, with the EC2 launcher."""
    from ...aws import s3_client
    from ...dispatch.dispatcher import Dispatcher
    from ...launchers.ec2 import Ec2Launcher  # imported here: a module the Lambda runs only
    from ...settings import Settings
    from ...storage import Storage

    env = dict(os.environ if environ is None else environ)
    bucket = env.get("NCAAS_BUCKET") or env["NCAAS_ANALYSIS"]
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    # A test (or a LocalStack that could run Lambdas) points it at its endpoint.
    endpoint = env.get("NCAAS_ENDPOINT_URL") or None
    settings = Settings(
        endpoint_url=endpoint, region=region, state_dir=Path("/tmp/ncaas")
    )  # Lambda's only writable place
    s3 = s3_client(settings)
    s3.meta.events.register("before-call.s3.ListBuckets", _only_bucket(bucket))
    storage = Storage(s3, endpoint)
    launcher = Ec2Launcher(settings, storage)
    return Dispatcher(storage, launcher, endpoint, region)


_dispatcher: Dispatcher | None = None  # reused while the execution environment is warm


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """Entry point (``ncaas_dev.cloud.deploy.lambda_handler.handler``)."""
    global _dispatcher
    if _dispatcher is None:
        _dispatcher = build_dispatcher()
    dispatcher = _dispatcher
    if is_sweep(event):
        queued = dispatcher.sweep()  # all submissions listed only now and then (sweep.py)
        dispatcher.pump()
        log.info("sweep: queued %d dataset(s), %d still waiting", queued, len(dispatcher.pending))
        return {"sweep": True, "queued": queued, "waiting": len(dispatcher.pending)}
    outcomes = []
    for record in records_from_s3_event(event):
        outcome = dispatcher.handle(record)
        log.info("%s: %s %s", outcome.key, outcome.action, outcome.job or outcome.reason or "")
        outcomes.append(
            {
                "key": outcome.key,
                "action": outcome.action,
                "job": outcome.job,
                "reason": outcome.reason,
            }
        )
    return {"sweep": False, "outcomes": outcomes}
