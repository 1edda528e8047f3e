"""Consent keywords (a whole message, any case, trailing punctuation) and what an opt-out stops."""

import pytest

from connectors.whatsapp.consent import Consent, Keywords


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("STOP", "opt_out"),
        (" stop ", "opt_out"),
        ("Stop.", "opt_out"),
        ("unsubscribe!", "opt_out"),
        ("baja", "opt_out"),  # configured
        ("Arrêt !", "opt_out"),  # configured, with an accent
        ("start", "opt_in"),
        ("Volver", "opt_in"),  # configured
        ("please stop sending me reminders", None),
        ("stop it", None),
        ("STOPS", None),
        ("", None),
        (None, None),
    ],
)
def test_a_keyword_is_the_whole_message(text: str | None, action: str | None) -> None:
    keywords = Keywords.of(["BAJA", " Arrêt", ""], ["volver"])
    assert keywords.action_of(text) == action


def test_a_keyword_cannot_both_opt_out_and_opt_in() -> None:
    with pytest.raises(ValueError, match="START cannot both opt out and opt in"):
        Keywords.of(["start"], [])


@pytest.mark.parametrize(
    ("opted_out", "category", "covers_utility", "blocked"),
    [
        (None, "marketing", True, False),
        ("marketing", "marketing", False, True),
        ("marketing", "utility", True, False),  # Meta's stop is about marketing only
        ("all", "marketing", False, True),
        ("all", "utility", True, True),
        ("all", "utility", False, False),
        ("all", "authentication", True, True),
    ],
)
def test_what_an_opt_out_stops(opted_out: str | None, category: str, covers_utility: bool, blocked: bool) -> None:
    assert Consent(opted_out=opted_out).blocks(category, covers_utility=covers_utility) is blocked
