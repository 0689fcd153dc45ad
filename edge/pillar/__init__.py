"""The alarm pillar: the serial link to its microcontroller, the alarm path, a simulator of the
microcontroller, and flashing configs over a serial console (installer and device sides)."""
