"""The lab's S3 store: moto's S3 (and IAM) served over HTTPS, every request authenticated after set-up.

On its first start it creates, through moto's own IAM API, the one user the lab hands out, its access key and a
policy allowing S3, and writes the key to files in --dir; the bucket is created with that key. Objects live in
this process's memory: they last until the process stops.

Control API (plain HTTP on the loopback address, --control-port):
    PUT    /outage   the S3 port stops listening: clients get "connection refused", as from a store that is down
    DELETE /outage   listening again, with the objects it held
    GET    /outage   {"down": true|false}
"""

import argparse
import json
import os
import pathlib
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# moto reads this when it is imported: the first three requests (the set-up's IAM calls) go unauthenticated,
# every later one must be signed with a key of its IAM.
SETUP_ACTIONS = 3
os.environ['INITIAL_NO_AUTH_ACTION_COUNT'] = str(SETUP_ACTIONS)
os.environ.setdefault('MOTO_ALLOW_NONEXISTENT_REGION', 'false')

import boto3  # noqa: E402  (after the environment above)
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication, MotoRequestHandler, create_backend_app)
from werkzeug.serving import make_server  # noqa: E402

USER = 'castle-backup'
POLICY = {'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': 's3:*', 'Resource': '*'}]}


class Store:
    """moto's application on host:port over TLS, which can stop and start listening while keeping its objects."""

    def __init__(self, host, port, cert, key):
        self.host, self.port = host, port
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(cert, key)
        self.app = DomainDispatcherApplication(create_backend_app)
        self.server = None
        self.thread = None
        self.lock = threading.Lock()

    @property
    def down(self):
        return self.server is None

    def start(self):
        with self.lock:
            if self.server is None:
                self.server = make_server(self.host, self.port, self.app, threaded=True,
                                          request_handler=MotoRequestHandler, ssl_context=self.tls)
                self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
                self.thread.start()

    def stop(self):
        with self.lock:
            if self.server is not None:
                self.server.shutdown()
                self.server.server_close()
                self.thread.join()
                self.server = self.thread = None


def set_up(store, args):
    """The lab's user, key and policy through moto's IAM, the key in --dir, the bucket created with the key."""
    url = 'https://{0}:{1}'.format(args.host, args.port)
    common = {'endpoint_url': url, 'region_name': args.region, 'verify': args.ca}
    iam = boto3.client('iam', aws_access_key_id='setup', aws_secret_access_key='setup', **common)
    iam.create_user(UserName=USER)
    key = iam.create_access_key(UserName=USER)['AccessKey']
    iam.put_user_policy(UserName=USER, PolicyName='s3', PolicyDocument=json.dumps(POLICY))
    directory = pathlib.Path(args.dir)
    for name, value in (('access-key', key['AccessKeyId']), ('secret-key', key['SecretAccessKey'])):
        path = directory / name
        path.touch(mode=0o600)
        path.write_text(value + '\n')
    s3 = boto3.client('s3', aws_access_key_id=key['AccessKeyId'], aws_secret_access_key=key['SecretAccessKey'],
                      **common)
    s3.create_bucket(Bucket=args.bucket)


def control_handler(store):
    class Control(BaseHTTPRequestHandler):
        def answer(self):
            body = json.dumps({'down': store.down}).encode()
            self.send_response(200)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def route(self, action):
            if self.path != '/outage':
                self.send_error(404)
                return
            action()
            self.answer()

        def do_GET(self):  # noqa: N802 (http.server's names)
            self.route(lambda: None)

        def do_PUT(self):  # noqa: N802
            self.route(store.stop)

        def do_DELETE(self):  # noqa: N802
            self.route(store.start)

        def log_message(self, *args):
            pass

    return Control


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    for option in ('--host', '--cert', '--key', '--ca', '--dir', '--bucket', '--region'):
        parser.add_argument(option, required=True)
    parser.add_argument('--port', type=int, default=9000)
    parser.add_argument('--control-port', type=int, default=9001)
    args = parser.parse_args()
    store = Store(args.host, args.port, args.cert, args.key)
    store.start()
    set_up(store, args)
    control = ThreadingHTTPServer((args.host, args.control_port), control_handler(store))
    print('s3: listening on https://{0}:{1}, control API on http://{0}:{2}'.format(
        args.host, args.port, args.control_port), flush=True)
    control.serve_forever()


if __name__ == '__main__':
    main()
