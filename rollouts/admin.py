"""The slot and route registry is kept in the Django admin; rollouts are read-only there."""

from django.contrib import admin

from cascade_admin.admin import ReadOnlyAdmin

from .models import Publication, Rollout, Route, Slot


@admin.register(Slot)
class SlotAdmin(admin.ModelAdmin):
    list_display = ["name", "namespace", "service", "deployment", "configmap"]


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
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


@admin.register(Publication)
class PublicationAdmin(ReadOnlyAdmin):
    list_display = ["id", "version", "slot", "state", "created_at"]


@admin.register(Rollout)
class RolloutAdmin(ReadOnlyAdmin):
    list_display = ["id", "version", "route", "state", "stage", "canary_weight", "created_at"]
