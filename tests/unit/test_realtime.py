"""Real-time channel: subscribe validation, build progress messages, bounded client queues."""
import socket

import orjson
import pytest

from app.ws import origin_allowed
from services.scope import Principal
from services.realtime import (CLOSE_SLOW, Client, SubscribeError, build_messages, parse_subscribe)


ADMIN = Principal("ada", "admin")
MANAGER = Principal("pat", "partner_manager", frozenset({"b", "c"}))


def test_subscribe_all_partners_when_none_given():
    assert parse_subscribe(b'{"subscribe": ["builds", "alerts"]}', ADMIN) == (frozenset({"builds", "alerts"}), None)
    assert parse_subscribe('{"subscribe": [], "partners": []}', ADMIN) == (frozenset(), None)


def test_subscribe_partners_are_what_the_caller_may_see():
    assert parse_subscribe('{"subscribe": ["builds"]}', MANAGER)[1] == frozenset({"b", "c"})
    assert parse_subscribe('{"subscribe": ["builds"], "partners": ["c"]}', MANAGER)[1] == frozenset({"c"})
    with pytest.raises(SubscribeError, match="not among the partners you may see"):
        parse_subscribe('{"subscribe": ["builds"], "partners": ["a", "b"]}', MANAGER)


@pytest.mark.parametrize("raw, field", [
    ("not json", "not valid JSON"),
    ('["builds"]', '"subscribe"'),
    ('{"subscribe": "builds"}', "subscribe: must be a list"),
    ('{"subscribe": ["builds", "gossip"]}', "unknown stream(s) gossip"),
    ('{"subscribe": ["builds"], "partners": ["Bad Id"]}', "partners: 'Bad Id'"),
    ('{"subscribe": ["builds"], "partners": "acme"}', "partners: must be a list"),
    ('{"subscribe": ["builds"], "extra": 1}', "unknown field(s): extra"),
    ('{"subscribe": ["builds"], "partners": ["' + "a" * 5000 + '"]}', "larger than 4096 bytes"),
])
def test_bad_subscribe_requests_name_the_problem(raw, field):
    with pytest.raises(SubscribeError, match=None) as exc:
        parse_subscribe(raw, ADMIN)
    assert field in str(exc.value)


def test_build_messages_carry_the_event_and_progress():
    now = 1_800_000_000.0
    events = [
        {"type": "build.started", "id": "1", "ts": now - 5, "partner_id": "p", "build_id": "b", "build_type": "debug",
         "app_version": "1"},
        {"type": "build.stage", "id": "2", "ts": now - 4, "partner_id": "p", "build_id": "b", "stage": "compilation",
         "status": "success", "duration_s": 3.0},
        {"type": "build.stage", "id": "3", "ts": now - 3, "partner_id": "p", "build_id": "b", "stage": "packaging",
         "status": "failed", "duration_s": 1.0},
        {"type": "build.finished", "id": "4", "ts": now - 2, "partner_id": "p", "build_id": "b", "build_type": "debug",
         "status": "failed", "duration_s": 9.0, "failed_stage": "packaging"},
        {"type": "build.finished", "id": "5", "ts": now - 99_999, "partner_id": "p", "build_id": "old",
         "build_type": "debug", "status": "success", "duration_s": 9.0},
        {"type": "partner.upserted", "id": "6", "ts": now - 1, "partner_id": "p", "name": "P", "tier": "pro",
         "monthly_build_quota": 10, "status": "active"},
    ]
    messages = build_messages(events, now, live_window_s=3600)
    assert [(m["stream"], m["data"]["id"]) for m in messages] == [
        ("builds", "1"), ("builds", "2"), ("builds", "3"), ("builds", "4"), ("partners", "6")]
    assert [m["data"].get("stages_done") for m in messages[:4]] == [0, 3, 3, 3]
    assert all(m["data"]["stages_total"] == 6 for m in messages[:4])
    assert messages[4]["data"]["change"] == "upsert"
    assert orjson.loads(orjson.dumps(messages[0]))["data"]["build_id"] == "b"


def _pair(send_buffer: int = 4096):
    server, peer = socket.socketpair()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, send_buffer)
    return server, peer


