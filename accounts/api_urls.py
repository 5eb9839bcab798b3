from django.urls import include, path

from cascade_admin.api import Router

from . import api

router = Router()
router.register("auth/tokens", api.TokenViewSet, basename="api-token-manage")

urlpatterns = [
    path("auth/token/", api.ObtainTokenView.as_view(), name="api-token"),
    path("", include(router.urls)),
]
