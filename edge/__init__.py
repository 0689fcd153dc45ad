"""Xueliang edge agent: runs on every village camera box and alarm pillar."""

__version__ = "0.1.0"
