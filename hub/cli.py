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
import sys

import click

from protocols import ProtocolError
from protocols.configdoc import ConfigError

from . import __version__
from .auth import write_private


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
    from common.ports import EXIT_ADDRESS, AddressUnavailable

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
    except AddressUnavailable as exc:
        click.echo(f"Error: {exc} ({config_file})", err=True)
        sys.exit(EXIT_ADDRESS)


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
@click.option("--role", type=click.Choice(["admin", "operator", "grid_worker", "viewer"]), required=True)
@click.option("--scope", "scope_code", help="Area or grid code whose subtree the user sees (required but for admins).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of asking.")
def user_add(config_file: str, username: str, role: str, scope_code: str | None, password_stdin: bool) -> None:
    """Create a user. The first admin is made this way; there is no default account."""
    from .auth import AuthError, add_user
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        add_user(_engine(config_file), username, password, role, scope_code)
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
@click.option("--template", type=click.Path(dir_okay=False, exists=True),
              help="Device config template (firmware_configs/*.yaml) to fill in for this device.")
@click.option("--out-config", type=click.Path(dir_okay=False),
              help="Where to write the filled-in config (with --template); the password file goes beside it.")
@click.option("--broker-url", help="Broker URL for the device config, e.g. mqtts://hub.example:8883.")
@click.option("--lat", type=float, help="Latitude for the device config.")
@click.option("--lon", type=float, help="Longitude for the device config.")
@click.option("--address", help="Address for the device config.")
def device_add(config_file: str, device_id: str, kind: str, name: str, grid_code: str | None,
               model: str | None, password_file: str | None, template: str | None, out_config: str | None,
               broker_url: str | None, lat: float | None, lon: float | None, address: str | None) -> None:
    """Register a device and make its MQTT password; optionally fill in its config template."""
    from pathlib import Path

    from .auth import new_device_secret
    from .devconfig import render
    from .registry import RegistryError, add_device
    if bool(template) != bool(out_config):
        raise click.ClickException("--template and --out-config go together")
    values: dict = {}
    if template:
        values = {"device.id": device_id, "device.kind": kind, "device.name": name,
                  "broker.password_file": Path(out_config).stem + ".mqtt-password"}
        for key, value in (("device.grid_code", grid_code), ("device.model", model), ("broker.url", broker_url),
                           ("device.location.latitude", lat), ("device.location.longitude", lon),
                           ("device.location.address", address)):
            if value is not None:
                values[key] = value
        try:
            text, _ = render(Path(template).read_text(encoding="utf-8"), values, out_config)
        except (ValueError, ConfigError) as exc:
            raise click.ClickException(f"the filled-in template is not valid:\n{exc}") from None
        password_file = str(Path(out_config).parent / values["broker.password_file"])
    engine = _engine(config_file)
    try:
        add_device(engine, device_id, kind=kind, name=name, grid_code=grid_code, model=model, latitude=lat,
                   longitude=lon, address=address)
    except (RegistryError, ProtocolError) as exc:
        raise click.ClickException(str(exc)) from None
    secret = new_device_secret(engine, device_id)
    if template:
        Path(out_config).write_text(text, encoding="utf-8")
        click.echo(f"device config written to {out_config}")
    if password_file:
        write_private(password_file, secret + "\n")
        click.echo(f"device {device_id} registered; MQTT password written to {password_file}")
    else:
        click.echo(f"device {device_id} registered; MQTT user {device_id}, password: {secret}")


@device.command("password")
@config_option
@click.argument("device_id")
@click.option("--password-file", type=click.Path(dir_okay=False), required=True,
              help="Write the new MQTT password here (mode 0600).")
def device_password(config_file: str, device_id: str, password_file: str) -> None:
    """Give DEVICE_ID a new MQTT password (the old one stops working); rerun broker-config after."""
    from .auth import AuthError, new_device_secret
    try:
        secret = new_device_secret(_engine(config_file), device_id)
    except AuthError as exc:
        raise click.ClickException(str(exc)) from None
    write_private(password_file, secret + "\n")
    click.echo(f"new MQTT password for {device_id} written to {password_file}")


