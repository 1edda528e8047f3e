"""The message template registry: the templates a business had approved in WhatsApp Manager.

Outside the 24-hour customer service window WhatsApp delivers only approved templates.
The operator lists them in a YAML file (`WHATSAPP_TEMPLATES_FILE`); the API reads and
checks it at start-up and refuses to start on a mistake, naming every one (file,
entry, template and what is wrong), so a typo is found at deploy time and not when a
CSR needs the template. The file format is in docs/whatsapp.md; an example is
docs/whatsapp_templates.example.yml.

A template is sent in Meta's documented shape (`type: template`, the name, the
language code, a `body` component with one text parameter per placeholder, a
`button` component per quick reply carrying its payload); `render` gives the text
stored in the conversation, so the transcript shows what the customer got.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MAX_BODY = 1024
MAX_QUICK_REPLIES = 10
MAX_BUTTON_TEXT = 25
MAX_PAYLOAD = 256
MAX_PARAMETER = 1024

NAME = re.compile(r"^[a-z0-9_]{1,512}$")
LANGUAGE = re.compile(r"^[a-z]{2,3}(_[A-Z][A-Za-z]{1,3})?$")
PARAMETER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
ENTRY_KEYS = {"name", "language", "category", "body", "parameters", "buttons"}
# Meta refuses a text parameter with a new line, a tab or more than four spaces in a row.
BAD_PARAMETER = re.compile(r"[\n\r\t]| {5,}")


class Category(enum.StrEnum):
    utility = "utility"
    marketing = "marketing"
    authentication = "authentication"


class TemplateRegistryError(ValueError):
    """The template file is missing or wrong; `problems` names each mistake."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        listed = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) in the WhatsApp template registry:\n{listed}")