def _read_all(peer, size: int) -> bytes:
    peer.settimeout(5)
    data = b""
    while len(data) < size:
        data += peer.recv(65536)
    return data


def test_frames_go_straight_to_the_socket_when_it_has_room():
    server, peer = _pair(1 << 20)
    client = Client(queue_size=3, sock=server)
    assert client.deliver(b"abc") and client.deliver(b"def")
    assert client.queue.empty() and client.pending == 0
    assert _read_all(peer, 6) == b"abcdef"


def test_what_the_socket_cannot_take_is_queued_in_order_and_a_slow_client_is_closed():
    server, peer = _pair()
    client = Client(queue_size=3, sock=server)
    chunks = [bytes([65 + i]) * 50_000 for i in range(3)]  # far more than the socket buffers hold
    assert client.deliver(chunks[0])  # partly written, the rest queued
    assert client.deliver(chunks[1])  # behind it, never before it
    assert client.pending == 2
    assert client.deliver(chunks[2]) and client.pending == 3
    assert client.deliver(b"one too many") is False  # queue full: too slow
    assert client.closing == CLOSE_SLOW
    assert client.deliver(b"more") is False  # no more work for a closing client
    # the connection thread drains the queue in order (the peer reads meanwhile)
    import threading
    received = []
    reader = threading.Thread(target=lambda: received.append(_read_all(peer, 150_000)))
    reader.start()
    while not client.queue.empty():
        item = client.queue.get_nowait()
        if isinstance(item, bytes):
            client.flush_one(item)
    reader.join(10)
    assert received[0] == b"".join(chunks)


def test_partner_filter_of_a_client():
    client = Client(queue_size=3)
    client.subscribe(frozenset({"builds", "metrics"}), frozenset({"a"}))
    assert client.wants("builds", "a") and not client.wants("builds", "b")
    assert client.wants("metrics", None)  # deployment-wide messages reach every subscriber of the stream
    assert not client.wants("alerts", "a")


def test_origin_check():
    assert origin_allowed(None, "app:8050", [])
    assert origin_allowed("http://app:8050", "app:8050", [])
    assert not origin_allowed("http://evil.example", "app:8050", [])
    assert origin_allowed("https://board.example", "app:8050", ["https://board.example"])


def test_text_frames_decode_with_a_real_websocket_parser():
    from wsproto.frame_protocol import FrameProtocol

    from services.realtime import text_frame

    for size in (0, 5, 125, 126, 65535, 65536, 70000):
        payload = ('{"x":"' + "é" * size + '"}').encode()
        protocol = FrameProtocol(client=True, extensions=[])
        protocol.receive_bytes(text_frame(payload))
        frames = list(protocol.received_frames())
        assert len(frames) == 1 and frames[0].payload == payload.decode() and frames[0].frame_finished


def test_a_partner_limited_client_gets_no_partnerless_message_but_metrics():
    client = Client(8)
    client.subscribe(frozenset({"builds", "partners", "alerts", "metrics"}), frozenset({"b"}))
    assert client.wants("builds", "b") and not client.wants("builds", "a")
    assert not client.wants("builds", None) and not client.wants("partners", None)
    assert client.wants("metrics", None) and client.wants("alerts", "b")
    assert not client.wants("alerts", None)  # the deployment's own alerts: only for who sees every partner
    everyone = Client(8)
    everyone.subscribe(frozenset({"builds"}), None)
    assert everyone.wants("builds", None) and everyone.wants("builds", "a")


def test_scoped_snapshot_is_an_allowlist():
    from services.realtime import messages

    msg = {"stream": "metrics", "ts": 1.0, "data": {"ts": 1.0, "system": {"cpu_percent": 3}, "new_key": {"a": 1},
                                                     "active_builds": {"b": 2, "a": 5, "other": 9},
                                                     "partners": [["pro", "active", 2]]}}
    data = messages.scoped_snapshot(msg, frozenset({"b", "other"}))["data"]
    assert data == {"ts": 1.0, "system": {"cpu_percent": 3}, "active_builds": {"b": 2}, "active_builds_total": 2}
