"""Labeling audio: decoding (audio), the model (clap), the shared pipeline (labeling), reading
files (storage), the local run and the per-batch step (runner) and the Celery task (tasks).

``celery -A worker worker`` finds the Celery app (soundtag.fleet) here; it is imported on first
use so that the modules above can be used without Celery configured.
"""


def __getattr__(name: str):
    if name == "app":
        from soundtag.fleet import app

        return app
    raise AttributeError(name)
