from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shows rows that change only through audited services (or never): no add, edit, delete."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
