"""Who may call the server: bearer keys (one from `--api-key-env`, or a `--keys FILE`), compared in
constant time, with each key's limits — requests per minute and cost per UTC day — checked before
any upstream call.

The keys file is YAML or JSON:

    keys:
      - name: alice                 # shown in the access log (never the key)
        key_env: EMBER_KEY_ALICE    # the key is read from this environment variable, or:
        # key_sha256: 9f86d0...     # the hex SHA-256 of the key (the file then holds no secret)
        rpm: 60                     # requests per minute (sliding 60 s window); absent: no limit
        cost_per_day_usd: 5         # spend per UTC day; absent: no limit
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML, YAMLError

from ..errors import UsageError
from .openai_shapes import ApiError

WINDOW_S = 60.0


@dataclass
class Key:
    """One client key: its name, the SHA-256 of its value, its limits and what it used."""

    name: str
    digest: bytes
    rpm: float | None = None
    cost_per_day_usd: float | None = None
    recent: collections.deque[float] = field(default_factory=collections.deque)  # request times in the window
    day: str = ""
    spent_usd: float = 0.0

    def admit(self, now: float, today: str, seconds_to_midnight: float) -> None:
        """Count one request against the key's limits.

        Raises:
            ApiError: 429 over the requests-per-minute limit or the day's cost (with Retry-After).
        """
        if today != self.day:
            self.day, self.spent_usd = today, 0.0
        if self.cost_per_day_usd is not None and self.spent_usd >= self.cost_per_day_usd:
            raise ApiError(429, f"key '{self.name}' has spent its ${self.cost_per_day_usd:g} for today (UTC)",
                           code="budget_exceeded", retry_after_s=seconds_to_midnight)
        if self.rpm is not None:
            recent = self.recent
            while recent and recent[0] <= now - WINDOW_S:
                recent.popleft()
            if len(recent) >= self.rpm:
                raise ApiError(429, f"key '{self.name}' is over its limit of {self.rpm:g} requests per minute",
                               code="rate_limit_exceeded", retry_after_s=recent[0] + WINDOW_S - now)
            recent.append(now)

    def spend(self, cost_usd: float | None) -> None:
        if cost_usd:
            self.spent_usd += cost_usd


class KeyRing:
    """The server's keys (empty: no authentication).

    Args:
        keys: the keys.
        clock: seconds (monotonic) for the per-minute windows; `today` gives the UTC date and the
            seconds left in it (tests pass fakes).
    """

    def __init__(self, keys: list[Key], clock: Callable[[], float] = time.monotonic,
                 today: Callable[[], tuple[str, float]] | None = None) -> None:
        self.keys = keys
        self.clock = clock
        self.today = today or _utc_today

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def authenticate(self, header: str | None) -> Key | None:
        """The key an `Authorization: Bearer ...` header carries (None when the server has no keys).

        Every key is compared, in constant time, whichever matches: the time taken says nothing about
        how much of a key was right, nor which key it was.

        Raises:
            ApiError: 401 without a header, or with a key that is not one of the server's.
        """
        if not self.keys:
            return None
        if not header or not header.startswith("Bearer "):
            raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key")
        digest = hashlib.sha256(header[7:].strip().encode()).digest()
        found = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.digest):
                found = key
        if found is None:
            raise ApiError(401, "incorrect API key", code="invalid_api_key")
        return found

    def admit(self, key: Key | None) -> None:
        """Check `key`'s limits for one more request (see `Key.admit`)."""
        if key is not None and (key.rpm is not None or key.cost_per_day_usd is not None):
            day, left = self.today()
            key.admit(self.clock(), day, left)


def _utc_today() -> tuple[str, float]:
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return now.date().isoformat(), (midnight - now).total_seconds()


def key_from_env(name: str) -> Key:
    """The one key of `--api-key-env NAME`.

    Raises:
        UsageError: the variable is not set or empty.
    """
    value = os.environ.get(name, "").strip()
    if not value:
        raise UsageError(f"--api-key-env {name}: the environment variable is not set")
    return Key("default", hashlib.sha256(value.encode()).digest())


def load_keys(path: str | Path) -> list[Key]:
    """The keys of a `--keys FILE` (format in this module's docstring).

    Raises:
        UsageError: an unreadable file, a malformed entry (named by its position), a missing variable.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else YAML(typ="safe").load(text)
    except (OSError, json.JSONDecodeError, YAMLError) as exc:
        raise UsageError(f"cannot read --keys {path}: {exc}") from None
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"--keys {path}: expected a top-level 'keys:' list with at least one key")
    keys, names = [], set()
    for i, entry in enumerate(entries):
        keys.append(_key(entry, f"--keys {path}: keys[{i}]"))
        if keys[-1].name in names:
            raise UsageError(f"--keys {path}: keys[{i}]: the name '{keys[-1].name}' is used twice")
        names.add(keys[-1].name)
    return keys


_FIELDS = {"name", "key_env", "key_sha256", "rpm", "cost_per_day_usd"}


def _key(entry: Any, where: str) -> Key:
    if not isinstance(entry, dict):
        raise UsageError(f"{where}: expected a mapping with name and key_env or key_sha256")
    if unknown := sorted(set(entry) - _FIELDS):
        raise UsageError(f"{where}: unknown field '{unknown[0]}' (fields: {', '.join(sorted(_FIELDS))})")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise UsageError(f"{where}: 'name' is required")
    if ("key_env" in entry) == ("key_sha256" in entry):
        raise UsageError(f"{where}: give exactly one of key_env and key_sha256")
    if "key_env" in entry:
        value = os.environ.get(str(entry["key_env"]), "").strip()
        if not value:
            raise UsageError(f"{where}: the environment variable {entry['key_env']} is not set")
        digest = hashlib.sha256(value.encode()).digest()
    else:
        value = entry["key_sha256"]
        try:
            digest = bytes.fromhex(value) if isinstance(value, str) else b""
        except ValueError:
            digest = b""
        if len(digest) != 32:  # YAML reads an unquoted all-digit hash as a number
            raise UsageError(f"{where}: key_sha256 must be 64 hex digits, quoted")
    limits = {}
    for limit in ("rpm", "cost_per_day_usd"):
        value = entry.get(limit)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
            raise UsageError(f"{where}: {limit} must be a positive number, got {value!r}")
        limits[limit] = value
    return Key(name, digest, **limits)
