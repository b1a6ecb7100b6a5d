FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DPI_STATIC_ROOT=/app/staticfiles
WORKDIR /app
COPY requirements.lock .
RUN pip install --no-cache-dir -r requirements.lock
COPY . .
# Static files (CSS, JS, the admin's scripts, Swagger UI) are collected into the image at build time: hashed
# names and gzip copies, served by WhiteNoise from dpi itself (no separate web server needed). The build needs
# no database or secret: the values below only let the settings load for this one command.
RUN DATABASE_URL=postgresql://build@localhost/build REDIS_URL=redis://localhost:6379/0 \
    DPI_SECRET_KEY=collectstatic-only DPI_VAR_DIR=/tmp/build-var \
    python manage.py collectstatic --noinput -v0 && rm -rf /tmp/build-var
RUN useradd --system --uid 1000 dpi && mkdir -p /app/var && chown dpi /app/var
USER dpi
EXPOSE 8000
CMD ["gunicorn", "-c", "python:dpi.gunicorn_conf", "dpi.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
