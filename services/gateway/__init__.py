"""The gateway: Herald's thin HTTP door."""
