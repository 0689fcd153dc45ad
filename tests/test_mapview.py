from hub.mapview import HEIGHT, PAD, WIDTH, project

SQUARE = {"type": "Polygon", "coordinates": [[[120.15, 30.27], [120.16, 30.27], [120.16, 30.28], [120.15, 30.28],
                                              [120.15, 30.27]]]}


def test_polygons_and_devices_fit_the_view_north_up():
    m = project([{"code": "g1", "name": "一网格", "boundary": SQUARE}],
                [{"id": "d1", "latitude": 30.275, "longitude": 120.155, "liveness": "online"},
                 {"id": "d2", "latitude": None, "longitude": None, "liveness": "unknown"}])
    xs = [float(p.split(",")[0]) for p in m["polygons"][0]["points"].split()]
    ys = [float(p.split(",")[1]) for p in m["polygons"][0]["points"].split()]
    assert min(xs) >= PAD - 0.1 and max(xs) <= WIDTH - PAD + 0.1
    assert min(ys) >= PAD - 0.1 and max(ys) <= HEIGHT - PAD + 0.1
    assert ys[0] > ys[2]  # north (higher latitude) is up
    (dev,) = m["devices"]
    assert min(xs) < dev["xy"][0] < max(xs) and min(ys) < dev["xy"][1] < max(ys)
    # a degree of longitude is shorter than a degree of latitude at 30°N: the square is taller than wide
    assert (max(ys) - min(ys)) > (max(xs) - min(xs))


def test_nothing_to_draw():
    assert project([], [])["polygons"] == []
