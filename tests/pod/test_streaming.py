"""Streaming: SSE relayed chunk by chunk, as the backend produces it."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

import httpx

from tests.pod.podkit import chat


def events(lines) -> list:
    return [line[len("data: ") :] for line in lines if line.startswith("data: ")]


def test_sse_chunks_arrive_in_order_and_end_with_done(pod, strong):
    strong.behave(chunks=5)

    with pod.client.stream(
        "POST", "/v1/chat/completions", json=chat("refactor this", stream=True)
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        data = events(response.iter_lines())

    assert data[-1] == "[DONE]"
    pieces = [json.loads(d)["choices"][0]["delta"]["content"] for d in data[:-1]]
    assert pieces == [f"strong-{i} " for i in range(5)]
    assert json.loads(data[0])["model"] == "glm-5"


def test_first_chunk_reaches_the_client_before_the_backend_finishes(pod, weak):
    weak.behave(chunks=4, chunk_delay=0.25)

    arrivals = []
    started = time.monotonic()
    with pod.client.stream("POST", "/v1/chat/completions", json=chat("hi", stream=True)) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic() - started)

    assert len(arrivals) == 5  # four pieces and [DONE]
    assert arrivals[0] < 0.4, arrivals  # not held back until the 0.75 s answer is complete
    assert arrivals[-1] > 0.7, arrivals
    # Each piece arrives about when the backend sends it, not all at once.
    assert arrivals[2] - arrivals[1] > 0.15, arrivals


def test_non_streaming_answers_are_plain_json(pod, weak):
    response = pod.post(chat("hi"))

    assert response.headers["content-type"] == "application/json"
    assert response.json()["object"] == "chat.completion"


def test_client_disconnect_cancels_the_backend_request(pod, strong):
    strong.behave(chunks=50, chunk_delay=0.05)  # a 2.5 s answer

    with (
        httpx.Client(base_url=pod.url, timeout=5) as client,
        client.stream("POST", "/v1/chat/completions", json=chat("design", stream=True)) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("data: "):
                break  # hang up after the first chunk
    hung_up = time.monotonic()

    assert strong.wait_for(lambda: strong.requests[0].finished is not None, timeout=2)
    received = strong.requests[0]
    assert received.client_gone
    assert received.finished - hung_up < 1.0  # the whole answer takes 2.5 s
    assert received.chunks_sent < 20


def test_client_disconnect_while_waiting_for_the_first_byte_cancels_too(pod, strong):
    strong.behave(first_byte_delay=2.0)  # under the pod's 3 s timeout: it waits, no fallback
    body = json.dumps(chat("design", stream=True)).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: pod\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )

    with socket.create_connection(("127.0.0.1", urlsplit(pod.url).port)) as sock:
        sock.sendall(head.encode() + body)
        # Hang up only once the request is at the backend, where the pod waits for its byte.
        assert strong.wait_for(lambda: strong.requests, timeout=5)
    hung_up = time.monotonic()

    assert strong.wait_for(lambda: strong.requests[0].finished is not None, timeout=3)
    received = strong.requests[0]
    assert received.client_gone
    assert received.finished - hung_up < 1.0  # well before the first byte was due
