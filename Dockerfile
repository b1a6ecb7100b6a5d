FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.lock .
RUN pip install --no-cache-dir -r requirements.lock
COPY . .
RUN useradd --system --uid 1000 dpi && mkdir -p /app/var && chown dpi /app/var
USER dpi
EXPOSE 8000
CMD ["gunicorn", "-c", "python:dpi.gunicorn_conf", "dpi.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
