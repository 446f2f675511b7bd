"""The Socket.IO hub: one ``AsyncServer`` on the aiohttp app, carrying circle chat now and live rooms next.

``setup`` builds and attaches it; ``transport`` adapts the few engine.io and socket.io internals it needs;
``emit`` is the one path every broadcast takes; ``chat`` holds the circle chat event handlers.
"""
