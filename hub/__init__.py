"""Xueliang hub: the county centre (综治中心)."""

__version__ = "0.1.0"
