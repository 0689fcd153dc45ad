"""``xl-hub``: the hub's command line.

Every command takes ``--config hub.yaml``; README "Running it for real" gives the order.
Commands of the registry and the dispatch rules are in ``hub.cli_registry``.
"""

from __future__ import annotations

import logging
import sys

import click

from common.configfile import one_config
from protocols.configdoc import ConfigError

from . import __version__
from .cli_registry import COMMANDS
from .clicommon import config_option, engine_of, load, read_password


@click.group()
@click.version_option(__version__, prog_name="xl-hub")
def main() -> None:
    """Xueliang hub: the county centre (综治中心)."""


@main.command()
@config_option
@click.option("--role", type=click.Choice(["all", "ingest", "web", "escalator"]), default="all", show_default=True,
              help="What this node runs: everything, or one part of a hub of several nodes sharing the database "
                   "and an external broker (docs/SCALE.md).")
def run(config_file: str, role: str) -> None:
    """Run the hub (broker or ingest, web UI and API, jobs) until SIGTERM or Ctrl-C."""
    from common.ports import EXIT_ADDRESS, AddressUnavailable

    from .service import Hub, HubError
    cfg = load(config_file)
    logging.basicConfig(level=cfg.log_level, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)
    try:
        Hub(cfg, role).run()
    except HubError as exc:
        raise click.ClickException(str(exc)) from None
    except AddressUnavailable as exc:
        click.echo(f"Error: {exc} ({config_file})", err=True)
        sys.exit(EXIT_ADDRESS)


@main.command("check-config")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="Hub config to check.")
@click.argument("config_arg", required=False, type=click.Path(dir_okay=False), metavar="[CONFIG]")
def check_config(config_file: str | None, config_arg: str | None) -> None:
    """Check a hub config (--config FILE) and the files it names; print file:line, key, value and
    message for each problem."""
    from .config import load_config, missing_files
    config_file = one_config(config_file, config_arg)
    try:
        cfg = load_config(config_file)
        missing_files(cfg, config_file)
    except ConfigError as exc:
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        sys.exit(1)
    click.echo(f"{config_file}: OK")


@main.command()
@config_option
def migrate(config_file: str) -> None:
    """Create or upgrade the hub database schema."""
    engine_of(config_file)
    click.echo("database is at the newest schema")


@main.group()
def user() -> None:
    """Hub users."""


@user.command("add")
@config_option
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "operator", "grid_worker", "viewer"]), required=True)
@click.option("--scope", "scope_code", help="Area or grid code whose subtree the user sees (required but for admins).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of asking.")
def user_add(config_file: str, username: str, role: str, scope_code: str | None, password_stdin: bool) -> None:
    """Create a user. The first admin is made this way; there is no default account."""
    from .auth import AuthError, add_user
    password = read_password(password_stdin)
    try:
        add_user(engine_of(config_file), username, password, role, scope_code)
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
        click.echo(create_token(engine_of(config_file), username, name))
    except AuthError as exc:
        raise click.ClickException(str(exc)) from None


@main.command("broker-config")
@config_option
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for passwd, acl and mosquitto.conf.")
@click.option("--hub-user", default="xl-hub", show_default=True, help="The hub's MQTT user.")
@click.option("--hub-password-file", type=click.Path(dir_okay=False),
              help="The hub's MQTT password (made if missing); default: broker.password_file of the config.")
@click.option("--port", default=8883, show_default=True, help="Listener port in mosquitto.conf.")
@click.option("--tls/--no-tls", default=True, show_default=True, help="TLS listener settings in mosquitto.conf.")
def broker_config(config_file: str, out_dir: str, hub_user: str, hub_password_file: str | None, port: int,
                  tls: bool) -> None:
    """Write Mosquitto password and ACL files: each device may use only its own topics."""
    from pathlib import Path

    from .brokerconf import write_broker_files
    cfg = load(config_file)
    if hub_password_file is None:
        if cfg.broker is None:
            raise click.ClickException("give --hub-password-file (the config has no broker section)")
        hub_password_file = str(cfg.resolve(cfg.broker.password_file))
    paths, missing = write_broker_files(engine_of(config_file), Path(out_dir), hub_user=hub_user,
                                        hub_password_file=Path(hub_password_file), port=port, tls=tls)
    for name, path in paths.items():
        click.echo(f"wrote {path}")
    if missing:
        click.echo(f"warning: {len(missing)} device(s) left out, they have no broker password yet: "
                   f"{', '.join(missing)}; run `xl-hub device password` for each", err=True)


@main.command("turn-config")
@config_option
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False),
              help="Where to write coturn's turnserver.conf.")
@click.option("--listen-ip", required=True, help="Address coturn listens and relays on (the hub machine's).")
@click.option("--external-ip", default=None, help="The public address devices and browsers reach, if coturn "
                                                  "sits behind a 1:1 NAT.")
@click.option("--port", default=3478, show_default=True, help="TURN port (UDP and TCP).")
@click.option("--min-port", default=49160, show_default=True, help="First relay port.")
@click.option("--max-port", default=49200, show_default=True, help="Last relay port.")
@click.option("--log-file", default="/var/log/turnserver/turn.log", show_default=True)
@click.option("--allow-loopback-peers", is_flag=True, help="Relay to 127.0.0.1 too: only for everything on one "
                                                            "machine (the demo), never in production.")
def turn_config(config_file: str, out_file: str, listen_ip: str, external_ip: str | None, port: int, min_port: int,
                max_port: int, log_file: str, allow_loopback_peers: bool) -> None:
    """Write coturn's config for live video: the hub's shared secret (live.turn_secret_file, made if
    missing), its realm and ports. Put the same turn: URL in the hub config's live.turn_urls."""
    from pathlib import Path

    from .auth import write_private
    from .turn import read_or_make_secret, turnserver_conf
    cfg = load(config_file)
    if not 1 <= min_port <= max_port <= 65535:
        raise click.ClickException("--min-port must be at most --max-port, both 1-65535")
    secret_path = cfg.resolve(cfg.live.turn_secret_file)
    try:
        secret = read_or_make_secret(secret_path)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"live.turn_secret_file: {exc}") from None
    write_private(Path(out_file), turnserver_conf(secret=secret, realm=cfg.live.turn_realm, listen_ip=listen_ip,
                                                  external_ip=external_ip, port=port, min_port=min_port,
                                                  max_port=max_port, log_file=log_file,
                                                  allow_loopback_peers=allow_loopback_peers))
    click.echo(f"wrote {out_file} (shared secret in {secret_path})")
    if not cfg.live.turn_urls:
        click.echo(f"warning: the hub config has no live.turn_urls; add turn:{external_ip or listen_ip}:{port}"
                   "?transport=udp", err=True)


for _command in COMMANDS:
    main.add_command(_command)
