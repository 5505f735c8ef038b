"""Publishing live messages: from the publisher thread (web, worker), or on the calling thread (the
listener), each message reaches a subscriber of the live channel once, in order."""
import json
import time

import pytest
import redis
from django.conf import settings

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
