"""Fill a device config template (firmware_configs/*.yaml) with a registered device's identity
and credentials, keeping the template's comments, and check the result like check-config."""

from __future__ import annotations

import json
import re
from typing import Any

from protocols.deviceconfig import EdgeConfig, parse_config

_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?P<rest>.*)$")


def render(template: str, values: dict[str, Any], filename: str = "<device config>") -> tuple[str, EdgeConfig]:
    """``values`` maps dotted key paths (``device.id``, ``broker.url``, ``device.location.latitude``)
    to new values. Every path must exist, uncommented, in the template."""
    lines = template.splitlines(keepends=True)
    stack: list[tuple[int, str]] = []  # (indent, key) of the mappings we are in
    done = set()
    for i, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _LINE.match(line.rstrip("\n"))
        if not m:
            continue
        indent = len(m["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [m["key"]])
        if path in values:
            value = values[path]
            text = json.dumps(value, ensure_ascii=False) if isinstance(value, str) else json.dumps(value)
            lines[i] = f"{m['indent']}{m['key']}: {text}\n"
            done.add(path)
        if m["rest"].strip() == "":
            stack.append((indent, m["key"]))
    missing = set(values) - done
    if missing:
        raise ValueError(f"the template has no key(s) {', '.join(sorted(missing))}")
    text = "".join(lines)
    return text, parse_config(text, filename)
