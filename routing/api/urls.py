from django.urls import include, path
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("versions", views.VersionViewSet, basename="version")
router.register("keyword-sets", views.KeywordSetViewSet, basename="keyword-set")

urlpatterns = [
    path("classify/", views.ClassifyView.as_view(), name="classify"),
    path("auth/token/", obtain_auth_token, name="api-token"),
    path("", include(router.urls)),
]
