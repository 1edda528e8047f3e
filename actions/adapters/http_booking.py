"""BookingService over the REST contract in docs/business-services.openapi.yml (tag booking)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Dict, List, Optional
from zoneinfo import ZoneInfo

from actions.adapters.http_client import JsonClient, require
from actions.ports import Appointment, ServiceUnavailable


class HttpBookingService:
    def __init__(self, client: JsonClient, *, tz: ZoneInfo) -> None:
        self.client = client
        self.tz = tz

    def _when(self, value: str) -> datetime:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except (AttributeError, ValueError) as exc:
            raise ServiceUnavailable(f"bad datetime {value!r} from the booking service") from exc
        return (moment if moment.tzinfo else moment.replace(tzinfo=self.tz)).astimezone(self.tz)

    def _appointment(self, body: Dict[str, Any]) -> Appointment:
        try:
            return Appointment(id=body["id"], customer_id=body["customer_id"], service=body["service"],
                               start=self._when(body["start"]), end=self._when(body["end"]),
                               staff=body.get("staff", ""), status=body.get("status", "booked"))
        except (KeyError, TypeError) as exc:
            raise ServiceUnavailable("the booking service sent an incomplete appointment") from exc

    def free_slots(self, *, service: str, day: date, limit: int = 20,
                   ignore_appointment: Optional[str] = None) -> List[datetime]:
        params: Dict[str, Any] = {"service": service, "date": day.isoformat(), "limit": limit}
        if ignore_appointment:
            params["ignore_appointment"] = ignore_appointment
        body = self.client.request("GET", "/slots", params=params)
        return [self._when(s) for s in require(body, "slots")]

    def book(self, *, customer_id: str, service: str, start: datetime,
             idempotency_key: str | None = None) -> Appointment:
        body = self.client.request("POST", "/appointments", json={
            "customer_id": customer_id, "service": service, "start": start.isoformat()},
            idempotency_key=idempotency_key)
        return self._appointment(body)

    def upcoming(self, *, customer_id: str) -> List[Appointment]:
        body = self.client.request("GET", f"/customers/{customer_id}/appointments")
        return [self._appointment(a) for a in require(body, "appointments")]

    def reschedule(self, *, appointment_id: str, customer_id: str, start: datetime,
                   idempotency_key: str | None = None) -> Appointment:
        body = self.client.request("PATCH", f"/appointments/{appointment_id}", json={
            "customer_id": customer_id, "start": start.isoformat()}, idempotency_key=idempotency_key)
        return self._appointment(body)

    def cancel(self, *, appointment_id: str, customer_id: str,
               idempotency_key: str | None = None) -> Appointment:
        body = self.client.request("POST", f"/appointments/{appointment_id}/cancel",
                                   json={"customer_id": customer_id}, idempotency_key=idempotency_key)
        return self._appointment(body)
