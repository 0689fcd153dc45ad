"""The area-code type: levels, parents, containment and the SQL prefix filter."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from hub.areas import AreaCode, AreaCodeError

COUNTY, TOWN, VILLAGE, GRID = "330102000000", "330102001000", "330102001001", "330102001001001"


def test_levels_parents_and_chain():
    assert [AreaCode.parse(c).level for c in (COUNTY, TOWN, VILLAGE, GRID)] == ["county", "town", "village", "grid"]
    assert AreaCode.parse(GRID).parent == AreaCode(VILLAGE)
    assert AreaCode.parse(VILLAGE).parent == AreaCode(TOWN)
    assert AreaCode.parse(TOWN).parent == AreaCode(COUNTY)
    assert AreaCode.parse(COUNTY).parent is None
    assert AreaCode.parse(GRID).chain() == {"grid": GRID, "village": VILLAGE, "town": TOWN, "county": COUNTY}


def test_containment_by_prefix():
    county, town = AreaCode.parse(COUNTY), AreaCode.parse(TOWN)
    assert county.contains(GRID) and town.contains(VILLAGE) and town.contains(AreaCode(GRID))
    assert not town.contains("330102002001001") and not AreaCode.parse(VILLAGE).contains("330102001002001")
    assert [AreaCode.parse(c).prefix for c in (COUNTY, TOWN, VILLAGE, GRID)] == ["330102", "330102001",
                                                                               VILLAGE, GRID]


@pytest.mark.parametrize("bad", ["", "33010200100", "33010200100a", "3" * 20, None, 330102001001, "330102001001\n"])
def test_bad_codes(bad):
    with pytest.raises(AreaCodeError):
        AreaCode.parse(bad)


def test_sql_filter_escapes_like_wildcards():
    meta = sa.MetaData()
    t = sa.Table("t", meta, sa.Column("code", sa.String))
    engine = sa.create_engine("sqlite://")
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), [{"code": c} for c in (GRID, "330102002001001", "330102001_01001")])
        rows = conn.execute(sa.select(t.c.code).where(AreaCode.parse(TOWN).filter(t.c.code))).scalars().all()
    assert rows == [GRID, "330102001_01001"] or sorted(rows) == sorted([GRID, "330102001_01001"])
