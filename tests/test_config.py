from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edge.config import load_config, mqtt_password
from hub.config import load_config as load_hub_config
from protocols.configdoc import ConfigError

from .helpers import BIN
from .test_gridregistry import SAMPLE

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "firmware_configs"


@pytest.mark.parametrize("name", ["camera-box.yaml", "alarm-pillar.yaml"])
def test_device_templates_are_valid(name):
    cfg = load_config(TEMPLATES / name)
    assert cfg.device.kind == name.removesuffix(".yaml")


def test_hub_example_is_valid():
    assert load_hub_config(TEMPLATES / "hub.yaml").broker is None


def _broken(tmp_path, old: str, new: str) -> Path:
    text = (TEMPLATES / "camera-box.yaml").read_text()
    assert old in text
    path = tmp_path / "broken.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_misspelt_key_names_file_line_and_suggests(tmp_path):
    path = _broken(tmp_path, "  keepalive_s: 30", "  keepalive_sec: 30")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    (issue,) = exc.value.issues
    assert issue.line == _line_of(path, "keepalive_sec")
    assert str(issue) == f"{path}:{issue.line}: broker.keepalive_sec = 30: unknown key; did you mean 'keepalive_s'?"


@pytest.mark.parametrize("old, new, key, message", [
    ("  keepalive_s: 30", "  keepalive_s: 2", "broker.keepalive_s", "greater than or equal to 5"),
    ('  id: "33010200001310000001"', '  id: "33010200001340000001"', "device", "needs device type code 131"),
    ('  id: "33010200001310000001"', '  id: "3301"', "device.id", "at least 20 characters"),
    ("  url: mqtt://127.0.0.1:1883", "  url: http://127.0.0.1:1883", "broker.url", "mqtt://host:port"),
    ("    latitude: 30.2741", "    latitude: 130.2741", "device.location.latitude", "less than or equal to 90"),
    ("  password_file: mqtt-password", "  password: short", "broker.password", "at least 8 characters"),
])
def test_bad_values_are_reported_with_key_and_line(tmp_path, old, new, key, message):
    path = _broken(tmp_path, old, new)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    text = str(exc.value)
    assert f"{path}:" in text and key in text and message in text, text


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = _broken(tmp_path, "  model: XL-CB1", "  model: [XL-CB1")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert "YAML syntax error" in str(exc.value) and f"{path}:" in str(exc.value)


