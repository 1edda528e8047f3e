from __future__ import annotations

import pytest

from actions.commerce import (
    ActionAddToCart,
    ActionAskCancelOrder,
    ActionAskOrderConfirmation,
    ActionCancelOrder,
    ActionOrderStatus,
    ActionPlaceOrder,
    ActionSearchProducts,
    ActionViewCart,
)
from actions.ports import Product
from tests.actions.fakes import Broken, make_tracker, slot_events, workflow


def texts(dispatcher) -> str:
    return "\n".join(m.get("text") or m.get("response") or "" for m in dispatcher.messages)


def shop(action, commerce, crm, business):
    return action(commerce=commerce, crm=crm, business=business)


async def test_search_by_name_shows_price_stock_and_buttons(commerce, crm, business, dispatcher):
    await shop(ActionSearchProducts, commerce, crm, business).run(
        dispatcher, make_tracker("do you have argan oil", "search_product", entities={"product": "argan hair oil"}), {}
    )
    assert "argan hair oil: £18.00 (25 in stock)" in texts(dispatcher)
    assert dispatcher.messages[0]["buttons"][0]["payload"] == '/add_to_cart{"product":"argan hair oil","quantity":"1"}'


async def test_search_by_category_without_entity(commerce, crm, business, dispatcher):
    await shop(ActionSearchProducts, commerce, crm, business).run(
        dispatcher, make_tracker("do you sell nail polish?", "search_product"), {}
    )
    assert len(dispatcher.messages[0]["buttons"]) >= 3
    assert all("nail" in b["title"] or "coat" in b["title"] for b in dispatcher.messages[0]["buttons"])


async def test_search_finds_nothing(commerce, crm, business, dispatcher):
    await shop(ActionSearchProducts, commerce, crm, business).run(
        dispatcher, make_tracker("do you have lawnmowers", "search_product", entities={"product": "lawnmower"}), {}
    )
    assert "we don't carry lawnmower" in texts(dispatcher) and "shampoo" in texts(dispatcher)


async def test_a_product_we_lack_is_named_before_the_closest_we_have(family, business, dispatcher):
    """On the real adapters (SQLite, PostgreSQL, HTTP), whose search also finds partial matches."""
    await shop(ActionSearchProducts, family.commerce, family.crm, business).run(
        dispatcher,
        make_tracker("is there tea tree shampoo in your shop", "search_product",
                     entities={"product": "tea tree shampoo"}),
        {},
    )
    said = texts(dispatcher)
    assert said.startswith("Sorry, we don't carry tea tree shampoo. The closest we have:")
    assert "argan shampoo" in said and dispatcher.messages[0]["buttons"]


@pytest.mark.parametrize("named", ["shampoos", "Hair Gels", "argan oil", "nail polish"])
async def test_a_product_we_carry_by_any_of_its_names_is_simply_found(named, family, business, dispatcher):
    await shop(ActionSearchProducts, family.commerce, family.crm, business).run(
        dispatcher, make_tracker(f"do you sell {named}", "search_product", entities={"product": named}), {}
    )
    assert texts(dispatcher).startswith("Here's what I found:")


async def test_a_product_only_the_commerce_service_knows_is_found_not_denied(commerce, crm, business, dispatcher):
    """The shop's service may list products the bot's catalogue file has not caught up with."""
    commerce.products["LB-001"] = Product(sku="LB-001", name="lip balm", category="skincare", price=3.0, stock=9)
    commerce.synonyms["LB-001"] = []
    await shop(ActionSearchProducts, commerce, crm, business).run(
        dispatcher, make_tracker("looking for lip balms", "search_product", entities={"product": "lip balms"}), {}
    )
    assert texts(dispatcher).startswith("Here's what I found:\n- lip balm: £3.00 (9 in stock)")


async def test_add_to_cart_with_quantity_then_view(commerce, crm, business, dispatcher):
    events = await shop(ActionAddToCart, commerce, crm, business).run(
        dispatcher,
        make_tracker("add 2 argan shampoo", "add_to_cart", entities={"product": "argan shampoo", "quantity": "2"}),
        {},
    )
    assert commerce.carts["user-1"] == {"SH-001": 2}
    assert slot_events(events)["product"] == "argan shampoo"
    assert "£25.00" in texts(dispatcher)
    dispatcher.messages.clear()
    await shop(ActionViewCart, commerce, crm, business).run(dispatcher, make_tracker("my cart", "view_cart"), {})
    assert "2 x argan shampoo" in texts(dispatcher)


