"""The `ebackpack` command line."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from ebackpack.config import get_settings

if TYPE_CHECKING:
    from ebackpack.credentials.store import CredentialStore

app = typer.Typer(help="e-Backpack: issue, store and verify micro-credentials from Moodle.",
                  no_args_is_help=True, add_completion=False)
stack_app = typer.Typer(help="The embedded broker (Tansu) and S3 server (SeaweedFS).", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
credential_app = typer.Typer(help="Export or revoke one credential.", no_args_is_help=True)
app.add_typer(credential_app, name="credential")
keys_app = typer.Typer(help="The issuer's signing keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
certificates_app = typer.Typer(help="Certificate PDFs: re-render, bulk download.", no_args_is_help=True)
app.add_typer(certificates_app, name="certificates")
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
                         ("signed Open Badges 3.0 credentials", summary.signed),
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
    if summary.certificates:
        code = summary.certificates[0].code
        console.print(f"One credential in all its forms: ebackpack credential export {code} --format "
                      "ob3|ob3-jwt|ob2|ob2-png|ob2-svg|ob3-png")


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


class ExportFormat(StrEnum):
    ob2 = "ob2"
    ob2_png = "ob2-png"
    ob2_svg = "ob2-svg"
    ob3 = "ob3"
    ob3_jwt = "ob3-jwt"
    ob3_png = "ob3-png"


@credential_app.command("export")
def credential_export(
    code: str = typer.Argument(help="Verification code (as printed) or credential id."),
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="Which form.")] = ExportFormat.ob3,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File (default: stdout).")] = None,
) -> None:
    """Write one credential as OB 2.0 JSON / baked PNG / SVG, or OB 3.0 JSON / JWT / baked PNG."""
    from ebackpack.credentials.exports import ExportError, export

    with _credential_store() as store:
        award = store.find(code)
        if award is None:
            err.print(f"[red]no credential with code or id {code!r}[/red]")
            raise typer.Exit(1)
        try:
            result = export(store, award, fmt.value)
        except ExportError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
    if output is None:
        sys.stdout.buffer.write(result.content)
    else:
        output.write_bytes(result.content)
        err.print(f"wrote {output} ({result.media_type}, {len(result.content)} bytes)")


@credential_app.command("revoke")
def credential_revoke(
    code: str = typer.Argument(help="Verification code (as printed) or credential id."),
    reason: str = typer.Option(..., "--reason", help="Why: shown to everyone who checks the credential."),
) -> None:
    """Revoke a credential: status list, OB 2.0 JSON and verification page change at once; the issuer
    announces the credential-revoked event within seconds."""
    from ebackpack.persistence.engine import make_engine, migrate, session_factory
    from services.issuer.rules import load_rules
    from services.issuer.service import CredentialNotFound, IssuerService

    settings = get_settings()
    migrate(settings.db_url)
    service = IssuerService(session_factory(make_engine(settings.db_url)), load_rules(settings.rules_file),
                            settings)
    try:
        award = service.revoke(code, reason)
    except (CredentialNotFound, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    err.print(f"{award.verification_code} is revoked (since {award.revoked_at:%Y-%m-%d %H:%M} UTC): "
              f"{award.revocation_reason}")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Add a new signing key of each kind; older keys stay published so what they signed still verifies.
    Restart the issuer workers to sign with the new keys."""
    from ebackpack.credentials.keys import rotate_key_dir

    settings = get_settings()
    if settings.signing_keys is not None:
        err.print("[red]keys come from EBACKPACK_SIGNING_KEYS: rotate them where they are kept[/red]")
        raise typer.Exit(1)
    ring = rotate_key_dir(settings.key_dir)
    err.print("signing with " + ", ".join(ring.current(a).kid for a in ("Ed25519", "ES256"))
              + f"; published: {', '.join(k.kid for k in ring.keys)}")


@keys_app.command("show")
def keys_show() -> None:
    """Print the issuer's DID document (public keys only)."""
    from ebackpack.credentials.keys import did_document, did_web, keyring_for

    settings = get_settings()
    print(json.dumps(did_document(did_web(settings.public_url), keyring_for(settings)), indent=2))


@certificates_app.command("rerender")
def certificates_rerender(
    course: Annotated[int | None, typer.Option(help="Moodle course id.")] = None,
    rule: Annotated[str | None, typer.Option(help="Award rule id.")] = None,
) -> None:
    """Re-render every certificate of a course or rule (after a template change). A PDF that comes out
    different becomes a new version; earlier versions stay retrievable and verifiable."""
    from ebackpack.persistence.engine import make_engine, migrate, session_factory
    from services.issuer.rules import load_rules
    from services.issuer.service import IssuerService

    settings = get_settings()
    migrate(settings.db_url)
    service = IssuerService(session_factory(make_engine(settings.db_url)), load_rules(settings.rules_file),
                            settings)
    try:
        queued = service.rerender(course_id=course, rule_id=rule)
    except ValueError as exc:
        err.print(f"[red]{exc}: give --course or --rule[/red]")
        raise typer.Exit(1) from None
    err.print(f"{queued} render requests queued; the issuer announces them within seconds and the "
              "renderers store the new versions")


@certificates_app.command("zip")
def certificates_zip(
    course: Annotated[int, typer.Option(help="Moodle course id.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="ZIP file to write.")],
) -> None:
    """Write the current certificate of every learner of a course into one ZIP (with a manifest),
    streaming from object storage."""
    from ebackpack.persistence.engine import make_engine, migrate, session_factory
    from ebackpack.storage import ObjectStore
    from services.renderer.bulk import course_entries, write_zip

    settings = get_settings()
    migrate(settings.db_url)
    with session_factory(make_engine(settings.db_url))() as session:
        entries = course_entries(session, course)
    if not entries:
        err.print(f"[red]course {course} has no stored certificates[/red]")
        raise typer.Exit(1)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err) as bar:
        task = bar.add_task("certificates", total=len(entries))
        tmp = output.with_name(f".{output.name}.partial")
        with tmp.open("wb") as target:
            count = write_zip(ObjectStore(settings), entries, target, lambda n: bar.update(task, completed=n))
        tmp.replace(output)  # a half-written ZIP never has the final name
    err.print(f"wrote {output}: {count} certificates and manifest.csv")


@contextmanager
def _credential_store() -> Iterator[CredentialStore]:
    from ebackpack.credentials.store import CredentialStore
    from ebackpack.persistence.engine import make_engine, migrate, session_factory
    from services.issuer.rules import load_rules

    settings = get_settings()
    migrate(settings.db_url)
    with session_factory(make_engine(settings.db_url))() as session:
        yield CredentialStore.for_settings(session, load_rules(settings.rules_file), settings)


@app.command("export-schemas")
def export_schemas(out: Path | None = None) -> None:
    """Export the JSON Schema of every published message type (default folder: schemas/json)."""
    from schemas.export import DEFAULT_DIR, export_json_schemas

    paths = export_json_schemas(out or DEFAULT_DIR)
    err.print(f"wrote {len(paths)} schemas")


if __name__ == "__main__":
    app()
