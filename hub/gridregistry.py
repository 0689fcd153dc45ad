"""Grid registry CSV import and export: areas (county → town → village), grids, people with
their roles, and devices, in one file. An import checks every row first and changes nothing
unless all rows are good; its errors name the row."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from dataclasses import dataclass

import sqlalchemy as sa

from protocols import ProtocolError
from protocols.ids import check_device_id

from .areas import AreaCode
from .registry import put_device
from .schema import areas, audit_log, devices, grids, people, person_roles

COLUMNS = ["record", "code", "name", "parent_code", "kind", "households", "population", "phone", "role",
           "scope_code", "latitude", "longitude", "model", "boundary"]
AREA_LEVELS = {"county": "town", "town": "village"}  # parent level -> child level
ROLES = {"grid_leader": "网格长", "grid_worker_full": "专职网格员", "grid_worker_part": "兼职网格员",
         "grid_instructor": "网格指导员", "police": "民警", "village_operator": "村级操作员",
         "town_operator": "镇街操作员", "county_operator": "区县操作员"}
GRID_KINDS = ("general", "special")
#: the words on paper forms, taken on import as the kinds they name (综合网格 / 专属网格)
GRID_KIND_WORDS = {"综合": "general", "专属": "special"}
DEVICE_KINDS = ("camera-box", "alarm-pillar")


class ImportError_(Exception):
    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors))


@dataclass
class _Plan:
    areas: list[dict]
    grids: list[dict]
    people: list[tuple[dict, dict]]
    devices: list[dict]


def _int(value: str, what: str) -> int | None:
    if value == "":
        return None
    if not re.fullmatch(r"\d{1,9}", value):
        raise ValueError(f"{what} must be a whole number, got {value!r}")
    return int(value)


def _float(value: str, what: str, lo: float, hi: float) -> float | None:
    if value == "":
        return None
    try:
        f = float(value)
    except ValueError:
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not lo <= f <= hi:
        raise ValueError(f"{what} must be within {lo}..{hi}")
    return f


def _plan(conn: sa.Connection, text: str) -> _Plan:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("record", "code", "name") if c not in (reader.fieldnames or [])]
    if missing:
        raise ImportError_([f"row 1: header lacks column(s) {', '.join(missing)}; expected {','.join(COLUMNS)}"])
    known_areas = {r.code: r.level for r in conn.execute(sa.select(areas.c.code, areas.c.level))}
    known_grids = {r.code for r in conn.execute(sa.select(grids.c.code))}
    plan = _Plan([], [], [], [])
    errors = []
    for n, raw in enumerate(reader, start=2):
        row = {k: (v or "").strip() for k, v in raw.items() if k is not None}
        try:
            kind = row.get("record", "")
            if kind == "area":
                code, parent = row["code"], row.get("parent_code", "")
                if not re.fullmatch(r"\d{12}", code):
                    raise ValueError(f"area code must be 12 digits, got {code!r}")
                level = row.get("kind", "")
                if level not in ("county", "town", "village"):
                    raise ValueError("kind of an area must be county, town or village")
                if level == "county":
                    if parent:
                        raise ValueError("a county has no parent_code")
                elif known_areas.get(parent) is None:
                    raise ValueError(f"parent_code {parent!r} is not a known area (list parents first)")
                elif AREA_LEVELS.get(known_areas[parent]) != level:
                    raise ValueError(f"a {level} cannot sit under a {known_areas[parent]}")
                area = AreaCode.parse(code)
                if area.level != level:
                    raise ValueError(f"code {code} is a {area.level}'s code (a county ends in 000000, a town in "
                                     f"000), not a {level}'s")
                if area.parent is not None and parent and parent != area.parent.code:
                    raise ValueError(f"a {level} with code {code} sits under {area.parent.code}, not {parent}")
                known_areas[code] = level
                plan.areas.append({"code": code, "name": row["name"], "level": level, "parent_code": parent or None})
            elif kind == "grid":
                code, village = row["code"], row.get("parent_code", "")
                if not re.fullmatch(r"\d{13,19}", code) or not code.startswith(village):
                    raise ValueError("grid code must be 13-19 digits starting with its village's code")
                if known_areas.get(village) != "village":
                    raise ValueError(f"parent_code {village!r} is not a known village")
                grid_kind = GRID_KIND_WORDS.get(row.get("kind", ""), row.get("kind", ""))
                if grid_kind not in GRID_KINDS:
                    raise ValueError(f"kind of a grid must be one of {', '.join(GRID_KINDS)} "
                                     f"({', '.join(GRID_KIND_WORDS)})")
                boundary = json.loads(row["boundary"]) if row.get("boundary") else None
                if boundary is not None and boundary.get("type") != "Polygon":
                    raise ValueError("boundary must be a GeoJSON Polygon")
                known_grids.add(code)
                plan.grids.append({"code": code, "name": row["name"], "village_code": village, "kind": grid_kind,
                                   "households": _int(row.get("households", ""), "households"),
                                   "population": _int(row.get("population", ""), "population"), "boundary": boundary})
            elif kind == "person":
                role, scope = row.get("role", ""), row.get("scope_code", "")
                if role not in ROLES:
                    raise ValueError(f"role must be one of {', '.join(ROLES)}")
                if scope not in known_grids and scope not in known_areas:
                    raise ValueError(f"scope_code {scope!r} is neither a known grid nor a known area")
                if row.get("phone") and not re.fullmatch(r"[0-9+\- ]{5,20}", row["phone"]):
                    raise ValueError(f"phone {row['phone']!r} is not a phone number")
                plan.people.append(({"name": row["name"], "phone": row.get("phone") or None},
                                    {"role": role, "scope_code": scope}))
            elif kind == "device":
                check_device_id(row["code"])
                if row.get("parent_code") not in known_grids:
                    raise ValueError(f"parent_code {row.get('parent_code')!r} is not a known grid")
                if row.get("kind") not in DEVICE_KINDS:
                    raise ValueError(f"kind of a device must be one of {', '.join(DEVICE_KINDS)}")
                plan.devices.append({"id": row["code"], "name": row["name"], "grid_code": row["parent_code"],
                                     "kind": row["kind"], "model": row.get("model") or None,
                                     "latitude": _float(row.get("latitude", ""), "latitude", -90, 90),
                                     "longitude": _float(row.get("longitude", ""), "longitude", -180, 180)})
            else:
                raise ValueError(f"record must be area, grid, person or device, got {kind!r}")
            if not row.get("name"):
                raise ValueError("name is empty")
        except (ValueError, ProtocolError, json.JSONDecodeError, AttributeError) as exc:
            errors.append(f"row {n}: {exc}")
    if errors:
        raise ImportError_(errors)
    return plan


def import_csv(engine: sa.Engine, text: str, actor: str = "cli") -> dict[str, int]:
    """Check every row, then write all of them in one transaction (or none). Existing codes are
    updated; people are added."""
    now = time.time()
    with engine.begin() as conn:
        plan = _plan(conn, text)
        for table, key, rows in ((areas, "code", plan.areas), (grids, "code", plan.grids)):
            for row in rows:
                if conn.execute(table.update().where(table.c[key] == row[key]).values(**row)).rowcount == 0:
                    conn.execute(table.insert().values(**row))
        for row in plan.devices:
            put_device(conn, row["id"], {k: v for k, v in row.items() if k != "id"})
        for person, role in plan.people:
            pid = conn.execute(people.insert().values(**person)).inserted_primary_key[0]
            conn.execute(person_roles.insert().values(person_id=pid, **role))
        counts = {"areas": len(plan.areas), "grids": len(plan.grids), "people": len(plan.people),
                  "devices": len(plan.devices)}
        conn.execute(audit_log.insert().values(actor=actor, action="registry_import", object=None, detail=counts,
                                               at=now))
    return {"areas": len(plan.areas), "grids": len(plan.grids), "people": len(plan.people),
            "devices": len(plan.devices)}


def export_csv(engine: sa.Engine) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    order = {"county": 0, "town": 1, "village": 2}
    with engine.connect() as conn:
        for a in sorted(conn.execute(sa.select(areas)).mappings(), key=lambda a: (order[a["level"]], a["code"])):
            writer.writerow({"record": "area", "code": a["code"], "name": a["name"], "kind": a["level"],
                             "parent_code": a["parent_code"] or ""})
        for gr in conn.execute(sa.select(grids).order_by(grids.c.code)).mappings():
            writer.writerow({"record": "grid", "code": gr["code"], "name": gr["name"], "parent_code": gr["village_code"],
                             "kind": gr["kind"], "households": gr["households"] or "",
                             "population": gr["population"] or "",
                             "boundary": json.dumps(gr["boundary"]) if gr["boundary"] else ""})
        for p in conn.execute(sa.select(people.c.name, people.c.phone, person_roles.c.role, person_roles.c.scope_code)
                              .join(person_roles, person_roles.c.person_id == people.c.id)
                              .order_by(people.c.id)).mappings():
            writer.writerow({"record": "person", "code": "", "name": p["name"], "phone": p["phone"] or "",
                             "role": p["role"], "scope_code": p["scope_code"]})
        for d in conn.execute(sa.select(devices).where(devices.c.grid_code.is_not(None))
                              .order_by(devices.c.id)).mappings():
            writer.writerow({"record": "device", "code": d["id"], "name": d["name"] or "", "parent_code": d["grid_code"],
                             "kind": d["kind"], "model": d["model"] or "",
                             "latitude": "" if d["latitude"] is None else d["latitude"],
                             "longitude": "" if d["longitude"] is None else d["longitude"]})
    return out.getvalue()
