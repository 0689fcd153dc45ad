"""``xl-hub device``, ``registry``, ``sla`` and ``calendar``: the registry and the dispatch
queue's rules, from the command line. Every value is checked before anything is written: a
grid must exist, a category must be one the hub knows, a file must be there."""

from __future__ import annotations

from pathlib import Path

import click
import sqlalchemy as sa

from protocols import ProtocolError
from protocols.configdoc import ConfigError

from .auth import write_private
from .clicommon import config_option, engine_of, load, table
from .dispatch import CATEGORIES


def _known_grid(engine: sa.Engine, grid_code: str) -> None:
    from .schema import grids
    with engine.connect() as conn:
        if conn.execute(sa.select(grids.c.code).where(grids.c.code == grid_code)).first() is None:
            raise click.ClickException(f"no grid {grid_code} in the registry: import it first "
                                       "(xl-hub registry import) or check the code")


@click.group()
def device() -> None:
    """The device registry."""


@device.command("add")
@config_option
@click.argument("device_id")
@click.option("--kind", type=click.Choice(["camera-box", "alarm-pillar"]), required=True)
@click.option("--name", required=True, help="Display name, e.g. 村口东.")
@click.option("--grid", "grid_code", help="Grid code (a grid of the registry).")
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
    from .auth import new_device_secret
    from .devconfig import render
    from .registry import RegistryError, add_device
    if bool(template) != bool(out_config):
        raise click.ClickException("--template and --out-config go together")
    engine = engine_of(config_file)
    if grid_code is not None:
        _known_grid(engine, grid_code)
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
        secret = new_device_secret(engine_of(config_file), device_id)
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
        remove_device_secret(engine_of(config_file), device_id)
    except AuthError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"device {device_id} removed: its MQTT password no longer works")


@device.command("list")
@config_option
def device_list(config_file: str) -> None:
    """Devices with their state (online / offline / unknown), kind, name, grid and last contact."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from .names import Names
    from .registry import list_devices
    cfg = load(config_file)
    engine = engine_of(config_file)
    names, zone = Names(engine), ZoneInfo(cfg.timezone)
    rows = [(d["id"], d["liveness"], d["kind"], d["name"] or "", names.grid(d["grid_code"]) or "-",
             d["grid_code"] or "-",
             datetime.fromtimestamp(d["last_seen"], zone).strftime("%Y-%m-%d %H:%M") if d["last_seen"] else "-")
            for d in list_devices(engine, offline_after_s=cfg.ingest.offline_after_s)]
    table(("DEVICE", "STATE", "KIND", "NAME", "GRID", "GRID CODE", f"LAST SEEN ({cfg.timezone})"), rows)


@click.group()
def registry() -> None:
    """The grid registry: areas, grids, people and devices."""


@registry.command("import")
@config_option
@click.argument("csv_file", type=click.Path(dir_okay=False, exists=True))
def registry_import(config_file: str, csv_file: str) -> None:
    """Import CSV_FILE (record,code,name,parent_code,kind,…); all rows or none."""
    from .gridregistry import ImportError_, import_csv
    try:
        counts = import_csv(engine_of(config_file), open(csv_file, encoding="utf-8-sig").read())
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
    text = export_csv(engine_of(config_file))
    if out:
        open(out, "w", encoding="utf-8").write(text)
    else:
        click.echo(text, nl=False)


@click.group()
def sla() -> None:
    """SLA clocks per category, severity and level (stored as data)."""


@sla.command("set")
@config_option
@click.option("--category", type=click.Choice(["*", *CATEGORIES]), default="*", show_default=True,
              help="Ticket category, or * for all.")
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
        set_sla(engine_of(config_file), category, severity, level, accept_min, resolve_min, not wall_clock)
    except DispatchError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"SLA {category}/{severity}/{level}: accept {accept_min:g} min, resolve {resolve_min:g} min"
               f" ({'wall clock' if wall_clock else 'working time'})")


@sla.command("list")
@config_option
def sla_list(config_file: str) -> None:
    """The SLA rules stored (a category's own rule comes before the one for every category)."""
    from .schema import sla_rules
    with engine_of(config_file).connect() as conn:
        rows = conn.execute(sa.select(sla_rules).order_by(sla_rules.c.category, sla_rules.c.severity,
                                                          sla_rules.c.level)).mappings().all()
    table(("CATEGORY", "SEVERITY", "LEVEL", "ACCEPT MIN", "RESOLVE MIN", "CLOCK"),
          [(r["category"], r["severity"], r["level"], f"{r['accept_min']:g}", f"{r['resolve_min']:g}",
            "working time" if r["working_time"] else "wall clock") for r in rows])


@click.group()
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
    engine = engine_of(config_file)
    with engine.begin() as conn:
        conn.execute(calendar_days.delete().where(calendar_days.c.day == day))
        conn.execute(calendar_days.insert().values(day=day, kind=kind, name=name or None))
    click.echo(f"{day}: {kind} {name}")


COMMANDS = (device, registry, sla, calendar)
