from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("slots", views.SlotViewSet, basename="slot")
router.register("routes", views.RouteViewSet, basename="route")
router.register("publications", views.PublicationViewSet, basename="publication")
router.register("rollouts", views.RolloutViewSet, basename="rollout")

urlpatterns = router.urls
