"""How an action gets its ports: injected by tests, otherwise from the composition root on first use."""

from __future__ import annotations

from typing import Optional

from actions import bootstrap
from actions.business import Business
from actions.ports import BookingService, CommerceService, CrmService


class UsesPorts:
    """Mixin for actions: rasa-sdk builds actions with no arguments, tests pass fakes by keyword."""

    def __init__(
        self,
        *,
        booking: Optional[BookingService] = None,
        commerce: Optional[CommerceService] = None,
        crm: Optional[CrmService] = None,
        business: Optional[Business] = None,
    ) -> None:
        self._booking = booking
        self._commerce = commerce
        self._crm = crm
        self._business = business

    @property
    def booking(self) -> BookingService:
        return self._booking or bootstrap.booking()

    @property
    def commerce(self) -> CommerceService:
        return self._commerce or bootstrap.commerce()

    @property
    def crm(self) -> CrmService:
        return self._crm or bootstrap.crm()

    @property
    def biz(self) -> Business:
        return self._business or bootstrap.business()
