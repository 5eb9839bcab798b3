"""Schemathesis over every operation of the OpenAPI schema: no server errors, and each answer
(errors included) has a status code, content type and body the schema documents.

Runs in-process against the WSGI application, inside the test's transaction, with fixture
data (versions, synced traces, a labeled batch, jobs, slots and a route) so that path
parameters name real objects as well as made-up ones. Fixed seed, bounded examples.
"""

import json

import pytest
import schemathesis
from django.core.serializers.json import DjangoJSONEncoder
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.urls import Resolver404, resolve
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
)

from tests.rollouts.conftest import route, slots  # noqa: F401 - fixtures, by name
from tests.tuning.conftest import (  # noqa: F401
    _synced_rows,
    headline,
    langfuse,
    synced,
    traffic,
)

EXAMPLES = 30

raw = SchemaGenerator().get_schema(request=None, public=True)
schema = schemathesis.openapi.from_dict(json.loads(json.dumps(raw, cls=DjangoJSONEncoder)))
schema.app = get_wsgi_application()  # every call in-process, the checks' own calls too
schema.config.generation.update(
    max_examples=EXAMPLES, deterministic=True, database="none", modes=["positive", "negative"]
)

# Values of path parameters that name existing objects, filled in by the fixture below and
# read when a strategy is first drawn from (after the fixture has run).
REAL: dict[str, list] = {}


def existing_values(path: str) -> list:
    """Lookup values of the objects behind ``path``'s one parameter (its view's queryset)."""
    params = [p.split("}")[0] for p in path.split("{")[1:]]
    if len(params) != 1:
        return []
    try:
        match = resolve(path.replace(f"{{{params[0]}}}", "1"))
    except Resolver404:
        try:
            match = resolve(path.replace(f"{{{params[0]}}}", "v7"))
        except Resolver404:
            return []
    view = getattr(match.func, "cls", None)
    queryset = getattr(view, "queryset", None)
    if queryset is None:
        return []
    field = getattr(view, "lookup_field", "pk")
    return [str(value) for value in queryset.values_list(field, flat=True)[:5]]


@schema.hook
def before_generate_path_parameters(context, strategy):
    path = context.operation.path
    params = [p.split("}")[0] for p in path.split("{")[1:]]

    def real():
        values = REAL.get(path, [])
        if not values or len(params) != 1:
            return strategy
        return st.sampled_from(values).map(lambda v: {params[0]: v})

    return st.one_of(strategy, st.deferred(real))


@pytest.fixture
def in_process():
    # As Django's test client does: the request cycle must not close the test's connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def fixture_data(headline, route, draft, admin_user, settings):  # noqa: F811
    from accounts.tokens import token_create
    from tuning import services as tuning
    from tuning.models import JobKind

    # Auth endpoints are fuzzed too: keep lockouts and rates out of the way of the run.
    settings.AXES_FAILURE_LIMIT = 10_000
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"login": "100000/s", "classify": "100000/s", "jobs": "100000/s"},
    }
    period = {"since": headline.period_start.isoformat(), "until": headline.period_end.isoformat()}
    tuning.job_start(actor=admin_user, kind=JobKind.REPLAY, params={"version": "v7", **period})
    _, secret = token_create(actor=admin_user, user=admin_user, name="fuzz")
    for operation in schema.get_all_operations():
        path = operation.ok().path
        REAL[path] = existing_values(path)
    yield {"Authorization": f"Token {secret}"}
    REAL.clear()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@pytest.mark.django_db
def test_every_operation_conforms(case, fixture_data, in_process):
    case.call_and_validate(
        headers=fixture_data,
        excluded_checks=[
            # Schema-valid is not always valid: a period needs since < until, a version must
            # exist. Those answers are documented 400s; the schema cannot say them all.
            positive_data_acceptance,
            # An empty query value (?status=&page=) means "not given", as HTML forms send
            # it; every other invalid input must still answer a documented 4xx, not a 5xx.
            negative_data_rejection,
        ],
    )
