"""``xl-edge``: the edge agent's command line."""

from __future__ import annotations

import logging
import sys

import click

from protocols.configdoc import ConfigError

from . import __version__
from .config import load_config


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.group()
@click.version_option(__version__, prog_name="xl-edge")
def main() -> None:
    """Xueliang edge agent for village camera boxes and alarm pillars."""


@main.command("check-config")
@click.argument("config_file", type=click.Path(dir_okay=False))
def check_config(config_file: str) -> None:
    """Check CONFIG_FILE; print file:line, key, value and message for each problem.

    Exits 0 when the config is valid, 1 otherwise.
    """
    try:
        cfg = load_config(config_file)
    except ConfigError as exc:
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        sys.exit(1)
    click.echo(f"{config_file}: OK ({cfg.device.kind} {cfg.device.id}, grid {cfg.device.grid_code})")


@main.command()
@click.option("--config", "config_file", required=True, type=click.Path(dir_okay=False),
              help="Device config (see firmware_configs/).")
def run(config_file: str) -> None:
    """Run the edge agent until SIGTERM or Ctrl-C."""
    from .agent import Agent, AgentError

    try:
        cfg = load_config(config_file)
        setup_logging(cfg.log_level)
        cfg.mqtt_password()  # fail now, with the file name, if the password file is missing
        agent = Agent(cfg)
    except ConfigError as exc:
        raise click.ClickException(f"invalid config:\n{exc}") from None
    try:
        agent.run()
    except AgentError as exc:
        raise click.ClickException(str(exc)) from None
