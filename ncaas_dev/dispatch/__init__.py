"""The dispatcher, split along its seam: admission (one submission in, one job folder out) and
scheduling (queued datasets, the concurrency cap, launching and settling runners), with the
claims both rely on and the sweep that recovers what a dead dispatcher left half-done.

Event sources (the SQS loop, the Lambda handler) use ``dispatcher.Dispatcher``,
which composes these parts; each part is usable and tested on its own.
"""
