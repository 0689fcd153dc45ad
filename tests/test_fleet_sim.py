"""The fleet simulator against a real Mosquitto and hub: every simulated device logs in with its
own password, is born online at the hub, sends heartbeats and events that arrive exactly once
(resent until acked across a broker restart), and a device that falls silent goes offline."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from edge.fleetsim import Fleet

from .helpers import Hub, device_id, wait_for


def test_a_simulated_fleet_is_online_and_every_event_arrives_once(tmp_path, procs, mosquitto):
    hub = Hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'hub.db'}", mosquitto=mosquitto)
    procs.append(hub)
    creds = {device_id(i): hub.add_device(device_id(i)) for i in range(1, 41)}
    mosquitto.start()
    hub.start()

    def states() -> dict[str, str]:
        with hub.engine.connect() as conn:
            return dict(conn.execute(sa.text("SELECT id, status FROM devices")).all())

    async def scenario() -> Fleet:
        fleet = Fleet(creds, "127.0.0.1", mosquitto.port, heartbeat_s=1, event_every_s=0.5, alarm_every_s=5,
                      ack_timeout_s=2, keepalive_s=3)
        fleet.start()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, wait_for, lambda: fleet.stats.connected == 40, 20, "40 devices connected")
        await loop.run_in_executor(None, wait_for, lambda: list(states().values()).count("online") == 40, 20,
                                   "40 devices online at the hub")
        await asyncio.sleep(3)
        mosquitto.stop()  # events made now wait on the devices and are sent again
        await asyncio.sleep(2)
        mosquitto.start()
        await asyncio.sleep(4)
        fleet.devices[0].silent = True  # stops talking: the broker's keepalive, its will, the hub
        await loop.run_in_executor(None, wait_for, lambda: states()[fleet.devices[0].id] == "offline", 30,
                                   "the silent device offline at the hub")
        fleet.quiet = True
        await loop.run_in_executor(None, wait_for, lambda: all(not d.unacked for d in fleet.devices[1:]), 60,
                                   "every event acked", 0.5)
        await fleet.stop()
        return fleet

    fleet = asyncio.run(scenario())
    with hub.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, device_id, type FROM events")).all()
        beats = conn.execute(sa.text("SELECT count(*) FROM devices WHERE heartbeat IS NOT NULL")).scalar()
    ids = [r.id for r in rows]
    assert len(ids) == len(set(ids))  # once each
    # every event the fleet made is at the hub, but what the silent device could not send
    assert set(ids) == fleet.made - set(fleet.devices[0].unacked) and len(ids) >= 100
    assert fleet.stats.events_resent > 0 and fleet.stats.alarms_sent > 0
    assert {r.type for r in rows} == {"motion", "alarm"} and beats == 40
