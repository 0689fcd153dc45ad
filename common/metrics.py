"""Prometheus metrics for either daemon (``prometheus_client``): a collector that reads the
counters the daemon keeps anyway and a few gauges at scrape time, and the listener Prometheus
scrapes (``metrics.host``/``metrics.port`` of the config; off unless a port is given, on the
loopback address unless told otherwise). Names are documented in the README."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable

from prometheus_client import REGISTRY, disable_created_metrics, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .ports import bind

logger = logging.getLogger(__name__)
disable_created_metrics()  # no *_created series: nothing here needs them

#: (metric name, help, labels) -> the counter dict of a component, read at scrape time
CounterSource = tuple[str, str, dict[str, str], Callable[[], dict[str, float]]]
#: (metric name, help, label names, () -> [(label values, value)])
GaugeSource = tuple[str, str, tuple[str, ...], Callable[[], Iterable[tuple[tuple[str, ...], float]]]]


def _name(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", text)


class CountersCollector(Collector):
    """``<prefix>_<counter>_total`` for each key of each counter dict (one family per key, the
    dict's labels on each sample), and the gauges."""

    def __init__(self, prefix: str, counters: list[CounterSource], gauges: list[GaugeSource]):
        self.prefix, self.counters, self.gauges = prefix, counters, gauges

    def collect(self):
        families: dict[str, CounterMetricFamily] = {}
        for group, help_text, labels, read in self.counters:
            try:
                values = dict(read())
            except Exception:  # a component that is not there yet: nothing to report
                continue
            for key, value in values.items():
                name = f"{self.prefix}_{group}_{_name(key)}"
                family = families.get(name)
                if family is None:
                    family = families[name] = CounterMetricFamily(name, f"{help_text}: {key}",
                                                                  labels=list(labels))
                family.add_metric(list(labels.values()), float(value))
        yield from families.values()
        for name, help_text, label_names, read in self.gauges:
            family = GaugeMetricFamily(f"{self.prefix}_{name}", help_text, labels=list(label_names))
            try:
                for label_values, value in read():
                    family.add_metric(list(label_values), float(value))
            except Exception:
                logger.debug("metrics: gauge %s could not be read", name, exc_info=True)
                continue
            yield family


class MetricsServer:
    """The scrape listener as a lifecycle component (``/metrics`` on ``host:port``)."""

    def __init__(self, collector: Collector, host: str, port: int, *, key: str = "metrics.port"):
        self.collector, self.host, self.key = collector, host, key
        REGISTRY.register(collector)
        self._server, self._thread = bind(host, port, key, lambda: start_http_server(port, host, REGISTRY))

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        logger.info("metrics on http://%s:%d/metrics", self.host, self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        try:
            REGISTRY.unregister(self.collector)
        except KeyError:
            pass

    def alive(self) -> bool:
        return self._thread.is_alive()
