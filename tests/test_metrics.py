"""/metrics on the hub and on a device, scraped from the running daemons while events flow:
the names the README documents, with values that follow what happened."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from .helpers import ROOT, Edge, Hub, device_id, free_port, wait_for


def _families(port: int) -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return {f.name for f in text_string_to_metric_families(resp.read().decode())}


def _scrape(port: int) -> dict[str, float]:
    """{'name{label="v"}': value} of every sample."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def test_hub_and_device_metrics_follow_the_events(tmp_path, procs):
    hub_port, edge_port = free_port(), free_port()
    hub = Hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'hub.db'}", extra={"metrics": {"port": hub_port}})
    procs.append(hub)
    hub.start()
    dev = device_id(1)
    password = hub.add_device(dev)
    edge = Edge(tmp_path / "edge", dev, password, hub.mqtt_port, rate=50, count=200,
                extra={"metrics": {"port": edge_port}})
    procs.append(edge)
    edge.start()
    wait_for(lambda: len(hub.event_ids(dev)) == 200, 60, "200 events at the hub")
    wait_for(lambda: _scrape(edge_port).get("xl_edge_outbox_depth") == 0, 30, "the device's outbox to drain")
    h, e = _scrape(hub_port), _scrape(edge_port)
    assert h['xl_hub_ingest_events_new_total{lane="main"}'] == 200
    assert h['xl_hub_ingest_malformed_total{lane="main"}'] == 0
    assert h['xl_hub_ingest_lag_seconds_count{lane="main"}'] == 200
    assert h['xl_hub_ingest_batch_messages_sum{lane="main"}'] >= 200
    assert h['xl_hub_broker_connected{lane="main"}'] == 1 and h['xl_hub_broker_connected{lane="urgent"}'] == 1
    assert h['xl_hub_devices{state="online"}'] == 1 and h["xl_hub_commands_pending"] == 0
    assert "process_resident_memory_bytes" in h  # what the process costs, from prometheus_client
    assert e["xl_edge_sync_published_total"] >= 200 and e["xl_edge_sync_acked_total"] == 200
    assert e["xl_edge_hub_connected"] == 1
    edge_names = _families(edge_port)
    # a malformed message is counted on the hub, and nothing stops
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from protocols import topics
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="metrics-test")
    client.username_pw_set(dev, password)
    edge.stop()
    client.connect("127.0.0.1", hub.mqtt_port)
    client.loop_start()
    client.publish(topics.event(dev), b'{"not": "an event"}', qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()
    wait_for(lambda: _scrape(hub_port)['xl_hub_ingest_malformed_total{lane="main"}'] == 1, 10,
             "the bad message counted")
    # every metric the daemons export is in the README's list
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    names = {n for n in _families(hub_port) | edge_names if n.startswith("xl_")}
    assert len(names) >= 20, names
    missing = sorted(n for n in names if f"`{n}`" not in readme)
    assert not missing, missing
