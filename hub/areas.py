"""The area-code type: the county → town → village → grid tree as civil codes (GB/T 2260 and the
statistical division codes) that nest by prefix.

An area code has 12 digits: a county's last six are zeros (``330102000000``), a town's last three
(``330102001000``), a village has none (``330102001001``). A grid's code is its village's 12
digits and a grid number (13-19 digits). So "inside" is a prefix match on a code's significant
digits: the one rule access, statistics, dispatch and pages use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa

LEVELS = ("county", "town", "village", "grid")
#: significant digits of an area code at each level
DIGITS = {"county": 6, "town": 9, "village": 12}


class AreaCodeError(ValueError):
    """Not an area or grid code."""


@dataclass(frozen=True)
class AreaCode:
    code: str

    @classmethod
    def parse(cls, text: object) -> "AreaCode":
        if not isinstance(text, str) or not re.fullmatch(r"[0-9]{12,19}", text):
            raise AreaCodeError(f"an area code has 12 digits and a grid code 13-19, got {str(text)[:24]!r}")
        return cls(text)

    @property
    def level(self) -> str:
        if len(self.code) > 12:
            return "grid"
        if self.code[6:] == "000000":
            return "county"
        if self.code[9:] == "000":
            return "town"
        return "village"

    @property
    def prefix(self) -> str:
        """The digits every code inside this area starts with."""
        return self.code if self.level == "grid" else self.code[:DIGITS[self.level]]

    @property
    def parent(self) -> "AreaCode | None":
        level = self.level
        if level == "grid":
            return AreaCode(self.code[:12])
        if level == "village":
            return AreaCode(self.code[:9] + "000")
        if level == "town":
            return AreaCode(self.code[:6] + "000000")
        return None

    def chain(self) -> dict[str, str]:
        """This code and those above it by level: {"grid": …, "village": …, "town": …, "county": …}."""
        out: dict[str, str] = {}
        node: AreaCode | None = self
        while node is not None:
            out[node.level] = node.code
            node = node.parent
        return out

    def contains(self, other: "AreaCode | str") -> bool:
        code = other.code if isinstance(other, AreaCode) else other
        return code.startswith(self.prefix)

    def filter(self, column: sa.ColumnElement) -> sa.ColumnElement:
        """SQL: ``column`` holds a code inside this area."""
        return column.startswith(self.prefix, autoescape=True)

    def __str__(self) -> str:
        return self.code


def prefix_filter(prefix: str | None, column: sa.ColumnElement) -> sa.ColumnElement:
    """SQL for "``column`` is inside the scope ``prefix``" (None: everything)."""
    return sa.true() if prefix is None else column.startswith(prefix, autoescape=True)
