"""What the lab's in-process servers share: running until told to stop, and control APIs for loopback only."""

import asyncio
import ipaddress
import signal

from aiohttp import web


def stop_event():
    """An event set by SIGTERM or SIGINT (castle-lab down sends SIGTERM)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    return stopping


@web.middleware
async def loopback_only(request, handler):
    """Control APIs have no authentication: they answer clients on this machine's loopback only."""
    if not ipaddress.ip_address(request.remote or '0.0.0.0').is_loopback:
        return web.json_response({'error': 'the control API answers loopback clients only'}, status=403)
    return await handler(request)
