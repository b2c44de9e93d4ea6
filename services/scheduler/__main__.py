import asyncio

from shared.logging import configure_logging
from shared.runner import run_worker
from shared.settings import load_settings

from .app import setup


def main() -> None:
    settings = load_settings()
    configure_logging("scheduler", settings.log_level)
    asyncio.run(run_worker("scheduler", settings, setup))


if __name__ == "__main__":
    main()
