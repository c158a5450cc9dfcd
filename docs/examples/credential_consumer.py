"""A downstream consumer of e-Backpack's credential events, as a team outside the project would write it.

It uses only kafka-python, jsonschema and the published JSON Schemas (schemas/json/), not e-Backpack's
code. Run: `python docs/examples/credential_consumer.py --bootstrap 127.0.0.1:9092 --group my-team`.

What it shows of the contract (docs/consumers.md):
- its own consumer group, reading `credentials` from the beginning the first time;
- each message validated against the schema of its `type`; an unknown type is skipped (new event types
  may appear: the contract only adds);
- at-least-once delivery: the same event id can arrive twice, so the handler is idempotent (here: a set
  of seen ids; a real consumer keeps it in its database, in the same transaction as its own change);
- ordering per learner: the key is the learner id, so one learner's events arrive in order;
- erasure: after `credential.erased` (Moodle deleted the learner) it keeps nothing of that credential;
- offsets committed after the work, so a crash re-delivers rather than loses.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from kafka import KafkaConsumer

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "json"
TYPES = {  # CloudEvents `type` -> schema file
    "pl.ebackpack.credential.issued.v1": "credential.issued.v1.schema.json",
    "pl.ebackpack.credential.revoked.v1": "credential.revoked.v1.schema.json",
    "pl.ebackpack.credential.expired.v1": "credential.expired.v1.schema.json",
    "pl.ebackpack.credential.erased.v1": "credential.erased.v1.schema.json",
}


@dataclass
class LearnerCredentials:
    """The downstream view: per learner, their credentials and each one's status."""

    status: dict[int, dict[str, str]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    skipped: int = 0

    def apply(self, event: dict[str, Any]) -> bool:
        """Apply one validated event; False when it was a redelivery (already applied)."""
        if event["id"] in self.seen:
            return False
        self.seen.add(event["id"])
        data = event["data"]
        kind = event["type"].rsplit(".", 2)[-2]  # issued | revoked | expired | erased
        if kind == "erased":  # the learner's right to erasure: forget what this view keeps of them
            credentials = self.status.get(data["learner_id"], {})
            credentials.pop(data["credential_id"], None)
            if not credentials:
                self.status.pop(data["learner_id"], None)
            return True
        learner = self.status.setdefault(data["learner_id"], {})
        if kind == "issued":
            learner.setdefault(data["credential_id"], "valid")
        else:
            learner[data["credential_id"]] = kind
        return True


def load_validators() -> dict[str, Callable[[Any], None]]:
    validators: dict[str, Callable[[Any], None]] = {}
    for event_type, name in TYPES.items():
        schema = json.loads((SCHEMAS / name).read_text())
        validators[event_type] = jsonschema.Draft202012Validator(schema).validate
    return validators


def consume(
    bootstrap: str,
    group: str,
    topic: str = "credentials",
    idle_ms: int = 5000,
    view: LearnerCredentials | None = None,
    join_seconds: float = 30.0,
) -> LearnerCredentials:
    """Reads until the topic has been quiet for `idle_ms` (after the group's partitions are assigned)."""
    view = view or LearnerCredentials()
    validators = load_validators()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap.split(","),
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    started = quiet_since = time.monotonic()
    try:
        while True:
            batch = consumer.poll(timeout_ms=250)
            now = time.monotonic()
            if not batch:
                joined = bool(consumer.assignment())
                if (joined and now - quiet_since > idle_ms / 1000) or now - started > join_seconds + idle_ms:
                    return view
                quiet_since = quiet_since if joined else now
                continue
            quiet_since = now
            for record in (r for records in batch.values() for r in records):
                handle(record.value, validators, view)
            consumer.commit()  # after the work: a crash before this line means a redelivery
    finally:
        consumer.close()


def handle(value: bytes, validators: dict[str, Callable[[Any], None]], view: LearnerCredentials) -> None:
    event = json.loads(value)
    validate = validators.get(event.get("type", ""))
    if validate is None:
        view.skipped += 1  # a type this consumer does not know yet
        return
    validate(event)  # a message that breaks its schema stops the consumer: a contract bug to report
    view.apply(event)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--group", default="example-consumer")
    parser.add_argument("--topic", default="credentials")
    args = parser.parse_args()
    view = consume(args.bootstrap, args.group, args.topic)
    for learner, credentials in sorted(view.status.items()):
        print(learner, credentials)


if __name__ == "__main__":
    main()
