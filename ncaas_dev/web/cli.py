"""`ncaas-dev web`: registered by the CLI; imports the web stack only when it runs."""

from __future__ import annotations

import os
from typing import Annotated

import typer


def web(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8765,
    origin: Annotated[
        str | None,
        typer.Option(
            "--origin",
            help="The address browsers open (scheme://host:port); needed with --host 0.0.0.0.",
        ),
    ] = None,
    cloud: Annotated[bool, typer.Option("--cloud", help="Real AWS (Cognito sign-in).")] = False,
    endpoint_url: Annotated[
        str | None, typer.Option("--endpoint-url", help="S3 endpoint (default: LocalStack).")
    ] = None,
    cognito_client_id: Annotated[
        str | None,
        typer.Option(
            "--cognito-client-id",
            envvar="NCAAS_COGNITO_CLIENT_ID",
            help="The app client `deploy` printed (CognitoClientId); signs users in with Cognito.",
        ),
    ] = None,
    cognito_analysis: Annotated[
        str | None,
        typer.Option(
            "--cognito-analysis",
            envvar="NCAAS_COGNITO_ANALYSIS",
            help="The analysis whose pool that client is (default: read from the pool's name).",
        ),
    ] = None,
) -> None:
    """The web client for analysis users: upload, submit, watch and download in a browser."""
    from ..api.browse import stack_settings
    from .auth import CognitoConfig
    from .server import serve

    settings = stack_settings(endpoint_url, cloud)
    cognito = (
        CognitoConfig(
            cognito_client_id,
            settings.region,
            os.environ.get("NCAAS_COGNITO_ENDPOINT"),
            cognito_analysis,
        )
        if cognito_client_id
        else None
    )
    serve(settings, host, port, cognito, origin)


def register(app: typer.Typer) -> None:
    app.command()(web)
