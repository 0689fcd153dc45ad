"""An offline map: grid polygons and device positions projected into an SVG, no map tiles."""

from __future__ import annotations

import math
from typing import Any

WIDTH, HEIGHT, PAD = 900, 600, 30


def project(grids: list[dict[str, Any]], devices: list[dict[str, Any]]) -> dict[str, Any]:
    """Screen coordinates for polygons (``grids[*]["boundary"]``, GeoJSON) and devices
    (``latitude``/``longitude``), fitted into one viewBox with an equirectangular projection."""
    points = [(lon, lat) for g in grids if g.get("boundary") for ring in g["boundary"]["coordinates"]
              for lon, lat in ring]
    points += [(d["longitude"], d["latitude"]) for d in devices
               if d.get("latitude") is not None and d.get("longitude") is not None]
    if not points:
        return {"width": WIDTH, "height": HEIGHT, "polygons": [], "devices": []}
    lons, lats = [p[0] for p in points], [p[1] for p in points]
    kx = math.cos(math.radians((min(lats) + max(lats)) / 2))  # a degree of longitude is shorter
    span_x = max((max(lons) - min(lons)) * kx, 1e-6)
    span_y = max(max(lats) - min(lats), 1e-6)
    scale = min((WIDTH - 2 * PAD) / span_x, (HEIGHT - 2 * PAD) / span_y)

    def xy(lon: float, lat: float) -> tuple[float, float]:
        return (round(PAD + (lon - min(lons)) * kx * scale, 1), round(HEIGHT - PAD - (lat - min(lats)) * scale, 1))
    polygons = []
    for g in grids:
        if not g.get("boundary"):
            continue
        ring = [xy(lon, lat) for lon, lat in g["boundary"]["coordinates"][0]]
        cx = sum(p[0] for p in ring) / len(ring)
        cy = sum(p[1] for p in ring) / len(ring)
        polygons.append({"code": g["code"], "name": g["name"], "points": " ".join(f"{x},{y}" for x, y in ring),
                         "label": (round(cx, 1), round(cy, 1))})
    marks = [{**d, "xy": xy(d["longitude"], d["latitude"])} for d in devices
             if d.get("latitude") is not None and d.get("longitude") is not None]
    return {"width": WIDTH, "height": HEIGHT, "polygons": polygons, "devices": marks}
