"""The `ebackpack` command line."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from ebackpack.config import get_settings

app = typer.Typer(help="e-Backpack: issue, store and verify micro-credentials from Moodle.",
                  no_args_is_help=True, add_completion=False)
stack_app = typer.Typer(help="The embedded broker (Tansu) and S3 server (SeaweedFS).", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
err = Console(stderr=True)


class RichProgress:
    """Draws the demo's progress on stderr, so `--json` output stays clean on stdout."""

    def __init__(self) -> None:
        self.bar = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=err, transient=False)
        self.tasks: dict[str, TaskID] = {}

    def stage(self, text: str) -> None:
        self.bar.console.print(f"[bold]›[/bold] {text}")

    def _update(self, name: str, done: int, total: int) -> None:
        if name not in self.tasks:
            self.tasks[name] = self.bar.add_task(name, total=total)
        self.bar.update(self.tasks[name], completed=done, total=total)

    def published(self, done: int, total: int) -> None:
        self._update("events published", done, total)

    def processed(self, events_done: int, events_total: int, pdfs_done: int, pdfs_total: int) -> None:
        self._update("events read by the issuer", events_done, events_total)
        self._update("certificate PDFs stored", pdfs_done, pdfs_total)


@app.command()
def demo(
    events: int = typer.Option(0, help="Generate a data set of N Moodle events (0: the bundled sample)."),
    seed: int = typer.Option(0, help="Seed of the generated data set."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
    timeout: float = typer.Option(600.0, help="Give up waiting for the pipeline after this many seconds."),
) -> None:
    """Run the whole pipeline on sample Moodle events and summarize what it issued."""
    from ebackpack.demo import DemoTimeout, run_demo
    from ebackpack.sample_data import default_dataset, generate

    settings = get_settings()
    dataset = generate(events, seed=seed, site=settings.site_id) if events else default_dataset()
    progress = RichProgress()
    try:
        with progress.bar:
            summary = run_demo(settings, dataset, progress, timeout=timeout)
    except DemoTimeout as exc:
        err.print(f"[red]demo failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    if as_json:
        print(json.dumps(summary.as_json(), ensure_ascii=False))
        return
    _print_summary(summary)


def _print_summary(summary: object) -> None:
    from ebackpack.demo import DemoSummary

    assert isinstance(summary, DemoSummary)
    console = Console()
    table = Table(title=f"e-Backpack demo ({summary.seconds} s)", show_header=True)
    table.add_column("what")
    table.add_column("count", justify="right")
    for label, value in [("Moodle events read", summary.events), ("learner completions", summary.completions),
                         ("credentials issued (badges), total", summary.issued),
                         ("  of them new in this run", summary.new_issued),
                         ("certificate PDFs stored", summary.rendered),
                         ("messages dead-lettered", summary.dead_lettered)]:
        table.add_row(label, str(value))
    console.print(table)
    if summary.new_issued == 0:
        console.print("Nothing new was issued: every completion already had its credential.")
    for link in summary.certificates[:5]:
        console.print(f"  {link.code}  {link.verify_url}\n      {link.pdf}")
    if len(summary.certificates) > 5:
        console.print(f"  … and {len(summary.certificates) - 5} more")
    console.print(f"PDFs: {summary.out_dir}")


@app.command()
def serve(host: str | None = None, port: int | None = None) -> None:
    """Run the web server (public verification pages) on the configured database."""
    import uvicorn

    from services.backpack.app import create_app

    settings = get_settings()
    uvicorn.run(create_app(settings), host=host or settings.http_host, port=port or settings.http_port)


class ServiceName(StrEnum):
    issuer = "issuer"
    renderer = "renderer"


@app.command()
def worker(service: ServiceName) -> None:
    """Run one worker of a service in the foreground (production: several per service)."""
    from ebackpack.streaming.app import run_worker

    if service is ServiceName.issuer:
        from services.issuer.agent import create_app
    else:
        from services.renderer.agent import create_app
    sys.argv = sys.argv[:1]
    run_worker(create_app(get_settings()))


@app.command()
def prepare() -> None:
    """Create the database schema, the bucket and every topic (idempotent)."""
    from ebackpack.demo import prepare as prepare_all

    prepare_all(get_settings())
    err.print("database, bucket and topics are ready")


@stack_app.command("up")
def stack_up() -> None:
    """Start the embedded stack in the background and create the topics."""
    from ebackpack.stack import EmbeddedStack
    from ebackpack.streaming.topics import create_topics

    settings = get_settings()
    stack = EmbeddedStack(settings)
    stack.start()
    create_topics(settings)
    stack.detach()
    err.print(f"Kafka (Tansu) at {settings.kafka_bootstrap}, S3 (SeaweedFS) at {settings.s3_endpoint}; "
              f"logs in {stack.log_dir}. Stop with `ebackpack stack down`.")


@stack_app.command("down")
def stack_down() -> None:
    """Stop the embedded stack started by `stack up`."""
    from ebackpack.stack import EmbeddedStack

    stopped = EmbeddedStack(get_settings()).stop_detached()
    err.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@app.command("export-schemas")
def export_schemas(out: Path | None = None) -> None:
    """Export the JSON Schema of every published message type (default folder: schemas/json)."""
    from schemas.export import DEFAULT_DIR, export_json_schemas

    paths = export_json_schemas(out or DEFAULT_DIR)
    err.print(f"wrote {len(paths)} schemas")


if __name__ == "__main__":
    app()
