from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from cascade_admin import health
from cascade_admin.api_root import ApiRootView
from labeling.metrics import metrics

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/", include("accounts.urls")),
    path("django-admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "api/docs/",
        # Swagger UI sets inline styles on its elements; only this page allows them.
        # A person who is not logged in goes to the login page, not to a bare 403.
        login_required(
            csp_update({"style-src": ["'unsafe-inline'"]})(
                SpectacularSwaggerSplitView.as_view(url_name="api-schema")
            )
        ),
        name="api-docs",
    ),
    # Before the apps' routers, whose own roots would each list only that app's resources.
    path("api/v1/", ApiRootView.as_view(), name="api-root"),
    path("api/v1/", include("accounts.api_urls")),
    path("api/v1/", include("routing.api.urls")),
    path("api/v1/", include("labeling.api.urls")),
    path("api/v1/", include("tuning.api.urls")),
    path("api/v1/", include("rollouts.api.urls")),
    path("labeling/", include("labeling.urls")),
    path("tuning/", include("tuning.urls")),
    path("rollouts/", include("rollouts.urls")),
    path("audit/", include("audit.urls")),
    path("", include("routing.urls")),
]

handler400 = "cascade_admin.error_views.bad_request"
handler403 = "cascade_admin.error_views.permission_denied"
handler404 = "cascade_admin.error_views.not_found"
handler500 = "cascade_admin.error_views.server_error"
