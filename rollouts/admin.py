"""The slot and route registry is kept in the Django admin; rollouts are read-only there.

Registry edits are audited, and a route or slot held by a rollout cannot be re-pointed:
the weight patches read the route's HTTPRoute and rule index live.
"""

from django import forms
from django.contrib import admin

from cascade_admin.admin import ReadOnlyAdmin

from . import targets
from .k8s_adapter import KubeError, check_only_backends
from .models import HOLDS_ROUTE, DailyMisrouteCheck, Publication, Rollout, Route, Slot
from .registry import registry_delete, registry_save


class AuditedAdmin(admin.ModelAdmin):
    held_fields: tuple[str, ...] = ()

    def is_held(self, obj) -> bool:
        raise NotImplementedError

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None and self.is_held(obj):
            readonly += [f for f in self.held_fields if f not in readonly]
        return readonly

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not (obj and self.is_held(obj))

    def get_actions(self, request):
        # One by one only: a bulk delete would skip the audit and the held check.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def save_model(self, request, obj, form, change):
        registry_save(actor=request.user, obj=obj, change=change)

    def delete_model(self, request, obj):
        registry_delete(actor=request.user, obj=obj)


@admin.register(Slot)
class SlotAdmin(AuditedAdmin):
    list_display = ["name", "namespace", "service", "deployment", "configmap"]
    held_fields = ("name", "namespace", "service", "deployment", "configmap")

    def is_held(self, slot) -> bool:
        routes = Route.objects.filter(stable_slot=slot) | Route.objects.filter(canary_slot=slot)
        return Rollout.objects.filter(HOLDS_ROUTE, route__in=routes).exists()


class RouteForm(forms.ModelForm):
    # Its fields are the admin's; Meta comes from RouteAdmin through modelform_factory.
    def clean(self):
        """On a cluster, the HTTPRoute rule must exist and hold the two backends only."""
        super().clean()
        data = self.cleaned_data  # what ModelForm.clean returns
        needed = ("namespace", "httproute", "rule_index", "stable_backend", "canary_backend")
        if self.errors or any(data.get(k) in (None, "") for k in needed):
            return data
        backends = {data["stable_backend"], data["canary_backend"]}
        with targets.kube() as kube:
            if kube is None:
                return data  # the local target: no cluster to check against
            try:
                route = kube.read_httproute(data["namespace"], data["httproute"])
                check_only_backends(route, data["rule_index"], backends)
            except KubeError as exc:
                raise forms.ValidationError(str(exc)) from None
        return data


@admin.register(Route)
class RouteAdmin(AuditedAdmin):
    form = RouteForm
    list_display = [
        "name",
        "namespace",
        "httproute",
        "rule_index",
        "stable_backend",
        "canary_backend",
        "stable_weight",
        "canary_weight",
    ]
    readonly_fields = ["stable_weight", "canary_weight", "weights_updated_at"]
    held_fields = (
        "name",
        "namespace",
        "httproute",
        "rule_index",
        "stable_backend",
        "canary_backend",
        "stable_slot",
        "canary_slot",
    )

    def is_held(self, route) -> bool:
        return Rollout.objects.filter(HOLDS_ROUTE, route=route).exists()


@admin.register(Publication)
class PublicationAdmin(ReadOnlyAdmin):
    list_display = ["id", "version", "slot", "state", "created_at"]


@admin.register(Rollout)
class RolloutAdmin(ReadOnlyAdmin):
    list_display = ["id", "version", "route", "state", "stage", "canary_weight", "created_at"]


@admin.register(DailyMisrouteCheck)
class DailyMisrouteCheckAdmin(ReadOnlyAdmin):
    list_display = ["rollout", "day", "result", "misroute", "labeled", "threshold", "action"]
    list_filter = ["result", "action"]
