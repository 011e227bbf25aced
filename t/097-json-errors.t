#!/usr/bin/perl
# JSON errors everywhere in commerce locations: the errors nginx makes
# itself (400 bad request line or header, 405 TRACE, 408 slow body, 413 over
# client_max_body_size with a length or chunked, 414, too large headers as
# 431, 500, 502, 503, 504) are {"code","message"} with Content-Type
# application/json and X-Request-Id, HEAD and keep-alive included; the
# module's own answers are unchanged; non-commerce locations and servers,
# commerce_json_errors off and the operator's error_page keep nginx's
# pages; nginx -t refuses a bad commerce_json_errors.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time);
use CommerceTest;

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

# --- nginx -t ----------------------------------------------------------------

my ($rc, $out) = $t->nginx_t($t->default_config(
    http_extra => 'commerce_json_errors on;',
    server_extra => 'commerce_json_errors off;',
    location_extra => 'commerce_json_errors on;'));
is($rc, 0, 'nginx -t accepts commerce_json_errors in http, server, location')
    or diag($out);

for my $bad ('commerce_json_errors maybe;', 'commerce_json_errors;',
    'commerce_json_errors on off;',
    'commerce_json_errors on; commerce_json_errors off;')
{
    ($rc, $out) = $t->nginx_t($t->default_config(http_extra => $bad));
    isnt($rc, 0, "nginx -t rejects '$bad'");
    like($out, qr/\[emerg\].*commerce_json_errors/,
        '... naming commerce_json_errors') or diag($out);
}

# --- the server --------------------------------------------------------------

# a port nobody listens on (502), and a listener that never answers (504)
my $closed = $t->port('closed');
my $silent = IO::Socket::INET->new(Listen => 16, ReuseAddr => 1,
    LocalAddr => '127.0.0.1:' . $t->port('silent'))
    or die "listen: $!";

my $ORIGIN = 'https://shop.example.com';

$t->write_config($t->default_config(
    http_extra => <<"EOF",
limit_req_zone \$binary_remote_addr zone=one:1m rate=1r/m;
lingering_timeout 1s;
commerce_cors_origin $ORIGIN;

server {
    listen 127.0.0.1:%%PORT_plain%%;

    location / {
        return 404;
    }
}
EOF
    location_extra => 'client_body_timeout 1s;',
    server_extra => <<'EOF'));
location /api/v1/limited/ {
    commerce_api;
    limit_req zone=one;
}

location /api/v1/loop {
    commerce_api;
    rewrite ^ /api/v1/loop last;
}

location /api/v1/html/ {
    commerce_api;
    commerce_json_errors off;
    client_max_body_size 1k;
}

location /gw/ {
    commerce_json_errors on;
    proxy_pass http://127.0.0.1:%%PORT_closed%%;
}

location /gw-slow/ {
    commerce_json_errors on;
    proxy_pass http://127.0.0.1:%%PORT_silent%%;
    proxy_read_timeout 1s;
}

location = /api/v1/custom {
    commerce_json_errors on;
    error_page 500 /oops.txt;
    return 500;
}

location = /oops.txt {
    internal;
    return 200 "custom page\n";
}

location = /api/v1/named {
    commerce_json_errors on;
    error_page 503 @busy;
    return 503;
}

location @busy {
    return 503 "busy page\n";
}

location = /api/v1/teapot {
    commerce_json_errors on;
    return 418;
}

location /html/ {
    return 503;
}

location /v1/ {
    rewrite ^/v1/(.*)$ /api/v1/$1 last;
}
EOF
$t->start_nginx;

my $port = $t->nginx_port;

