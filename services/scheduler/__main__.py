from shared.runner import main

from .app import setup

if __name__ == "__main__":
    main("scheduler", setup)
