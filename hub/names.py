"""Names for codes: what people call a town, village, grid or device, so that pages show names
first and codes as secondary text. One read of areas and grids per page (a county has a few
hundred); devices are read by id, only those a page shows."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from .areas import AreaCode, AreaCodeError
from .schema import areas, devices, grids

PATH_LEVELS = ("town", "village", "grid")


class Names:
    def __init__(self, engine: sa.Engine):
        self._engine = engine
        with engine.connect() as conn:
            self._areas = {r.code: r.name for r in conn.execute(sa.select(areas.c.code, areas.c.name))}
            self._areas.update({r.code: r.name for r in conn.execute(sa.select(grids.c.code, grids.c.name))})
        self._devices: dict[str, str | None] = {}

    def want_devices(self, ids: Iterable[str | None]) -> "Names":
        """Read the names of these devices in one query (before a page shows them)."""
        missing = {i for i in ids if i and i not in self._devices}
        if missing:
            with self._engine.connect() as conn:
                found = dict(conn.execute(sa.select(devices.c.id, devices.c.name).where(devices.c.id.in_(missing))).all())
            self._devices.update({i: found.get(i) for i in missing})
        return self

    def device(self, device_id: str | None) -> str:
        """The device's name, else its id."""
        if not device_id:
            return ""
        if device_id not in self._devices:
            self.want_devices([device_id])
        return self._devices.get(device_id) or device_id

    def area(self, code: str | None) -> str:
        """The name of an area or grid, else its code."""
        return (self._areas.get(code) or code) if code else ""

    grid = area

    def path(self, code: str | None) -> list[tuple[str, str]]:
        """(code, name) from the town down to ``code`` (镇 › 村 › 网格)."""
        if not code:
            return []
        try:
            chain = AreaCode.parse(code).chain()
        except AreaCodeError:
            return [(code, code)]
        return [(chain[level], self.area(chain[level])) for level in PATH_LEVELS if level in chain]
