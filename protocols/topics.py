"""MQTT topic builders: the only place in the project where topic strings are made.

Layout (v1)::

    xl/v1/dev/<device_id>/event       edge -> hub   events (QoS 1)
    xl/v1/dev/<device_id>/urgent      edge -> hub   urgent-lane events (alarms), when the hub's status
                                                    offers the lane; the hub takes them in its own session
    xl/v1/dev/<device_id>/ack         hub -> edge   ids the hub has stored (QoS 1)
    xl/v1/dev/<device_id>/status      edge -> hub   birth / last will (QoS 1, retained)
    xl/v1/dev/<device_id>/heartbeat   edge -> hub   health figures (QoS 0)
    xl/v1/dev/<device_id>/cmd         hub -> edge   commands, e.g. "help coming" (QoS 1)
    xl/v1/dev/<device_id>/cmd_ack     edge -> hub   ids of the commands the device has applied (QoS 1)
    xl/v1/dev/<device_id>/live        hub -> edge   live video signalling: a browser's offer, or close (QoS 1)
    xl/v1/dev/<device_id>/live_answer edge -> hub   the device's answer to a live offer, or its refusal (QoS 1)
    xl/v1/hub/status                  hub -> edges  hub online / offline (QoS 1, retained)
"""

from __future__ import annotations

from .ids import check_device_id
from . import ProtocolError

PREFIX = "xl/v1"
DEVICE_CHANNELS = ("event", "urgent", "ack", "status", "heartbeat", "cmd", "cmd_ack", "live", "live_answer")
#: channels a device publishes on, and those it receives
DEVICE_PUBLISHES = ("event", "urgent", "status", "heartbeat", "cmd_ack", "live_answer")
DEVICE_RECEIVES = ("ack", "cmd", "live")


def _device(device_id: str, channel: str) -> str:
    return f"{PREFIX}/dev/{check_device_id(device_id)}/{channel}"


def event(device_id: str) -> str:
    return _device(device_id, "event")


def urgent(device_id: str) -> str:
    return _device(device_id, "urgent")


def ack(device_id: str) -> str:
    return _device(device_id, "ack")


def status(device_id: str) -> str:
    return _device(device_id, "status")


def heartbeat(device_id: str) -> str:
    return _device(device_id, "heartbeat")


def command(device_id: str) -> str:
    return _device(device_id, "cmd")


def command_ack(device_id: str) -> str:
    return _device(device_id, "cmd_ack")


def live(device_id: str) -> str:
    return _device(device_id, "live")


def live_answer(device_id: str) -> str:
    return _device(device_id, "live_answer")


def hub_status() -> str:
    return f"{PREFIX}/hub/status"


def all_devices(channel: str, share_group: str | None = None) -> str:
    """Subscription filter for one channel of every device, optionally as a shared subscription
    (``$share/<group>/...``) so that several hub ingest workers split the load."""
    if channel not in DEVICE_CHANNELS:
        raise ProtocolError(f"unknown device channel {channel!r}")
    topic = f"{PREFIX}/dev/+/{channel}"
    return f"$share/{share_group}/{topic}" if share_group else topic


def parse_device_topic(topic: str) -> tuple[str, str]:
    """Split ``xl/v1/dev/<id>/<channel>`` into ``(device_id, channel)``; raise ``ProtocolError``."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != PREFIX or parts[2] != "dev":
        raise ProtocolError(f"not a v1 device topic: {topic[:120]!r}")
    if parts[4] not in DEVICE_CHANNELS:
        raise ProtocolError(f"unknown device channel {parts[4]!r} in {topic[:120]!r}")
    return check_device_id(parts[3]), parts[4]
