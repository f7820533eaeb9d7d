"""The async driver: runs sans-I/O sessions over ASGI WebSockets served by uvicorn."""
