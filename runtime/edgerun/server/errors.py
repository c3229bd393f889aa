"""OpenAI-style errors: an exception carrying the HTTP status and the body {"error": {message, type, param, code}}."""

from __future__ import annotations

from starlette.responses import JSONResponse

# status -> OpenAI's error type
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
          413: "invalid_request_error", 429: "rate_limit_error", 503: "server_error", 500: "server_error"}


class APIError(Exception):
    """Raised anywhere in a request's handling; app.py turns it into error_response()."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": _TYPES.get(self.status, "invalid_request_error"),
                          "param": self.param, "code": self.code}}


def error_response(e: APIError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
    return JSONResponse(e.body(), status_code=e.status, headers=headers)
