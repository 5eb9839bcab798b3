# syntax=docker/dockerfile:1
# Cascade Console: one image for the web (gunicorn), worker (celery worker) and beat
# (celery beat) processes; the Deployment picks the command. Build from the repository root:
#   docker build -t cascade-console:$(git rev-parse --short HEAD) .
# Pin the base by digest in your registry mirror (docs/operator-guide.md, "Images").
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- build: the dependencies in a venv, and the collected static files ---------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY requirements/console.txt ./requirements/
# The runtime dependencies from the lock file, every download checked against its hash (not
# the project itself: it runs from /app, templates and static files included).
RUN /opt/venv/bin/pip install --require-hashes --requirement requirements/console.txt \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib
COPY manage.py ./
COPY cascade_admin ./cascade_admin
COPY accounts ./accounts
COPY audit ./audit
COPY routing ./routing
COPY labeling ./labeling
COPY tuning ./tuning
COPY rollouts ./rollouts
COPY templates ./templates
COPY static ./static
# Hashed, compressed static files for WhiteNoise. The settings need a database URL and a key
# to load in production mode; collectstatic connects to neither.
RUN DATABASE_URL=postgres://collectstatic@127.0.0.1/unused SECRET_KEY=collectstatic-only \
    STATIC_ROOT=/src/staticfiles CASCADE_VAR_DIR=/tmp/var \
    /opt/venv/bin/python manage.py collectstatic --noinput -v0 \
    && /opt/venv/bin/python -m compileall -q /src

# --- runtime: no compilers, no pip cache, a non-root user ----------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    STATIC_ROOT=/app/staticfiles \
    CASCADE_VAR_DIR=/tmp/cascade \
    PORT=8000
RUN groupadd --system --gid 10001 cascade \
    && useradd --system --uid 10001 --gid cascade --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin cascade
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --from=build /src /app
COPY gunicorn.conf.py ./
USER 10001:10001
EXPOSE 8000
# web; the worker and beat Deployments override the command (deploy/base/console/).
CMD ["gunicorn", "--config", "/app/gunicorn.conf.py"]
