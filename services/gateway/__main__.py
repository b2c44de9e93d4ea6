import uvicorn

from shared.logging import configure_logging
from shared.settings import load_settings

from .app import create_app


def main() -> None:
    settings = load_settings()
    configure_logging("gateway", settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.drain_timeout),
    )


if __name__ == "__main__":
    main()
