"""`python -m services.renderer` runs one renderer worker."""

from ebackpack.streaming.app import run_worker

from .agent import create_app

if __name__ == "__main__":
    run_worker(create_app())