class ParametersDoNotFit(ValueError):
    """The values given for a template's parameters do not fit it; `problems` says which."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True, slots=True)
class QuickReply:
    text: str  # what the button shows
    payload: str  # what comes back when it is tapped (the bot gets it, e.g. /affirm)


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    language: str
    category: Category
    body: str
    parameters: tuple[str, ...]
    buttons: tuple[QuickReply, ...] = ()
    named: bool = False  # {{customer_name}} placeholders (Meta's named parameters) instead of {{1}}, {{2}}

    @property
    def key(self) -> tuple[str, str]:
        return self.name, self.language

    def check(self, values: dict[str, Any]) -> dict[str, str]:
        """The parameter values, checked: each declared one given, no other, text Meta accepts."""
        problems = []
        unknown = sorted(set(values) - set(self.parameters))
        if unknown:
            problems.append(f"unknown parameter(s) {', '.join(unknown)} (the template takes {self._takes()})")
        checked: dict[str, str] = {}
        for name in self.parameters:
            value = values.get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                problems.append(f"parameter {name!r} is missing or empty")
            elif not isinstance(value, str | int | float) or isinstance(value, bool):
                problems.append(f"parameter {name!r} must be text")
            else:
                text = str(value).strip()
                if BAD_PARAMETER.search(text):
                    problems.append(
                        f"parameter {name!r} may not hold a new line, a tab or more than four spaces in a row"
                    )
                elif len(text) > MAX_PARAMETER:
                    problems.append(f"parameter {name!r} is over {MAX_PARAMETER} characters")
                checked[name] = text
        if not problems and len(self.render(checked)) > MAX_BODY:
            problems.append(f"the message would be over {MAX_BODY} characters with these values")
        if problems:
            raise ParametersDoNotFit(problems)
        return checked

    def render(self, values: dict[str, str]) -> str:
        """The body as the customer sees it with `values` filled in."""
        by_placeholder = values if self.named else {str(n): values[p] for n, p in enumerate(self.parameters, 1)}
        return PLACEHOLDER.sub(lambda m: by_placeholder.get(m.group(1), m.group(0)), self.body)

    def message(self, to: str, values: dict[str, str]) -> dict[str, Any]:
        """The Graph API request (without `messaging_product`) that sends this template with `values`."""
        components: list[dict[str, Any]] = []
        if self.parameters:
            parameters = []
            for name in self.parameters:
                parameter = {"type": "text", "text": values[name]}
                if self.named:
                    parameter["parameter_name"] = name
                parameters.append(parameter)
            components.append({"type": "body", "parameters": parameters})
        if self.category is Category.authentication:
            # Authentication templates carry a copy-code (or one-tap) button that takes the code again.
            code = values[self.parameters[0]]
            components.append(
                {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": code}]}
            )
        for index, button in enumerate(self.buttons):
            components.append(
                {
                    "type": "button",
                    "sub_type": "quick_reply",
                    "index": str(index),
                    "parameters": [{"type": "payload", "payload": button.payload}],
                }
            )
        template: dict[str, Any] = {"name": self.name, "language": {"code": self.language}}
        if components:
            template["components"] = components
        return {"to": to, "type": "template", "template": template}

    def _takes(self) -> str:
        return ", ".join(self.parameters) if self.parameters else "none"


class TemplateRegistry:
    """The templates of the file, by (name, language)."""

    def __init__(self, templates: list[Template], *, source: str | None = None) -> None:
        self.source = source
        self._by_key = {t.key: t for t in templates}

    def __len__(self) -> int:
        return len(self._by_key)

    def all(self) -> list[Template]:
        return sorted(self._by_key.values(), key=lambda t: t.key)

    def find(self, name: str, language: str | None = None) -> Template | None:
        """The template `name` in `language`; without a language, the only one of that name (else None)."""
        if language is not None:
            return self._by_key.get((name, language))
        found = [t for t in self._by_key.values() if t.name == name]
        return found[0] if len(found) == 1 else None

    def languages_of(self, name: str) -> list[str]:
        return sorted(language for n, language in self._by_key if n == name)

    @classmethod
    def empty(cls) -> TemplateRegistry:
        return cls([])

    @classmethod
    def load(cls, path: str | Path) -> TemplateRegistry:
        """Read and check the file; TemplateRegistryError listing every problem."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TemplateRegistryError(str(path), ["the file does not exist (WHATSAPP_TEMPLATES_FILE)"]) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateRegistryError(str(path), [f"the file cannot be read ({exc})"]) from exc
        return cls.parse(text, source=str(path))

    @classmethod
    def parse(cls, text: str, *, source: str = "<templates>") -> TemplateRegistry:
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise TemplateRegistryError(source, [f"not valid YAML: {exc}"]) from exc
        if document is None:
            document = {"templates": []}
        if not isinstance(document, dict) or set(document) != {"templates"}:
            raise TemplateRegistryError(source, ["the file must be a mapping with one key, `templates`, a list"])
        entries = document["templates"] or []
        if not isinstance(entries, list):
            raise TemplateRegistryError(source, ["`templates` must be a list"])
        problems: list[str] = []
        templates: list[Template] = []
        seen: dict[tuple[str, str], int] = {}
        for n, entry in enumerate(entries, start=1):
            template, wrong = _template(entry)
            where = _where(n, entry)
            problems.extend(f"{where}: {p}" for p in wrong)
            if template is None:
                continue
            if template.key in seen:
                first = seen[template.key]
                problems.append(f"{where}: {template.name} in {template.language} is already entry {first}")
                continue
            seen[template.key] = n
            templates.append(template)
        if problems:
            raise TemplateRegistryError(source, problems)
        return cls(templates, source=source)


def _where(n: int, entry: Any) -> str:
    if isinstance(entry, dict) and entry.get("name"):
        return f"templates[{n}] ({entry.get('name')}, {entry.get('language') or 'no language'})"
    return f"templates[{n}]"


