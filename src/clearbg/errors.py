"""The ClearBG error hierarchy.

Every error the package raises on purpose is a ``ClearbgError``. Each class carries the HTTP
``status`` an API answers with, a stable machine-readable ``code`` and the ``exit_code`` the CLI
ends with, so the three edges (HTTP, CLI, SDK) translate errors in one place each::

    ClearbgError                      500 internal_error        exit 1
    ├── InputError                    400 invalid_input         exit 3
    │   ├── InvalidOptionError        400 invalid_option
    │   ├── UnknownModelError         400 unknown_model
    │   ├── ImageError                400 invalid_image
    │   │   ├── EmptyImageError       400 empty_image
    │   │   ├── NotAnImageError       400 not_an_image
    │   │   ├── TruncatedImageError   400 truncated_image
    │   │   ├── CorruptImageError     400 corrupt_image
    │   │   ├── TooManyPixelsError    400 too_many_pixels
    │   │   └── UnsupportedFormatError 415 unsupported_format
    │   ├── PayloadTooLargeError      413 payload_too_large
    │   ├── MalformedRequestError     400 malformed_request     (not HTTP/1.1 we can read)
    │   ├── RequestTimeoutError       408 request_timeout       (headers or body stalled)
    │   ├── IdempotencyMismatchError  422 idempotency_key_reused
    │   ├── NotFoundError             404 not_found
    │   │   └── UnknownApplicationError 404 unknown_application
    │   └── GatewayInputError         400 invalid_image_field   (gateway: the `image` field)
    │       ├── MissingAppKeyError    400 missing_app_key
    │       ├── InvalidMultipartError 400 invalid_multipart
    │       ├── MissingImageError     400 missing_image
    │       ├── ImageConflictError    400 image_conflict
    │       ├── InvalidBase64Error    400 invalid_base64
    │       ├── UrlNotAllowedError    400 url_not_allowed
    │       └── UrlFetchError         400 url_fetch_failed
    ├── AuthError                     401 invalid_api_key
    │   ├── MissingApiKeyError        401 missing_api_key
    │   └── WrongApplicationKeyError  401 api_key_wrong_application
    ├── InsufficientCreditsError      402 insufficient_credits
    │   └── GatewayCreditsError       403 insufficient_credits   (gateway)
    ├── SignInError                   401 sign_in_failed        (console)
    │   └── SignInRequiredError       401 sign_in_required      (console: go to sign-in)
    ├── CsrfError                     403 csrf_failed           (console)
    ├── ForbiddenError                403 forbidden             (console: admin only)
    ├── AdminAuthError                401 invalid_admin_token
    ├── IdempotencyConflictError      409 idempotency_in_progress
    ├── RetryLaterError               (carries retry_after: Retry-After)
    │   ├── RateLimitedError          429 rate_limited
    │   │   ├── AnonymousLimitError   429 anonymous_limit_reached
    │   │   └── TooManyUploadsError   429 too_many_uploads      (stalled bodies per client IP)
    │   └── OverloadedError           503 overloaded
    ├── GatewayUnavailableError       503 gateway_disabled
    │   └── UpstreamNotConfiguredError 503 upstream_not_configured
    ├── UpstreamError                 502 upstream_error
    │   ├── UpstreamTimeoutError      502 upstream_timeout
    │   ├── UpstreamUnreachableError  502 upstream_unreachable
    │   └── UpstreamBadResponseError  502 upstream_bad_response
    ├── ModelError                    503 model_unavailable     exit 4
    │   ├── ModelMissingError         503 model_missing
    │   ├── ModelChecksumError        503 model_corrupt
    │   ├── ModelDownloadError        503 model_download_failed
    │   ├── ModelBuildError           503 model_build_failed    (an int8 build failed its check)
    │   └── ModelLoadError            503 model_load_failed
    ├── OutputError                   500 output_failed         exit 5
    └── SettingsError                 500 bad_settings          exit 6  (a process cannot start)
"""

from __future__ import annotations