@device.command("remove")
@config_option
@click.argument("device_id")
def device_remove(config_file: str, device_id: str) -> None:
    """Take DEVICE_ID off the network: its MQTT password stops working at once on the embedded
    broker (its open session is closed); rerun broker-config for Mosquitto. Its events stay."""
    from .auth import AuthError, remove_device_secret
    try:
        remove_device_secret(_engine(config_file), device_id)
    except AuthError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"device {device_id} removed: its MQTT password no longer works")


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
    cfg = _load(config_file)
    if hub_password_file is None:
        if cfg.broker is None:
            raise click.ClickException("give --hub-password-file (the config has no broker section)")
        hub_password_file = str(cfg.resolve(cfg.broker.password_file))
    paths, missing = write_broker_files(_engine(config_file), Path(out_dir), hub_user=hub_user,
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
    cfg = _load(config_file)
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


@main.group()
def registry() -> None:
    """The grid registry: areas, grids, people and devices."""


@registry.command("import")
@config_option
@click.argument("csv_file", type=click.Path(dir_okay=False, exists=True))
def registry_import(config_file: str, csv_file: str) -> None:
    """Import CSV_FILE (record,code,name,parent_code,kind,…); all rows or none."""
    from .gridregistry import ImportError_, import_csv
    try:
        counts = import_csv(_engine(config_file), open(csv_file, encoding="utf-8-sig").read())
    except ImportError_ as exc:
        for error in exc.errors:
            click.echo(f"{csv_file}: {error}", err=True)
        raise click.ClickException(f"nothing imported: {len(exc.errors)} bad row(s)") from None
    click.echo("imported " + ", ".join(f"{n} {what}" for what, n in counts.items()))


@registry.command("export")
@config_option
@click.option("--out", type=click.Path(dir_okay=False), help="File to write (standard output if not given).")
def registry_export(config_file: str, out: str | None) -> None:
    """Export the registry as CSV, in the format `registry import` reads."""
    from .gridregistry import export_csv
    text = export_csv(_engine(config_file))
    if out:
        open(out, "w", encoding="utf-8").write(text)
    else:
        click.echo(text, nl=False)


@main.group()
def sla() -> None:
    """SLA clocks per category, severity and level (stored as data)."""


@sla.command("set")
@config_option
@click.option("--category", default="*", show_default=True, help="Ticket category, or * for all.")
@click.option("--severity", type=click.Choice(["normal", "urgent"]), required=True)
@click.option("--level", type=click.Choice(["village", "town", "county"]), required=True)
@click.option("--accept-min", type=float, required=True, help="Minutes to accept.")
@click.option("--resolve-min", type=float, required=True, help="Minutes to resolve.")
@click.option("--wall-clock", is_flag=True, help="Count every minute, not only working time.")
def sla_set(config_file: str, category: str, severity: str, level: str, accept_min: float, resolve_min: float,
            wall_clock: bool) -> None:
    """Set the accept and resolve deadlines for new tickets and escalations."""
    from .dispatch import DispatchError, set_sla
    try:
        set_sla(_engine(config_file), category, severity, level, accept_min, resolve_min, not wall_clock)
    except DispatchError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"SLA {category}/{severity}/{level}: accept {accept_min:g} min, resolve {resolve_min:g} min"
               f" ({'wall clock' if wall_clock else 'working time'})")


@main.group()
def calendar() -> None:
    """The working calendar: holidays and make-up workdays (调休)."""


@calendar.command("set")
@config_option
@click.argument("day")
@click.option("--kind", type=click.Choice(["holiday", "workday"]), required=True)
@click.option("--name", default="", help="e.g. 国庆节.")
def calendar_set(config_file: str, day: str, kind: str, name: str) -> None:
    """Mark DAY (YYYY-MM-DD) as a holiday or as a worked day."""
    import datetime as dt

    from .schema import calendar_days
    try:
        dt.date.fromisoformat(day)
    except ValueError:
        raise click.ClickException(f"{day!r} is not a date like 2026-10-01") from None
    engine = _engine(config_file)
    with engine.begin() as conn:
        conn.execute(calendar_days.delete().where(calendar_days.c.day == day))
        conn.execute(calendar_days.insert().values(day=day, kind=kind, name=name or None))
    click.echo(f"{day}: {kind} {name}")


@device.command("list")
@config_option
def device_list(config_file: str) -> None:
    """List devices with online / offline / unknown."""
    from .registry import list_devices
    cfg = _load(config_file)
    for d in list_devices(_engine(config_file), offline_after_s=cfg.ingest.offline_after_s):
        click.echo(f"{d['id']}  {d['liveness']:<8} {d['kind']:<13} {d['name'] or ''}")
