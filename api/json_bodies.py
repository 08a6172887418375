"""JSON request bodies that the parser would turn into a 500.

webargs (under flask-smorest) answers 400 for a body that ``json.loads`` refuses with a
``JSONDecodeError``, but ``json.loads`` has two other ways to refuse: ``RecursionError`` for
arrays or objects nested deeper than the interpreter's stack (``[[[[...`` 100,000 deep), and a
plain ``ValueError`` for an integer literal longer than ``sys.get_int_max_str_digits()`` (4,300
digits). Both are bad input, so both answer 400 here, before any handler parses the body. The
check parses the body once more; JSON bodies here are small (job requests, policies, schedules),
so that costs microseconds.
"""

from __future__ import annotations

import json

from flask import request

from api.errors import ApiError


def refuse_unparseable_json() -> None:
    """A before-request hook: 400 ``malformed_request`` for a JSON body nested too deeply or
    holding an over-long integer; every other body is left to the route's own parsing."""
    if not request.is_json or (not request.content_length and "Transfer-Encoding" not in request.headers):
        return
    try:
        json.loads(request.get_data(cache=True))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return  # the parser answers these itself: 400 "Invalid JSON body."
    except RecursionError:
        raise ApiError(400, "malformed_request", "the JSON body is nested too deeply") from None
    except ValueError:
        raise ApiError(400, "malformed_request", "the JSON body holds a number too long to read") from None
