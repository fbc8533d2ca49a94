"""The lab's Git host: private repositories over HTTPS (smart HTTP, answered by `git http-backend`)
and public release downloads (the Flux install manifest) beside them.

Every Git request needs HTTP Basic auth with the lab's user and token, as on a hosted Git server.
"""

import argparse
import asyncio
import base64
import binascii
import hmac
import os
import pathlib
import re
import sys
import zlib

from aiohttp import web

from ..serving import serve_https

USERNAME = 'castle'
REALM = 'castle-lab git'
CHUNK = 64 * 1024
# The CGI variables git http-backend reads besides the request line.
FORWARDED_HEADERS = ('Git-Protocol', 'Accept', 'User-Agent')


def authorized(request, token):
    """Whether the request carries Basic credentials for USERNAME and the token."""
    scheme, _sep, encoded = request.headers.get('Authorization', '').partition(' ')
    if scheme.lower() != 'basic':
        return False
    try:
        user, _colon, password = base64.b64decode(encoded, validate=True).decode().partition(':')
    except (binascii.Error, UnicodeDecodeError):
        return False
    return hmac.compare_digest(user.encode(), USERNAME.encode()) & hmac.compare_digest(password.encode(), token.encode())


def cgi_environ(request, repos):
    env = {'PATH': os.environ.get('PATH', ''), 'GIT_PROJECT_ROOT': str(repos), 'GIT_HTTP_EXPORT_ALL': '1',
           'GATEWAY_INTERFACE': 'CGI/1.1', 'SERVER_PROTOCOL': 'HTTP/1.1', 'REQUEST_METHOD': request.method,
           'PATH_INFO': request.path, 'QUERY_STRING': request.query_string, 'REMOTE_USER': USERNAME,
           'REMOTE_ADDR': request.remote or '', 'AUTH_TYPE': 'Basic',
           'CONTENT_TYPE': request.headers.get('Content-Type', '')}
    # A gzip body reaches http-backend inflated, so its length is unknown: it then reads to EOF.
    if request.content_length is not None and not gzipped(request):
        env['CONTENT_LENGTH'] = str(request.content_length)
    for header in FORWARDED_HEADERS:
        if header in request.headers:
            env['HTTP_' + header.upper().replace('-', '_')] = request.headers[header]
    return env


def gzipped(request):
    return request.headers.get('Content-Encoding', '').lower() in ('gzip', 'x-gzip')


async def feed_body(request, stdin):
    """Stream the request body into the CGI's stdin, inflating a gzip body, then close it."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped(request) else None
    try:
        async for chunk in request.content.iter_chunked(CHUNK):
            stdin.write(inflater.decompress(chunk) if inflater else chunk)
            await stdin.drain()
        if inflater:
            stdin.write(inflater.flush())
            await stdin.drain()
    except (BrokenPipeError, ConnectionResetError, zlib.error):
        pass  # http-backend gets a short body (or stopped reading); its answer says what went wrong
    finally:
        stdin.close()


def parse_cgi_headers(block):
    """(status, reason, headers) from a CGI header block (a Status line gives the status)."""
    status, reason, headers = 200, 'OK', []
    for line in block.decode('latin-1').splitlines():
        name, _sep, value = line.partition(':')
        if name.lower() == 'status':
            code, _space, reason = value.strip().partition(' ')
            status = int(code)
        elif name:
            headers.append((name.strip(), value.strip()))
    return status, reason, headers


async def read_cgi_headers(stdout):
    block = bytearray()
    while True:
        line = await stdout.readline()
        if line in (b'\r\n', b'\n', b''):
            return bytes(block)
        block += line


async def git_http_backend(request):
    repos = request.app['repos']
    token = request.app['token']
    if not authorized(request, token):
        return web.Response(status=401, text='Authentication required\n',
                            headers={'WWW-Authenticate': 'Basic realm="{0}"'.format(REALM)})
    proc = await asyncio.create_subprocess_exec(
        'git', 'http-backend', env=cgi_environ(request, repos), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, limit=CHUNK)
    feeding = asyncio.create_task(feed_body(request, proc.stdin))
    errors = asyncio.create_task(proc.stderr.read())
    try:
        block = await read_cgi_headers(proc.stdout)
        if not block:
            return web.Response(status=502, text='git http-backend gave no answer\n')
        status, reason, headers = parse_cgi_headers(block)
        response = web.StreamResponse(status=status, reason=reason or None)
        for name, value in headers:
            response.headers.add(name, value)
        await response.prepare(request)
        while chunk := await proc.stdout.read(CHUNK):
            await response.write(chunk)
        await response.write_eof()
        await feeding
        return response
    finally:
        feeding.cancel()
        if not proc.stdout.at_eof():  # the client went away mid-answer
            proc.kill()
        await proc.wait()
        message = (await errors).decode(errors='replace').strip()
        if message:
            print('git http-backend: {0}'.format(message), file=sys.stderr, flush=True)


async def release_file(request):
    """A public download: /flux/<version>/install.yaml, no credentials needed."""
    version = request.match_info['version']
    path = request.app['releases'] / version / request.match_info['name']
    if not re.fullmatch(r'v\d+\.\d+\.\d+', version) or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={'Content-Type': 'application/yaml'})


def application(repos, releases, token):
    app = web.Application()
    app['repos'] = pathlib.Path(repos)
    app['releases'] = pathlib.Path(releases)
    app['token'] = token
    app.router.add_get('/flux/{version}/{name:install\\.yaml}', release_file)
    app.router.add_route('*', '/{path:.+}', git_http_backend)
    return app


async def serve(args):
    token = pathlib.Path(args.token_file).read_text().strip()
    # Bodies arrive as sent: feed_body inflates gzip itself while streaming.
    runner = web.AppRunner(application(args.repos, args.releases, token), access_log=None, auto_decompress=False)
    await serve_https('git', runner, args.host, args.port, args.cert, args.key)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    for option in ('--host', '--cert', '--key', '--repos', '--releases', '--token-file'):
        parser.add_argument(option, required=True)
    parser.add_argument('--port', type=int, default=8443)
    asyncio.run(serve(parser.parse_args()))


if __name__ == '__main__':
    main()
