"""Code every Herald service shares: settings, logging, metrics, the event contract,
the bus, the database and the service runner. Services never import each other."""
