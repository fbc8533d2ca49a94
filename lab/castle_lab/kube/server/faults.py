"""Fault injection for tests: rules that make the API answer an error, or nothing for a while.

The control API (plain HTTP on loopback, port 6444) adds and clears rules; the API server's middleware applies them.
"""

import asyncio
import json

from aiohttp import web

from ...serving import loopback_only
from ..api.errors import ApiError

REASONS = {429: 'TooManyRequests', 500: 'InternalError', 502: 'InternalError', 503: 'ServiceUnavailable',
           504: 'Timeout'}


class Faults:
    def __init__(self):
        self.rules = []
        self.requests = []

    def match(self, method, path):
        for rule in self.rules:
            if rule['method'] in ('*', method) and rule['path'] in path:
                if rule['times'] is not None:
                    rule['times'] -= 1
                    if rule['times'] <= 0:
                        self.rules.remove(rule)
                return rule
        return None

    @web.middleware
    async def middleware(self, request, handler):
        self.requests.append([request.method, request.path_qs])
        rule = self.match(request.method, request.path)
        if rule is None:
            return await handler(request)
        if rule.get('hang_secs'):
            await asyncio.sleep(rule['hang_secs'])
            if not rule.get('status'):
                return await handler(request)
        code = rule['status']
        error = ApiError(code, REASONS.get(code, 'InternalError'), rule.get('message') or 'injected fault', {})
        headers = {'Retry-After': str(rule['retry_after'])} if rule.get('retry_after') else None
        return web.Response(text=json.dumps(error.status()), status=code, content_type='application/json',
                            headers=headers)

    def app(self):
        app = web.Application(middlewares=[loopback_only])
        app.router.add_post('/fault', self.add)
        app.router.add_delete('/fault', self.clear)
        app.router.add_get('/fault', self.list)
        app.router.add_get('/requests', self.seen)
        app.router.add_post('/requests/reset', self.reset_requests)
        return app

    async def add(self, request):
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({'error': 'body is not JSON'}, status=400)
        unknown = set(body) - {'method', 'path', 'status', 'message', 'times', 'hang_secs', 'retry_after'}
        status, hang = body.get('status'), body.get('hang_secs')
        if unknown or not isinstance(body.get('path', ''), str) or (status is None and not hang) or (
                status is not None and not (isinstance(status, int) and 400 <= status <= 599)):
            return web.json_response({'error': 'give path, method, and status (400-599) and/or hang_secs; '
                                               'optional message, times, retry_after'}, status=400)
        rule = {'method': str(body.get('method', '*')).upper(), 'path': body.get('path', '/'), 'status': status,
                'message': body.get('message'), 'times': body.get('times'), 'hang_secs': hang,
                'retry_after': body.get('retry_after')}
        self.rules.append(rule)
        return web.json_response(rule)

    async def clear(self, request):
        cleared = len(self.rules)
        self.rules.clear()
        return web.json_response({'cleared': cleared})

    async def list(self, request):
        return web.json_response(self.rules)

    async def seen(self, request):
        return web.json_response({'count': len(self.requests), 'requests': self.requests})

    async def reset_requests(self, request):
        self.requests.clear()
        return web.json_response({'count': 0})
