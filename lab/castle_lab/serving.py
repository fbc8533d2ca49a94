"""What the lab's in-process servers share: their command line, running until told to stop, and control APIs for
loopback only."""

import argparse
import asyncio
import ipaddress
import signal
import ssl

from aiohttp import web


def service_parser(description, required, port, control_port):
    """The command line of a lab server: the `required` options (--host and its files), the port it serves and
    the port of its control API."""
    parser = argparse.ArgumentParser(description=description)
    for option in required:
        parser.add_argument(option, required=True)
    parser.add_argument('--port', type=int, default=port)
    parser.add_argument('--control-port', type=int, default=control_port)
    return parser


def stop_event():
    """An event set by SIGTERM or SIGINT (castle-lab down sends SIGTERM)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    return stopping


async def serve_https(name, runner, host, port, cert, key):
    """Serve an aiohttp runner over HTTPS on host:port until SIGTERM or SIGINT, announcing where."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=tls).start()
    stopping = stop_event()
    print('{0}: listening on https://{1}:{2}'.format(name, host, port), flush=True)
    await stopping.wait()
    await runner.cleanup()


@web.middleware
async def loopback_only(request, handler):
    """Control APIs have no authentication: they answer clients on this machine's loopback only."""
    if not ipaddress.ip_address(request.remote or '0.0.0.0').is_loopback:
        return web.json_response({'error': 'the control API answers loopback clients only'}, status=403)
    return await handler(request)
