"""A workload's HTTP endpoint on a mesh host: `GET <any path>` answers 200 with {"workload": W, "host": hostname},
on 127.0.0.1 only, like a service that only a tunnel reaches."""

import argparse
import http.server
import json
import socket
import sys


def handler(workload):
    class Endpoint(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # pylint: disable=invalid-name
            body = json.dumps({'workload': workload, 'host': socket.gethostname()}).encode()
            self.send_response(200)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # pylint: disable=redefined-builtin
            """Requests are not logged: the host's journal would grow with every probe."""

    return Endpoint


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--workload', required=True)
    parser.add_argument('--port', type=int, required=True)
    args = parser.parse_args(argv)
    server = http.server.ThreadingHTTPServer(('127.0.0.1', args.port), handler(args.workload))
    print('endpoint {0}: listening on 127.0.0.1:{1}'.format(args.workload, args.port), flush=True)
    server.serve_forever()
    return 0


if __name__ == '__main__':
    sys.exit(main())