async def test_add_to_cart_uses_the_last_product_and_number_words(commerce, crm, business, dispatcher):
    await shop(ActionAddToCart, commerce, crm, business).run(
        dispatcher,
        make_tracker("i'll take two", "add_to_cart", entities={"quantity": "two"}, slots={"product": "beard oil"}),
        {},
    )
    assert commerce.carts["user-1"] == {"OI-003": 2}


async def test_add_more_than_in_stock(commerce, crm, business, dispatcher):
    await shop(ActionAddToCart, commerce, crm, business).run(
        dispatcher,
        make_tracker("add 50 beard oil", "add_to_cart", entities={"product": "beard oil", "quantity": "50"}),
        {},
    )
    assert "only have 15" in texts(dispatcher)
    assert "user-1" not in commerce.carts or not commerce.carts["user-1"]


async def test_add_without_product_asks(commerce, crm, business, dispatcher):
    await shop(ActionAddToCart, commerce, crm, business).run(dispatcher, make_tracker("add it", "add_to_cart"), {})
    assert "Which product" in texts(dispatcher)


async def test_checkout_confirms_then_places_the_order(commerce, crm, business, dispatcher):
    commerce.add_to_cart(customer_id="user-1", sku="SH-001", quantity=2)
    commerce.add_to_cart(customer_id="user-1", sku="NP-001", quantity=1)
    await shop(ActionAskOrderConfirmation, commerce, crm, business).run(
        dispatcher, make_tracker("checkout", "place_order"), {}
    )
    assert "Total: £32.50" in texts(dispatcher) and not commerce.orders
    events = await shop(ActionPlaceOrder, commerce, crm, business).run(dispatcher, make_tracker("yes", "affirm"), {})
    [order] = commerce.orders.values()
    assert commerce.products["SH-001"].stock == 38 and commerce.products["NP-001"].stock == 49
    outcome = workflow(events)
    assert (outcome["type"], outcome["workflow"], outcome["success"]) == ("order.placed", "order", True)
    assert outcome["data"]["order_id"] == order.id and order.id in texts(dispatcher)
    assert slot_events(events)["order_id"] == order.id


async def test_checkout_with_an_empty_cart(commerce, crm, business, dispatcher):
    await shop(ActionAskOrderConfirmation, commerce, crm, business).run(
        dispatcher, make_tracker("checkout", "place_order"), {}
    )
    assert dispatcher.messages[0]["response"] == "utter_cart_empty"
    events = await shop(ActionPlaceOrder, commerce, crm, business).run(dispatcher, make_tracker("yes", "affirm"), {})
    assert workflow(events) == {
        "type": "order.placed",
        "workflow": "order",
        "success": False,
        "data": {"reason": "empty_cart"},
    }


async def test_place_order_when_the_shop_is_down(crm, business, dispatcher):
    events = await ActionPlaceOrder(commerce=Broken(), crm=crm, business=business).run(
        dispatcher, make_tracker("yes", "affirm"), {}
    )
    assert workflow(events)["success"] is False and workflow(events)["data"]["reason"] == "service_unavailable"
    assert dispatcher.messages[-1]["response"] == "utter_service_unavailable"


async def test_order_status_by_id_and_by_last_order(commerce, crm, business, dispatcher):
    commerce.add_to_cart(customer_id="user-1", sku="SH-001", quantity=1)
    order = commerce.place_order(customer_id="user-1")
    number = order.id.split("-")[1]
    await shop(ActionOrderStatus, commerce, crm, business).run(
        dispatcher, make_tracker(f"status of ord {number}", "order_status", entities={"order_id": f"ord {number}"}), {}
    )
    assert f"Your order {order.id} has been placed" in texts(dispatcher)
    dispatcher.messages.clear()
    await shop(ActionOrderStatus, commerce, crm, business).run(
        dispatcher, make_tracker("where is my order", "order_status"), {}
    )
    assert order.id in texts(dispatcher)


