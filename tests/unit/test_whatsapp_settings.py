"""WHATSAPP_PHONE_NUMBER_ID with several numbers and their display names."""

import pytest
from pydantic import ValidationError

from conversation_api.settings import Settings

SECRETS = {
    "whatsapp_verify_token": "v",
    "whatsapp_app_secret": "s",
    "whatsapp_access_token": "t",
}


def test_one_number_as_before() -> None:
    settings = Settings(**SECRETS, whatsapp_phone_number_id="106540352242922")
    assert settings.whatsapp_phone_numbers == {"106540352242922": "106540352242922"}


def test_several_numbers_with_display_names_the_first_is_the_default() -> None:
    settings = Settings(**SECRETS, whatsapp_phone_number_id=" 111=Main salon , 222=Downtown (late hours),333")
    assert settings.whatsapp_phone_numbers == {"111": "Main salon", "222": "Downtown (late hours)", "333": "333"}
    assert next(iter(settings.whatsapp_phone_numbers)) == "111"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("111,,222", "entry 2 is empty"),
        ("111=Main,abc=Other", "digits only"),
        ("111=", "display name after '=' is empty"),
        ("111=Main,111=Again", "111 is listed twice"),
    ],
)
def test_a_wrong_list_is_refused_naming_the_entry(value: str, says: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(**SECRETS, whatsapp_phone_number_id=value)
    assert says in str(refused.value)
