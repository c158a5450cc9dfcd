"""Why an upload is not imported."""

from __future__ import annotations


class ImportRejected(ValueError):
    """The upload is not something we import (unknown type, hostile, over a limit): a precise reason."""