# one raw exchange with a server of this instance
sub raw_to {
    my ($p, $bytes, %o) = @_;
    my ($res) = $t->exchange([ { bytes => $bytes } ], port => $p,
        timeout => $o{timeout} // 30);
    return $res;
}

sub json_error {
    my ($res, $status, $code, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is_error($res, $status, $code, $name);
    like($res->{headers}{'x-request-id'} // '', qr/\A[0-9a-f]{32}\z/,
        "$name: X-Request-Id");
    is($res->{headers}{'content-length'}, length($res->{body} // ''),
        "$name: Content-Length is the JSON's");
    is($res->{headers}{'cache-control'}, 'no-store', "$name: no-store");
}

sub html_page {
    my ($res, $status, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($res->{status}, $status, "$name: $status");
    like($res->{headers}{'content-type'} // '', qr{^text/html},
        "$name: nginx's HTML page") or diag($res->{raw});
    like($res->{body} // '', qr/<html>/, "$name: HTML body");
}

my $token = $t->token(1);
my $auth = "Authorization: Bearer $token\r\n";

# --- unchanged: success and the module's own errors -------------------------

my $r = $t->get('/api/v1/balance', user => 1);
is_response($r, 200, { userId => 1, balance => 100000 }, 'GET /balance');
like($r->{headers}{'x-request-id'} // '', qr/\A[0-9a-f]{32}\z/,
    'success: X-Request-Id');

json_error($t->get('/api/v1/nope', user => 1), 404, 'NOT_FOUND',
    'the module\'s 404');
json_error($t->get('/api/v1/balance'), 401, 'UNAUTHORIZED',
    'the module\'s 401');
$r = $t->post('/api/v1/balance/charge', '{"amount":1,"pad":"'
    . ('x' x 100000) . '"}', user => 1);
json_error($r, 413, 'PAYLOAD_TOO_LARGE', 'the module\'s 413 (over 64k)');
is($r->{json}{message}, 'request body is too large',
    '... with the module\'s message');
json_error($t->req('DELETE', '/api/v1/balance', user => 1), 405,
    'METHOD_NOT_ALLOWED', 'the module\'s 405');
like($t->req('DELETE', '/api/v1/balance', user => 1)->{headers}{allow} // '',
    qr/GET/, '... with Allow');

# --- 400 ---------------------------------------------------------------------

json_error(raw_to($port, "GARBAGE\r\n\r\n"), 400, 'INVALID_REQUEST',
    'malformed request line');
json_error(raw_to($port, "GET /api/v1/balance HTTP/1.1\r\nHost: a\r\n"
    . "Host: b\r\n$auth\r\n"), 400, 'INVALID_REQUEST', 'two Host headers');
json_error(raw_to($port, "POST /api/v1/balance/charge HTTP/1.1\r\n"
    . "Host: localhost\r\n${auth}Content-Length: ten\r\n\r\n"), 400,
    'INVALID_REQUEST', 'bad Content-Length');

# --- 405 ---------------------------------------------------------------------

# nginx refuses TRACE (and CONNECT) itself, before any location
json_error(raw_to($port, "TRACE /api/v1/balance HTTP/1.1\r\n"
    . "Host: localhost\r\n\r\n"), 405, 'METHOD_NOT_ALLOWED', 'TRACE');

# --- 408 ---------------------------------------------------------------------

# 10 bytes of a 100-byte body, then nothing: client_body_timeout is 1s
my $t0 = time;
$r = raw_to($port, "POST /api/v1/balance/charge HTTP/1.1\r\n"
    . "Host: localhost\r\n${auth}Content-Type: application/json\r\n"
    . "Content-Length: 100\r\n\r\n" . '{"amount":');
json_error($r, 408, 'REQUEST_TIMEOUT', 'body slower than client_body_timeout');
cmp_ok(time - $t0, '<', 10, '... answered after the timeout, not later');
is($r->{headers}{connection}, 'close', '... and the connection closed');
is($t->psql('SELECT balance FROM users WHERE id = 1'), 100000,
    '... nothing charged');

# --- 413 ---------------------------------------------------------------------

my $big = '{"amount":1,"pad":"' . ('x' x (3 * 1024 * 1024)) . '"}';
$r = $t->post('/api/v1/balance/charge', $big, user => 1,
    headers => { Origin => $ORIGIN });
json_error($r, 413, 'PAYLOAD_TOO_LARGE', '3 MB over client_max_body_size');
is($r->{json}{message}, 'request body is larger than the server accepts',
    '... nginx\'s 413, not the module\'s');
is($r->{headers}{'access-control-allow-origin'}, $ORIGIN,
    '... readable by the allowed origin (CORS)');

json_error($t->post('/api/v1/balance/charge', $big, user => 1, chunked => 1),
    413, 'PAYLOAD_TOO_LARGE', '3 MB chunked over client_max_body_size');

is($t->psql('SELECT balance FROM users WHERE id = 1'), 100000,
    'nothing charged by the refused bodies');

# --- 414, 431 ----------------------------------------------------------------

json_error(raw_to($port, 'GET /api/v1/products?pad=' . ('a' x 9000)
    . " HTTP/1.1\r\nHost: localhost\r\n$auth\r\n"), 414, 'URI_TOO_LONG',
    'URI over large_client_header_buffers');

# nginx's "400 Request Header Or Cookie Too Large" (its 494)
$r = raw_to($port, "GET /api/v1/balance HTTP/1.1\r\nHost: localhost\r\n"
    . $auth . 'X-Pad: ' . ('b' x 9000) . "\r\n\r\n");
json_error($r, 431, 'HEADERS_TOO_LARGE', 'a header line over the buffers');
like($r->{raw}, qr{\AHTTP/1\.1 431 Request Header Fields Too Large\r\n},
    '... with its reason phrase');

# --- 500, 502, 503, 504 ------------------------------------------------------

json_error($t->get('/api/v1/loop', user => 1), 500, 'INTERNAL_ERROR',
    'rewrite cycle');
$t->allow_log(qr/rewrite or internal redirection cycle/);

# an API reached through rewrite (r->internal is set, error_page is not)
json_error($t->post('/v1/balance/charge', $big, user => 1, chunked => 1), 413,
    'PAYLOAD_TOO_LARGE', 'rewritten into the API location');

json_error($t->get('/gw/x'), 502, 'BAD_GATEWAY', 'upstream refused');

$t0 = time;
json_error($t->get('/gw-slow/x'), 504, 'GATEWAY_TIMEOUT',
    'upstream never answers');
cmp_ok(time - $t0, '<', 10, '... after proxy_read_timeout');

json_error($t->get('/api/v1/limited/x', user => 1), 404, 'NOT_FOUND',
    'limit_req: the first passes (the module\'s 404)');
json_error($t->get('/api/v1/limited/x', user => 1), 503,
    'SERVICE_UNAVAILABLE', 'limit_req: the second is refused');

# --- HEAD and keep-alive -----------------------------------------------------

$r = raw_to($port, "HEAD /api/v1/loop HTTP/1.1\r\nHost: localhost\r\n"
    . "Connection: close\r\n\r\n");
is($r->{status}, 500, 'HEAD: 500');
like($r->{headers}{'content-type'} // '', qr{^application/json},
    'HEAD: JSON type');
is($r->{headers}{'content-length'},
    length('{"code":"INTERNAL_ERROR","message":"internal error"}'),
    'HEAD: the length of the JSON');
like($r->{raw}, qr/\r\n\r\n\z/, 'HEAD: no body');
like($r->{headers}{'x-request-id'} // '', qr/\A[0-9a-f]{32}\z/,
    'HEAD: X-Request-Id');

# nginx's 404 (no location matches) keeps the connection: the next request
# on it is answered
$r = raw_to($port, "GET /nothing HTTP/1.1\r\nHost: localhost\r\n\r\n"
    . "GET /api/v1/balance HTTP/1.1\r\nHost: localhost\r\n$auth"
    . "Connection: close\r\n\r\n");
json_error($r, 404, 'NOT_FOUND', 'keep-alive: nginx\'s 404 at server level');
my $rest = substr($r->{raw}, index($r->{raw}, "\r\n\r\n") + 4
    + $r->{headers}{'content-length'});
my $second = CommerceTest::parse_response($rest);
is_response($second, 200, { userId => 1, balance => 100000 },
    'keep-alive: the next request on the connection');

# --- left alone --------------------------------------------------------------

html_page($t->get('/html/'), 503, 'a location without commerce_api');
ok(!exists $t->get('/html/')->{headers}{'x-request-id'},
    '... nothing added to it');

html_page($t->post('/api/v1/html/x', 'x' x 2000, user => 1), 413,
    'commerce_api with commerce_json_errors off');

$r = $t->get('/api/v1/custom');
is($r->{status}, 500, 'error_page: the operator\'s status');
is($r->{body}, "custom page\n", 'error_page: the operator\'s page wins');

$r = $t->get('/api/v1/named');
is($r->{status}, 503, 'error_page to a named location: the operator\'s status');
is($r->{body}, "busy page\n", '... and page');

# a status nginx has no page for (an empty body): JSON all the same
json_error($t->get('/api/v1/teapot'), 418, 'INVALID_REQUEST',
    'a 4xx without an nginx page');

html_page(raw_to($t->port('plain'), "GARBAGE\r\n\r\n"), 400,
    'a server without commerce_api');

# --- on where no commerce_api is --------------------------------------------

$t->write_config(<<'EOF', name => 'bare');
load_module %%MODULE%%;
%%USER%%
worker_processes 1;
daemon off;
pid %%TESTDIR%%/nginx.pid;
error_log %%TESTDIR%%/error.log info;

events {
}

http {
    access_log off;
    client_body_temp_path %%TESTDIR%%/client_body_temp;
    proxy_temp_path %%TESTDIR%%/proxy_temp;
    fastcgi_temp_path %%TESTDIR%%/fastcgi_temp;
    uwsgi_temp_path %%TESTDIR%%/uwsgi_temp;
    scgi_temp_path %%TESTDIR%%/scgi_temp;

    commerce_json_errors on;

    server {
        listen 127.0.0.1:%%PORT%%;

        location / {
            return 403;
        }
    }
}
EOF
$t->start_nginx(name => 'bare');
json_error($t->get('/x', name => 'bare'), 403, 'FORBIDDEN',
    'commerce_json_errors on in http{}, no commerce_api anywhere');

close $silent;
$t->done;
