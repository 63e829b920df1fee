"""Find and treat personal data in text, without a model and without the network.

Every type has one detector: a precompiled regular expression, a validation step (checksum,
ranges, known prefixes) and, where the pattern alone is ambiguous (a bare 10-digit number, a date,
a short code), context words that must appear nearby. Confidence rises with each check passed.

:func:`scan` returns non-overlapping :class:`~garrison.pipeline.PiiFinding` sorted by start;
:func:`apply_actions` keeps, masks, pseudonymizes (keyed HMAC, stable across a corpus) or asks
for the whole item to be dropped.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from functools import lru_cache

from garrison.pipeline._stage import PiiFinding

__all__ = [
    "ACTIONS",
    "IBAN_LENGTHS",
    "PII_TYPES",
    "apply_actions",
    "iban_valid",
    "luhn_valid",
    "normalize_value",
    "pseudonym",
    "scan",
]

#: Every type a finding can have (CLI.md), in a stable order.
PII_TYPES: tuple[str, ...] = (
    "email",
    "phone",
    "ssn",
    "credit_card",
    "iban",
    "ip_address",
    "mac_address",
    "url_credentials",
    "date_of_birth",
    "edipi",
    "passport",
    "mgrs",
    "lat_lon",
    "person",
)

#: What may be done with a finding.
ACTIONS: tuple[str, ...] = ("keep", "mask", "pseudonymize", "drop")

_Detector = Callable[[str], Iterator[PiiFinding]]


def _finding(
    type_: str, m: re.Match[str], confidence: float, detector: str, group: int = 0
) -> PiiFinding:
    return PiiFinding(
        type=type_,
        start=m.start(group),
        end=m.end(group),
        text=m.group(group),
        confidence=round(min(confidence, 1.0), 3),
        detector=detector,
    )


def _has_context(text: str, start: int, pattern: re.Pattern[str], window: int = 40) -> bool:
    """Whether ``pattern`` occurs in the ``window`` characters before ``start``."""
    return pattern.search(text, max(0, start - window), start) is not None


# --- email -------------------------------------------------------------------------------------

# The look-behind refuses a local part glued to "://" (URL user info such as ssh://git@host is
# not a mailbox) or to other address characters; the look-ahead lets a sentence's final dot go.
_EMAIL = re.compile(
    r"(?<![\w.+%/-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]*[A-Za-z0-9_%+-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}"
    r"(?![\w@-]|\.[A-Za-z0-9])"
)


def _email(text: str) -> Iterator[PiiFinding]:
    for m in _EMAIL.finditer(text):
        if ".." in m.group():
            continue
        yield _finding("email", m, 0.9, "regex:email")


# --- phone -------------------------------------------------------------------------------------

# Boundaries refuse digits, dashes and dots around the number, so pieces of NSNs (1005-01-...),
# ISBNs, dates and version strings are not read as phones.
_NOT_BEFORE = r"(?<![\w.+/-])"
_NOT_AFTER = r"(?![\w/-]|[.:]\d)"
_NANP = re.compile(
    _NOT_BEFORE + r"(?:\+?1[ .-]?)?"
    r"(?:\([2-9]\d{2}\)[ .-]?[2-9]\d{2}[ .-]\d{4}|[2-9]\d{2}([ .-])\d{3}\1\d{4})" + _NOT_AFTER
)
_INTL = re.compile(r"(?<![\w+])\+[2-9]\d{0,2}(?:[ .-]\(?\d{1,5}\)?){2,6}" + _NOT_AFTER)
_LOCAL = re.compile(_NOT_BEFORE + r"[2-9]\d{2}-\d{4}" + _NOT_AFTER)
_PHONE_CONTEXT = re.compile(
    r"\b(?:call|phone|tel|telephone|dial|fax|cell|mobile|commercial|dsn|contact|reach)\b",
    re.IGNORECASE,
)


def _phone(text: str) -> Iterator[PiiFinding]:
    for m in _NANP.finditer(text):
        conf = 0.8 + (0.1 if _has_context(text, m.start(), _PHONE_CONTEXT) else 0.0)
        yield _finding("phone", m, conf, "regex:phone+nanp")
    for m in _INTL.finditer(text):
        digits = sum(c.isdigit() for c in m.group())
        if 8 <= digits <= 15:
            conf = 0.75 + (0.1 if _has_context(text, m.start(), _PHONE_CONTEXT) else 0.0)
            yield _finding("phone", m, conf, "regex:phone+intl")
    for m in _LOCAL.finditer(text):
        # A bare NNN-NNNN is a phone only in the fictional 555 exchange or next to phone words;
        # otherwise it is as likely a part, room or case number.
        if m.group().startswith("555") or _has_context(text, m.start(), _PHONE_CONTEXT, 25):
            yield _finding("phone", m, 0.6, "regex:phone+local")


# --- ssn ---------------------------------------------------------------------------------------

_SSN = re.compile(r"(?<![\w-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w-])")
_SSN_BARE = re.compile(r"(?<![\w-])\d{9}(?![\w-])")
_SSN_CONTEXT = re.compile(r"\b(?:SSN|SSAN|social\s+security(?:\s+(?:number|no\.?|#))?)\b", re.I)


def _ssn_valid(digits: str) -> bool:
    """SSA rules: area not 000, 666 or 9xx; group not 00; serial not 0000."""
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _ssn(text: str) -> Iterator[PiiFinding]:
    for m in _SSN.finditer(text):
        if not _ssn_valid(m.group(1) + m.group(3) + m.group(4)):
            continue
        context = _has_context(text, m.start(), _SSN_CONTEXT)
        # A space-separated triple is a weaker signal than the canonical dashes.
        conf = (0.85 if m.group(2) == "-" else 0.6) + (0.1 if context else 0.0)
        yield _finding("ssn", m, conf, "regex:ssn+validity")
    for m in _SSN_BARE.finditer(text):
        if _ssn_valid(m.group()) and _has_context(text, m.start(), _SSN_CONTEXT, 30):
            yield _finding("ssn", m, 0.8, "regex:ssn+validity+context")


# --- credit_card -------------------------------------------------------------------------------

_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check every payment card number passes."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _card_brand_ok(d: str) -> bool:
    """Known issuer prefixes with the lengths they issue (random digit runs rarely fit both)."""
    n = len(d)
    p2, p3, p4 = int(d[:2]), int(d[:3]), int(d[:4])
    return (
        (d[0] == "4" and n in (13, 16, 19))  # Visa
        or ((51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16)  # Mastercard
        or (p2 in (34, 37) and n == 15)  # American Express
        or ((d.startswith("6011") or p2 == 65 or 644 <= p3 <= 649) and 16 <= n <= 19)  # Discover
        or (3528 <= p4 <= 3589 and 16 <= n <= 19)  # JCB
        or ((300 <= p3 <= 305 or p2 in (36, 38, 39)) and 14 <= n <= 19)  # Diners Club
        or (p2 == 62 and 16 <= n <= 19)  # UnionPay
    )


def _credit_card(text: str) -> Iterator[PiiFinding]:
    for m in _CARD.finditer(text):
        raw = m.group()
        if " " in raw and "-" in raw:
            continue  # mixed separators: not how card numbers are written
        digits = raw.replace(" ", "").replace("-", "")
        if _card_brand_ok(digits) and luhn_valid(digits):
            yield _finding("credit_card", m, 0.95, "regex:credit_card+luhn+iin")


# --- iban --------------------------------------------------------------------------------------

#: IBAN length per country (ISO 13616 registry), for the countries we expect to meet.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "EE": 20, "EG": 29, "ES": 24,
    "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "HR": 21,
    "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MT": 31, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24,
    "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29,
    "XK": 20,
}  # fmt: skip
_IBAN_START = re.compile(r"(?<![\w-])([A-Z]{2})(\d{2}) ?[A-Z0-9]")


def iban_valid(compact: str) -> bool:
    """ISO 7064 mod-97 check: move the first four characters to the end, read as base 36."""
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _iban(text: str) -> Iterator[PiiFinding]:
    for m in _IBAN_START.finditer(text):
        length = IBAN_LENGTHS.get(m.group(1))
        if length is None:
            continue
        # Walk exactly the country's length of characters (single spaces allowed between them)
        # rather than a greedy regex, so a following capitalised word is never swallowed.
        chars: list[str] = []
        i = m.start()
        while i < len(text) and len(chars) < length:
            c = text[i]
            if c.isascii() and (c.isupper() or c.isdigit()):
                chars.append(c)
            elif not (c == " " and chars and i + 1 < len(text) and text[i + 1] != " "):
                break
            i += 1
        if len(chars) != length or (i < len(text) and (text[i].isalnum() or text[i] == "-")):
            continue
        if iban_valid("".join(chars)):
            yield PiiFinding("iban", m.start(), i, text[m.start() : i], 0.95, "regex:iban+mod97")


# --- ip_address --------------------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# Exactly four octets: "1.2.3" is a version, and a fifth ".N" (OIDs) rules the match out.
_IPV4 = re.compile(r"(?<![\w.])" + _OCTET + r"(?:\." + _OCTET + r"){3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?=[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:)[0-9A-Fa-f:]{2,39}(?![\w:])")


def _ip_address(text: str) -> Iterator[PiiFinding]:
    for m in _IPV4.finditer(text):
        yield _finding("ip_address", m, 0.85, "regex:ip_address+octets")
    for m in _IPV6.finditer(text):
        candidate = m.group()
        # Without "::" only the full eight groups are an address; "12:30:45" is a time.
        if "::" not in candidate and candidate.count(":") != 7:
            continue
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        yield _finding("ip_address", m, 0.85, "regex:ip_address+ipv6")


# --- mac_address -------------------------------------------------------------------------------

_MAC = re.compile(
    r"(?<![\w:.-])[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}(?![\w:-]|\.\d)"
)
_MAC_CISCO = re.compile(r"(?<![\w.])[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}(?![\w]|\.\w)")


def _mac_address(text: str) -> Iterator[PiiFinding]:
    for m in _MAC.finditer(text):
        yield _finding("mac_address", m, 0.85, "regex:mac_address")
    for m in _MAC_CISCO.finditer(text):
        yield _finding("mac_address", m, 0.85, "regex:mac_address+cisco")


# --- url_credentials ---------------------------------------------------------------------------

# The finding is scheme://user:password@host[:port]; the path carries no secret.
_URL_CRED = re.compile(
    r"(?<![\w+.-])[A-Za-z][A-Za-z0-9+.-]{1,15}://[^\s:/@]+:[^\s/@]+@"
    r"([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::\d{1,5})?(?![\w-])"
)


def _url_credentials(text: str) -> Iterator[PiiFinding]:
    for m in _URL_CRED.finditer(text):
        # A host without a dot is a template placeholder ("user:password@host"), not a server.
        if "." not in m.group(1):
            continue
        yield _finding("url_credentials", m, 0.97, "regex:url_credentials")


# --- date_of_birth -----------------------------------------------------------------------------

_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_DATE = re.compile(
    r"(?<![\w/.-])(?:"
    r"(?P<iy>(?:19|20)\d{2})-(?P<im>\d{1,2})-(?P<id>\d{1,2})"
    r"|(?P<na>\d{1,2})(?P<sep>[/.-])(?P<nb>\d{1,2})(?P=sep)(?P<ny>(?:19|20)\d{2})"
    r"|(?P<dd>\d{1,2})\s+(?P<dm>" + _MONTHS + r")\s+(?P<dy>(?:19|20)\d{2})"
    r"|(?P<mm>" + _MONTHS + r")\s+(?P<md>\d{1,2}),?\s+(?P<my>(?:19|20)\d{2})"
    r")(?![\w/-]|\.\d)"
)
_DOB_CONTEXT = re.compile(
    r"(?:\bD\.O\.B\.?|\bDOB\b|\bdate\s+of\s+birth\b|\bbirth\s*date\b|\bborn\b(?!-))",
    re.IGNORECASE,
)


def _date_plausible(m: re.Match[str]) -> bool:
    """Month and day in range; ``na/nb`` may be month/day (US) or day/month (Europe)."""
    if m.group("iy"):
        return 1 <= int(m.group("im")) <= 12 and 1 <= int(m.group("id")) <= 31
    if m.group("na"):
        a, b = int(m.group("na")), int(m.group("nb"))
        return (1 <= a <= 12 and 1 <= b <= 31) or (1 <= b <= 12 and 1 <= a <= 31)
    day = m.group("dd") or m.group("md")
    return 1 <= int(day) <= 31


def _date_of_birth(text: str) -> Iterator[PiiFinding]:
    dates = [m for m in _DATE.finditer(text) if _date_plausible(m)]
    previous_end = 0
    for m in dates:
        # The context word must sit before this date and after any earlier date, so that
        # "born 1 May 1980 ... and enlisted 2 June 1999" marks only the first.
        lo = max(previous_end, m.start() - 45)
        previous_end = m.end()
        if _DOB_CONTEXT.search(text, lo, m.start()):
            yield _finding("date_of_birth", m, 0.85, "regex:date_of_birth+context")


# --- edipi -------------------------------------------------------------------------------------

_EDIPI = re.compile(r"(?<![\w-])\d{10}(?![\w-])")
_EDIPI_CONTEXT = re.compile(r"\b(?:EDIPI|DoD\s?ID|DODID|CAC)\b", re.IGNORECASE)


def _edipi(text: str) -> Iterator[PiiFinding]:
    for m in _EDIPI.finditer(text):
        # Ten digits alone are an invoice or a timestamp as often as an EDIPI.
        if _has_context(text, m.start(), _EDIPI_CONTEXT, 30):
            yield _finding("edipi", m, 0.9, "regex:edipi+context")


# --- passport ----------------------------------------------------------------------------------

_PASSPORT_CONTEXT = re.compile(r"\bpassport\b", re.IGNORECASE)
# 6-9 characters, at least six digits, at most three letters: the shapes passports use
# ("X12345678", "AB123456", "912345678", "L898902C3").
_PASSPORT = re.compile(
    r"(?<![\w-])(?=(?:[A-Z]*\d){6})(?=[0-9]*(?:[A-Z][0-9]*){0,3}\b)[A-Z0-9]{6,9}\b"
)


def _passport(text: str) -> Iterator[PiiFinding]:
    for ctx in _PASSPORT_CONTEXT.finditer(text):
        # Only the first code within a short distance after the word: later codes belong to
        # something else ("passport X123... and order 55512345").
        m = _PASSPORT.search(text, ctx.end(), ctx.end() + 30)
        if m is not None and not text[ctx.end() : m.start()].count(","):
            yield _finding("passport", m, 0.8, "regex:passport+context")


# --- mgrs --------------------------------------------------------------------------------------

_MGRS = re.compile(
    r"(?<![\w-])(?:60|[1-5]\d|[1-9])[C-HJ-NP-X] ?[A-HJ-NP-Z][A-HJ-NP-V] ?"
    r"(?:(?P<e>\d{1,5}) (?P<n>\d{1,5})|(?P<run>\d{2,10}))(?![\w-]|[.:]\d)"
)
_MGRS_CONTEXT = re.compile(r"\b(?:grid|MGRS|located|location|checkpoint|LZ|OP)\b", re.I)


def _mgrs(text: str) -> Iterator[PiiFinding]:
    for m in _MGRS.finditer(text):
        # Easting and northing always have the same precision.
        if m.group("run") is not None:
            ok = len(m.group("run")) % 2 == 0
        else:
            ok = len(m.group("e")) == len(m.group("n"))
        if ok:
            context = _has_context(text, m.start(), _MGRS_CONTEXT)
            yield _finding("mgrs", m, 0.8 + (0.1 if context else 0.0), "regex:mgrs+format")


# --- lat_lon -----------------------------------------------------------------------------------

# Three or more decimals: "12.50, 13.75" is prices, real coordinates carry precision.
_LATLON = re.compile(r"(?<![\w.-])(-?\d{1,2}\.\d{3,}),\s?(-?\d{1,3}\.\d{3,})(?![\w-]|\.\d)")
_DMS = re.compile(
    r"(?<![\w.])(\d{1,2})°\s?(\d{1,2})['′]\s?(\d{1,2}(?:\.\d+)?)[\"″]?\s?([NS])[\s,]+"
    r"(\d{1,3})°\s?(\d{1,2})['′]\s?(\d{1,2}(?:\.\d+)?)[\"″]?\s?([EW])\b"
)
_LATLON_CONTEXT = re.compile(
    r"\b(?:coord\w*|lat\w*|lon\w*|location|located|position|near|at|grid)\b", re.I
)


def _lat_lon(text: str) -> Iterator[PiiFinding]:
    for m in _LATLON.finditer(text):
        lat, lon = float(m.group(1)), float(m.group(2))
        if abs(lat) <= 90 and abs(lon) <= 180:
            context = _has_context(text, m.start(), _LATLON_CONTEXT, 25)
            yield _finding("lat_lon", m, 0.75 + (0.15 if context else 0.0), "regex:lat_lon+range")
    for m in _DMS.finditer(text):
        lat_d, lat_m, lat_s = int(m.group(1)), int(m.group(2)), float(m.group(3))
        lon_d, lon_m, lon_s = int(m.group(5)), int(m.group(6)), float(m.group(7))
        lat = lat_d + lat_m / 60 + lat_s / 3600
        lon = lon_d + lon_m / 60 + lon_s / 3600
        if max(lat_m, lon_m) < 60 and max(lat_s, lon_s) < 60 and lat <= 90 and lon <= 180:
            yield _finding("lat_lon", m, 0.9, "regex:lat_lon+dms")


# --- person ------------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _gazetteer_pattern(names: tuple[str, ...]) -> re.Pattern[str] | None:
    # Longest first, so "Mary Ann Smith" wins over "Mary Ann" at the same position.
    alternatives = sorted({n.strip() for n in names if n.strip()}, key=len, reverse=True)
    if not alternatives:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, alternatives)) + r")(?!\w)")


def _person(text: str, gazetteer: Collection[str]) -> Iterator[PiiFinding]:
    pattern = _gazetteer_pattern(tuple(sorted(gazetteer)))
    if pattern is None:
        return
    for m in pattern.finditer(text):
        yield _finding("person", m, 0.7, "gazetteer:person")


_DETECTORS: dict[str, _Detector] = {
    "email": _email,
    "phone": _phone,
    "ssn": _ssn,
    "credit_card": _credit_card,
    "iban": _iban,
    "ip_address": _ip_address,
    "mac_address": _mac_address,
    "url_credentials": _url_credentials,
    "date_of_birth": _date_of_birth,
    "edipi": _edipi,
    "passport": _passport,
    "mgrs": _mgrs,
    "lat_lon": _lat_lon,
}


def _resolve_overlaps(candidates: list[PiiFinding]) -> list[PiiFinding]:
    """Keep the most confident (then longest) of overlapping findings; sort by start."""
    kept: list[PiiFinding] = []
    for f in sorted(candidates, key=lambda f: (-f.confidence, -(f.end - f.start), f.start)):
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: (f.start, f.end))


def scan(
    text: str, *, types: Collection[str] | None = None, gazetteer: Collection[str] = ()
) -> list[PiiFinding]:
    """Find personal data in ``text``.

    ``types`` limits the detectors (default: every type; ``person`` only finds names listed in
    ``gazetteer``, matched case-sensitively as whole words). Findings do not overlap: where two
    detectors claim the same characters the more confident, then the longer, wins. Unknown type
    names raise :class:`ValueError`.
    """
    wanted = PII_TYPES if types is None else tuple(types)
    unknown = [t for t in wanted if t not in PII_TYPES]
    if unknown:
        raise ValueError(f"Unknown PII type {unknown[0]!r}; known types: {', '.join(PII_TYPES)}.")
    candidates: list[PiiFinding] = []
    for type_ in wanted:
        if type_ == "person":
            candidates.extend(_person(text, gazetteer))
        else:
            candidates.extend(_DETECTORS[type_](text))
    return _resolve_overlaps(candidates)


# --- actions -----------------------------------------------------------------------------------

_NUMERIC_TYPES = frozenset({"phone", "ssn", "credit_card", "edipi"})
_COMPACT_TYPES = frozenset({"iban", "mac_address", "passport", "mgrs"})


def normalize_value(type_: str, value: str) -> str:
    """The form two spellings of one value share, so they pseudonymize alike.

    Emails compare case-insensitively; numbers by their digits (``(703) 555-0142`` is
    ``703-555-0142``); codes by their upper-case letters and digits.
    """
    if type_ in ("email", "url_credentials"):
        return value.strip().lower()
    if type_ in _NUMERIC_TYPES:
        digits = "".join(c for c in value if c.isdigit())
        # "+1 703..." and "703..." are one NANP number.
        return digits[1:] if type_ == "phone" and len(digits) == 11 and digits[0] == "1" else digits
    if type_ in _COMPACT_TYPES:
        return "".join(c for c in value if c.isalnum()).upper()
    if type_ == "ip_address":
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            return value.strip().lower()
    return " ".join(value.split())


def pseudonym(type_: str, value: str, key: bytes) -> str:
    """A keyed token for ``value``: ``[EMAIL:3f9a1c2b]``; same value, type and key, same token."""
    message = (type_ + "\0" + normalize_value(type_, value)).encode()
    digest = hmac.new(key, message, hashlib.sha256).hexdigest()
    return f"[{type_.upper()}:{digest[:8]}]"


def apply_actions(
    text: str,
    findings: list[PiiFinding],
    actions: Mapping[str, str],
    key: bytes,
    *,
    default: str = "mask",
) -> tuple[str, bool]:
    """Rewrite ``text`` according to the action for each finding's type.

    ``keep`` leaves it, ``mask`` writes ``[TYPE]``, ``pseudonymize`` writes a keyed token
    (:func:`pseudonym`), ``drop`` means the whole item must go: the text comes back unchanged
    with ``True``. Types missing from ``actions`` get ``default``. Spans must refer to ``text``;
    overlapping findings after the first (right to left) are skipped.
    """
    for action in (*actions.values(), default):
        if action not in ACTIONS:
            raise ValueError(f"Unknown PII action {action!r}; use one of {', '.join(ACTIONS)}.")
    if any(actions.get(f.type, default) == "drop" for f in findings):
        return text, True
    out = text
    # Right to left: replacing a later span never shifts an earlier one.
    limit = len(text)
    for f in sorted(findings, key=lambda f: f.start, reverse=True):
        if f.end > limit:
            continue
        action = actions.get(f.type, default)
        if action == "mask":
            out = out[: f.start] + f"[{f.type.upper()}]" + out[f.end :]
        elif action == "pseudonymize":
            out = out[: f.start] + pseudonym(f.type, f.text, key) + out[f.end :]
        limit = f.start
    return out, False
