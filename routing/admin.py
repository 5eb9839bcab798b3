from django.contrib import admin

from .models import ClassifierVersion, Keyword, KeywordSet


class ReadOnlyAdmin(admin.ModelAdmin):
    """Versions change only through the services (audited); the admin shows them."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


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
