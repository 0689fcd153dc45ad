"""Registry CSV import/export on SQLite and PostgreSQL: all rows or none, errors name the row."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from hub.schema import areas, grids, people
from hub.gridregistry import ImportError_, export_csv, import_csv

SAMPLE = (Path(__file__).resolve().parent.parent / "hub" / "samples" / "sample-county.csv").read_text()


def _counts(engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() for t in (areas, grids, people))


def test_sample_county_imports_and_round_trips(engine):
    assert import_csv(engine, SAMPLE) == {"areas": 6, "grids": 4, "people": 6, "devices": 0}
    exported = export_csv(engine)
    assert [line.split(",")[:3] for line in exported.splitlines()[1:7]] == \
        [line.split(",")[:3] for line in SAMPLE.splitlines()[1:7]]
    # importing the export again changes the codes in place and adds nothing but people
    import_csv(engine, "\n".join(line for line in exported.splitlines() if not line.startswith("person")) + "\n")
    assert _counts(engine) == (6, 4, 6)


@pytest.mark.parametrize("bad_line, message", [
    ("area,33010200300,短码,330102000000,town,,,,,,,,,", "area code must be 12 digits"),
    ("area,330102003000,孤岛镇,999999999999,town,,,,,,,,,", "is not a known area"),
    ("area,330102003001,错层村,330102000000,village,,,,,,,,,", "a village cannot sit under a county"),
    ("area,330102003001,假镇,330102000000,town,,,,,,,,,", "is a village's code"),
    ("area,330103001000,别县镇,330102000000,town,,,,,,,,,", "sits under 330103000000"),
    ("grid,330102009001001,无主网格,330102009001,综合,,,,,,,,,", "is not a known village"),
    ("grid,330102001001009,怪网格,330102001001,其他,,,,,,,,,", "kind of a grid"),
    ("grid,330102001001009,户数错,330102001001,综合,很多,,,,,,,,", "households must be a whole number"),
    ("person,,无名,,,,,138,boss,330102001001001,,,,", "role must be one of"),
    ("person,,外人,,,,,13800000009,police,123,,,,", "neither a known grid nor a known area"),
    ("device,33010200001990000001,坏设备,330102001001001,camera-box,,,,,,,,,", "type code"),
    ("device,33010200001310000009,远设备,330102001001001,camera-box,,,,,,91,,,", "latitude must be within"),
    ("thing,1,x,,,,,,,,,,,", "record must be area, grid, person or device"),
])
def test_a_bad_row_changes_nothing_and_is_named(engine, bad_line, message):
    lines = SAMPLE.splitlines()
    text = "\n".join(lines[:8] + [bad_line] + lines[8:]) + "\n"
    with pytest.raises(ImportError_) as exc:
        import_csv(engine, text)
    assert len(exc.value.errors) == 1
    assert exc.value.errors[0].startswith("row 9: ") and message in exc.value.errors[0], exc.value.errors
    assert _counts(engine) == (0, 0, 0)
