"""`python -m services.importer` runs one importer worker."""

from ebackpack.streaming.app import run_worker

from .agent import create_app

if __name__ == "__main__":
    run_worker(create_app())
