"""Normalise what customers write about dates and times, in the business's time zone.

"tomorrow", "next Friday at 3pm", "25/12", "sat", "half past 2" -> a `date` and/or a
`time`. Dates go through dateparser (day-first, future preferred); times through a
small grammar that also covers WhatsApp shorthand ("3", "3.30", "noon").
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Optional, Tuple
from zoneinfo import ZoneInfo

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_DAY_ALIASES = {
    "mon": "monday", "tue": "tuesday", "tues": "tuesday", "wed": "wednesday", "weds": "wednesday",
    "thu": "thursday", "thur": "thursday", "thurs": "thursday", "fri": "friday", "sat": "saturday",
    "sun": "sunday",
}
_SHORTHAND = {
    r"\b(tmrw|tmr|tmrow|tomorow|tommorow|tommorrow|tomorrw|2moro|2morrow|tomoz)\b": "tomorrow",
    r"\b(tday|2day|tdy)\b": "today",
    r"\bday after tomorrow\b": "in 2 days",
}
_TIME_RE = re.compile(
    r"\b(?:at\s+|@\s*)?(?P<h>[01]?\d|2[0-3])(?:[:.](?P<m>[0-5]\d))?\s*(?P<ap>a\.?m\.?|p\.?m\.?)?(?!\s*(?:st|nd|rd|th)\b)(?![\d/:.-])",
    re.IGNORECASE,
)
_WORD_TIMES = {"noon": time(12, 0), "midday": time(12, 0), "lunchtime": time(12, 30)}
_HALF_PAST = re.compile(r"\b(half|quarter)\s+(past|to)\s+(\d{1,2})\b", re.IGNORECASE)
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_NUMERIC_DATE = re.compile(r"\b(\d{1,2})[/.-](\d{1,2})(?:[/.-](\d{2,4}))?\b")
_DAY_OF_MONTH = re.compile(r"\b(?:the\s+)?(\d{1,2})(?:st|nd|rd|th)\b(?!\s+of\s+\w)(?!\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec))", re.IGNORECASE)

_dateparser = None


def _parser():
    global _dateparser
    if _dateparser is None:  # dateparser takes ~1 s to import its language data: do it on first use
        import dateparser
        import dateparser.search  # noqa: F401  (search_dates)

        _dateparser = dateparser
    return _dateparser


def _clean(text: str) -> str:
    text = text.lower().strip()
    for pattern, repl in _SHORTHAND.items():
        text = re.sub(pattern, repl, text)
    return text


def parse_time(text: Optional[str]) -> Optional[time]:
    """A clock time in `text`, or None. Bare hours 1-7 are read as afternoon (salon hours)."""
    if not text:
        return None
    text = _clean(str(text))
    for word, value in _WORD_TIMES.items():
        if re.search(rf"\b{word}\b", text):
            return value
    half = _HALF_PAST.search(text)
    if half:
        hour = int(half.group(3)) % 24
        minutes = 30 if half.group(1) == "half" else 15
        if half.group(2) == "to":
            hour, minutes = (hour - 1) % 24, 60 - minutes
        if 1 <= hour <= 7:
            hour += 12
        return time(hour, minutes)
    text_wo_dates = _NUMERIC_DATE.sub(" ", _ISO_DATE.sub(" ", text))
    for match in _TIME_RE.finditer(text_wo_dates):
        hour, minute, ampm = int(match.group("h")), int(match.group("m") or 0), (match.group("ap") or "")
        explicit = bool(ampm or match.group("m") or match.group(0).lstrip().lower().startswith(("at", "@")))
        if not explicit and not re.fullmatch(r"\s*(?:at\s+)?\d{1,2}\s*(?:o'?\s*clock)?\s*", text_wo_dates):
            # a lone number inside a sentence ("2 shampoos") is not a time
            if not re.search(rf"\b{hour}\s*o'?\s*clock\b", text_wo_dates):
                continue
        ampm = ampm.replace(".", "")
        if ampm == "pm" and hour < 12:
            hour += 12
        elif ampm == "am" and hour == 12:
            hour = 0
        elif not ampm and 1 <= hour <= 7:
            hour += 12
        return time(hour, minute)
    return None


def _strip_time(text: str) -> str:
    text = _HALF_PAST.sub(" ", text)
    text = re.sub(r"\b(?:at\s+|@\s*)?([01]?\d|2[0-3])(?:[:.][0-5]\d)?\s*(?:a\.?m\.?|p\.?m\.?)(?![\w])", " ", text)
    text = re.sub(r"\b(?:at\s+|@\s*)([01]?\d|2[0-3])(?:[:.][0-5]\d)?\b", " ", text)
    text = re.sub(r"\b([01]?\d|2[0-3]):[0-5]\d\b", " ", text)
    for word in _WORD_TIMES:
        text = re.sub(rf"\b(?:at\s+)?{word}\b", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def parse_date(text: Optional[str], *, tz: ZoneInfo, today: Optional[date] = None) -> Optional[date]:
    """A calendar date in `text` (future preferred), or None."""
    if not text:
        return None
    today = today or datetime.now(tz).date()
    text = _strip_time(_clean(str(text)))
    if not text:
        return None
    iso = _ISO_DATE.search(text)
    if iso:
        try:
            return date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
        except ValueError:
            return None
    if re.search(r"\btoday\b|\btonight\b|\bthis (?:evening|afternoon|morning)\b", text):
        return today
    if re.search(r"\btomorrow\b", text):
        return today + timedelta(days=1)
    words = re.findall(r"[a-z]+", text)
    for i, word in enumerate(words):
        day_name = _DAY_ALIASES.get(word, word)
        if day_name in WEEKDAYS:
            ahead = (WEEKDAYS.index(day_name) - today.weekday()) % 7
            if ahead == 0 and i > 0 and words[i - 1] == "next":
                ahead = 7
            elif ahead == 0 and not (i > 0 and words[i - 1] in ("this", "today")):
                ahead = 7 if (i > 0 and words[i - 1] == "next") else 0
            return today + timedelta(days=ahead)
    numeric = _NUMERIC_DATE.search(text)
    if numeric:
        day, month, year = int(numeric.group(1)), int(numeric.group(2)), numeric.group(3)
        try:
            if year:
                full = int(year) + (2000 if len(year) == 2 else 0)
                return date(full, month, day)
            candidate = date(today.year, month, day)
            return candidate if candidate >= today else date(today.year + 1, month, day)
        except ValueError:
            return None
    dom = _DAY_OF_MONTH.search(text)
    if dom and not re.search(r"[a-z]{3,}\s+\d|\d\s*(?:st|nd|rd|th)?\s+(?:of\s+)?[a-z]{3,}", text.replace(dom.group(0), "", 1)):
        day = int(dom.group(1))
        month, year = today.month, today.year
        for _ in range(3):
            try:
                candidate = date(year, month, day)
                if candidate >= today:
                    return candidate
            except ValueError:
                pass
            month, year = (1, year + 1) if month == 12 else (month + 1, year)
        return None
    settings = {
        "TIMEZONE": str(tz), "RETURN_AS_TIMEZONE_AWARE": False, "PREFER_DATES_FROM": "future",
        "DATE_ORDER": "DMY", "RELATIVE_BASE": datetime.combine(today, time(12, 0)),
        "PREFER_DAY_OF_MONTH": "first",
    }
    text = re.sub(r"^(?:on|for|at|by|this)\s+", "", text)
    if not re.search(r"[a-z]{3,}", text):  # a bare number is not a date
        return None
    parsed = _parser().parse(text, languages=["en"], settings=settings)
    if parsed is None:
        found = _parser().search.search_dates(text, languages=["en"], settings=settings) or []
        found = [(words, when) for words, when in found if re.search(r"[a-z]{3,}", words)]
        parsed = found[0][1] if found else None
    if parsed is None:
        return None
    result = parsed.date()
    if result < today and not re.search(r"\b\d{4}\b", text):
        try:
            result = result.replace(year=result.year + 1)
        except ValueError:
            return None
    return result


def parse_when(text: Optional[str], *, tz: ZoneInfo, today: Optional[date] = None) -> Tuple[Optional[date], Optional[time]]:
    """Both parts of "next Friday at 3pm"."""
    return parse_date(text, tz=tz, today=today), parse_time(text)
