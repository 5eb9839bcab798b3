from cascade_admin.api import Router

from . import views

router = Router()
router.register("traces", views.TraceViewSet, basename="trace")
router.register("sync-runs", views.SyncRunViewSet, basename="sync-run")
router.register("batches", views.BatchViewSet, basename="batch")
router.register("labels", views.LabelViewSet, basename="label")
router.register("items", views.ItemViewSet, basename="item")
router.register("label-imports", views.LabelImportViewSet, basename="label-import")

urlpatterns = router.urls
