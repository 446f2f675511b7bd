"""The domain of live class rooms and circle chat: plain Python, no I/O libraries.

``server/`` and ``media/`` import from here; nothing here imports them, aiohttp, socket.io or SQLAlchemy.
"""
