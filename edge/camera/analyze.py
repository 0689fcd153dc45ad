"""``xl-edge analyze``: the camera pipeline over a recorded file, as fast as it decodes."""

from __future__ import annotations

import logging
from collections.abc import Callable

from protocols.deviceconfig import CameraSection

from .faces import FaceDetector
from .pipeline import CameraPipeline, FrameResult, Sink

logger = logging.getLogger(__name__)


def analyze_file(path: str, cam: CameraSection, sink: Sink, *, detector: FaceDetector | None = None,
                 on_frame: Callable[[FrameResult], None] | None = None) -> int:
    """Run the pipeline over a recorded file as fast as it decodes; returns the frames seen."""
    from protocols.ids import EventIdGenerator

    from .capture import SourceError, open_session
    session = open_session(path)
    pipe = CameraPipeline(cam.name, cam, sink, EventIdGenerator().new, detector=detector)
    pipe.fps = session.fps
    try:
        for item in session.read():
            result = pipe.on_item(item)
            if result is not None and on_frame is not None:
                on_frame(result)
    except SourceError as exc:
        logger.warning("%s: stopped at frame %d: %s", path, pipe.frames, exc)
    finally:
        session.close()
    pipe.close()
    return pipe.frames
