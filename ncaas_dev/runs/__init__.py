"""One dataset's run: the runner (fetch, run the container, stream the log,
upload outputs), log shipping and stopping."""
