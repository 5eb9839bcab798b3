from django.urls import include, path
from rest_framework.authtoken.views import obtain_auth_token

from cascade_admin.api import Router

from . import views

router = Router()
router.register("versions", views.VersionViewSet, basename="version")
router.register("keyword-sets", views.KeywordSetViewSet, basename="keyword-set")

urlpatterns = [
    path("classify/", views.ClassifyView.as_view(), name="classify"),
    path("auth/token/", obtain_auth_token, name="api-token"),
    path("", include(router.urls)),
]
