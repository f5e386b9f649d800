"""The local event source: S3 notifications arrive on one SQS queue, long-polled here."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from ..events import records_from_sqs_body
from ..storage import translated
from .dispatcher import Dispatcher, Outcome

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)


class QueueLoop:
    def __init__(self, sqs: SQSClient, queue_url: str, dispatcher: Dispatcher) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.dispatcher = dispatcher
        self.stopping = threading.Event()

    def poll_once(self, wait_seconds: int = 1) -> list[Outcome]:
        """Receive one batch, admit its records together, delete what was handled."""
        with translated("receive from the submissions queue", self.dispatcher.endpoint_url):
            reply: Any = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
            )
        messages = reply.get("Messages", [])
        records = [r for m in messages for r in records_from_sqs_body(m.get("Body", ""))]
        outcomes = self.dispatcher.handle_many(records)
        for record, outcome in zip(records, outcomes, strict=True):
            log.info(
                "%s: %s %s %s", record.key, outcome.action, outcome.job or "", outcome.reason or ""
            )
        if messages:  # handled, rejected or found a duplicate: none of them is to come back
            with translated("delete handled messages", self.dispatcher.endpoint_url):
                self.sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)
                    ],
                )
        return outcomes

    def run_forever(self) -> None:
        while not self.stopping.is_set():
            try:
                # Datasets waiting for a slot: look for a freed one every 0.2 s instead of
                # sitting in a 1 s long-poll; while events keep coming, take them at once.
                waiting = bool(self.dispatcher.pending)
                outcomes = self.poll_once(wait_seconds=0 if waiting else 1)
                if waiting and not outcomes:
                    self.stopping.wait(0.2)
            except Exception:  # the loop outlives any one bad moment; the next poll retries
                log.exception("dispatcher poll failed; retrying")
                self.stopping.wait(2)
