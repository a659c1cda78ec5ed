"""API keys with scopes: who may predict, send ground truth, or administer the service.

Feedback steers retraining (labels weigh in training and decide the gate), so whoever can post it
can steer the model: only a key with the ``feedback`` scope may. Keys come from
``MLSERVE_API_KEYS`` and/or the file named by ``MLSERVE_API_KEYS_FILE`` (a mounted secret), one
entry per line or whitespace-separated: ``SCOPES:KEY`` or ``SCOPES:sha256:HEX``, SCOPES being a
comma-separated subset of ``predict,feedback,admin``. Only the SHA-256 of each key is kept, and a
presented key's hash is compared with every stored one in constant time, so neither the memory
nor the timing of a refusal gives a key away. Several keys may hold the same scope: rotate by
adding the new key, moving clients, then removing the old one.

Scopes listed in ``MLSERVE_OPEN_SCOPES`` need no key (default ``predict``; the production stack
sets it empty). On the embedded default ``mlserve serve`` makes one local key with every scope
(``local_key``), so the loop's own tools work out of the box and nobody else can post labels.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

SCOPES = ("predict", "feedback", "admin")
HEADER = "Authorization"
SCHEME = "Bearer"


class KeyConfigError(ValueError):
    """An API-key entry that cannot be read; the service refuses to start on it."""


def digest(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


OPEN = "open"
"""The key id of a request no known key made (an open scope)."""
MIN_KEY_LENGTH = 16
"""Shorter keys are refused at start-up: a guessable key is no key."""


def key_id(key: str) -> str:
    """A key's public name: the first 12 hex digits of its SHA-256.

    Recorded on every label it sends (``mlserve labels purge --key ID``), printed by ``mlserve
    key``; for a ``SCOPES:sha256:HEX`` entry it is the entry's first 12 digits.
    """
    return digest(key)[:12]


def new_key() -> str:
    """A fresh random key (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class ApiKeys:
    """The accepted key hashes with their scopes, and the scopes open to anyone."""

    hashes: tuple[tuple[str, frozenset[str]], ...]
    open_scopes: frozenset[str]

    @classmethod
    def parse(cls, entries: str, open_scopes: str) -> ApiKeys:
        """Read the entries (see the module) and the comma-separated open scopes."""
        hashes = []
        for number, entry in enumerate(entries.split(), start=1):
            if entry.startswith("#"):
                continue
            scopes_text, sep, secret = entry.partition(":")
            scopes = _scopes(scopes_text) if sep else frozenset()
            if not sep or not secret or not scopes:
                # Never the entry itself: a line without scopes is a bare key.
                raise KeyConfigError(
                    f"API key entry {number} is not SCOPES:KEY or SCOPES:sha256:HEX "
                    f"(SCOPES from {', '.join(SCOPES)})"
                )
            if secret.startswith("sha256:"):
                hexdigest = secret.removeprefix("sha256:").lower()
                if len(hexdigest) != 64 or any(c not in "0123456789abcdef" for c in hexdigest):
                    raise KeyConfigError("a sha256: key entry needs 64 hexadecimal digits")
            elif len(secret) < MIN_KEY_LENGTH:
                raise KeyConfigError(
                    f"API key entry {number}: a key needs at least {MIN_KEY_LENGTH} characters "
                    "(`mlserve key` makes one)"
                )
            else:
                hexdigest = digest(secret)
            hashes.append((hexdigest, scopes))
        return cls(tuple(hashes), _scopes(open_scopes))

    @classmethod
    def read(cls, inline: str, file: Path | None, open_scopes: str) -> ApiKeys:
        """Keys from the environment's text and the secret file, if any."""
        text = inline
        if file is not None:
            lines = [line.split("#", 1)[0] for line in file.read_text().splitlines()]
            text += "\n" + "\n".join(lines)
        return cls.parse(text, open_scopes)

    def allows(self, scope: str, presented: str | None) -> bool | None:
        """Whether a request with ``presented`` may use ``scope``.

        True if the scope is open or the key grants it; False if the key is known but lacks it
        (403); None if no key was presented or the key is unknown (401).
        """
        if scope in self.open_scopes:
            return True
        granted = self.scopes_of(presented)
        return None if granted is None else scope in granted

    def scopes_of(self, presented: str | None) -> frozenset[str] | None:
        """The scopes ``presented`` grants, or None for no key or an unknown one."""
        if not presented:
            return None
        wanted = digest(presented).encode()
        granted: frozenset[str] | None = None
        for stored, scopes in self.hashes:  # every entry compared, found or not
            if hmac.compare_digest(stored.encode(), wanted):
                granted = scopes
        return granted

    def sender(self, presented: str | None) -> str:
        """Whom a request's labels are recorded as: its key's id if known, else ``OPEN``.

        An unknown key on an open scope is ``OPEN`` too, so the ids recorded (and the per-key
        rate limits kept) are bounded by the keys configured, whatever a client sends.
        """
        return OPEN if self.scopes_of(presented) is None else key_id(presented or "")

    def announce(self, logger: logging.Logger) -> None:
        """Log who may do what at start-up, with a warning when predictions need no key."""
        logger.info("access: %s", self.summary())
        if "predict" in self.open_scopes:
            logger.warning(
                "predictions need no API key (MLSERVE_OPEN_SCOPES=%s): anyone who reaches the "
                "port can predict; set MLSERVE_OPEN_SCOPES= to require one",
                ",".join(sorted(self.open_scopes)),
            )

    def summary(self) -> str:
        """What a start-up log line says about access (never a key)."""
        open_text = ", ".join(s for s in SCOPES if s in self.open_scopes) or "none"
        keyed = sorted({s for _, scopes in self.hashes for s in scopes})
        return (
            f"{len(self.hashes)} API key(s) for {', '.join(keyed) or 'nothing'}; "
            f"open without a key: {open_text}"
        )


def _scopes(text: str) -> frozenset[str]:
    scopes = frozenset(s.strip() for s in text.split(",") if s.strip())
    unknown = scopes - set(SCOPES)
    if unknown:
        raise KeyConfigError(f"unknown scope(s) {sorted(unknown)}; scopes are {list(SCOPES)}")
    return scopes


def entry(scopes: str, key: str) -> str:
    """The line that admits ``key`` with ``scopes``, holding only the key's hash."""
    _scopes(scopes)
    return f"{scopes}:sha256:{digest(key)}"


def local_key(home: Path) -> tuple[str, Path]:
    """The embedded default's key and the keys file admitting it, made on first use.

    The clear key is kept readable by its owner only (``home/api-key``), for the local tools
    (``mlserve simulate``, ``mlserve predict``); the service reads ``home/api-keys``, which
    holds its hash.
    """
    clear, keys_file = home / "api-key", home / "api-keys"
    if not clear.exists():
        home.mkdir(parents=True, exist_ok=True)
        clear.touch(mode=0o600)
        clear.write_text(new_key() + "\n")
    key = clear.read_text().strip()
    keys_file.write_text(entry(",".join(SCOPES), key) + "\n")
    return key, keys_file


def local_key_id(home: Path) -> str | None:
    """The id of the key ``local_key`` made in ``home``, if it made one (never makes one)."""
    clear = home / "api-key"
    return key_id(clear.read_text().strip()) if clear.exists() else None


def client_headers(api_key: str | None, home: Path) -> dict[str, str]:
    """A client's header: the given key, else the embedded default's local key, if any."""
    local = home / "api-key"
    key = api_key or (local.read_text().strip() if local.exists() else None)
    return {HEADER: f"{SCHEME} {key}"} if key else {}


def presented_key(authorization: str | None) -> str | None:
    """The key from an ``Authorization: Bearer KEY`` header."""
    if not authorization:
        return None
    scheme, _, key = authorization.partition(" ")
    return key.strip() if scheme.lower() == SCHEME.lower() and key.strip() else None
