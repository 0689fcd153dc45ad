"""Documentation stays true: every CLI command in the README, every config field described and
present in its commented template."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from pydantic import BaseModel

from edge.cli import main as edge_main
from protocols.deviceconfig import EdgeConfig, McuParams
from hub.cli import main as hub_main
from hub.config import HubConfig
from protocols.configdoc import _unwrap_model

ROOT = Path(__file__).resolve().parent.parent


def _commands(group: click.Group, prefix: str):
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, f"{prefix} {name}")
        else:
            yield f"{prefix} {name}", cmd


@pytest.mark.parametrize("cli, prefix", [(edge_main, "xl-edge"), (hub_main, "xl-hub")])
def test_every_command_is_in_the_readme_and_has_help(cli, prefix):
    readme = (ROOT / "README.md").read_text()
    for name, cmd in _commands(cli, prefix):
        assert name in readme, f"{name} is not documented in README.md"
        assert cmd.help, f"{name} has no help text"


def _fields(model: type[BaseModel], path=""):
    for name, info in model.model_fields.items():
        yield f"{path}{name}", name, info
        sub = _unwrap_model(info.annotation)
        if sub is not None:
            yield from _fields(sub, f"{path}{name}.")


@pytest.mark.parametrize("model, template", [(EdgeConfig, "camera-box.yaml"), (EdgeConfig, "alarm-pillar.yaml"),
                                             (HubConfig, "hub.yaml"), (McuParams, "pillar-mcu.yaml")])
def test_every_config_field_is_described_and_in_the_template(model, template):
    text = (ROOT / "firmware_configs" / template).read_text()
    for path, name, info in _fields(model):
        assert info.description, f"{path} has no description"
        if template == "camera-box.yaml" and path.startswith("pillar"):
            continue  # pillars only
        assert re.search(rf"^\s*#?\s*{re.escape(name)}:", text, re.M), f"{path} is missing from {template}"
