from django.urls import path  # noqa: F401 - filled in as pages arrive

app_name = "tuning"

urlpatterns = []
