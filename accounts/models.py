from django.db import models
from knox.models import AbstractAuthToken


class ApiToken(AbstractAuthToken):
    """A named API token with an expiry. Only a hash of the secret is kept (knox); the secret
    is shown once, when the token is made. ``token_key`` (its first characters) tells tokens
    apart in lists without revealing them."""

    id: models.BigAutoField = models.BigAutoField(primary_key=True)
    digest: models.CharField = models.CharField(max_length=128, unique=True)
    name: models.CharField = models.CharField(max_length=100)
    last_used_at: models.DateTimeField = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self):
        return f"{self.name} ({self.user}, {self.token_key}…)"
