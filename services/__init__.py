"""The four Herald services. They share only ``shared/`` and the bus, never each other."""
