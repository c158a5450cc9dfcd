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
    from collections.abc import Callable

    from ebackpack.adapters.credential_store import CredentialStore
    from ebackpack.bootstrap import Platform
    from services.gateway.logstore.poller import LogStorePoller

app = typer.Typer(
    help="e-Backpack: issue, store and verify micro-credentials from Moodle.",
    no_args_is_help=True,
    add_completion=False,
)
stack_app = typer.Typer(help="The embedded broker (Tansu) and S3 server (SeaweedFS).", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
credential_app = typer.Typer(help="Export or revoke one credential.", no_args_is_help=True)
app.add_typer(credential_app, name="credential")
keys_app = typer.Typer(help="The issuer's signing keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
certificates_app = typer.Typer(help="Certificate PDFs: re-render, bulk download.", no_args_is_help=True)
app.add_typer(certificates_app, name="certificates")
deadletters_app = typer.Typer(help="Dead letters: list, inspect, replay after a fix.", no_args_is_help=True)
app.add_typer(deadletters_app, name="deadletters")
gateway_app = typer.Typer(
    help="Moodle in: webhook, log-store poller, history backfill and import.", no_args_is_help=True
)
app.add_typer(gateway_app, name="gateway")
err = Console(stderr=True)


class RichProgress:
    """Draws the demo's progress on stderr, so `--json` output stays clean on stdout."""

    def __init__(self) -> None:
        self.bar = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=False,
        )
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
    from ebackpack.dev.demo import DemoTimeout, run_demo
    from ebackpack.dev.sample_data import default_dataset, generate

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
    from ebackpack.dev.demo import DemoSummary

    assert isinstance(summary, DemoSummary)
    console = Console()
    table = Table(title=f"e-Backpack demo ({summary.seconds} s)", show_header=True)
    table.add_column("what")
    table.add_column("count", justify="right")
    for label, value in [
        ("Moodle events read", summary.events),
        ("learner completions", summary.completions),
        ("credentials issued (badges), total", summary.issued),
        ("  of them new in this run", summary.new_issued),
        ("signed Open Badges 3.0 credentials", summary.signed),
        ("certificate PDFs stored", summary.rendered),
        ("messages dead-lettered", summary.dead_lettered),
    ]:
        table.add_row(label, str(value))
    console.print(table)
    if summary.new_issued == 0:
        console.print("Nothing new was issued: every completion already had its credential.")
    for link in summary.certificates[:5]:
        console.print(f"  {link.code}  {link.verify_url}\n      {link.pdf}")
    if len(summary.certificates) > 5:
        console.print(f"  … and {len(summary.certificates) - 5} more")
    console.print(f"PDFs: {summary.out_dir}")
    for line in summary.imports:
        console.print(
            f"Imported back as an external attestation: {line.what} ({line.source_format}): "
            f"[bold]{line.status}[/bold] ({line.reason})"
        )
    if summary.certificates:
        code = summary.certificates[0].code
        console.print(
            f"One credential in all its forms: ebackpack credential export {code} --format "
            "ob3|ob3-jwt|ob2|ob2-png|ob2-svg|ob3-png"
        )


@app.command()
def serve(host: str | None = None, port: int | None = None) -> None:
    """Run the web server (public verification pages) on the configured database."""
    from ebackpack.adapters.webserver import run
    from services.backpack.app import create_app

    settings = get_settings()
    run(create_app(settings), settings, host, port)


class ServiceName(StrEnum):
    issuer = "issuer"
    renderer = "renderer"
    importer = "importer"
    notifier = "notifier"


@app.command()
def worker(service: ServiceName) -> None:
    """Run one worker of a service in the foreground (production: several per service)."""
    from ebackpack.streaming.app import run_worker

    if service is ServiceName.issuer:
        from services.issuer.agent import create_app
    elif service is ServiceName.renderer:
        from services.renderer.agent import create_app
    elif service is ServiceName.importer:
        from services.importer.agent import create_app
    else:
        from services.notifier.agent import create_app
    sys.argv = sys.argv[:1]
    run_worker(create_app(get_settings()))


@app.command()
def prepare() -> None:
    """Create the database schema, the bucket and every topic (idempotent)."""
    from ebackpack.bootstrap import prepare as prepare_all

    prepare_all(get_settings())
    err.print("database, bucket and topics are ready")


@stack_app.command("up")
def stack_up() -> None:
    """Start what is not running of the embedded stack (in the background) and create the topics."""
    from ebackpack.dev.stack import EmbeddedStack, StackError
    from ebackpack.streaming.topics import create_topics

    settings = get_settings()
    stack = EmbeddedStack(settings)
    try:
        report = stack.up()
    except StackError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    create_topics(settings)
    if report.started:
        err.print(f"started: {', '.join(report.started)}")
    if report.already_running:
        err.print(f"already running (left alone): {', '.join(report.already_running)}")
    err.print(
        f"Kafka (Tansu, log kept in S3) at {settings.kafka_bootstrap}, S3 (SeaweedFS) at "
        f"{settings.s3_endpoint}; logs in {stack.log_dir}. Stop with `ebackpack stack down`."
    )


@stack_app.command("down")
def stack_down() -> None:
    """Stop the components of the embedded stack that `stack up` started."""
    from ebackpack.dev.stack import EmbeddedStack

    stopped = EmbeddedStack(get_settings()).down()
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
    from ebackpack.adapters.credential_exports import ExportError, export

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
        # soft_wrap: a path broken across lines could not be copied from the terminal
        err.print(f"wrote {output} ({result.media_type}, {len(result.content)} bytes)", soft_wrap=True)


@credential_app.command("revoke")
def credential_revoke(
    code: str = typer.Argument(help="Verification code (as printed) or credential id."),
    reason: str = typer.Option(..., "--reason", help="Why: shown to everyone who checks the credential."),
) -> None:
    """Revoke a credential: status list, OB 2.0 JSON and verification page change at once; the issuer
    announces the credential-revoked event within seconds."""
    from services.issuer.service import CredentialNotFound, IssuerService

    platform = _migrated_platform()
    service = IssuerService(platform.sessions, platform.rules, platform.settings)
    try:
        award = service.revoke(code, reason)
    except (CredentialNotFound, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    err.print(
        f"{award.verification_code} is revoked (since {award.revoked_at:%Y-%m-%d %H:%M} UTC): "
        f"{award.revocation_reason}"
    )


class WalletFormat(StrEnum):
    both = "both"
    jwt_vc_json = "jwt_vc_json"
    ldp_vc = "ldp_vc"


@credential_app.command("offer")
def credential_offer(
    code: str = typer.Argument(help="Verification code (as printed) or credential id."),
    fmt: Annotated[
        WalletFormat, typer.Option("--format", "-f", help="What the wallet may take (default: either).")
    ] = WalletFormat.both,
    ttl: Annotated[int, typer.Option("--ttl", help="Seconds the offer stays open (60 to 604800).")] = 600,
    tx_code: Annotated[
        bool, typer.Option("--tx-code", help="Protect the offer with a 6-digit code the wallet asks for.")
    ] = False,
) -> None:
    """Offer a credential to a wallet (OpenID4VCI 1.0, pre-authorized code): prints the offer URI as the
    last line (a QR code of it, or the link on the learner's device). Single use; see docs/wallets.md."""
    from ebackpack.domain.credentials import openid4vci
    from services.backpack.wallets import OfferRefused, Wallets

    configurations = {
        WalletFormat.both: [openid4vci.LDP_VC, openid4vci.JWT_VC],
        WalletFormat.jwt_vc_json: [openid4vci.JWT_VC],
        WalletFormat.ldp_vc: [openid4vci.LDP_VC],
    }[fmt]
    platform = _migrated_platform()
    with platform.sessions() as session:
        try:
            made = Wallets(session, platform).offer(
                code,
                learner_id=None,
                created_by="cli",
                configurations=configurations,
                seconds=ttl,
                with_tx_code=tx_code,
            )
        except OfferRefused as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        session.commit()
    err.print(
        f"offer of {made.verification_code} ({', '.join(configurations)}), single use, "
        f"until {made.expires_at:%Y-%m-%d %H:%M:%S} UTC"
        + (f"; transaction code {made.tx_code}" if made.tx_code else ""),
        soft_wrap=True,
    )
    print(made.uri)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Add a new signing key of each kind; older keys stay published so what they signed still verifies.
    Restart the issuer workers to sign with the new keys."""
    from ebackpack.adapters.keystore import rotate_key_dir

    settings = get_settings()
    if settings.signing_keys is not None:
        err.print("[red]keys come from EBACKPACK_SIGNING_KEYS: rotate them where they are kept[/red]")
        raise typer.Exit(1)
    ring = rotate_key_dir(settings.key_dir)
    err.print(
        "signing with "
        + ", ".join(ring.current(a).kid for a in ("Ed25519", "ES256"))
        + f"; published: {', '.join(k.kid for k in ring.keys)}"
    )


@keys_app.command("show")
def keys_show() -> None:
    """Print the issuer's DID document (public keys only)."""
    from ebackpack.bootstrap import build
    from ebackpack.domain.credentials.keys import did_document

    platform = build()
    print(json.dumps(did_document(platform.urls.did, platform.keys), indent=2))


@certificates_app.command("rerender")
def certificates_rerender(
    course: Annotated[int | None, typer.Option(help="Moodle course id.")] = None,
    rule: Annotated[str | None, typer.Option(help="Award rule id.")] = None,
) -> None:
    """Re-render every certificate of a course or rule (after a template change). A PDF that comes out
    different becomes a new version; earlier versions stay retrievable and verifiable."""
    from services.issuer.service import IssuerService

    platform = _migrated_platform()
    service = IssuerService(platform.sessions, platform.rules, platform.settings)
    try:
        queued = service.rerender(course_id=course, rule_id=rule)
    except ValueError as exc:
        err.print(f"[red]{exc}: give --course or --rule[/red]")
        raise typer.Exit(1) from None
    err.print(
        f"{queued} render requests queued; the issuer announces them within seconds and the "
        "renderers store the new versions"
    )


@certificates_app.command("zip")
def certificates_zip(
    course: Annotated[int, typer.Option(help="Moodle course id.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="ZIP file to write.")],
) -> None:
    """Write the current certificate of every learner of a course into one ZIP (with a manifest),
    streaming from object storage."""
    from ebackpack.adapters.certificate_reads import course_entries, write_zip

    platform = _migrated_platform()
    with platform.sessions() as session:
        entries = course_entries(session, course)
    if not entries:
        err.print(f"[red]course {course} has no stored certificates[/red]")
        raise typer.Exit(1)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as bar:
        task = bar.add_task("certificates", total=len(entries))
        tmp = output.with_name(f".{output.name}.partial")
        with tmp.open("wb") as target:
            count = write_zip(platform.objects, entries, target, lambda n: bar.update(task, completed=n))
        tmp.replace(output)  # a half-written ZIP never has the final name
    err.print(f"wrote {output}: {count} certificates and manifest.csv", soft_wrap=True)


@app.command()
def status(
    sample: float = typer.Option(
        5.0,
        help="Seconds between the two samples of end offsets when "
        "the broker cannot give last-minute counts by time.",
    ),
) -> None:
    """Topics, partitions, end offsets, each consumer group's lag, dead letters, last-minute rates."""
    from ebackpack.cli.render import render_resets, render_status
    from ebackpack.ops.status import status as broker_status
    from ebackpack.streaming.health import consumer_health

    settings, console = get_settings(), Console()
    # Paused and parked first: they show while the broker is down, when the tables below cannot.
    console.print(consumer_health(settings.data_dir, settings.db_url))
    console.print(render_status(broker_status(settings, sample_seconds=sample)))
    resets = render_resets(settings.data_dir)  # partitions read again after the broker lost data
    if resets is not None:
        console.print(resets)


@deadletters_app.command("list")
def deadletters_list(
    topic: Annotated[
        str | None, typer.Argument(help="A dead-letter topic or its source; default: all.")
    ] = None,
) -> None:
    """Every dead letter: where it came from, when, which consumer gave up and why."""
    from ebackpack.cli.render import render_dead_letters
    from ebackpack.ops.deadletters import dead_letters

    Console().print(render_dead_letters(dead_letters(get_settings(), topic)))


@deadletters_app.command("inspect")
def deadletters_inspect(topic: str, offset: int, partition: int = 0) -> None:
    """One dead letter with its original message decoded."""
    from ebackpack.cli.render import render_inspection
    from ebackpack.ops.deadletters import inspect

    try:
        Console().print(render_inspection(inspect(get_settings(), topic, offset, partition)))
    except (LookupError, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


@deadletters_app.command("replay")
def deadletters_replay(
    topic: str,
    offsets: Annotated[
        list[int] | None, typer.Argument(help="Offsets to replay; default: all not replayed.")
    ] = None,
    dry_run: bool = typer.Option(False, help="Say what would be replayed, send nothing."),
    force: bool = typer.Option(False, help="Replay offsets that were replayed before."),
    partition: int = 0,
) -> None:
    """Send dead letters back to their source topic after a fix (each once, unless --force)."""
    from ebackpack.ops.deadletters import replay

    count = replay(get_settings(), topic, offsets or None, dry_run=dry_run, force=force, partition=partition)
    err.print(f"{'would replay' if dry_run else 'replayed'} {count} dead letters")


@gateway_app.command("webhook")
def gateway_webhook(host: str | None = None, port: int = 8010) -> None:
    """Serve the webhook for the local_ebackpack Moodle plugin (POST /moodle/events)."""
    from ebackpack.adapters.webserver import run
    from services.gateway.webhook import create_app

    settings = get_settings()
    run(create_app(settings), settings, host, port)


def _poller(checkpoint: str | None = None) -> LogStorePoller:
    from services.gateway.logstore.poller import CHECKPOINT, LogStorePoller
    from services.gateway.profiles import ProfileSync
    from services.gateway.publisher import MoodleEventPublisher

    platform = _migrated_platform()
    settings = platform.settings
    return LogStorePoller(
        settings,
        platform.sessions,
        MoodleEventPublisher(settings),
        history_publisher=MoodleEventPublisher(settings, backfill=True),  # the issuer's second lane
        preparer=ProfileSync.for_settings(settings),
        checkpoint=checkpoint or CHECKPOINT,
    )


def _bar(description: str) -> tuple[Progress, Callable[[int, int], None]]:
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )
    task = bar.add_task(description, total=None)
    return bar, lambda done, total: bar.update(task, completed=done, total=total)


@gateway_app.command("poll")
def gateway_poll(once: bool = typer.Option(False, help="One poll, then exit.")) -> None:
    """Poll the Moodle log store (EBACKPACK_MOODLE_DB_URL) into moodle.events, every poll_interval s."""
    poller = _poller()
    if once:
        err.print(str(poller.poll_once()))
    else:
        poller.run()


@gateway_app.command("backfill")
def gateway_backfill(
    since: Annotated[str, typer.Option(help="ISO date, e.g. 2024-09-01: events triggered since then.")],
    rate: Annotated[
        float, typer.Option(help="Log rows per second at most (spares the Moodle database).")
    ] = 2000.0,
) -> None:
    """Publish the history of the log store since a date to moodle.events.backfill (live events go first);
    resumable (run it again after an interruption)."""
    from datetime import UTC, datetime

    poller = _poller()
    moment = datetime.fromisoformat(since)
    bar, progress = _bar("log rows")
    with bar:
        result = poller.history().run(moment if moment.tzinfo else moment.replace(tzinfo=UTC), rate, progress)
    err.print(str(result))


@gateway_app.command("import")
def gateway_import(
    path: Path,
    format: Annotated[str | None, typer.Option(help="csv or jsonl (default: from the file name).")] = None,
) -> None:
    """Publish a CSV or JSONL export of the log table to moodle.events.backfill (for sites without database
    access; live events go first)."""
    poller = _poller(checkpoint=f"import:{path.name}")
    bar, progress = _bar("lines")
    with bar:
        result = poller.import_file(path, "csv" if format == "csv" else "jsonl" if format else None, progress)
    err.print(str(result))
    if result.dead_letters:
        err.print(
            f"[yellow]{len(result.dead_letters)} lines could not be read[/yellow] "
            f"(first: {result.dead_letters[0]})"
        )


@contextmanager
def _credential_store() -> Iterator[CredentialStore]:
    platform = _migrated_platform()
    with platform.sessions() as session:
        yield platform.credential_store(session)


def _migrated_platform() -> Platform:
    """The composition root for a command that reads or writes the database, migrated first."""
    from ebackpack.adapters.persistence.engine import migrate
    from ebackpack.bootstrap import build

    platform = build()
    migrate(platform.settings.db_url)
    return platform


@app.command("learner-token")
def learner_token(learner_id: int) -> None:
    """Print an API token for one learner (until login through the platform exists; see docs/importer.md).

    Valid for 8 hours: `curl -H "Authorization: Bearer $(ebackpack learner-token 5722)" .../api/attestations`
    """
    from services.backpack.auth import issue_token

    print(issue_token(get_settings(), learner_id))


@app.command("learner-export")
def learner_export(
    learner_id: int,
    output: Annotated[Path, typer.Option("--output", "-o", help="The ZIP file to write.")],
) -> None:
    """Everything one learner owns in one ZIP (data portability, GDPR Art. 20): every certificate PDF
    version, every credential form, their uploaded attestations with verdicts, and index.json."""
    from ebackpack.adapters.portability import LearnerArchive, NoSuchLearner

    platform = _migrated_platform()
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )
    tmp = output.with_name(f".{output.name}.partial")
    with platform.sessions() as session, bar:
        task = bar.add_task(f"learner {learner_id}", total=None)
        try:
            with tmp.open("wb") as target:
                index = LearnerArchive(platform.credential_store(session), platform.objects).write(
                    learner_id, target, lambda done, total: bar.update(task, completed=done, total=total)
                )
        except NoSuchLearner as exc:
            tmp.unlink(missing_ok=True)
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
    tmp.replace(output)  # a half-written ZIP never has the final name
    err.print(
        f"wrote {output}: {len(index['credentials'])} credentials, {len(index['attestations'])} attestations",
        soft_wrap=True,
    )


@app.command("export-schemas")
def export_schemas(out: Path | None = None) -> None:
    """Export the JSON Schema of every published message type (default folder: schemas/json)."""
    from schemas.export import DEFAULT_DIR, export_json_schemas

    paths = export_json_schemas(out or DEFAULT_DIR)
    err.print(f"wrote {len(paths)} schemas")
