"""Tokens from before expiring tokens (DRF's authtoken, stored in plain text, never expiring)
become named tokens that expire in LEGACY_DAYS, so automation keeps working while its owners
replace them; the plain-text table is then dropped. Constants are this migration's own."""

import hashlib
from datetime import timedelta

from django.db import migrations
from django.utils import timezone

LEGACY_TABLE = "authtoken_token"
LEGACY_DAYS = 90
KEY_LENGTH = 15  # knox's CONSTANTS.TOKEN_KEY_LENGTH


def forwards(apps, schema_editor):
    connection = schema_editor.connection
    if LEGACY_TABLE not in connection.introspection.table_names():
        return
    ApiToken = apps.get_model("accounts", "ApiToken")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id, created FROM {LEGACY_TABLE}")  # noqa: S608
        rows = cursor.fetchall()
    expiry = timezone.now() + timedelta(days=LEGACY_DAYS)
    for key, user_id, created in rows:
        token = ApiToken(
            # knox's hash: SHA-512 of the token's characters.
            digest=hashlib.sha512(key.encode()).hexdigest(),
            token_key=key[:KEY_LENGTH],
            user_id=user_id,
            expiry=expiry,
            name="token from before expiry",
        )
        token.save()
        ApiToken.objects.filter(pk=token.pk).update(created=created)
    schema_editor.execute(f"DROP TABLE {LEGACY_TABLE}")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_api_tokens")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
