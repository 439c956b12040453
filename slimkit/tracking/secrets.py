"""What a tracker may log: spec values flattened to dotted keys, with every secret taken out.

A spec names the environment variable that holds an API key (``api_key_env``), never the
key itself; still, a key pasted into another field, a password inside a URL, or any value
equal to a secret-looking environment variable is replaced before anything is logged.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "<redacted>"

_SECRET_NAME = re.compile(r"(api_?key|token|secret|password|passwd|credential|auth)", re.IGNORECASE)
_SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^/@:\s]*)(:[^/@\s]*)?@",
                           re.IGNORECASE)
_URL_QUERY_SECRET = re.compile(
    r"(?P<name>[?&][^=&\s]*(?:key|token|secret|password|sig)[^=&\s]*=)[^&\s]*", re.IGNORECASE
)


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names look secret (``*_API_KEY``, ``*_TOKEN``,
    ...), longest first; short values (under 8 characters) are not treated as secrets."""
    environ = os.environ if environ is None else environ
    found = {v for k, v in environ.items() if _SECRET_ENV.search(k) and len(v) >= 8}
    return sorted(found, key=len, reverse=True)


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with URL passwords, secret query parameters and known secret values removed."""
    text = _URL_USERINFO.sub(
        lambda m: f"{m['scheme']}{m['user']}{':' + REDACTED if m.group(3) else ''}@", text)
    text = _URL_QUERY_SECRET.sub(lambda m: f"{m['name']}{REDACTED}", text)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


Scalar = str | int | float | bool


def safe_params(spec: Mapping[str, Any], *, skip: tuple[str, ...] = ("tracking",),
                environ: Mapping[str, str] | None = None) -> dict[str, Scalar]:
    """The spec as ``{"train.lr": 0.001, "teacher.model": "...", ...}`` (numbers and bools
    kept, everything else as text), secrets removed: a key named like a secret
    (``api_key``, ``token``; not ``api_key_env``, which holds a variable's name) is
    redacted whatever its value, and every text is scrubbed."""
    secrets = secret_values(environ)
    out: dict[str, Scalar] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for key, child in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), child)
            return
        name = prefix.rpartition(".")[2]
        if _SECRET_NAME.search(name) and not name.endswith("_env") and value not in (None, ""):
            out[prefix] = REDACTED
            return
        if isinstance(value, (bool, int, float)):
            out[prefix] = value
        else:
            text = value if isinstance(value, str) else json.dumps(value)  # None -> "null"
            out[prefix] = scrub(text, secrets)

    for section, values in spec.items():
        if section not in skip:
            walk(str(section), values)
    return out
