"""Publishing live messages: from the publisher thread (web, worker), or on the calling thread (the
listener), each message reaches a subscriber of the live channel once, in order."""
import json
import logging
import time

import pytest
import redis
from django.conf import settings

from django.test import override_settings

from events import publish
from events.publish import _Publisher

pytestmark = pytest.mark.integration


def received(pubsub, count: int, timeout: float = 5.0) -> list[dict]:
    messages, deadline = [], time.monotonic() + timeout
    while len(messages) < count and time.monotonic() < deadline:
        item = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if item is not None:
            messages.append(json.loads(item["data"]))
    return messages


@pytest.mark.parametrize("on_calling_thread", [False, True])
def test_messages_reach_the_live_channel_once_and_in_order(redis_ready, on_calling_thread):
    pubsub = redis.Redis.from_url(settings.REDIS_URL).pubsub()
    pubsub.subscribe(settings.LIVE_CHANNEL)
    assert received(pubsub, 1, timeout=0.5) == []  # the subscription is in place
    publisher = _Publisher(on_calling_thread=on_calling_thread)
    for number in range(20):
        publisher.send(json.dumps({"type": "domain", "id": number, "host": 1}))
    if on_calling_thread:
        assert publisher.queue.unfinished_tasks == 0  # nothing waited for another thread
    assert [message["id"] for message in received(pubsub, 21, timeout=1.0)] == list(range(20))
    pubsub.close()


def test_a_test_that_points_redis_elsewhere_for_a_while_takes_its_publisher_away_with_it(redis_ready, monkeypatch,
                                                                                        caplog):
    """The process's publisher is made at its first message, with the Redis then set. A test that
    points REDIS_URL at a Redis of its own (stopped afterwards) and sends the process's first message
    must not leave the publisher on that Redis: every later message of the process went there."""
    monkeypatch.setattr(publish, "_publisher", None)  # no message sent yet in this process
    pubsub = redis.Redis.from_url(settings.REDIS_URL).pubsub()
    pubsub.subscribe(settings.LIVE_CHANNEL)
    assert received(pubsub, 1, timeout=0.5) == []
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"), caplog.at_level(logging.WARNING, "events.publish"):
        publish.publish_host(host_id=1)  # nothing listens on port 1
        publish.flush()
        lost = publish._publisher
    assert "1 live message(s) not sent" in caplog.text
    publish.publish_host(host_id=2)
    publish.flush()
    assert [message["id"] for message in received(pubsub, 1)] == [2]
    assert not lost.thread.join(timeout=5) and not lost.thread.is_alive()  # that test's publisher is gone
    pubsub.close()


def test_a_batch_that_fails_in_an_unforeseen_way_leaves_the_publisher_sending(redis_ready, caplog):
    pubsub = redis.Redis.from_url(settings.REDIS_URL).pubsub()
    pubsub.subscribe(settings.LIVE_CHANNEL)
    assert received(pubsub, 1, timeout=0.5) == []
    publisher = _Publisher()
    real_pipeline = publisher.client.pipeline
    calls = []

    def pipeline_failing_once(**options):
        calls.append(options)
        if len(calls) == 1:
            raise ValueError("not a Redis error")  # what redis-py could raise on a bug of its own
        return real_pipeline(**options)

    publisher.client.pipeline = pipeline_failing_once
    with caplog.at_level(logging.ERROR, "events.publish"):
        publisher.send(json.dumps({"type": "domain", "id": 1, "host": 1}))
        publisher.flush()
    assert "1 live message(s) not sent" in caplog.text
    publisher.send(json.dumps({"type": "domain", "id": 2, "host": 1}))
    assert [message["id"] for message in received(pubsub, 1)] == [2]
    publisher.stop()
    pubsub.close()
