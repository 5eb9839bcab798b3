"""The API's own accounts: get a token with a password; list and revoke tokens."""

from django.conf import settings
from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from cascade_admin.api import validated

from . import tokens
from .models import ApiToken
from .permissions import IsReviewer
from .throttles import LoginThrottle


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, write_only=True)
    name = serializers.CharField(
        max_length=100, required=False, default="api", help_text="Tells your tokens apart."
    )
    expires_in_days = serializers.IntegerField(
        min_value=1,
        required=False,
        help_text="Days until the token stops working (default API_TOKEN_TTL_DAYS, 90).",
    )

    def validate_expires_in_days(self, value):
        if value > settings.API_TOKEN_MAX_DAYS:
            raise ValidationError(f"At most {settings.API_TOKEN_MAX_DAYS} days.")
        return value


class TokenSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True)
    key = serializers.CharField(
        source="token_key", read_only=True, help_text="The secret's first characters."
    )
    current = serializers.SerializerMethodField(help_text="The token of this very request.")

    class Meta:
        model = ApiToken
        fields = ["id", "name", "user", "key", "created", "expiry", "last_used_at", "current"]

    def get_current(self, token) -> bool:
        request = self.context.get("request")
        return bool(request and isinstance(request.auth, ApiToken) and request.auth.pk == token.pk)


class NewTokenSerializer(TokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The secret: shown this once.")

    class Meta(TokenSerializer.Meta):
        fields = ["token", *TokenSerializer.Meta.fields]


class ObtainTokenView(APIView):
    """A new named API token for a username and password. Repeated wrong passwords lock the
    username and the client address out for a while (429 with Retry-After)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginThrottle]

    @extend_schema(request=TokenRequestSerializer, responses={200: NewTokenSerializer})
    def post(self, request):
        data = validated(TokenRequestSerializer, request.data)
        # The Django request, not DRF's wrapper: the lockout is recorded on it.
        user = authenticate(request._request, username=data["username"], password=data["password"])
        if user is None:
            raise ValidationError(
                {"non_field_errors": ["Unable to log in with these credentials."]}
            )
        token, secret = tokens.token_create(
            actor=user, user=user, name=data["name"], days=data.get("expires_in_days")
        )
        body = NewTokenSerializer(token, context={"request": request}).data
        return Response({**body, "token": secret}, status=status.HTTP_200_OK)


class TokenViewSet(mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Your API tokens (an admin sees everyone's; ``?user=`` narrows). DELETE revokes one."""

    serializer_class = TokenSerializer
    permission_classes = [IsReviewer]

    @extend_schema(
        parameters=[OpenApiParameter("user", str, description="Only this user's (admins).")]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return ApiToken.objects.none()
        found = tokens.tokens_visible_to(self.request.user)
        if username := self.request.query_params.get("user"):
            found = found.filter(user__username=username)
        return found

    def perform_destroy(self, instance):
        tokens.token_revoke(actor=self.request.user, token=instance)
