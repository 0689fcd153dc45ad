"""Reading the device's config files: the config itself (its schema is
``protocols.deviceconfig``) and the MQTT password file it names."""

from __future__ import annotations

from pathlib import Path

from common.configfile import missing_files as check_files, read_config_text
from protocols import configdoc
from protocols.deviceconfig import EdgeConfig, parse_config


def load_config(path: str | Path) -> EdgeConfig:
    return parse_config(read_config_text(path), str(path))


def mqtt_password(cfg: EdgeConfig) -> str:
    """The password from the config, or read from ``broker.password_file``; a ConfigError that
    names the file when it cannot be read."""
    if cfg.broker.password is not None:
        return cfg.broker.password
    path = cfg.resolve(cfg.broker.password_file or "")
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise configdoc.ConfigError([configdoc.ConfigIssue(
            str(path), 1, "broker.password_file", str(path), f"cannot read the password file: {exc.strerror}")]) from None


def missing_files(cfg: EdgeConfig, filename: str) -> None:
    """Raise ``ConfigError`` (file:line of each key) for files the config names that must be
    there before the agent starts: the MQTT password and the broker's CA."""
    files = []
    if cfg.broker.password_file:
        files.append((("broker", "password_file"), cfg.resolve(cfg.broker.password_file)))
    if cfg.broker.ca_file:
        files.append((("broker", "ca_file"), cfg.resolve(cfg.broker.ca_file)))
    check_files(read_config_text(filename), filename, files)
