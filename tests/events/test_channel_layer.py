"""The channel layer as the settings configure it: a consumer's receive that is cancelled ends."""
from __future__ import annotations

import asyncio

from channels_redis.core import RedisChannelLayer
from django.conf import settings

ATTEMPTS = 60


def test_a_receive_cancelled_as_it_starts_ends_at_once(redis_ready) -> None:
    """With a socket timeout, redis-py sent each command under asyncio.wait_for, which on Python 3.11
    loses a cancellation that meets the end of the send: about one receive in three, cancelled right
    after it started, went on reading its channel for ever (and held the web server's stop 10 s)."""

    async def cancel_receives() -> list[int]:
        layer = RedisChannelLayer(**settings.CHANNEL_LAYERS["default"]["CONFIG"], prefix="vmsite-cancel-test")
        stuck = []
        try:
            for attempt in range(ATTEMPTS):
                channel = await layer.new_channel()
                await layer.group_add("cancelled-receives", channel)
                receive = asyncio.create_task(layer.receive(channel))
                await asyncio.sleep(0)
                await layer.group_discard("cancelled-receives", channel)  # as a consumer's disconnect does
                receive.cancel()
                done, _ = await asyncio.wait([receive], timeout=2)
                if not done:
                    stuck.append(attempt)
                    receive.get_loop().call_soon(receive.cancel)
        finally:
            await layer.flush()
        return stuck

    assert asyncio.run(cancel_receives()) == []
