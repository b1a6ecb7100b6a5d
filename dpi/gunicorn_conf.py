"""gunicorn settings for every way dpi is served (``make run``, the Docker image, docker-compose):
``gunicorn -c python:dpi.gunicorn_conf dpi.wsgi:application``.

Logs are JSON lines on stdout/stderr (dpi/logs.py): the access line has the path, never the query string
(searches carry identifiers there) nor the referrer.
"""

import gc
import os

logger_class = "dpi.logs.GunicornLogger"
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("DPI_LOG_LEVEL", "INFO").lower()
bind = os.environ.get("DPI_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("DPI_WEB_WORKERS", "3"))
# gunicorn's sync worker, but a new connection wakes one idle worker, not all of them (dpi/gunicorn_worker.py).
worker_class = "dpi.gunicorn_worker.ExclusiveWakeupSyncWorker"
# No runtime control socket (gunicorn >= 24): one fixed path under $HOME would be shared by every instance.
control_socket_disable = True


def post_worker_init(worker):
    """Once the worker has loaded Django: its objects (modules, URL patterns, models, about 120,000 of them) move
    out of the collector's reach, so a full collection no longer walks them again and again (issue #18)."""
    gc.freeze()
