"""The Quanzi process: app factory, settings, CLI, HTTP API, Socket.IO hub, auth and persistence."""
