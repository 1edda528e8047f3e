"""Building Graph API requests from bot and CSR messages (documented limits)."""

from connectors.whatsapp.graph import build_messages, split_text
from tests.support.fake_graph import validate_message


def full(body: dict) -> dict:
    return {"messaging_product": "whatsapp", "recipient_type": "individual", **body}


def test_long_text_is_split_at_4096_characters_on_word_boundaries() -> None:
    text = " ".join(f"word{i}" for i in range(2000))  # 16 890 characters
    pieces = split_text(text)
    assert len(pieces) == 5 and all(4000 < len(p) <= 4096 for p in pieces[:-1])
    assert " ".join(pieces) == text
    assert split_text("x" * 5000) == ["x" * 4096, "x" * 904]
    requests = build_messages("441", text=text)
    assert [r["text"]["body"] for r in requests] == pieces
    assert all(validate_message(full(r)) is None for r in requests)


def test_up_to_three_buttons_are_reply_buttons_with_the_payload_as_id() -> None:
    buttons = [
        {"title": "Yes", "payload": "/affirm"},
        {"title": "No", "payload": "/deny"},
        {"title": "Book an appointment for tomorrow", "payload": '/book{"day": "tomorrow"}'},
    ]
    [request] = build_messages("441", text="Shall I book it?", buttons=buttons)
    interactive = request["interactive"]
    assert interactive["type"] == "button" and interactive["body"]["text"] == "Shall I book it?"
    replies = [b["reply"] for b in interactive["action"]["buttons"]]
    assert [r["id"] for r in replies] == ["/affirm", "/deny", '/book{"day": "tomorrow"}']
    assert [len(r["title"]) <= 20 for r in replies] == [True, True, True]
    assert replies[2]["title"] == "Book an appointment…"
    assert validate_message(full(request)) is None


def test_more_than_three_options_become_a_list_of_at_most_ten_rows() -> None:
    buttons = [{"title": f"Service number {i} with a long name", "payload": f'/pick{{"n": {i}}}'} for i in range(12)]
    [request] = build_messages("441", text="Which service?", buttons=buttons)
    interactive = request["interactive"]
    assert interactive["type"] == "list"
    rows = interactive["action"]["sections"][0]["rows"]
    assert len(rows) == 10 and rows[0]["id"] == '/pick{"n": 0}'
    assert all(len(r["title"]) <= 24 and len(r["description"]) <= 72 for r in rows)
    assert validate_message(full(request)) is None


def test_a_long_text_with_buttons_goes_first_as_text() -> None:
    requests = build_messages("441", text="y" * 2000, buttons=[{"title": "OK", "payload": "/affirm"}])
    assert [r["type"] for r in requests] == ["text", "interactive"]
    assert all(validate_message(full(r)) is None for r in requests)


def test_an_image_is_sent_by_link_and_an_empty_message_sends_nothing() -> None:
    requests = build_messages("441", text="our salon", image="https://example.com/salon.jpg")
    assert [r["type"] for r in requests] == ["image", "text"]
    assert build_messages("441", text="") == []
