"""The template registry file: what it accepts, every mistake named, and Meta's send shape."""

from pathlib import Path

import pytest

from connectors.whatsapp.__main__ import check_templates
from connectors.whatsapp.templates import (
    Category,
    ParametersDoNotFit,
    TemplateRegistry,
    TemplateRegistryError,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "whatsapp_templates.example.yml"

GOOD = """
templates:
  - name: appointment_reminder
    language: en_US
    category: Utility
    body: "Hi {{1}}, see you on {{2}} at {{3}}."
    parameters: [customer_name, date, time]
    buttons:
      - {text: Confirm, payload: /affirm}
      - Cancel
  - name: appointment_reminder
    language: es
    category: utility
    body: "Hola {{customer_name}}, te esperamos el {{date}}."
    parameters: [customer_name, date]
  - name: login_code
    language: en
    category: authentication
    body: "{{1}} is your verification code."
    parameters: [code]
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(TemplateRegistryError) as refused:
        TemplateRegistry.parse(text, source="t.yml")
    assert str(refused.value).startswith("t.yml: ")
    return refused.value.problems


def test_the_example_file_is_valid_and_the_cli_says_so(capsys) -> None:
    registry = TemplateRegistry.load(EXAMPLE)
    assert {t.name for t in registry.all()} == {"appointment_reminder", "follow_up", "spring_offer", "login_code"}
    assert check_templates(str(EXAMPLE)) == 0
    assert "4 template(s), all valid" in capsys.readouterr().err


def test_a_good_file_is_read() -> None:
    registry = TemplateRegistry.parse(GOOD)
    reminder = registry.find("appointment_reminder", "en_US")
    assert reminder is not None and reminder.category is Category.utility
    assert reminder.parameters == ("customer_name", "date", "time")
    assert [(b.text, b.payload) for b in reminder.buttons] == [("Confirm", "/affirm"), ("Cancel", "Cancel")]
    assert registry.find("appointment_reminder") is None  # two languages: which one?
    assert registry.languages_of("appointment_reminder") == ["en_US", "es"]
    assert registry.find("login_code").language == "en"


def test_meta_send_shape_positional_named_and_authentication() -> None:
    registry = TemplateRegistry.parse(GOOD)
    reminder = registry.find("appointment_reminder", "en_US")
    values = reminder.check({"customer_name": "Ana", "date": "Monday 8 December", "time": "10:30"})
    assert reminder.render(values) == "Hi Ana, see you on Monday 8 December at 10:30."
    assert reminder.message("447700900123", values) == {
        "to": "447700900123",
        "type": "template",
        "template": {
            "name": "appointment_reminder",
            "language": {"code": "en_US"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Ana"},
                        {"type": "text", "text": "Monday 8 December"},
                        {"type": "text", "text": "10:30"},
                    ],
                },
                {"type": "button", "sub_type": "quick_reply", "index": "0",
                 "parameters": [{"type": "payload", "payload": "/affirm"}]},
                {"type": "button", "sub_type": "quick_reply", "index": "1",
                 "parameters": [{"type": "payload", "payload": "Cancel"}]},
            ],
        },
    }  # fmt: skip
    spanish = registry.find("appointment_reminder", "es")
    body = spanish.message("44", {"customer_name": "Ana", "date": "lunes"})["template"]["components"][0]
    assert body["parameters"][0] == {"type": "text", "parameter_name": "customer_name", "text": "Ana"}
    assert spanish.render({"customer_name": "Ana", "date": "lunes"}) == "Hola Ana, te esperamos el lunes."
    code = registry.find("login_code").message("44", {"code": "123456"})["template"]["components"]
    assert code[1] == {"type": "button", "sub_type": "url", "index": "0",
                       "parameters": [{"type": "text", "text": "123456"}]}  # fmt: skip


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("{name: Bad-Name, language: en, category: utility, body: hi}", "`name` (required) must be lowercase"),
        ("{name: x, language: english, category: utility, body: hi}", "`language` (required) must be"),
        ("{name: x, language: en, category: promo, body: hi}", "`category` must be one of utility, marketing"),
        ("{name: x, language: en, category: utility}", "`body` is required"),
        ("{name: x, language: en, category: utility, body: hi, colour: red}", "unknown key(s) colour"),
        ("{name: x, language: en, category: utility, body: 'Hi {{1}} {{3}}', parameters: [a, b]}",
         "placeholders must be numbered {{1}}, {{2}}… without gaps (found {{1}}, {{3}})"),
        ("{name: x, language: en, category: utility, body: 'Hi {{1}}', parameters: [a, b]}",
         "1 placeholder(s) but 2 parameter(s)"),
        ("{name: x, language: en, category: utility, body: 'Hi {{1}}'}", "1 placeholder(s) but 0 parameter(s)"),
        ("{name: x, language: en, category: utility, body: 'Hi {{1}} {{who}}', parameters: [a, who]}",
         "mixes numbered"),
        ("{name: x, language: en, category: utility, body: 'Hi {{who}}', parameters: [name]}",
         "must be the same names"),
        ("{name: x, language: en, category: utility, body: 'Hi {{1}} {{2}}', parameters: [a, a]}",
         "declared twice"),
        ("{name: x, language: en, category: utility, body: hi, buttons: [A, A]}", "texts must be unique"),
        ("{name: x, language: en, category: utility, body: hi, buttons: ['" + "x" * 26 + "']}",
         "1 to 25 characters"),
        ("{name: x, language: en, category: utility, body: hi, buttons: [" + ", ".join(f"b{i}" for i in range(11))
         + "]}", "11 quick-reply buttons; WhatsApp allows 10"),
        ("{name: x, language: en, category: authentication, body: 'code {{1}} {{2}}', parameters: [a, b]}",
         "exactly one parameter, the code"),
        ("{name: x, language: en, category: authentication, body: '{{1}}', parameters: [c], buttons: [ok]}",
         "has no quick replies"),
        ("{name: x, language: en, category: utility, body: '" + "x" * 1025 + "'}", "WhatsApp allows 1024"),
    ],
)  # fmt: skip
def test_each_mistake_is_named_with_its_entry(entry: str, says: str) -> None:
    [problem] = [p for p in problems_of(f"templates:\n  - {entry}\n") if says in p]
    assert problem.startswith("templates[1]")


def test_every_mistake_of_a_file_is_listed_at_once() -> None:
    text = """
templates:
  - {name: ok_one, language: en, category: utility, body: fine}
  - {name: ok_one, language: en, category: marketing, body: again}
  - {name: broken, language: en, category: nope, body: 'x {{2}}'}
  - just a string
"""
    problems = problems_of(text)
    assert any(p.startswith("templates[2] (ok_one, en): ok_one in en is already entry 1") for p in problems)
    assert any(p.startswith("templates[3] (broken, en): `category`") for p in problems)
    assert any(p.startswith("templates[3] (broken, en): `body` placeholders") for p in problems)
    assert any(p.startswith("templates[4]: each template must be a mapping") for p in problems)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("templates: [\n", "not valid YAML"),
        ("- a\n- b\n", "one key, `templates`"),
        ("templates: {a: 1}\n", "`templates` must be a list"),
    ],
)
def test_a_file_that_is_not_a_registry(text: str, says: str) -> None:
    assert says in problems_of(text)[0]


def test_a_missing_file_is_named(tmp_path: Path, capsys) -> None:
    with pytest.raises(TemplateRegistryError, match="does not exist"):
        TemplateRegistry.load(tmp_path / "nope.yml")
    broken = tmp_path / "broken.yml"
    broken.write_text("templates:\n  - {name: x, language: en, category: promo, body: hi}\n")
    assert check_templates(str(broken)) == 1
    assert "category" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"customer_name": "Ana", "date": "Mon"}, "parameter 'time' is missing or empty"),
        ({"customer_name": "Ana", "date": "Mon", "time": "  "}, "parameter 'time' is missing or empty"),
        ({"customer_name": "Ana", "date": "Mon", "time": "10", "room": "2"}, "unknown parameter(s) room"),
        ({"customer_name": "Ana\nBell", "date": "Mon", "time": "10"}, "new line, a tab or more than four spaces"),
        ({"customer_name": "Ana      Bell", "date": "Mon", "time": "10"}, "more than four spaces"),
        ({"customer_name": "x" * 1025, "date": "Mon", "time": "10"}, "over 1024 characters"),
        ({"customer_name": "x" * 1000, "date": "Mon", "time": "10"}, "would be over 1024 characters"),
    ],
)
def test_parameter_values_that_meta_would_refuse(values: dict, says: str) -> None:
    reminder = TemplateRegistry.parse(GOOD).find("appointment_reminder", "en_US")
    with pytest.raises(ParametersDoNotFit) as refused:
        reminder.check(values)
    assert any(says in p for p in refused.value.problems)
