"""The freeze trigger covers every field of a version: a new field is refused after freeze
unless this file says why it may change."""

import json
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction

from routing.models import ClassifierVersion, KeywordSet

pytestmark = pytest.mark.django_db

# Fields a frozen version may still change, and why.
MAY_CHANGE = {
    "status": "frozen -> retired (any other move is refused: test_services)",
    "retired_at": "set when it is retired",
    "updated_at": "auto_now on every save, retiring included",
}
# Foreign keys to users: the database sets them to NULL when the user is deleted.
NULL_ONLY = {"created_by", "frozen_by"}


def changed(field, version, make_user):
    """A value different from ``version``'s for ``field``, as the database stores it."""
    value = getattr(version, field.attname)
    if field.name == "parent":
        return ClassifierVersion.objects.exclude(pk=version.pk).values_list("pk", flat=True)[0]
    if field.name == "keyword_set":
        return KeywordSet.objects.create(name="another set").pk
    if field.name in NULL_ONLY:
        return make_user(f"someone-else-{field.name}").pk
    kind = field.get_internal_type()
    if field.name == "config_sha256":
        return "0" * 64
    if kind in ("CharField", "TextField"):
        return f"{value}-changed"
    if kind in ("PositiveIntegerField", "IntegerField", "BigAutoField", "AutoField"):
        return (value or 0) + 1000
    if kind == "DecimalField":
        return (value or 0) + 1
    if kind == "DateTimeField":
        return (value or version.created_at) + timedelta(days=1)
    if kind == "JSONField":
        return json.dumps({"changed": True})
    if kind == "BooleanField":
        return not value
    raise AssertionError(f"{field.name}: {kind} has no changed value here; add one")


def update(column, value, pk):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE routing_classifierversion SET {column} = %s WHERE id = %s",  # noqa: S608 - model column names
            [value, pk],
        )


@pytest.fixture
def frozen(v7, draft, operator):
    v7.frozen_by = operator
    return v7  # v7 is seeded frozen; ``draft`` gives it another version to point at


def fields():
    return [f for f in ClassifierVersion._meta.concrete_fields if f.name not in MAY_CHANGE]


@pytest.mark.parametrize("field", fields(), ids=lambda f: f.name)
def test_every_field_of_a_frozen_version_is_refused_by_the_database(field, frozen, make_user):
    with pytest.raises(IntegrityError):
        update(field.column, changed(field, frozen, make_user), frozen.pk)


@pytest.mark.parametrize("name", sorted(NULL_ONLY))
def test_a_deleted_users_reference_may_become_null(name, frozen):
    update(ClassifierVersion._meta.get_field(name).column, None, frozen.pk)


def test_the_lists_name_real_fields():
    names = {f.name for f in ClassifierVersion._meta.concrete_fields}
    assert set(MAY_CHANGE) | NULL_ONLY <= names
