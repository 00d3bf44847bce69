"""HTTP service and web page (FastAPI): ``aigclabel serve``."""

from .app import ServiceSettings, create_app

__all__ = ["ServiceSettings", "create_app"]
