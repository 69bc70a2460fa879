"""Every HTTP error rendered three ways: Jaeger JSON for /api/, a fragment for htmx, a page."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, render_template, request
from htmx_flask import make_response as htmx_response
from werkzeug.exceptions import HTTPException, InternalServerError

from app.htmx import MESSAGE_AREA, is_htmx

log = logging.getLogger(__name__)


def register(app: Flask) -> None:
    """Install the handlers on the app."""
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


def _http_error(err: HTTPException) -> Any:
    status = err.code or 500
    message = err.description or err.name
    if request.path.startswith("/api/"):
        body = {"data": None, "total": 0, "limit": 0, "offset": 0, "errors": [{"code": status, "msg": message}]}
        response = jsonify(body)
        response.status_code = status
        return response
    if is_htmx():
        html = render_template("_error.html", status=status, title=err.name, message=message)
        return htmx_response(html, status, retarget=MESSAGE_AREA, reswap="innerHTML")
    return render_template("error.html", status=status, title=err.name, message=message), status


def _unexpected(err: Exception) -> Any:
    if isinstance(err, HTTPException):
        return _http_error(err)
    log.exception("unexpected error on %s %s", request.method, request.path)
    return _http_error(InternalServerError("Something went wrong on our side; the error is in the server log."))
