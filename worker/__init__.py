"""Labeling in a worker process: the shared pipeline (``labeling``), the per-batch step and the
local run (``runner``), the Celery task (``tasks``) and the heartbeat that keeps a worker's
leases (``heartbeat``). The Celery app is ``soundtag.fleet``: ``celery -A soundtag.fleet worker``."""
