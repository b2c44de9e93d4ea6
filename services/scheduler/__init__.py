"""The scheduler: the platform's clock."""
