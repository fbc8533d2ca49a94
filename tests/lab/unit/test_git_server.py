"""The lab Git host's request handling: Basic auth and CGI headers."""

import base64

from aiohttp.test_utils import make_mocked_request

from castle_lab.git import server as git_server


def request_with(credentials):
    headers = {'Authorization': 'Basic ' + base64.b64encode(credentials.encode()).decode()} if credentials else {}
    return make_mocked_request('GET', '/gitops.git/info/refs', headers=headers)


def test_only_the_lab_user_with_the_token_is_authorized():
    assert git_server.authorized(request_with('castle:s3cret'), 's3cret')
    assert not git_server.authorized(request_with('castle:wrong'), 's3cret')
    assert not git_server.authorized(request_with('root:s3cret'), 's3cret')
    assert not git_server.authorized(request_with(None), 's3cret')
    assert not git_server.authorized(make_mocked_request('GET', '/', headers={'Authorization': 'Basic %%%'}), 's3cret')


def test_cgi_status_line_sets_the_status_and_other_lines_are_headers():
    block = b'Status: 404 Not Found\r\nContent-Type: text/plain\r\nExpires: Fri, 01 Jan 1980 00:00:00 GMT\r\n'
    assert git_server.parse_cgi_headers(block) == (404, 'Not Found', [
        ('Content-Type', 'text/plain'), ('Expires', 'Fri, 01 Jan 1980 00:00:00 GMT')])
    assert git_server.parse_cgi_headers(b'Content-Type: application/x-git-upload-pack-result\n') == (
        200, 'OK', [('Content-Type', 'application/x-git-upload-pack-result')])
