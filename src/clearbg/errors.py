"""The ClearBG error hierarchy.

Every error the package raises on purpose is a ``ClearbgError``. Each class carries the HTTP
``status`` an API answers with, a stable machine-readable ``code`` and the ``exit_code`` the CLI
ends with, so the three edges (HTTP, CLI, SDK) translate errors in one place each::

    ClearbgError                      500 internal_error        exit 1
    ├── InputError                    400 invalid_input         exit 3
    │   ├── InvalidOptionError        400 invalid_option
    │   ├── UnknownModelError         400 unknown_model
    │   └── ImageError                400 invalid_image
    │       ├── EmptyImageError       400 empty_image
    │       ├── NotAnImageError       400 not_an_image
    │       ├── TruncatedImageError   400 truncated_image
    │       ├── CorruptImageError     400 corrupt_image
    │       ├── TooManyPixelsError    400 too_many_pixels
    │       └── UnsupportedFormatError 415 unsupported_format
    ├── ModelError                    503 model_unavailable     exit 4
    │   ├── ModelMissingError         503 model_missing
    │   ├── ModelChecksumError        503 model_corrupt
    │   ├── ModelDownloadError        503 model_download_failed
    │   └── ModelLoadError            503 model_load_failed
    └── OutputError                   500 output_failed         exit 5
"""

from __future__ import annotations

__all__ = [
    "ClearbgError",
    "CorruptImageError",
    "EmptyImageError",
    "ImageError",
    "InputError",
    "InvalidOptionError",
    "ModelChecksumError",
    "ModelDownloadError",
    "ModelError",
    "ModelLoadError",
    "ModelMissingError",
    "NotAnImageError",
    "OutputError",
    "TooManyPixelsError",
    "TruncatedImageError",
    "UnknownModelError",
    "UnsupportedFormatError",
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


class ModelLoadError(ModelError):
    code = "model_load_failed"


class OutputError(ClearbgError):
    """A result could not be written where it was asked to go."""

    code = "output_failed"
    exit_code = 5
