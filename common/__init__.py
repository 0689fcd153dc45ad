"""Runtime helpers that both daemons use (the edge agent and the hub), beside the pure wire
formats in ``protocols``. Nothing here imports ``edge`` or ``hub``."""
