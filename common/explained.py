"""Errors whose message is a catalogue template with parameters. ``str(exc)`` is the English
text (logs, the JSON API, the CLI); a page translates ``exc.template`` through its catalogue
and fills in ``exc.params`` (``hub.web.i18n.error_text``). ``N_`` marks a template for the
catalogue extractor without translating it here: domain code does not know the reader's
language."""

from __future__ import annotations

from typing import Any


def N_(template: str) -> str:  # noqa: N802 - the extractor's keyword
    return template


class Explained(Exception):
    def __init__(self, template: str, **params: Any):
        super().__init__(template % params if params else template)
        self.template = template
        self.params = params
