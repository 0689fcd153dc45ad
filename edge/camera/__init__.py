"""A device's cameras: capture, motion, faces, the per-camera pipeline, clips, privacy, media,
the agent component with its watchdog, offline analysis and generated scenes."""
