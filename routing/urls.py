from django.urls import path

from . import views

app_name = "routing"
name = "<str:name>"

urlpatterns = [
    path("", views.home, name="home"),
    path("versions/", views.version_list, name="version-list"),
    path("versions/diff/", views.version_diff, name="version-diff"),
    path(f"versions/{name}/", views.version_detail, name="version-detail"),
    path(f"versions/{name}/edit/", views.version_edit, name="version-edit"),
    path(f"versions/{name}/copy/", views.version_copy, name="version-copy"),
    path(f"versions/{name}/freeze/", views.version_freeze, name="version-freeze"),
    path(f"versions/{name}/retire/", views.version_retire, name="version-retire"),
    path(f"versions/{name}/delete/", views.version_delete, name="version-delete"),
    path(f"versions/{name}/keywords/", views.keyword_add, name="keyword-add"),
    path(
        f"versions/{name}/keywords/<int:keyword_id>/remove/",
        views.keyword_remove,
        name="keyword-remove",
    ),
    path("playground/", views.playground, name="playground"),
]
