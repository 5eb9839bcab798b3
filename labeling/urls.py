from django.urls import path

from . import views

app_name = "labeling"

urlpatterns = [
    path("", views.home, name="home"),
    path("batches/new/", views.batch_create, name="batch-create"),
    path("sync/", views.sync_now, name="sync"),
    path("sync/runs/", views.sync_runs, name="sync-runs"),
    path("langfuse/check/", views.langfuse_check, name="langfuse-check"),
    path("sync/runs/<int:run_id>/end/", views.sync_stop, name="sync-end"),
    path("batches/<int:batch_id>/", views.batch_detail, name="batch"),
    path("batches/<int:batch_id>/work/", views.work, name="work"),
    path("batches/<int:batch_id>/items/<int:position>/", views.item, name="item"),
    path("batches/<int:batch_id>/undo/", views.undo, name="undo"),
    path("imports/", views.imports, name="imports"),
    path("imports/<int:import_id>/undo/", views.import_undo, name="import-undo"),
    path("adjudication/", views.adjudication, name="adjudication"),
    path("adjudication/<int:item_id>/", views.adjudicate, name="adjudicate"),
]
