"""Wire formats shared by the edge agent and the hub.

Pure code, no I/O: topic builders (the only place topic strings are made), message
types with ``schema_version`` and ``encode()``/``decode()``. See README.md in this
package for the wire specification.
"""

SCHEMA_VERSION = 1


class ProtocolError(ValueError):
    """A payload, topic or identifier does not follow the wire format; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