__all__ = [
    "AdminAuthError",
    "AnonymousLimitError",
    "AuthError",
    "ClearbgError",
    "CorruptImageError",
    "CsrfError",
    "EmptyImageError",
    "ForbiddenError",
    "GatewayCreditsError",
    "GatewayInputError",
    "GatewayUnavailableError",
    "IdempotencyConflictError",
    "IdempotencyMismatchError",
    "ImageConflictError",
    "ImageError",
    "InputError",
    "InsufficientCreditsError",
    "InvalidBase64Error",
    "InvalidMultipartError",
    "InvalidOptionError",
    "MalformedRequestError",
    "MissingApiKeyError",
    "MissingAppKeyError",
    "MissingImageError",
    "ModelBuildError",
    "ModelChecksumError",
    "ModelDownloadError",
    "ModelError",
    "ModelLoadError",
    "ModelMissingError",
    "NotAnImageError",
    "NotFoundError",
    "OutputError",
    "OverloadedError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "RequestTimeoutError",
    "RetryLaterError",
    "SettingsError",
    "SignInError",
    "SignInRequiredError",
    "TooManyPixelsError",
    "TooManyUploadsError",
    "TruncatedImageError",
    "UnknownApplicationError",
    "UnknownModelError",
    "UnsupportedFormatError",
    "UpstreamBadResponseError",
    "UpstreamError",
    "UpstreamNotConfiguredError",
    "UpstreamTimeoutError",
    "UpstreamUnreachableError",
    "UrlFetchError",
    "UrlNotAllowedError",
    "WrongApplicationKeyError",
    "error_class",
    "error_from",
]


class ClearbgError(Exception):
    """Base of every error ClearBG raises on purpose."""

    status: int = 500
    code: str = "internal_error"
    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputError(ClearbgError):
    """The caller sent something we cannot work on."""

    status = 400
    code = "invalid_input"
    exit_code = 3


class InvalidOptionError(InputError):
    """An option (size, format, colour, margin, ...) has a value we do not accept."""

    code = "invalid_option"

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option


class UnknownModelError(InputError):
    """No model of that name is registered."""

    code = "unknown_model"


class ImageError(InputError):
    """The image bytes cannot be turned into pixels."""

    code = "invalid_image"


class EmptyImageError(ImageError):
    code = "empty_image"


class NotAnImageError(ImageError):
    code = "not_an_image"


class TruncatedImageError(ImageError):
    code = "truncated_image"


class CorruptImageError(ImageError):
    code = "corrupt_image"


class TooManyPixelsError(ImageError):
    """The image has more pixels than the configured limit (checked before decoding)."""

    code = "too_many_pixels"


class UnsupportedFormatError(ImageError):
    """A real image, but in a format we do not accept (PSD, ICO, PDF, ...)."""

    status = 415
    code = "unsupported_format"


class PayloadTooLargeError(InputError):
    status = 413
    code = "payload_too_large"


class MalformedRequestError(InputError):
    """The bytes on the connection are not an HTTP/1.1 request the server can read."""

    code = "malformed_request"


class RequestTimeoutError(InputError):
    """The request's headers or body stopped arriving; the connection is closed."""

    status = 408
    code = "request_timeout"


class IdempotencyMismatchError(InputError):
    """An Idempotency-Key reused with another request."""

    status = 422
    code = "idempotency_key_reused"


class NotFoundError(InputError):
    status = 404
    code = "not_found"


class UnknownApplicationError(NotFoundError):
    """No application has the X-App-Key that was sent."""

    code = "unknown_application"


class GatewayInputError(InputError):
    """The gateway's request is malformed: headers, multipart or the ``image`` field."""

    code = "invalid_image_field"


class MissingAppKeyError(GatewayInputError):
    code = "missing_app_key"


class InvalidMultipartError(GatewayInputError):
    code = "invalid_multipart"


class MissingImageError(GatewayInputError):
    code = "missing_image"


class ImageConflictError(GatewayInputError):
    """More than one ``image`` part (a file and a text, or two of either)."""

    code = "image_conflict"


class InvalidBase64Error(GatewayInputError):
    code = "invalid_base64"


class UrlNotAllowedError(GatewayInputError):
    """A URL whose scheme, port or address (after every redirect) we refuse to reach."""

    code = "url_not_allowed"


class UrlFetchError(GatewayInputError):
    """A URL that could not be downloaded: refused, timed out, not 2xx, too many redirects."""

    code = "url_fetch_failed"


class AuthError(ClearbgError):
    """The API key is unknown, revoked or expired."""

    status = 401
    code = "invalid_api_key"


class MissingApiKeyError(AuthError):
    code = "missing_api_key"


class WrongApplicationKeyError(AuthError):
    """A valid key, but of another application than the X-App-Key names."""

    code = "api_key_wrong_application"


class InsufficientCreditsError(ClearbgError):
    status = 402
    code = "insufficient_credits"


class GatewayCreditsError(InsufficientCreditsError):
    """The gateway's contract answers 403 when the end-user key has too few credits."""

    status = 403


