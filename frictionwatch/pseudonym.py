"""Keyed pseudonyms for identifiers that leave the worker for people (alerts).

A pseudonym is HMAC-SHA256 of the identifier under a secret key, cut to 16 hex digits
(64 bits): the same id always gives the same pseudonym under one key, so on-call staff can
tell examples apart and match them across alerts, while nobody without the key can
recover the id or test a guess. The key comes from ``FRICTIONWATCH_PSEUDONYM_KEY`` (or a
file named by ``pseudonym_key_file``), never from a flag, and is never printed.

>>> pseudonymise = Pseudonymiser(b"k3y")
>>> pseudonymise("cust-0000042")
'p-d20d192472c9710a'
>>> pseudonymise("cust-0000042") == pseudonymise("cust-0000042") != Pseudonymiser(b"other")("cust-0000042")
True
>>> len(pseudonymise("s-1")), pseudonymise("s-1").startswith("p-")
(18, True)
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "p-"
HEX_DIGITS = 16


class Pseudonymiser:
    """``pseudonymiser(identifier)`` -> ``p-`` + 16 hex digits of HMAC-SHA256(key, identifier)."""

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("a pseudonym key must not be empty")
        self._key = key

    def __call__(self, identifier: str) -> str:
        digest = hmac.new(self._key, identifier.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
        return PREFIX + digest[:HEX_DIGITS]

    def __repr__(self) -> str:  # never show the key
        return "Pseudonymiser(key=***)"