def _template(entry: Any) -> tuple[Template | None, list[str]]:
    """One entry of the file, or the list of what is wrong with it."""
    if not isinstance(entry, dict):
        return None, ["each template must be a mapping (name, language, category, body, parameters, buttons)"]
    problems: list[str] = []
    unknown = sorted(str(k) for k in set(entry) - ENTRY_KEYS)
    if unknown:
        problems.append(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(ENTRY_KEYS))})")
    name, language, body = entry.get("name"), entry.get("language"), entry.get("body")
    if not isinstance(name, str) or not NAME.match(name):
        problems.append("`name` (required) must be lowercase letters, digits and underscores, as in WhatsApp Manager")
    if not isinstance(language, str) or not LANGUAGE.match(language):
        problems.append("`language` (required) must be a WhatsApp language code such as en, en_US or pt_BR")
    raw_category = entry.get("category")
    categories = {c.value: c for c in Category}
    category = categories.get(str(raw_category).lower()) if raw_category is not None else None
    if category is None:
        problems.append(f"`category` must be one of utility, marketing, authentication (got {raw_category!r})")
    if not isinstance(body, str) or not body.strip():
        problems.append("`body` is required: the template's text as approved, with {{1}}, {{2}}… placeholders")
        body = None
    elif len(body) > MAX_BODY:
        problems.append(f"`body` is {len(body)} characters; WhatsApp allows {MAX_BODY}")

    parameters = entry.get("parameters") or []
    if not isinstance(parameters, list) or not all(isinstance(p, str) for p in parameters):
        problems.append("`parameters` must be a list of names, one per placeholder, in order")
        parameters = []
    for p in parameters:
        if not PARAMETER_NAME.match(p):
            problems.append(f"parameter {p!r}: a name is lowercase letters, digits and underscores")
    duplicates = sorted({p for p in parameters if parameters.count(p) > 1})
    if duplicates:
        problems.append(f"parameter(s) {', '.join(duplicates)} declared twice")

    named = False
    if body is not None:
        placeholders = PLACEHOLDER.findall(body)
        positional = [p for p in placeholders if p.isdigit()]
        names = [p for p in placeholders if not p.isdigit()]
        if positional and names:
            problems.append("`body` mixes numbered ({{1}}) and named ({{name}}) placeholders; use one kind")
        elif names:
            named = True
            if set(names) != set(parameters):
                problems.append(
                    f"`body` uses {{{{{'}}, {{'.join(sorted(set(names)))}}}}} but `parameters` are "
                    f"{', '.join(parameters) or 'none'}: they must be the same names"
                )
        else:
            numbers = sorted({int(p) for p in positional})
            if numbers != list(range(1, len(numbers) + 1)):
                found = ", ".join("{{" + str(x) + "}}" for x in numbers)
                problems.append(
                    f"`body` placeholders must be numbered {{{{1}}}}, {{{{2}}}}… without gaps (found {found})"
                )
            elif len(numbers) != len(parameters):
                problems.append(
                    f"`body` has {len(numbers)} placeholder(s) but {len(parameters)} parameter(s) are declared"
                )

    buttons: list[QuickReply] = []
    raw_buttons = entry.get("buttons") or []
    if not isinstance(raw_buttons, list):
        problems.append("`buttons` must be a list of quick replies (a text, or {text, payload})")
        raw_buttons = []
    if len(raw_buttons) > MAX_QUICK_REPLIES:
        problems.append(f"{len(raw_buttons)} quick-reply buttons; WhatsApp allows {MAX_QUICK_REPLIES}")
    for b, raw in enumerate(raw_buttons, start=1):
        text, payload = (raw, raw) if isinstance(raw, str) else (None, None)
        if isinstance(raw, dict):
            if set(raw) - {"text", "payload"}:
                problems.append(f"button {b}: only `text` and `payload` are allowed")
            text, payload = raw.get("text"), raw.get("payload", raw.get("text"))
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_BUTTON_TEXT:
            problems.append(f"button {b}: the text must be 1 to {MAX_BUTTON_TEXT} characters")
            continue
        if not isinstance(payload, str) or not payload.strip() or len(payload) > MAX_PAYLOAD:
            problems.append(f"button {b} ({text}): the payload must be 1 to {MAX_PAYLOAD} characters")
            continue
        buttons.append(QuickReply(text=text, payload=payload))
    texts = [b.text for b in buttons]
    if len(set(texts)) != len(texts):
        problems.append("quick-reply button texts must be unique")

    if category is Category.authentication:
        if len(parameters) != 1:
            problems.append("an authentication template takes exactly one parameter, the code")
        if raw_buttons:
            problems.append("an authentication template has no quick replies (its copy-code button is Meta's)")

    if problems:
        return None, problems
    assert isinstance(name, str) and isinstance(language, str) and category is not None and body is not None
    return (
        Template(
            name=name,
            language=language,
            category=category,
            body=body,
            parameters=tuple(parameters),
            buttons=tuple(buttons),
            named=named,
        ),
        [],
    )
