"""Safe file-system names for untrusted hypothesis names."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_SLUG = 48


def safe_name(index: int, name: str) -> str:
    """A directory/file name for hypothesis ``index`` called ``name``.

    The result is ASCII ``[A-Za-z0-9._-]``, never starts with ``.`` or ``-``, contains no ``/``,
    is at most ~70 characters, and is unique per (index, name): the index prefix separates
    hypotheses whose names slugify alike, the hash keeps the name recognisable yet unambiguous.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = _UNSAFE.sub("-", ascii_name).strip(".-_")[:_MAX_SLUG].strip(".-_") or "hypothesis"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{index:03d}-{slug}-{digest}"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def display_name(name: str, limit: int = 120) -> str:
    """A one-line, printable rendering of an untrusted name for logs and progress lines."""
    shown = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", name)
    if len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    return shown
