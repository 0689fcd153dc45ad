"""What the command lines refuse, and how: every value checked before anything is written, the
reason in one line, at once."""

from __future__ import annotations

import subprocess

import sqlalchemy as sa

from .helpers import BIN
from .test_gridregistry import SAMPLE


def _hub(tmp_path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([BIN / "xl-hub", *args], input=stdin, capture_output=True, text=True, cwd=tmp_path,
                          timeout=60)


def _hub_config(tmp_path, extra: str = ""):
    config = tmp_path / "hub.yaml"
    config.write_text("database:\n  url: sqlite:///hub.db\n" + extra, encoding="utf-8")
    return str(config)


def test_sla_set_takes_only_categories_the_hub_knows(tmp_path):
    config = _hub_config(tmp_path)
    bad = _hub(tmp_path, "sla", "set", "--config", config, "--category", "fier", "--severity", "normal", "--level",
               "village", "--accept-min", "30", "--resolve-min", "240")
    assert bad.returncode == 2 and "'fier' is not one of" in bad.stderr and "'fire'" in bad.stderr
    good = _hub(tmp_path, "sla", "set", "--config", config, "--category", "fire", "--severity", "normal", "--level",
                "village", "--accept-min", "30", "--resolve-min", "240")
    assert good.returncode == 0, good.stderr
    listed = _hub(tmp_path, "sla", "list", "--config", config).stdout.splitlines()
    assert listed[0].split()[:3] == ["CATEGORY", "SEVERITY", "LEVEL"] and listed[1].split()[:5] == \
        ["fire", "normal", "village", "30", "240"] and len(listed) == 2


def test_user_add_without_a_terminal_reads_the_password_or_says_why_not(tmp_path):
    config = _hub_config(tmp_path)
    empty = _hub(tmp_path, "user", "add", "--config", config, "admin", "--role", "admin", stdin="")
    assert empty.returncode == 1 and "no password on standard input" in empty.stderr
    assert "Aborted" not in empty.stderr + empty.stdout
    piped = _hub(tmp_path, "user", "add", "--config", config, "admin", "--role", "admin",
                 stdin="a long admin password\n")
    assert piped.returncode == 0 and "user admin (admin) created" in piped.stdout
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM users WHERE username = 'admin'")).scalar() == 1
    engine.dispose()


def test_a_scope_and_a_grid_must_be_in_the_registry_and_the_order_of_the_readme_works(tmp_path):
    config = _hub_config(tmp_path)
    early = _hub(tmp_path, "user", "add", "--config", config, "wang", "--role", "grid_worker", "--scope",
                 "330102001001001", stdin="a long grid worker password\n")
    assert early.returncode == 1 and "330102001001001" in early.stderr
    (tmp_path / "county.csv").write_text(SAMPLE, encoding="utf-8")
    assert _hub(tmp_path, "registry", "import", "--config", config, "county.csv").returncode == 0
    assert _hub(tmp_path, "user", "add", "--config", config, "wang", "--role", "grid_worker", "--scope",
                "330102001001001", stdin="a long grid worker password\n").returncode == 0
    bad_grid = _hub(tmp_path, "device", "add", "--config", config, "33010200001310000001", "--kind", "camera-box",
                    "--name", "村口", "--grid", "330102009009009")
    assert bad_grid.returncode == 1 and "no grid 330102009009009 in the registry" in bad_grid.stderr
    listed = _hub(tmp_path, "device", "list", "--config", config).stdout
    assert listed.split()[:4] == ["DEVICE", "STATE", "KIND", "NAME"] and "33010200001310000001" not in listed


def test_hub_check_config_names_a_missing_password_file_at_its_line(tmp_path):
    config = _hub_config(tmp_path, "broker:\n  url: mqtt://127.0.0.1:1883\n  username: xl-hub\n"
                                   "  password_file: hub-mqtt-password\n")
    missing = _hub(tmp_path, "check-config", "--config", config)
    assert missing.returncode == 1
    assert f"{config}:6: broker.password_file = 'hub-mqtt-password': no such file" in missing.stderr, missing.stderr
    (tmp_path / "hub-mqtt-password").write_text("a long hub password\n")
    ok = _hub(tmp_path, "check-config", "--config", config)
    assert ok.returncode == 0 and "OK" in ok.stdout
    both = _hub(tmp_path, "check-config", "--config", config, str(tmp_path / "other.yaml"))
    assert both.returncode == 2 and "two configs given" in both.stderr


def test_flash_names_a_missing_serial_port_at_once(tmp_path):
    config = tmp_path / "edge.yaml"
    config.write_text("device: {}\n")
    # told to wait 10 minutes for the device: it must not wait at all for a port that is not there
    result = subprocess.run([BIN / "xl-edge", "flash", "--port", "/dev/ttyUSB9", "--timeout", "600", "--config",
                             config], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "no serial port /dev/ttyUSB9" in result.stderr, result.stderr
