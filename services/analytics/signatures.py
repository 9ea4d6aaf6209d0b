"""Failure signatures: a build's error message reduced to its *pattern* and a stable id.

The pattern is the message with its variable parts replaced by placeholders, so that the same failure
with another version, line number, partner path, hash or timestamp maps to the same signature. The
masks run in this order (an earlier mask wins, e.g. a URL is masked whole before its numbers):

==========  ===============================================================================
``<url>``   ``scheme://…`` (trailing punctuation left out)
``<uuid>``  8-4-4-4-12 hex
``<hex>``   a hex word of >= 7 characters containing a digit and a letter (git / content hashes),
            or ``0x…``
``<path>``  a unix path with a directory (``/src/main/Foo.kt``, ``res/values/strings.xml``;
            a relative one needs two ``/`` or a file extension, so ``image/heic`` or ``and/or`` stay),
            a windows path (``C:\\…``, ``\\\\host\\share``), or a bare file name with a known file
            extension (``splash.heic``, ``app-release.aab``); a ``:line[:col]`` suffix goes with it
``'<str>'`` the content of a '…' or "…" quote (the quote marks kept, ``"<str>"``); a quote holding
            only one placeholder keeps it (``'<url>'``, ``"<path>"``). An apostrophe inside a word
            (``can't``) does not open a quote
``<time>``  Java ``Date.toString`` (``Mon Nov 09 00:00:00 UTC 2026``), RFC 1123, ISO 8601 dates and
            timestamps, ``hh:mm:ss`` clock times (masked before versions: ``00:00.123`` is not one)
``<ver>``   ``1.2.3``, ``2024.06.00``, ``2.8.1-alpha.14``, ``v33.1``: three or more numeric parts, or
            ``v`` and two, with an optional pre-release qualifier; ``kotlin-stdlib-1.8.22`` keeps the
            name (``kotlin-stdlib-<ver>``). Two-part numbers (``1.5``) are numbers
``<n>``     any other number not glued to a preceding word character (``1800s`` -> ``<n>s``,
            ``512x512`` -> ``<n>x<n>``, ``3/3`` -> ``<n>/<n>``; ``jdk8``, ``okhttp3``, ``x86_64`` stay)
==========  ===============================================================================

Words are never masked: ``Image too small: icon …`` and ``Image too small: logo …`` are different
signatures, as are the density names, and the key alias in ``Failed to read key acme-bank-release
from store …`` makes one signature per partner (quoted, as in ``(alias '…')``, it would be masked).
Dates and times are masked after quotes (a quoted one is ``'<str>'``) but before versions, since a
version mask would take a timestamp's ``00.123``.

Control characters become spaces, whitespace is collapsed, and only the first ``MAX_CHARS``
characters are considered, so the work per message is bounded (~0.1 ms for a typical message, ~2 ms
at worst); any str (also empty, or with lone surrogates) gives a pattern without raising. The id is
the BLAKE2b-64 of the pattern's UTF-8 bytes in hex: the same on every process and machine.
``signature`` caches the last 65,536 results of messages up to 512 characters (at most ~80 MB of
ASCII; longer messages, rarely repeated verbatim, are normalised each time).
"""
from __future__ import annotations

import hashlib
import re
from functools import lru_cache

__all__ = ["MAX_CHARS", "normalise", "signature_id", "signature"]

MAX_CHARS = 2000  # characters of a message considered; the rest is cut off before normalising
_CACHE_SIZE = 65_536
_CACHED_CHARS = 512

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SPACE = re.compile(r"\s+")

_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]{0,15}://[^\s'\"<>]*[^\s'\"<>.,;:!?)\]}]")
_UUID = re.compile(r"\b[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\b")
_HEX = re.compile(r"\b(?:0[xX][0-9A-Fa-f]+|(?=[0-9A-Fa-f]*[0-9])(?=[0-9A-Fa-f]*[A-Fa-f])[0-9A-Fa-f]{7,})\b")

_SEG = r"(?:\.{1,2}|[\w.@+~$-]*[\w@+~$-])"  # a path segment: never ends in a dot (sentence ends)
_LINE = r"(?::\d+){0,2}"
_EXT = (r"(?i:kts?|java|groovy|gradle|xml|json|ya?ml|toml|properties|pro|txt|log|csv|png|jpe?g|webp|gif|"
        r"svg|heic|heif|bmp|ico|jks|keystore|p12|pem|aab|apk|aar|jar|pom|dex|so|class|zip|gz|tar|html|js)")
