"""`python -m services.notifier` runs one notifier worker."""

from ebackpack.streaming.app import run_worker

from .agent import create_app

if __name__ == "__main__":
    run_worker(create_app())
