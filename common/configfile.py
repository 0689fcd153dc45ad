"""Reading a config file from disk for either daemon: size-capped before it is read, and every
failure a ``ConfigError`` that names the file."""

from __future__ import annotations

from pathlib import Path

from protocols.configdoc import MAX_CONFIG_BYTES, ConfigError, ConfigIssue


def read_config_text(path: str | Path) -> str:
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError([ConfigIssue(str(path), 1, "", None,
                                           f"the config is {size:,} bytes, more than {MAX_CONFIG_BYTES:,}: refused")])
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), 0, "", None, f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue(str(path), 1, "", None,
                                       f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) from None


def one_config(option: str | None, argument: str | None) -> str:
    """The config file of a command that takes ``--config FILE`` (like every other command) and,
    as before, a bare FILE: one of them, or the same file twice."""
    import click
    if option and argument and option != argument:
        raise click.UsageError(f"two configs given: --config {option} and {argument}")
    if not (option or argument):
        raise click.UsageError("give the config: --config FILE")
    return option or argument


def missing_files(text: str, filename: str, files: list[tuple[tuple, Path]]) -> None:
    """Raise ``ConfigError`` with an issue at its key's line for each (key location, path) whose
    file cannot be read: a config can be valid and still name a password file that is not there."""
    import os

    from protocols.configdoc import issue_at
    issues = []
    for loc, path in files:
        if path.is_file() and os.access(path, os.R_OK):
            continue
        reason = "no such file" if not path.exists() else ("not a file" if not path.is_file() else "cannot be read")
        issues.append(issue_at(text, filename, loc, f"{reason}: {path}"))
    if issues:
        raise ConfigError(issues)
