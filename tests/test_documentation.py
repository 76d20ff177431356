"""Every configuration key and every command is documented where a newcomer looks."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.adapters import http as http_adapter
from gateway.adapters.contract import DirectoryEventType
from gateway.cli import main
from gateway.settings import ProductConfig, Settings

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(set(Settings.model_fields) - {"products"}))
def test_every_setting_is_in_the_readme(name: str) -> None:
    assert f"`MARKETGATE_{name.upper()}`" in README


@pytest.mark.parametrize("name", sorted(ProductConfig.model_fields))
def test_every_product_key_is_in_the_readme(name: str) -> None:
    assert f"`{name}`" in README


def _commands(group: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, command in getattr(group, "commands", {}).items():
        found += _commands(command, (*path, name))
    return found


@pytest.mark.parametrize("path", _commands(main), ids=lambda path: " ".join(path) or "marketgate")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


@pytest.mark.parametrize("event_type", [item.value for item in DirectoryEventType])
def test_every_directory_event_type_is_in_the_http_wire_format(event_type: str) -> None:
    """A backend author reads the HTTP adapter's docstring: every event type it may receive is there."""
    assert f'"{event_type}"' in (http_adapter.__doc__ or "")


def test_the_member_roles_event_payload_is_documented() -> None:
    wire = http_adapter.__doc__ or ""
    for text in (wire, README):
        assert "member_roles.changed" in text
        assert all(key in text for key in ('"cause"', '"members"', '"user_name"', '"roles"', '"authSync"'))
