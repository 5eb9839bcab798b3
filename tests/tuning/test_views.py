"""Tuning pages and settings: bad input gets a clear answer, never a 500."""

import pytest

pytestmark = pytest.mark.django_db


def test_a_malformed_report_id_is_a_404_not_a_500(client, reviewer):
    client.force_login(reviewer)
    assert client.get("/tuning/?report=abc").status_code == 404


@pytest.mark.parametrize(
    "field,value",
    [
        ("daily_budget_usd", float("inf")),
        ("strong_usd_per_hour", float("nan")),
        ("strong_job", 'glm5"\n- alert: Injected'),
    ],
)
def test_cost_settings_refuse_non_finite_numbers_and_odd_job_names(operator, field, value):
    from django.core.exceptions import ValidationError

    from tuning.services import cost_settings_update

    with pytest.raises(ValidationError) as raised:
        cost_settings_update(actor=operator, **{field: value})
    assert field in raised.value.message_dict