class SignInError(ClearbgError):
    """Console sign-in: the email or the password is wrong (never says which)."""

    status = 401
    code = "sign_in_failed"


class SignInRequiredError(SignInError):
    """A console page was asked for without a live session: the console redirects to sign-in."""

    code = "sign_in_required"


class CsrfError(ClearbgError):
    """A console form came without its CSRF token, or with another session's."""

    status = 403
    code = "csrf_failed"


class ForbiddenError(ClearbgError):
    """Signed in, but this needs the admin role."""

    status = 403
    code = "forbidden"


class AdminAuthError(ClearbgError):
    status = 401
    code = "invalid_admin_token"


class IdempotencyConflictError(ClearbgError):
    """The first request with this Idempotency-Key is still running."""

    status = 409
    code = "idempotency_in_progress"


class RetryLaterError(ClearbgError):
    """Errors that tell the client when to come back (``Retry-After``)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class RateLimitedError(RetryLaterError):
    status = 429
    code = "rate_limited"


class AnonymousLimitError(RateLimitedError):
    """The application's anonymous daily limit for this client IP is spent (until 00:00 UTC)."""

    code = "anonymous_limit_reached"


class TooManyUploadsError(RateLimitedError):
    """The client IP already has as many request bodies stalled as it may hold at once."""

    code = "too_many_uploads"


class OverloadedError(RetryLaterError):
    status = 503
    code = "overloaded"


class GatewayUnavailableError(ClearbgError):
    """The application's ClearBG integration is switched off."""

    status = 503
    code = "gateway_disabled"


class UpstreamNotConfiguredError(GatewayUnavailableError):
    code = "upstream_not_configured"


class UpstreamError(ClearbgError):
    """The upstream that removes backgrounds failed; nothing is charged."""

    status = 502
    code = "upstream_error"


class UpstreamTimeoutError(UpstreamError):
    code = "upstream_timeout"


class UpstreamUnreachableError(UpstreamError):
    code = "upstream_unreachable"


class UpstreamBadResponseError(UpstreamError):
    """The upstream answered 2xx with something that is not an image."""

    code = "upstream_bad_response"


class ModelError(ClearbgError):
    """A model cannot be used: missing, corrupt, not downloadable or not loadable."""

    status = 503
    code = "model_unavailable"
    exit_code = 4


class ModelMissingError(ModelError):
    code = "model_missing"


class ModelChecksumError(ModelError):
    code = "model_corrupt"


class ModelDownloadError(ModelError):
    code = "model_download_failed"


class ModelBuildError(ModelError):
    """A model built on this machine (``u2net-int8``) could not be built, or its masks
    disagree with the model it was built from; nothing was stored."""

    code = "model_build_failed"


class ModelLoadError(ModelError):
    code = "model_load_failed"


class OutputError(ClearbgError):
    """A result could not be written where it was asked to go."""

    code = "output_failed"
    exit_code = 5


class SettingsError(ClearbgError):
    """A setting names a database, queue, limit store or bucket the process cannot use; it
    stops at start. The message names the setting."""

    code = "bad_settings"
    exit_code = 6


def _tree(cls: type[ClearbgError]) -> list[type[ClearbgError]]:
    """``cls`` and every class below it, parents before their children (the docstring's order)."""
    return [cls, *(c for sub in cls.__subclasses__() for c in _tree(sub))]


def error_class(status: int, code: str) -> type[ClearbgError]:
    """The class an error answer stands for: the one with its code and status, else its code
    (two classes share ``insufficient_credits``), else the most general one with its status."""
    classes = _tree(ClearbgError)
    for found in (
        [c for c in classes if c.code == code and c.status == status],
        [c for c in classes if c.code == code],
        [c for c in classes if c.status == status],
    ):
        if found:
            return found[0]
    return ClearbgError


def error_from(
    status: int, code: str, message: str, retry_after: int | None = None
) -> ClearbgError:
    """The typed error of an answer (the SDK raises what the server raised): the message as
    the server wrote it, and the answer's own status and code when no class has them."""
    cls = error_class(status, code)
    err = cls.__new__(cls)
    ClearbgError.__init__(err, message)  # not the class's own __init__: its arguments differ
    err.status, err.code = status, code
    if isinstance(err, RetryLaterError):
        err.retry_after = max(1, retry_after or 1)
    if isinstance(err, InvalidOptionError):
        err.option = message.partition(": ")[0]
    return err
