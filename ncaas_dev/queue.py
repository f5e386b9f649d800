"""The local event source: S3 notifications arrive on one SQS queue, long-polled here."""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any

from .dispatcher import Dispatcher, Outcome
from .events import records_from_sqs_body
from .storage import translated

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

QUEUE_NAME = "ncaas-submissions"
log = logging.getLogger(__name__)


def ensure_queue(sqs: SQSClient, endpoint: str | None) -> tuple[str, str]:
    """The queue's URL and ARN (created if missing)."""
    with translated(f"create queue {QUEUE_NAME}", endpoint):
        url = sqs.create_queue(
            QueueName=QUEUE_NAME,
            Attributes={"VisibilityTimeout": "120", "ReceiveMessageWaitTimeSeconds": "1"},
        )["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": queue_policy(arn)})
    return url, arn


def queue_policy(queue_arn: str) -> str:
    """Let S3 send notifications to the queue (AWS needs it; LocalStack accepts it)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "s3.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                }
            ],
        }
    )


class QueueLoop:
    def __init__(self, sqs: SQSClient, queue_url: str, dispatcher: Dispatcher) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.dispatcher = dispatcher
        self.stopping = threading.Event()

    def poll_once(self, wait_seconds: int = 1) -> list[Outcome]:
        """Receive one batch, hand each record to the dispatcher, delete what was handled."""
        outcomes: list[Outcome] = []
        with translated("receive from the submissions queue", self.dispatcher.endpoint_url):
            reply: Any = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
            )
        for message in reply.get("Messages", []):
            for record in records_from_sqs_body(message.get("Body", "")):
                outcome = self.dispatcher.handle(record)
                log.info(
                    "%s: %s %s %s",
                    record.key,
                    outcome.action,
                    outcome.job or "",
                    outcome.reason or "",
                )
                outcomes.append(outcome)
            with translated("delete a handled message", self.dispatcher.endpoint_url):
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        self.dispatcher.pump()
        return outcomes

    def run_forever(self) -> None:
        while not self.stopping.is_set():
            try:
                # Datasets waiting for a slot: look for a freed one every 0.2 s instead of
                # sitting in a 1 s long-poll.
                waiting = bool(self.dispatcher.pending)
                self.poll_once(wait_seconds=0 if waiting else 1)
                if waiting:
                    self.stopping.wait(0.2)
            except Exception:  # the loop outlives any one bad moment; the next poll retries
                log.exception("dispatcher poll failed; retrying")
                self.stopping.wait(2)
