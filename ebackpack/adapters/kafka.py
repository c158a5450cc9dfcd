"""The one way a blocking (kafka-python) producer is made: every wait bounded by one figure.

kafka-python's defaults let one message wait minutes while the broker is down (30 s for the first
connection, 60 s for metadata or buffer space, 30 s per request, 120 s per delivery). A web request, a CLI
command or a poller must answer "broker unavailable" within its own deadline instead. (The workers'
producers are faust's, configured in streaming/app.py.)
"""

from __future__ import annotations

from kafka import KafkaProducer

from ebackpack.config import Settings

LINGER_MS = 5


def bounded_producer(
    settings: Settings,
    *,
    client_id: str,
    timeout: float,
    connect_timeout: float | None = None,
    linger_ms: int = LINGER_MS,
) -> KafkaProducer:
    """A producer (acks=all, one request in flight per connection: the order per learner) whose metadata
    and buffer waits, requests and deliveries each give up after `timeout` seconds, and its first
    connection (made here) after `connect_timeout` (default: `timeout`)."""
    ms = max(int(timeout * 1000), 200)
    connect_ms = ms if connect_timeout is None else max(int(connect_timeout * 1000), 100)
    return KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap.split(","),
        client_id=client_id,
        acks="all",
        linger_ms=linger_ms,
        max_in_flight_requests_per_connection=1,
        bootstrap_timeout_ms=connect_ms,
        max_block_ms=ms,
        request_timeout_ms=max(ms - linger_ms, 100),
        delivery_timeout_ms=ms,
    )
