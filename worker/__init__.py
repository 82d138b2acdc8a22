"""Labeling audio: decoding (audio), the model (clap), the shared pipeline (labeling), reading
files (storage) and the Celery tasks that run it on a fleet (tasks).

``celery -A worker worker`` finds the Celery app here; it is imported on first use so that the
modules above can be used without Celery configured.
"""


def __getattr__(name: str):
    if name == "app":
        from worker.app import app

        return app
    raise AttributeError(name)
