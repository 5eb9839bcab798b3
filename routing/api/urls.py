from django.urls import include, path

from cascade_admin.api import Router

from . import views

router = Router()
router.register("versions", views.VersionViewSet, basename="version")
router.register("keyword-sets", views.KeywordSetViewSet, basename="keyword-set")

urlpatterns = [
    path("classify/", views.ClassifyView.as_view(), name="classify"),
    path("", include(router.urls)),
]
