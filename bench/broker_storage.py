"""The embedded broker's cost of keeping its log in S3: Tansu on `memory://` against Tansu on `s3://`
(the embedded SeaweedFS), same machine, same client (aiokafka, as faust uses it).

    .venv/bin/python bench/broker_storage.py [--messages 300] [--bulk 5000] [--rounds 1]

Per engine, on a fresh stack in a temporary directory: stack start, creating 15 topics, a consumer
group's join, one message at a time (send awaited with acks=all; then end to end: sent -> read by the
group's consumer; commit), and a bulk phase (N messages sent without waiting each, then read).
Figures: median and 95th percentile in milliseconds, or seconds / messages per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import say  # noqa: E402

from ebackpack.config import Settings  # noqa: E402
from ebackpack.dev.stack import MEMORY_STORAGE, S3_STORAGE, EmbeddedStack, free_port  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(bootstrap: str, messages: int, bulk: int) -> dict[str, float]:
    result: dict[str, float] = {}
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap])
    clock = time.monotonic()
    admin.create_topics([NewTopic(f"bench.{i}", 4, 1) for i in range(15)])
    result["create 15 topics, s"] = time.monotonic() - clock
    admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    consumer = AIOKafkaConsumer(
        "bench.0",
        bootstrap_servers=bootstrap,
        group_id="bench",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )
    clock = time.monotonic()
    await consumer.start()
    while not consumer.assignment():
        await asyncio.sleep(0.05)
    result["group join, s"] = time.monotonic() - clock
    sends, trips, commits = [], [], []
    for i in range(messages):
        key = str(i % 50).encode()
        clock = time.monotonic()
        await producer.send_and_wait("bench.0", key=key, value=b"x" * 600)
        sent = time.monotonic()
        sends.append((sent - clock) * 1000)
        await consumer.getone()
        trips.append((time.monotonic() - clock) * 1000)
        clock = time.monotonic()
        await consumer.commit()
        commits.append((time.monotonic() - clock) * 1000)
    for name, values in (("send acked", sends), ("sent -> read", trips), ("commit", commits)):
        result[f"{name} p50, ms"] = statistics.median(values)
        result[f"{name} p95, ms"] = pct(values, 0.95)
    clock = time.monotonic()
    futures = [
        await producer.send("bench.1", key=str(i % 50).encode(), value=b"x" * 600) for i in range(bulk)
    ]
    await asyncio.gather(*futures)
    result["bulk send, msgs/s"] = bulk / (time.monotonic() - clock)
    reader = AIOKafkaConsumer(
        "bench.1", bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await reader.start()
    clock, read = time.monotonic(), 0
    while read < bulk:
        for batch in (await reader.getmany(timeout_ms=500)).values():
            read += len(batch)
    result["bulk read, msgs/s"] = bulk / (time.monotonic() - clock)
    await reader.stop()
    await consumer.stop()
    await producer.stop()
    return result


def run(storage: str, messages: int, bulk: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="broker-bench-") as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            embedded=False,
            kafka_bootstrap=f"127.0.0.1:{free_port()}",
            s3_endpoint=f"http://127.0.0.1:{free_port()}",
        )
        clock = time.monotonic()
        with EmbeddedStack(settings, broker_storage=storage):
            started = time.monotonic() - clock
            say(f"{storage}: stack up in {started:.1f} s")
            figures = asyncio.run(measure(settings.kafka_bootstrap, messages, bulk))
        return {"stack start, s": started, **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--bulk", type=int, default=5000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {storage: run(storage, args.messages, args.bulk) for storage in (MEMORY_STORAGE, S3_STORAGE)}
    if args.json:
        print(json.dumps(results))
    names = list(results[MEMORY_STORAGE])
    print(f"{'':28} {'memory://':>12} {'s3://':>12}", file=sys.stderr)
    for name in names:
        print(
            f"{name:28} {results[MEMORY_STORAGE][name]:12.1f} {results[S3_STORAGE][name]:12.1f}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
