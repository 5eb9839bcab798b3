"""Thin API views: parse, call a service or selector, serialize."""

from django.shortcuts import get_object_or_404
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsReviewer
from accounts.throttles import ClassifyThrottle
from cascade_admin.api import validated

from .. import selectors, services
from ..engine import MessagesError, conversation_text
from ..models import ClassifierVersion, KeywordSet, VersionStatus
from . import serializers as s


class VersionFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=VersionStatus.choices)
    parent = filters.CharFilter(field_name="parent__name")
    name = filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = ClassifierVersion
        fields = ["status", "parent", "name"]


class KeywordSetViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = (
        KeywordSet.objects.select_related("version").prefetch_related("keywords").order_by("-id")
    )
    serializer_class = s.KeywordSetSerializer


class VersionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Classifier versions. Only drafts change; freeze makes a version immutable."""

    serializer_class = s.VersionSerializer
    lookup_field = "name"
    lookup_value_regex = r"[A-Za-z0-9._-]+"
    filterset_class = VersionFilter

    def get_queryset(self):
        return (
            ClassifierVersion.objects.select_related(
                "parent", "created_by", "frozen_by", "keyword_set"
            )
            .prefetch_related("keyword_set__keywords")
            .order_by("-created_at", "-id")
        )

    def _show(self, version, code=status.HTTP_200_OK):
        version = self.get_queryset().get(pk=version.pk)
        return Response(s.VersionSerializer(version).data, status=code)

    @extend_schema(request=s.VersionCreateSerializer, responses={201: s.VersionSerializer})
    def create(self, request):
        data = validated(s.VersionCreateSerializer, request.data)
        version = services.version_create_draft(actor=request.user, **data)
        return self._show(version, status.HTTP_201_CREATED)

    @extend_schema(request=s.VersionUpdateSerializer, responses=s.VersionSerializer)
    def partial_update(self, request, name=None):
        data = validated(s.VersionUpdateSerializer, request.data, partial=True)
        version = services.version_update_draft(
            actor=request.user, version=self.get_object(), **data
        )
        return self._show(version)

    def perform_destroy(self, instance):
        services.version_delete_draft(actor=self.request.user, version=instance)

    @extend_schema(request=s.VersionCopySerializer, responses={201: s.VersionSerializer})
    @action(detail=True, methods=["post"])
    def copy(self, request, name=None):
        """Start a new draft from this version (any status)."""
        data = validated(s.VersionCopySerializer, request.data)
        version = services.version_copy(actor=request.user, source=self.get_object(), **data)
        return self._show(version, status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=s.VersionSerializer)
    @action(detail=True, methods=["post"])
    def freeze(self, request, name=None):
        return self._show(services.version_freeze(actor=request.user, version=self.get_object()))

    @extend_schema(request=s.RetireSerializer, responses=s.VersionSerializer)
    @action(detail=True, methods=["post"])
    def retire(self, request, name=None):
        data = validated(s.RetireSerializer, request.data)
        version = services.version_retire(actor=request.user, version=self.get_object(), **data)
        return self._show(version)

    @extend_schema(request=s.KeywordInputSerializer, responses={201: s.KeywordSerializer})
    @action(detail=True, methods=["post"], url_path="keywords")
    def add_keyword(self, request, name=None):
        data = validated(s.KeywordInputSerializer, request.data)
        keyword = services.keyword_add(actor=request.user, version=self.get_object(), **data)
        return Response(s.KeywordSerializer(keyword).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"keywords/(?P<keyword_id>\d+)")
    def remove_keyword(self, request, name=None, keyword_id=None):
        services.keyword_remove(
            actor=request.user, version=self.get_object(), keyword_id=int(keyword_id)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        parameters=[OpenApiParameter("against", str, required=True, description="Older version")],
        responses=dict,
    )
    @action(detail=True, methods=["get"])
    def diff(self, request, name=None):
        """What changes from ``against`` to this version, with a markdown summary."""
        against = request.query_params.get("against")
        if not against:
            raise ValidationError({"against": ["Name the version to compare with."]})
        old = get_object_or_404(ClassifierVersion, name=against)
        return Response(selectors.version_diff(old, self.get_object()).as_dict())

    @extend_schema(responses=dict)
    @action(detail=True, methods=["get"])
    def config(self, request, name=None):
        """The canonical config JSON a classifier pod loads."""
        return Response(self.get_object().config)


class ClassifyView(APIView):
    """Decide one conversation with one or several versions, drafts included."""

    permission_classes = [IsReviewer]
    throttle_classes = [ClassifyThrottle]

    @extend_schema(request=s.ClassifyRequestSerializer, responses=s.ClassifyResponseSerializer)
    def post(self, request):
        data = validated(s.ClassifyRequestSerializer, request.data)
        versions = versions_by_name(data.get("versions"))
        try:
            text = conversation_text(data["messages"])
            results = selectors.classify_with(versions, data["messages"])
        except MessagesError as e:
            raise ValidationError({"messages": [str(e)]}) from None
        return Response({"text": text, "results": [decision_json(v, d) for v, d in results]})


def versions_by_name(names):
    """The named versions in the order given, or every version that is not retired."""
    if not names:
        return list(ClassifierVersion.objects.exclude(status=VersionStatus.RETIRED).order_by("id"))
    found = {v.name: v for v in ClassifierVersion.objects.filter(name__in=names)}
    missing = [n for n in names if n not in found]
    if missing:
        raise ValidationError({"versions": [f"Unknown version(s): {', '.join(missing)}."]})
    return [found[n] for n in dict.fromkeys(names)]


def decision_json(version, decision) -> dict:
    return {
        "version": version.name,
        "config_sha256": version.config_sha256,
        **decision.as_dict(),
        "char_count": decision.char_count,
        "byte_count": decision.byte_count,
        "turn_count": decision.turn_count,
        "spans": [{"start": x.start, "end": x.end, "keyword": x.keyword} for x in decision.spans],
    }
