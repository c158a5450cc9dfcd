"""`python -m ebackpack.cli`: the same as the `ebackpack` command."""

from ebackpack.cli import app

app()
