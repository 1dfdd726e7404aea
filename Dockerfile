# One image for every process of the stack (see docs/operations.md):
#   api      uvicorn api.main:app --host 0.0.0.0 --port 8000   (the default command)
#   worker   celery -A workers.celery_app:app worker
#   beat     celery -A workers.celery_app:app beat
#   flower   celery -A workers.celery_app:app flower --port=5555
#   migrate  python -m workers.migrate
# The API also serves the browser app, built in the first stage (docs/frontend.md).
FROM node:20-slim AS frontend
WORKDIR /frontend
# An npm workspace: the app and packages/realtime (@infinitescribe/realtime), built first.
COPY frontend/package.json frontend/package-lock.json ./
COPY frontend/packages/realtime/package.json ./packages/realtime/
RUN npm ci --no-audit --no-fund
COPY frontend/index.html frontend/tsconfig.json frontend/vite.config.ts ./
COPY frontend/packages/realtime/tsconfig.json frontend/packages/realtime/tsconfig.build.json ./packages/realtime/
COPY frontend/packages/realtime/src ./packages/realtime/src
COPY frontend/src ./src
RUN npm run build

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Processes run as this unprivileged user, in its home (beat keeps its schedule file there).
RUN useradd --create-home --home-dir /home/app --uid 10001 --shell /usr/sbin/nologin app

WORKDIR /build

# Dependencies first, in their own layer: rebuilt only when pyproject.toml or README.md change.
COPY pyproject.toml README.md ./
RUN mkdir progress workers api \
    && touch progress/__init__.py workers/__init__.py api/__init__.py \
    && pip install ".[api,app]" \
    && pip uninstall -y infinitescribe-realtime \
    && rm -rf progress workers api build *.egg-info

# The project itself (the Alembic migrations ship inside the workers and progress packages).
COPY progress ./progress
COPY workers ./workers
COPY api ./api
RUN pip install --no-deps . && rm -rf /build

WORKDIR /home/app
COPY --from=frontend /frontend/dist ./frontend
ENV SSE_FRONTEND_DIR=/home/app/frontend
USER app

EXPOSE 8000 5555
# Idle keep-alive sockets closed after 5 s; past 11,000 sockets (above the 10,000 streams an
# instance accepts) new requests get 503. Slow request heads are the front proxy's job
# (deploy/nginx/realtime.conf): uvicorn has no timeout for them.
CMD ["uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000", "--timeout-keep-alive", "5", "--limit-concurrency", "11000"]
