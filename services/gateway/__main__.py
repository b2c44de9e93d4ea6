import asyncio
import signal

import uvicorn

from shared.runner import EmbeddedServer, ignore_late_signals, start
from shared.settings import Settings

from .app import create_app


async def serve(settings: Settings) -> None:
    server = EmbeddedServer(
        uvicorn.Config(
            create_app(settings),
            host=settings.gateway_host,
            port=settings.gateway_port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(settings.drain_timeout),
        )
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.handle_exit, sig, None)
    await server.serve()


def main() -> None:
    settings = start("gateway")
    asyncio.run(serve(settings))
    ignore_late_signals()


if __name__ == "__main__":
    main()
