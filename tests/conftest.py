import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.roles import ADMIN, OPERATOR, REVIEWER


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2's deliberate slowness is for attackers, not for test fixtures.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_rate_counters():
    # The API's throttles count in the cache, which outlives a test's database rollback.
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def make_user(django_user_model):
    def make(username, role=None, password="pw-for-tests-only"):
        user = django_user_model.objects.create_user(username=username, password=password)
        if role:
            user.groups.add(Group.objects.get_or_create(name=role)[0])
        return user

    return make


@pytest.fixture
def reviewer(make_user):
    return make_user("rita", REVIEWER)


@pytest.fixture
def operator(make_user):
    return make_user("otto", OPERATOR)


@pytest.fixture
def admin_user(make_user):
    return make_user("ada", ADMIN)


@pytest.fixture
def nobody(make_user):
    """Logged in, but with no role."""
    return make_user("nora")


@pytest.fixture
def api():
    """An API client; ``api.as_(user)`` authenticates it as that user."""
    client = APIClient()

    def as_(user):
        client.force_authenticate(user)
        return client

    client.as_ = as_
    return client


@pytest.fixture
def v7(db):
    """The seeded baseline (re-created if a transactional test flushed it)."""
    from routing.baseline import ensure_v7
    from routing.models import ClassifierVersion, Keyword, KeywordSet

    return ensure_v7(ClassifierVersion, KeywordSet, Keyword, timezone.now())


@pytest.fixture
def draft(v7, operator):
    from routing import services

    return services.version_copy(actor=operator, source=v7, name="v8")
