"""The dispatcher: turns requests and domain events into delivered notifications."""
