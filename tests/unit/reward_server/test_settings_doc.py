"""docs/settings.md is what `reward-server settings` prints: every environment variable, documented."""

from __future__ import annotations

from reward_server.settings import RewardSettings
from reward_server.settings_doc import settings_markdown
from tests.conftest import REPO


def test_docs_settings_md_is_current() -> None:
    current = (REPO / "docs" / "settings.md").read_text()
    assert current == settings_markdown(), "regenerate: reward-server settings > docs/settings.md"


def test_every_setting_has_a_description() -> None:
    undocumented = [name for name, field in RewardSettings.model_fields.items() if not field.description]
    assert undocumented == []
