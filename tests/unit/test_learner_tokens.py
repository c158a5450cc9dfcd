"""API tokens: a learner id signed with the installation's secret, refused when altered or expired."""

from __future__ import annotations

from pathlib import Path

import pytest

from ebackpack.config import Settings
from services.backpack.auth import issue_token, learner_of


def test_a_token_names_its_learner_and_nothing_else_verifies(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    token = issue_token(settings, 5722)

    assert learner_of(settings, token) == 5722
    with pytest.raises(ValueError, match="not valid"):
        learner_of(settings, token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1])
    with pytest.raises(ValueError, match="not valid"):  # another installation's secret
        learner_of(Settings(data_dir=tmp_path / "other"), token)
    with pytest.raises(ValueError, match="expired"):
        learner_of(settings, token, max_age=-1)
