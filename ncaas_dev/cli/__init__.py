"""The command line: the only package that imports Typer and Rich."""
