"""A loopback TCP proxy that cuts every request off partway into its body: the one fault a
writer killed mid-upload leaves, which nothing else here can cause on cue."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)


def _serve_one(client: socket.socket, upstream: tuple[str, int], body_bytes: int) -> None:
    with client, socket.create_connection(upstream) as server:
        threading.Thread(target=_pipe, args=(server, client), daemon=True).start()
        head = b""
        while b"\r\n\r\n" not in head:
            data = client.recv(65536)
            if not data:
                return
            head += data
        headers, _, body = head.partition(b"\r\n\r\n")
        server.sendall(headers + b"\r\n\r\n")
        while len(body) < body_bytes:  # the body's first bytes (after any 100-continue)
            data = client.recv(65536)
            if not data:
                break
            body += data
        server.sendall(body[:body_bytes])
        # Then the connection drops, both ways, the way it does when the writer is killed.
        for end in (server, client):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


@contextmanager
def cutting_proxy(upstream: tuple[str, int], body_bytes: int) -> Iterator[str]:
    """``http://127.0.0.1:{port}``, forwarding to ``upstream`` each request's headers and only
    the first ``body_bytes`` bytes of its body."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def accept() -> None:
        with suppress(OSError):
            while True:
                client, _ = listener.accept()
                threading.Thread(
                    target=_serve_one, args=(client, upstream, body_bytes), daemon=True
                ).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        with suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() above
        listener.close()