_ABS_PATH = re.compile(rf"(?<![\w./~@+$-])~?(?:/{_SEG})+/?{_LINE}")
_WIN_PATH = re.compile(rf"(?<![\w])(?:[A-Za-z]:|\\\\[\w.$-]+)(?:[\\/]{_SEG})+{_LINE}")
_REL_PATH = re.compile(rf"(?<![\w./~@+$-])(?:{_SEG}/)+{_SEG}{_LINE}")
_FILE = re.compile(rf"(?<![\w./~@+$-])[\w-][\w.-]*\.{_EXT}(?!\.?\w){_LINE}")

_QUOTED = re.compile(r"(?<!\w)(?:'([^']{0,500})'|\"([^\"]{0,500})\")(?!\w)")
_PLACEHOLDER = re.compile(r"<[a-z]+>")

_DOW = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_MON = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_TIME = re.compile("|".join((
    rf"\b{_DOW} {_MON} [0-9]{{1,2}} [0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}} (?:[A-Z]{{2,5}} )?[0-9]{{4}}\b",
    rf"\b{_DOW}, [0-9]{{1,2}} {_MON} [0-9]{{4}} [0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}(?: (?:GMT|UTC|[+-][0-9]{{4}}))?",
    r"\b[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?"
    r"(?: ?(?:Z|UTC|GMT)\b|[+-][0-9]{2}:?[0-9]{2})?)?(?![0-9])",
    r"\b[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]+)?(?: ?(?:Z|UTC|GMT)\b)?",
)))
_VERSION = re.compile(r"(?<![\w.])(?:v?[0-9]+(?:\.[0-9]+){2,}|v[0-9]+\.[0-9]+)"
                      r"(?:[-.+](?i:alpha|beta|rc|snapshot|dev|pre|preview|ea|final|release|ga|m)[.-]?[0-9]*)?"
                      r"(?!\.?\w)")
_DIMENSIONS = re.compile(r"(?<![\w.])[0-9]+x[0-9]+(?![\w.])")
_NUMBER = re.compile(r"(?<!\w)[0-9]+(?:[.,][0-9]+)*")


def _rel_path(m: re.Match) -> str:
    """A relative path only with two '/' or a file extension, and a letter somewhere."""
    text = m.group(0).split(":", 1)[0]
    last = text.rsplit("/", 1)[-1]
    plausible = text.count("/") >= 2 or re.search(r"\.[A-Za-z]\w*$", last) is not None
    return "<path>" if plausible and re.search(r"[A-Za-z]", text) else m.group(0)


def _quoted(m: re.Match) -> str:
    """'…' → '<str>', unless the quote already holds exactly one placeholder."""
    quote = m.group(0)[0]
    content = m.group(1) if quote == "'" else m.group(2)
    return m.group(0) if _PLACEHOLDER.fullmatch(content) else f"{quote}<str>{quote}"


def normalise(message: str) -> str:
    """The message's pattern: its variable parts masked by placeholders, whitespace collapsed."""
    if not isinstance(message, str):
        message = "" if message is None else str(message)
    text = _SPACE.sub(" ", _CONTROL.sub(" ", message[:MAX_CHARS]))
    text = _URL.sub("<url>", text)
    text = _UUID.sub("<uuid>", text)
    text = _HEX.sub("<hex>", text)
    text = _ABS_PATH.sub("<path>", text)
    text = _WIN_PATH.sub("<path>", text)
    text = _REL_PATH.sub(_rel_path, text)
    text = _FILE.sub("<path>", text)
    text = _QUOTED.sub(_quoted, text)
    text = _TIME.sub("<time>", text)
    text = _VERSION.sub("<ver>", text)
    text = _DIMENSIONS.sub("<n>x<n>", text)
    text = _NUMBER.sub("<n>", text)
    return _SPACE.sub(" ", text).strip()


def signature_id(pattern: str) -> str:
    """A stable 16-hex-character id of a pattern (BLAKE2b, 8 bytes), equal on every process."""
    data = pattern.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=8).hexdigest()


@lru_cache(maxsize=_CACHE_SIZE)
def _signature(message: str) -> tuple[str, str]:
    pattern = normalise(message)
    return signature_id(pattern), pattern


def signature(message: str) -> tuple[str, str]:
    """(id, pattern) of a failure message; cached, since the same messages repeat."""
    if not isinstance(message, str):
        message = "" if message is None else str(message)
    message = message[:MAX_CHARS]
    if len(message) > _CACHED_CHARS:
        pattern = normalise(message)
        return signature_id(pattern), pattern
    return _signature(message)


signature.cache_info = _signature.cache_info  # type: ignore[attr-defined]
signature.cache_clear = _signature.cache_clear  # type: ignore[attr-defined]
