"""Response headers every page gets, and the safe shape of a download's file name.

No inline script runs (the CSP allows scripts from this origin only: app.js, upload.js, htmx),
nothing may frame the client, nothing is sniffed into HTML, no page is cached (a signed-in
page read back from a shared machine's cache shows another user's jobs), and no referrer
leaves the site.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

AWS_S3 = "https://*.amazonaws.com"  # presigned uploads and figures, on AWS


def content_security_policy(s3_origins: tuple[str, ...]) -> str:
    s3 = " ".join(s3_origins or (AWS_S3,))
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            # htmx adds its indicator style, and result trees indent with style attributes.
            "style-src 'self' 'unsafe-inline'",
            f"img-src 'self' data: {s3}",  # figures are presigned S3 URLs
            f"connect-src 'self' {s3}",  # the browser PUTs upload parts straight to S3
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class SecurityHeaders:
    def __init__(self, app: ASGIApp, s3_origins: tuple[str, ...] = ()) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", content_security_policy(s3_origins).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if static or k.lower() != b"cache-control"
                ]
                headers += self.headers
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
