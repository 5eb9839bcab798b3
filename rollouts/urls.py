from django.urls import path

from . import views

app_name = "rollouts"

urlpatterns = [
    path("", views.rollout_list, name="list"),
    path("health", views.health, name="health"),
    path("start/", views.rollout_start, name="start"),
    path("<int:pk>/", views.rollout_detail, name="detail"),
    path(
        "<int:pk>/<str:action>/",
        views.rollout_action,
        name="action",
    ),
    path("publications/", views.publication_start, name="publish"),
    path("publications/<int:pk>/", views.publication_detail, name="publication"),
    path("publications/<int:pk>/retry/", views.publication_retry, name="publication-retry"),
]
