"""Issue 8: the pub/sub link reads the same Redis URLs as the command pool, or says why not."""

from __future__ import annotations

import hiredis
import pytest

from api.hub.pubsub_link import RedisAddress, encode_command

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("redis://127.0.0.1:6390/0", RedisAddress("127.0.0.1", 6390)),
        ("redis://redis/3", RedisAddress("redis", 6379)),
        ("redis://:p%40ss@h:1", RedisAddress("h", 1, password="p@ss")),
        ("redis://hub:pw@h:1/0", RedisAddress("h", 1, username="hub", password="pw")),
        ("unix:///run/redis.sock?db=2", RedisAddress(unix_path="/run/redis.sock")),
    ],
)
def test_supported_urls(url: str, address: RedisAddress) -> None:
    assert RedisAddress.from_url(url) == address


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("rediss://h:6380/0", "redis:// and unix://"),
        ("redis://h:6379/0?socket_timeout=5", "no URL options"),
        ("unix://", "socket path"),
    ],
)
def test_unsupported_urls_are_refused_saying_why(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        RedisAddress.from_url(url)


def test_commands_are_resp_arrays_that_survive_any_byte() -> None:
    channel = "rt:{u:é\r\n}:live"
    reader = hiredis.Reader()
    reader.feed(encode_command("SUBSCRIBE", channel, b"\x00"))
    assert reader.gets() == [b"SUBSCRIBE", channel.encode(), b"\x00"]
