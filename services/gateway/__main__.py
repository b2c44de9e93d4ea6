import asyncio

from shared.runner import ignore_late_signals, start

from .serving import serve


def main() -> None:
    settings = start("gateway")
    asyncio.run(serve(settings))
    ignore_late_signals()


if __name__ == "__main__":
    main()
