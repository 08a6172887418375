"""The SDK's text/event-stream parser, fed in the pieces a network delivers. No network."""

from __future__ import annotations

import pytest

from client.sdk import ServerSentEvent, event_data, parse_sse, sse_lines

STREAM = (
    "retry: 2000\n\n"
    "id: 1-0\nevent: status\ndata: {\"status\":\"queued\"}\n\n"
    ": keep-alive\n\n"
    "id: 2-0\nevent: progress\ndata: {\"fraction\":0.5,\"message\":\"\u6e32\u67d3 tile 1/2\"}\n\n"
    "event: end\ndata: {\"status\":\"succeeded\"}\n\n"
)
EXPECTED = [
    ServerSentEvent("message", "", None, 2000),
    ServerSentEvent("status", '{"status":"queued"}', "1-0"),
    ServerSentEvent("progress", '{"fraction":0.5,"message":"\u6e32\u67d3 tile 1/2"}', "2-0"),
    ServerSentEvent("end", '{"status":"succeeded"}'),
]


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
def test_events_survive_any_chunking_even_inside_a_utf8_character(size: int) -> None:
    assert list(parse_sse(pieces(STREAM.encode(), size))) == EXPECTED


@pytest.mark.parametrize("newline", ["\r\n", "\r", "\n"])
def test_every_line_ending_is_a_line_ending(newline: str) -> None:
    data = STREAM.replace("\n", newline).encode()
    for size in (1, 5, len(data)):
        assert list(parse_sse(pieces(data, size))) == EXPECTED


def test_a_crlf_split_between_pieces_is_one_line_end() -> None:
    assert list(sse_lines([b"a\r", b"\nb\r", b"\n"])) == ["a", "b"]
    assert list(sse_lines([b"a\r", b"b\n"])) == ["a", "b"]
    assert list(sse_lines([b"a\r"])) == ["a"]  # a CR at the very end still ends the line


def test_multiline_data_joins_with_newlines_and_one_leading_space_is_dropped() -> None:
    events = list(parse_sse(["data:first\ndata:  second\ndata\n\n"]))
    assert events == [ServerSentEvent("message", "first\n second\n")]


def test_comments_unknown_fields_and_bad_retry_are_ignored() -> None:
    events = list(parse_sse(["\ufeff: hello\nfoo: bar\nretry: soon\nid: 9-1\ndata: x\n\n"]))
    assert events == [ServerSentEvent("message", "x", "9-1")]


def test_an_event_cut_off_by_the_end_of_the_stream_is_not_dispatched() -> None:
    assert list(parse_sse(["data: whole\n\ndata: half"])) == [ServerSentEvent("message", "whole")]
    assert list(parse_sse(["data: no blank line\n"])) == []


def test_an_event_without_data_is_only_reported_for_its_retry() -> None:
    assert list(parse_sse(["event: lonely\nid: 3-0\n\n"])) == []
    assert list(parse_sse(["retry: 1500\n\n"])) == [ServerSentEvent("message", "", None, 1500)]


def test_a_polled_record_looks_like_an_event() -> None:
    record = {"id": "j1", "status": "running", "progress": {"fraction": 0.25, "stage": "stylizing", "message": "x"}}
    assert event_data(record) == {"job_id": "j1", "type": "poll", "status": "running", "stage": "stylizing",
                                  "fraction": 0.25, "message": "x", "eta_s": None, "preview_url": None}
