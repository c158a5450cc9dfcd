"""Crash safety: 2,000 completions while the issuer and the renderer are killed with SIGKILL at random
moments; then a replay of the whole topic. Exactly one credential and one PDF per completion."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import select

from ebackpack.adapters.persistence.tables import AwardRow, CertificateRow
from ebackpack.adapters.storage import ObjectStore
from ebackpack.bootstrap import prepare
from ebackpack.config import Settings
from ebackpack.dev.demo import PipelineProbe, SilentProgress, wait_until_done
from ebackpack.dev.sample_data import generate, kind_counts
from ebackpack.dev.workers import Worker
from ebackpack.domain.rules import load_rules
from ebackpack.streaming.readback import read_topics
from ebackpack.streaming.topics import CREDENTIALS
from schemas import CredentialIssuedMessage
from services.gateway.profiles import store_profiles
from services.gateway.publisher import MoodleEventPublisher

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

COMPLETIONS = 2000


def events_for(completions: int) -> int:
    """The smallest generated data set with exactly this many learner completions."""
    events = completions * 2
    while kind_counts(events)["completion"] < completions:
        events += 1
    assert kind_counts(events)["completion"] == completions
    return events


def all_rules_with_certificates(settings: Settings, target: Path) -> Path:
    target.write_text(
        settings.rules_file.read_text(encoding="utf-8").replace("certificate = false", "certificate = true")
    )
    return target


def chaos(workers: dict[str, Worker], probe: PipelineProbe, rng: random.Random) -> dict[str, list[int]]:
    """Kill -9 issuer and renderer alternately, twice each, while work remains; restart each.

    Returns, per service, how many awards / PDFs existed at each kill (to show work was under way).
    """
    kills: dict[str, list[int]] = defaultdict(list)
    for victim in ["issuer", "renderer-1", "issuer", "renderer-2", "renderer-1"]:
        time.sleep(rng.uniform(2.0, 6.0))
        awards, _wanted, stored, _pending = probe.counts()
        kills[victim.split("-")[0]].append(awards if victim == "issuer" else stored)
        workers[victim].kill()
        time.sleep(rng.uniform(0.2, 1.5))
        workers[victim].start()
    return kills


@pytest.fixture
def crash_settings(settings: Settings, postgres_url: str, tmp_path: Path) -> Settings:
    rules = all_rules_with_certificates(settings, tmp_path / "rules.toml")
    return settings.model_copy(update={"database_url": postgres_url, "rules_file": rules})


def test_kill_9_during_processing_loses_nothing_and_duplicates_nothing(crash_settings: Settings) -> None:
    settings = crash_settings
    dataset = generate(events_for(COMPLETIONS), seed=7)
    sessions = prepare(settings)
    store_profiles(sessions, dataset.profiles)
    probe = PipelineProbe(settings, sessions, load_rules(settings.rules_file))
    workers = {name: Worker(name, settings) for name in ("issuer", "renderer-1", "renderer-2")}
    try:
        for worker in workers.values():
            worker.start()
        publisher = MoodleEventPublisher(settings)
        ends = publisher.publish(dataset.messages)
        publisher.close()
        kills = chaos(workers, probe, random.Random(11))
        wait_until_done(probe, ends, list(workers.values()), SilentProgress(), timeout=900)
        # Each kill hit a service with work left: fewer results than the final count existed then.
        assert len(kills["issuer"]) >= 2 and max(kills["issuer"]) < COMPLETIONS, kills
        assert len(kills["renderer"]) >= 2 and max(kills["renderer"]) < COMPLETIONS, kills
        assert_exactly_one_of_everything(settings, sessions, dataset.expected_awards)

        # Replay the whole topic from offset 0 (a new consumer group starts there): nothing new is issued.
        workers["issuer"].stop()
        replay = settings.model_copy(update={"issuer_group": "issuer-replay"})
        replay_probe = PipelineProbe(replay, sessions, probe.rules)
        assert replay_probe.issuer_position() == {}
        workers["issuer"] = Worker("issuer", replay)
        workers["issuer"].start()
        wait_until_done(replay_probe, ends, list(workers.values()), SilentProgress(), timeout=600)
        assert_exactly_one_of_everything(settings, sessions, dataset.expected_awards)
    finally:
        for worker in workers.values():
            worker.stop()


def assert_exactly_one_of_everything(settings: Settings, sessions, expected: frozenset) -> None:
    with sessions() as s:
        awards = s.execute(select(AwardRow.credential_id, AwardRow.learner_id, AwardRow.course_id)).all()
        certificates = s.execute(select(CertificateRow.credential_id, CertificateRow.object_key)).all()
    assert len(awards) == COMPLETIONS
    assert {(learner, course) for _c, learner, course in awards} == expected
    credential_ids = {c for c, _l, _k in awards}
    assert len(certificates) == COMPLETIONS  # none twice
    assert {c for c, _k in certificates} == credential_ids  # none missing
    objects = list(ObjectStore(settings).keys("certificates/"))
    assert len(objects) == COMPLETIONS
    assert {key.split("/")[1] for key in objects} == credential_ids

    ids_by_credential: dict[str, set[str]] = defaultdict(set)
    for record in read_topics(settings, [settings.topic(CREDENTIALS)]):
        event = CredentialIssuedMessage.model_validate_json(record.value)
        ids_by_credential[event.data.credential_id].add(event.id)
    assert set(ids_by_credential) == credential_ids
    assert all(len(ids) == 1 for ids in ids_by_credential.values())  # one event id per credential
    assert len({i for ids in ids_by_credential.values() for i in ids}) == COMPLETIONS
