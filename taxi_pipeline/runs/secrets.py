"""Credentials kept out of everything a run writes or prints.

Tracking URIs, data URIs and Beam flags may carry a password or a token
(`https://user:password@host`, `?token=...`); they are masked wherever a flag
or a command line is recorded: MLflow parameters, messages, logs, the output
folder's lock file.
"""

from __future__ import annotations

import re

MASK = "***"
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
_SECRET_PARAMETER = re.compile(
    r"(?P<name>[?&;][^=&;#\s]*(?:token|password|passwd|pwd|secret|key|signature|sig|credential|auth)[^=&;#\s]*=)"
    r"[^&;#\s]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """`text` with the user information of URIs and the values of secret-looking
    query parameters masked."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _SECRET_PARAMETER.sub(lambda m: f"{m['name']}{MASK}", text)
