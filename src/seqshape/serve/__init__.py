"""The HTTP server (`seqshape serve`): FastAPI routes over model adapters, streams kept in SQLite.

    from seqshape.serve import ServeConfig, create_app, load_models
    app = create_app(load_models(["models/jv", "big=models/jv-large"]), ServeConfig(max_batch=64))
    # uvicorn.run(app, host="127.0.0.1", port=8000)

Model kinds: classifiers (predict, streams), forecasters (forecast, streams), anomaly detectors
(detect, streams); docs/serve.md is the user's guide.

app.py: routes and errors; gate.py: auth, limits and the observe fast path; schemas.py: request
and response models; config.py: ServeConfig; adapters.py (+ adapter_base.py, forecast_adapter.py):
what each model kind serves; store.py: the SQLite state file; metrics.py: Prometheus metrics;
docs.py: /docs without a CDN; protocol.py: header and body read timeouts for uvicorn.
"""

from .adapters import (
    ClassifierAdapter,
    DetectorAdapter,
    ForecasterAdapter,
    ModelAdapter,
    NotSupportedError,
    load_models,
)
from .app import ServeConfig, create_app

__all__ = [
    "ClassifierAdapter",
    "DetectorAdapter",
    "ForecasterAdapter",
    "ModelAdapter",
    "NotSupportedError",
    "ServeConfig",
    "create_app",
    "load_models",
]
