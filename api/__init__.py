"""smartcity's HTTP api: devices, their readings and the city summary, over FastAPI."""

from api.main import create_app, main

__all__ = ["create_app", "main"]
