"""Slow clients cannot hold the pod: a deadline for headers and for the body, and a cap on
connections. Raw sockets, so nothing in between helps the pod."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.pod.podkit import chat

HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: pod\r\n"


def connect(pod) -> socket.socket:
    host, port = pod.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def response(sock: socket.socket) -> bytes:
    """One whole response (headers and its content-length of body), connection left open."""
    data = b""
    while True:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            if len(body) >= length:
                return data
        chunk = sock.recv(65536)
        assert chunk, "closed before a whole response"
        data += chunk


def answer(sock: socket.socket) -> bytes:
    """Everything the pod sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@pytest.fixture
def guarded_pod(start_pod):
    return start_pod("--header-timeout", "0.5", "--body-timeout", "0.5")


def test_headers_trickled_in_get_a_408_and_the_connection_closed(guarded_pod):
    sock = connect(guarded_pod)
    started = time.monotonic()
    sock.sendall(HEAD)
    for i in range(4):  # still sending headers, a line now and then
        time.sleep(0.2)
        try:
            sock.sendall(f"x-slow-{i}: 1\r\n".encode())
        except OSError:
            break

    reply = answer(sock)
    waited = time.monotonic() - started

    assert reply.startswith(b"HTTP/1.1 408 ")
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"
    assert 0.4 < waited < 5


def test_a_connection_that_sends_nothing_is_closed(guarded_pod):
    sock = connect(guarded_pod)

    assert answer(sock).startswith(b"HTTP/1.1 408 ")


def test_a_body_trickled_in_gets_a_408(guarded_pod, weak):
    sock = connect(guarded_pod)
    sock.sendall(HEAD + b"content-type: application/json\r\ncontent-length: 100\r\n\r\n{")
    started = time.monotonic()

    reply = response(sock)

    assert reply.startswith(b"HTTP/1.1 408 ")
    assert b"did not arrive within 0.5 s" in reply
    assert time.monotonic() - started < 5
    assert weak.requests == []  # nothing went to a backend


def test_many_slow_clients_are_all_closed_and_others_still_served(guarded_pod, weak):
    slow = [connect(guarded_pod) for _ in range(200)]
    for sock in slow:
        sock.sendall(HEAD)

    served = guarded_pod.post(chat("hello"))

    assert served.status_code == 200
    for sock in slow:
        assert answer(sock).startswith(b"HTTP/1.1 408 ")


def test_connections_beyond_the_cap_get_a_503(start_pod):
    pod = start_pod("--max-connections", "3", "--header-timeout", "10")
    held = [connect(pod) for _ in range(3)]
    time.sleep(0.2)  # the pod has taken them

    refused = pod.post(chat("hello"))

    assert refused.status_code == 503
    for sock in held:
        sock.close()
    time.sleep(0.2)
    assert pod.post(chat("hello")).status_code == 200