async def test_order_status_of_someone_elses_order(commerce, crm, business, dispatcher):
    commerce.add_to_cart(customer_id="someone-else", sku="SH-001", quantity=1)
    order = commerce.place_order(customer_id="someone-else")
    await shop(ActionOrderStatus, commerce, crm, business).run(
        dispatcher, make_tracker(f"where is {order.id}", "order_status", entities={"order_id": order.id}), {}
    )
    assert "couldn't find" in texts(dispatcher)


async def test_order_references_as_customers_type_them_map_to_the_stored_id(commerce, crm, business, dispatcher):
    commerce.add_to_cart(customer_id="user-1", sku="SH-001", quantity=1)
    order = commerce.place_order(customer_id="user-1")
    number = order.id.split("-")[1]
    for text, entity in [
        (f"where is my order {number}", number),
        (f"status of order #{number}", f"#{number}"),
        (f"track ORD{number}", f"ORD{number}"),
        (f"where is my order {number}", None),
    ]:
        dispatcher.messages.clear()
        await shop(ActionOrderStatus, commerce, crm, business).run(
            dispatcher, make_tracker(text, "order_status", entities={"order_id": entity} if entity else None), {}
        )
        assert f"Your order {order.id} has been placed" in texts(dispatcher), text


async def test_a_named_order_that_does_not_exist_is_reported_not_replaced_by_the_latest(
    commerce, crm, business, dispatcher
):
    commerce.add_to_cart(customer_id="user-1", sku="SH-001", quantity=1)
    latest = commerce.place_order(customer_id="user-1")
    await shop(ActionOrderStatus, commerce, crm, business).run(
        dispatcher, make_tracker("where is my order 10234", "order_status", entities={"order_id": "10234"}), {}
    )
    assert "couldn't find an order ORD-10234" in texts(dispatcher) and latest.id not in texts(dispatcher)
    dispatcher.messages.clear()
    events = await shop(ActionAskCancelOrder, commerce, crm, business).run(
        dispatcher, make_tracker("cancel order #55871", "cancel_order", entities={"order_id": "#55871"}), {}
    )
    assert "couldn't find an order ORD-55871" in texts(dispatcher)
    assert slot_events(events)["order_id"] is None and commerce.orders[latest.id].status == "placed"


async def test_a_pattern_match_wins_over_a_partial_diet_tag(commerce, crm, business, dispatcher):
    commerce.add_to_cart(customer_id="user-1", sku="SH-001", quantity=1)
    order = commerce.place_order(customer_id="user-1")
    number = order.id.split("-")[1]
    entities = [
        {"entity": "order_id", "value": number[:3], "extractor": "DIETClassifier"},
        {"entity": "order_id", "value": f"#{number}", "extractor": "RegexEntityExtractor"},
    ]
    await shop(ActionOrderStatus, commerce, crm, business).run(
        dispatcher, make_tracker(f"status of #{number}", "order_status", entities=entities), {}
    )
    assert f"Your order {order.id}" in texts(dispatcher)


async def test_cancel_order_asks_then_cancels(commerce, crm, business, dispatcher):
    commerce.add_to_cart(customer_id="user-1", sku="SH-001", quantity=1)
    order = commerce.place_order(customer_id="user-1")
    events = await shop(ActionAskCancelOrder, commerce, crm, business).run(
        dispatcher, make_tracker("cancel my order", "cancel_order"), {}
    )
    assert slot_events(events)["order_id"] == order.id and commerce.orders[order.id].status == "placed"
    events = await shop(ActionCancelOrder, commerce, crm, business).run(
        dispatcher, make_tracker("yes", "affirm", slots={"order_id": order.id}), {}
    )
    assert commerce.orders[order.id].status == "cancelled"
    outcome = workflow(events)
    assert (outcome["type"], outcome["workflow"], outcome["success"]) == ("order.cancelled", "cancel_order", True)


async def test_a_shipped_order_cannot_be_cancelled(commerce, crm, business, dispatcher):
    commerce.add_to_cart(customer_id="user-1", sku="SH-001", quantity=1)
    order = commerce.place_order(customer_id="user-1")
    commerce.orders[order.id] = type(order)(**{**order.__dict__, "status": "shipped"})
    events = await shop(ActionAskCancelOrder, commerce, crm, business).run(
        dispatcher, make_tracker("cancel my order", "cancel_order"), {}
    )
    assert "can't be cancelled" in texts(dispatcher)
    assert workflow(events)["success"] is False and workflow(events)["data"]["reason"] == "order_shipped"