def test_check_config_cli_exit_codes(tmp_path):
    config = tmp_path / "pillar.yaml"
    config.write_text((TEMPLATES / "alarm-pillar.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    # the template names a password file that is not there yet: its key's line, and exit 1
    missing = subprocess.run([BIN / "xl-edge", "check-config", "--config", config], capture_output=True, text=True)
    line = next(i for i, text in enumerate(config.read_text(encoding="utf-8").splitlines(), 1)
                if text.strip().startswith("password_file:"))
    assert missing.returncode == 1, missing.stdout
    assert f"{config}:{line}: broker.password_file" in missing.stderr and "no such file" in missing.stderr
    (tmp_path / "mqtt-password").write_text("a long device password\n")
    ok = subprocess.run([BIN / "xl-edge", "check-config", "--config", config], capture_output=True, text=True)
    assert ok.returncode == 0 and "OK" in ok.stdout, ok.stderr
    # the bare file argument of earlier releases still works
    assert subprocess.run([BIN / "xl-edge", "check-config", config], capture_output=True).returncode == 0
    bad = subprocess.run([BIN / "xl-edge", "check-config", _broken(tmp_path, "grid_code:", "grid_cod:")],
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert "did you mean 'grid_code'?" in bad.stderr and "device.grid_code: required key is missing" in bad.stderr


def test_run_without_password_file_says_which_file(tmp_path):
    path = tmp_path / "edge.yaml"
    path.write_text((TEMPLATES / "camera-box.yaml").read_text())
    result = subprocess.run([BIN / "xl-edge", "run", "--config", path], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "mqtt-password" in result.stderr and "broker.password_file" in result.stderr


def test_device_add_fills_in_the_template_with_credentials(tmp_path):
    hub_cfg = tmp_path / "hub.yaml"
    hub_cfg.write_text("database:\n  url: sqlite:///hub.db\n")
    unknown = subprocess.run(
        [BIN / "xl-hub", "device", "add", "--config", hub_cfg, "33010200001340000007", "--kind", "alarm-pillar",
         "--name", "祠堂报警柱", "--grid", "330102001001002"], capture_output=True, text=True)
    assert unknown.returncode == 1 and "no grid 330102001001002 in the registry" in unknown.stderr
    (tmp_path / "county.csv").write_text(SAMPLE, encoding="utf-8")
    subprocess.run([BIN / "xl-hub", "registry", "import", "--config", hub_cfg, tmp_path / "county.csv"], check=True,
                   capture_output=True)
    out = tmp_path / "site" / "pillar7.yaml"
    out.parent.mkdir()
    result = subprocess.run(
        [BIN / "xl-hub", "device", "add", "--config", hub_cfg, "33010200001340000007", "--kind", "alarm-pillar",
         "--name", "祠堂报警柱", "--grid", "330102001001002", "--template", TEMPLATES / "alarm-pillar.yaml",
         "--out-config", out, "--broker-url", "mqtts://hub.example:8883", "--lat", "30.1", "--lon", "120.2"],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    cfg = load_config(out)
    assert (cfg.device.id, cfg.device.name, cfg.device.grid_code) == ("33010200001340000007", "祠堂报警柱",
                                                                     "330102001001002")
    assert cfg.broker.url == "mqtts://hub.example:8883" and cfg.device.location.latitude == 30.1
    assert len(mqtt_password(cfg)) >= 24 and (out.parent / "pillar7.mqtt-password").stat().st_mode & 0o077 == 0
    assert "# 20-digit GB/T 28181-style id" in out.read_text()  # comments kept
    # a kind that does not fit the template's id type is refused and registers nothing
    bad = subprocess.run(
        [BIN / "xl-hub", "device", "add", "--config", hub_cfg, "33010200001310000008", "--kind", "alarm-pillar",
         "--name", "x", "--template", TEMPLATES / "alarm-pillar.yaml", "--out-config", tmp_path / "bad.yaml"],
        capture_output=True, text=True)
    assert bad.returncode == 1 and "needs device type code 134" in bad.stderr
    listed = subprocess.run([BIN / "xl-hub", "device", "list", "--config", hub_cfg], capture_output=True, text=True)
    assert "33010200001310000008" not in listed.stdout and "33010200001340000007" in listed.stdout


def _alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


BOMBS = {
    "alias bomb": (_alias_bomb(), "expand to"),
    "self-reference": ("device: &d\n  id: *d\n", "refers to the value that contains it"),
    "50 MB": ("device:\n" + "  # padding\n" * 4_600_000, "more than 262,144"),
    "deep nesting": ("device: " + "[" * 50_000, "nested too deeply"),
}


@pytest.mark.parametrize("kind", list(BOMBS))
@pytest.mark.parametrize("cli", ["xl-edge", "xl-hub"])
def test_config_bombs_are_refused_in_under_a_second_with_file_and_line(tmp_path, kind, cli):
    text, message = BOMBS[kind]
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    result = subprocess.run([BIN / cli, "check-config", path], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout
    assert f"{path}:" in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("kind", list(BOMBS))
def test_the_flash_receiver_refuses_config_bombs(tmp_path, kind):
    from protocols.deviceconfig import parse_config
    from edge.pillar.provision import check_document
    text, message = BOMBS[kind]
    error = check_document(text.encode(), lambda t: parse_config(t, str(tmp_path / "edge.yaml")))
    assert error is not None and message in error and "line " in error
