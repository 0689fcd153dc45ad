"""What every ``xl-hub`` command shares: loading the config (with file:line errors), the
database at the newest schema, the ``--config`` option, passwords from a terminal or a pipe,
and tables with a header."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from protocols.configdoc import ConfigError


def load(config_file: str):
    from .config import load_config
    try:
        return load_config(config_file)
    except ConfigError as exc:
        raise click.ClickException(f"invalid config:\n{exc}") from None


def engine_of(config_file: str):
    from .db import make_engine, migrate
    cfg = load(config_file)
    engine = make_engine(cfg.database_url())
    migrate(engine)
    return engine


config_option = click.option("--config", "config_file", required=True, type=click.Path(dir_okay=False),
                             help="Hub config (see firmware_configs/hub.yaml).")


def read_password(from_stdin: bool) -> str:
    """Ask on the terminal (twice); read one line when told to or when there is no terminal."""
    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
        if not password:
            raise click.ClickException("no password on standard input: run this in a terminal to be asked, "
                                       "or pipe the password in (--password-stdin)")
        return password
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Columns padded to their widest cell (wide characters count twice), a header line first."""
    import unicodedata

    def width(text: str) -> int:
        return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    cells = [[str(c) for c in header]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(width(r[i]) for r in cells) for i in range(len(header))]
    for row in cells:
        click.echo("  ".join(c + " " * (w - width(c)) for c, w in zip(row, widths)).rstrip())
