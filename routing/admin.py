from django.contrib import admin

from cascade_admin.admin import ReadOnlyAdmin

from .models import ClassifierVersion, Keyword, KeywordSet


class KeywordInline(admin.TabularInline):
    model = Keyword
    fields = ("text", "language", "rationale")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(ClassifierVersion)
class ClassifierVersionAdmin(ReadOnlyAdmin):
    list_display = ("name", "status", "parent", "token_threshold", "turn_threshold", "created_at")
    list_filter = ("status",)


@admin.register(KeywordSet)
class KeywordSetAdmin(ReadOnlyAdmin):
    list_display = ("name", "frozen", "created_at")
    inlines = [KeywordInline]
