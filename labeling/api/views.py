"""Labeling API: reviewers read and label; operators sync, draw batches and adjudicate."""

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from accounts.permissions import IsOperator, IsReviewer
from accounts.roles import OPERATOR, has_role
from cascade_admin.api import UtcIsoDateTimeFilter, validated

from .. import export, selectors, services
from ..models import Batch, BatchItem, Label, LabelImport, SyncRun, Trace
from ..sync import ALL_SINCE, sync_end
from ..tasks import sync_queue
from . import serializers as s


def _item_context(request, batch) -> dict:
    return {"visibility": selectors.visibility(request.user, batch)}


class TraceFilter(filters.FilterSet):
    since = UtcIsoDateTimeFilter(field_name="started_at", lookup_expr="gte")
    until = UtcIsoDateTimeFilter(field_name="started_at", lookup_expr="lt")

    class Meta:
        model = Trace
        fields = ["tier", "classifier_version", "user_id", "thumbs_down", "since", "until"]


class TraceViewSet(viewsets.ReadOnlyModelViewSet):
    """Synced traces. Reviewers do not list them: that would defeat blind labeling."""

    queryset = Trace.objects.order_by("-started_at", "-id")
    serializer_class = s.TraceSerializer
    filterset_class = TraceFilter

    permission_classes = [IsOperator]


class SyncRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = SyncRun.objects.all()
    serializer_class = s.SyncRunSerializer

    @extend_schema(request=s.SyncRunCreateSerializer, responses={202: s.SyncRunSerializer})
    def create(self, request):
        """Start a sync (default window: from the watermark less an overlap to now less the
        ingest lag); runs on a worker. An interrupted run of the same window is resumed
        from its cursor and returned instead of a new one."""
        data = validated(s.SyncRunCreateSerializer, request.data)
        if data.pop("all"):
            data["since"] = ALL_SINCE
        run = sync_queue(actor=request.user, **data)
        return Response(s.SyncRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=s.SyncEndSerializer, responses=s.SyncRunSerializer)
    @action(detail=True, methods=["post"])
    def end(self, request, pk=None):
        """End a running sync now (audited); the next sync of its window resumes it."""
        data = validated(s.SyncEndSerializer, request.data)
        run = sync_end(actor=request.user, run=self.get_object(), reason=data["reason"])
        return Response(s.SyncRunSerializer(run).data)


class BatchViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Batch.objects.select_related("created_by").order_by("-created_at", "-id")
    filterset_fields = ["kind"]

    def get_serializer_class(self):
        return s.BatchDetailSerializer if self.action == "retrieve" else s.BatchSerializer

    def list(self, request, *args, **kwargs):
        """Batches with their progress (two queries for the page, not two per batch)."""
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        assert page is not None  # DEFAULT_PAGINATION_CLASS pages every list
        progress = selectors.batches_progress([b.pk for b in page])
        data = s.BatchSerializer(page, many=True, context={"progress": progress}).data
        return self.get_paginated_response(data)

    @extend_schema(request=s.BatchCreateSerializer, responses={201: s.BatchSerializer})
    def create(self, request):
        data = validated(s.BatchCreateSerializer, request.data)
        batch = services.batch_create(actor=request.user, **data)
        return Response(s.BatchSerializer(batch).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=s.BatchItemSerializer(many=True))
    # No filters here: the batch list's ?kind= would be offered and silently ignored.
    @action(detail=True, methods=["get"], filter_backends=[])
    def items(self, request, pk=None):
        batch = self.get_object()
        items = (
            BatchItem.objects.filter(batch=batch)
            .select_related("trace")
            .prefetch_related("labels__reviewer")
            .order_by("position")
        )
        page = self.paginate_queryset(items)
        data = s.BatchItemSerializer(page, many=True, context=_item_context(request, batch)).data
        return self.get_paginated_response(data)

    @extend_schema(request=None, responses={200: s.BatchItemSerializer, 204: None})
    @action(detail=True, methods=["post"], permission_classes=[IsReviewer])
    def next(self, request, pk=None):
        """Claim the next item for the caller (204 when nothing is left)."""
        batch = self.get_object()
        item = services.item_claim_next(batch=batch, reviewer=request.user)
        if item is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(s.BatchItemSerializer(item, context=_item_context(request, batch)).data)

    @extend_schema(request=s.LabelUndoSerializer, responses={200: s.BatchItemSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsReviewer])
    def undo(self, request, pk=None):
        """Take back the caller's most recent label or skip in this batch; returns its item,
        held for the caller to label again. 409 when there is none, an operator settled the
        item, or another reviewer holds it now."""
        batch = self.get_object()
        data = validated(s.LabelUndoSerializer, request.data)
        item = services.label_undo(reviewer=request.user, batch=batch, label_id=data.get("label"))
        return Response(s.BatchItemSerializer(item, context=_item_context(request, batch)).data)

    @extend_schema(
        # Not "format": DRF reserves that query parameter for content negotiation.
        parameters=[OpenApiParameter("as", str, enum=["csv", "jsonl"], default="jsonl")],
        responses={(200, "text/csv"): str, (200, "application/x-ndjson"): str},
    )
    @action(detail=True, methods=["get"], url_path="export", permission_classes=[IsOperator])
    def export_labels(self, request, pk=None):
        batch = self.get_object()
        kind = request.query_params.get("as", "jsonl")
        if kind not in ("csv", "jsonl"):
            raise ValidationError({"as": ["Use csv or jsonl."]})
        rows = export.label_rows(export.labels_for_batch(batch.pk))
        body = export.as_csv(rows) if kind == "csv" else export.as_jsonl(rows)
        response = StreamingHttpResponse(
            body, content_type="text/csv" if kind == "csv" else "application/x-ndjson"
        )
        response["Content-Disposition"] = f'attachment; filename="batch-{batch.pk}-labels.{kind}"'
        return response


class LabelViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Label.objects.select_related("reviewer").order_by("-created_at", "-id")
    serializer_class = s.LabelSerializer
    filterset_fields = ["item__batch", "value", "reviewer__username"]

    def get_permissions(self):
        # Labeling is the reviewer's write.
        return [IsReviewer()] if self.action == "create" else super().get_permissions()

    def get_queryset(self):
        # Reviewers see their own labels only: another's answer would bias theirs.
        labels = super().get_queryset()
        if not has_role(self.request.user, OPERATOR):
            labels = labels.filter(reviewer=self.request.user)
        return labels

    @extend_schema(request=s.LabelCreateSerializer, responses={201: s.LabelSerializer})
    def create(self, request):
        data = validated(s.LabelCreateSerializer, request.data)
        label = services.label_submit(reviewer=request.user, **data)
        return Response(s.LabelSerializer(label).data, status=status.HTTP_201_CREATED)


class ItemViewSet(viewsets.GenericViewSet):
    queryset = BatchItem.objects.all()
    serializer_class = s.AdjudicateSerializer  # what OPTIONS describes

    @extend_schema(request=s.AdjudicateSerializer, responses=s.BatchItemSerializer)
    @action(detail=True, methods=["post"])
    def adjudicate(self, request, pk=None):
        item = get_object_or_404(BatchItem, pk=pk)
        data = validated(s.AdjudicateSerializer, request.data)
        item = services.item_adjudicate(actor=request.user, item=item, **data)
        return Response(s.BatchItemSerializer(item).data)


class LabelImportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Files of labels brought in as training labels (never traffic, never headline rates)."""

    queryset = LabelImport.objects.select_related("created_by", "undone_by")
    serializer_class = s.LabelImportSerializer
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": s.LabelImportRequestSerializer},
        responses={201: s.LabelImportResultSerializer, 200: s.LabelImportResultSerializer},
    )
    def create(self, request):
        """Import a JSONL or CSV file; ``dry_run`` only checks and counts. A file with a bad
        row imports nothing (400 listing every bad row) unless ``skip_bad``."""
        data = validated(s.LabelImportRequestSerializer, request.data)
        upload = data["file"]
        outcome = services.label_import_create(
            actor=request.user,
            data=upload.read(),
            filename=upload.name or "",
            name=data["name"],
            dry_run=data["dry_run"],
            skip_bad=data["skip_bad"],
        )
        body = outcome.summary()
        body["label_import"] = (
            s.LabelImportSerializer(outcome.label_import).data if outcome.label_import else None
        )
        return Response(body, status=status.HTTP_200_OK if data["dry_run"] else 201)

    @extend_schema(request=None, responses=s.LabelImportSerializer)
    @action(detail=True, methods=["post"])
    def undo(self, request, pk=None):
        """Take the whole import back (audited); the labels it replaced come back."""
        label_import = services.label_import_undo(
            actor=request.user, label_import=self.get_object()
        )
        return Response(s.LabelImportSerializer(label_import).data)
