from cascade_admin.api import Router

from . import views

router = Router()
router.register("slots", views.SlotViewSet, basename="slot")
router.register("routes", views.RouteViewSet, basename="route")
router.register("publications", views.PublicationViewSet, basename="publication")
router.register("rollouts", views.RolloutViewSet, basename="rollout")

urlpatterns = router.urls
