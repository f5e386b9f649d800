"""The web client (`ncaas-dev web`): Starlette + Jinja2 + htmx pages over the library."""
