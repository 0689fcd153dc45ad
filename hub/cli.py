"""``xl-hub``: the hub's command line.

First start::

    xl-hub run --config hub.yaml                       # creates the database
    xl-hub user add --config hub.yaml admin --role admin   # asks for the password
    xl-hub token create --config hub.yaml admin            # prints an API token once
    xl-hub device add --config hub.yaml 33010200001310000001 --kind camera-box --name 村口 \\
        --password-file edge-mqtt-password                 # writes the device's MQTT password
"""

from __future__ import annotations

import logging
import os
import sys

import click

from protocols import ProtocolError
from protocols.configdoc import ConfigError

from . import __version__


def _load(config_file: str):
    from .config import load_config
    try:
        return load_config(config_file)
    except ConfigError as exc:
        raise click.ClickException(f"invalid config:\n{exc}") from None


def _engine(config_file: str):
    from .db import make_engine, migrate
    cfg = _load(config_file)
    engine = make_engine(cfg.database_url())
    migrate(engine)
    return engine


config_option = click.option("--config", "config_file", required=True, type=click.Path(dir_okay=False),
                             help="Hub config (see firmware_configs/hub.yaml).")


@click.group()
@click.version_option(__version__, prog_name="xl-hub")
def main() -> None:
    """Xueliang hub: the county centre (综治中心)."""


@main.command()
@config_option
def run(config_file: str) -> None:
    """Run the hub (broker or ingest, web UI and API) until SIGTERM or Ctrl-C."""
    from .service import Hub, HubError
    cfg = _load(config_file)
    logging.basicConfig(level=cfg.log_level, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)
    try:
        Hub(cfg).run()
    except HubError as exc:
        raise click.ClickException(str(exc)) from None


@main.command("check-config")
@click.argument("config_file", type=click.Path(dir_okay=False))
def check_config(config_file: str) -> None:
    """Check a hub config; print file:line, key, value and message for each problem."""
    from .config import load_config
    try:
        load_config(config_file)
    except ConfigError as exc:
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        sys.exit(1)
    click.echo(f"{config_file}: OK")


@main.command()
@config_option
def migrate(config_file: str) -> None:
    """Create or upgrade the hub database schema."""
    _engine(config_file)
    click.echo("database is at the newest schema")


@main.group()
def user() -> None:
    """Hub users."""


@user.command("add")
@config_option
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "operator", "viewer"]), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of asking.")
def user_add(config_file: str, username: str, role: str, password_stdin: bool) -> None:
    """Create a user. The first admin is made this way; there is no default account."""
    from .auth import AuthError, add_user
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        add_user(_engine(config_file), username, password, role)
    except AuthError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"user {username} ({role}) created")


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@config_option
@click.argument("username")
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
def token_create(config_file: str, username: str, name: str) -> None:
    """Create an API token for USERNAME and print it (it is shown only once).

    Use it as 'Authorization: Bearer <token>' on /api/v1.
    """
    from .auth import AuthError, create_token
    try:
        click.echo(create_token(_engine(config_file), username, name))
    except AuthError as exc:
        raise click.ClickException(str(exc)) from None


@main.group()
def device() -> None:
    """The device registry."""


@device.command("add")
@config_option
@click.argument("device_id")
@click.option("--kind", type=click.Choice(["camera-box", "alarm-pillar"]), required=True)
@click.option("--name", required=True, help="Display name, e.g. 村口东.")
@click.option("--grid", "grid_code", help="Grid code.")
@click.option("--model", help="Hardware model.")
@click.option("--password-file", type=click.Path(dir_okay=False),
              help="Write the device's MQTT password here (mode 0600) instead of printing it.")
def device_add(config_file: str, device_id: str, kind: str, name: str, grid_code: str | None,
               model: str | None, password_file: str | None) -> None:
    """Register a device and make its MQTT password."""
    from .auth import new_device_secret
    from .registry import RegistryError, add_device
    engine = _engine(config_file)
    try:
        add_device(engine, device_id, kind=kind, name=name, grid_code=grid_code, model=model)
    except (RegistryError, ProtocolError) as exc:
        raise click.ClickException(str(exc)) from None
    secret = new_device_secret(engine, device_id)
    if password_file:
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret + "\n")
        click.echo(f"device {device_id} registered; MQTT password written to {password_file}")
    else:
        click.echo(f"device {device_id} registered; MQTT user {device_id}, password: {secret}")


@device.command("list")
@config_option
def device_list(config_file: str) -> None:
    """List devices with online / offline / unknown."""
    from .registry import list_devices
    cfg = _load(config_file)
    for d in list_devices(_engine(config_file), offline_after_s=cfg.ingest.offline_after_s):
        click.echo(f"{d['id']}  {d['liveness']:<8} {d['kind']:<13} {d['name'] or ''}")
