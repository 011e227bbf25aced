#!/usr/bin/perl
# The API over HTTPS (TLS 1.2/1.3 only, HSTS), driven with curl, and CORS:
# off unless commerce_cors_origin lists an origin; a listed origin gets
# Access-Control-Allow-Origin on every answer and a 204 preflight, any
# other origin none (and 403 on a preflight).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;

my $t = CommerceTest->new;
my $dir = $t->dir;

my ($rc, $out) = $t->run([ 'openssl', 'req', '-x509', '-newkey', 'ec',
    '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost',
    '-keyout', "$dir/tls.key", '-out', "$dir/tls.crt" ], timeout => 30);
is($rc, 0, 'a self-signed certificate for localhost')
    or BAIL_OUT("openssl req failed: $out");

$t->start_pg;
$t->load_demo;

my $ORIGIN = 'https://shop.example.com';

$t->write_config($t->default_config(http_extra => <<"EOF"));
commerce_cors_origin $ORIGIN;
commerce_cors_origin http://localhost:3000;

server {
    listen 127.0.0.1:%%PORT_tls%% ssl;
    server_name localhost;
    ssl_certificate %%BASEDIR%%/tls.crt;
    ssl_certificate_key %%BASEDIR%%/tls.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    add_header Strict-Transport-Security "max-age=63072000" always;

    location /api/v1/ {
        commerce_api;
    }
}
EOF
$t->start_nginx;
my $tls = $t->port('tls');

# curl over TLS: returns (status, headers {lc name => value}, body); status
# 0 when curl failed (no TLS session)
sub curl {
    my (@args) = @_;
    my ($rc, $out) = $t->run([ 'curl', '-s', '-i', '--cacert',
        "$dir/tls.crt", '--max-time', '10', @args ], timeout => 20);
    return (0, {}, $out) if $rc != 0;
    $out =~ s/\r//g;
    my ($head, $body) = split /\n\n/, $out, 2;
    my ($status) = $head =~ m{^HTTP/\S+ (\d+)};
    my %h = map { /^([^:]+):\s*(.*)$/ ? (lc $1 => $2) : () }
        split /\n/, $head;
    return ($status, \%h, $body // '');
}

my $token = $t->token(7);
my ($st, $h, $body) = curl('-H', "Authorization: Bearer $token",
    "https://localhost:$tls/api/v1/balance");
is($st, 200, 'HTTPS: GET /balance 200');
is($body, '{"userId":7,"balance":100000}', 'HTTPS: the body');
is($h->{'strict-transport-security'}, 'max-age=63072000', 'HSTS');
is($h->{'cache-control'}, 'no-store', 'Cache-Control: no-store');
is($h->{'x-content-type-options'}, 'nosniff', 'X-Content-Type-Options');

($st, $h, $body) = curl("https://localhost:$tls/api/v1/balance");
is($st, 401, 'HTTPS without a token: 401');

($st, $h, $body) = curl('-H', 'Content-Type: application/json', '-d',
    '{"amount":1000}', '-H', "Authorization: Bearer $token",
    "https://localhost:$tls/api/v1/balance/charge");
is($st, 200, 'HTTPS: POST /balance/charge 200');
is($body, '{"userId":7,"balance":101000}', 'charged');

for my $v ([ '--tlsv1.2', '--tls-max', '1.2' ], [ '--tlsv1.3' ]) {
    ($st) = curl(@$v, '-H', "Authorization: Bearer $token",
        "https://localhost:$tls/api/v1/products/1");
    is($st, 200, "TLS $v->[0] accepted");
}
($st) = curl('--tlsv1.1', '--tls-max', '1.1', '--ciphers',
    'DEFAULT@SECLEVEL=0', "https://localhost:$tls/api/v1/products/1");
is($st, 0, 'TLS 1.1 refused');

# ---------------------------------------------------------------------------
# CORS

my $r = $t->get('/api/v1/balance', user => 7,
    headers => { Origin => $ORIGIN });
is($r->{status}, 200, 'a listed origin');
is($r->{headers}{'access-control-allow-origin'}, $ORIGIN,
    'Access-Control-Allow-Origin: that origin');
is($r->{headers}{vary}, 'Origin', 'Vary: Origin');
like($r->{headers}{'access-control-expose-headers'} // '', qr/X-Request-Id/,
    'X-Request-Id exposed');

$r = $t->get('/api/v1/balance', user => 7,
    headers => { Origin => 'https://evil.example.com' });
is($r->{status}, 200, 'another origin: answered (the browser decides)');
is($r->{headers}{'access-control-allow-origin'}, undef,
    'but without Access-Control-Allow-Origin');

$r = $t->get('/api/v1/balance', user => 7);
is($r->{headers}{'access-control-allow-origin'}, undef, 'no Origin: none');

$r = $t->req('OPTIONS', '/api/v1/orders', headers => { Origin => $ORIGIN,
    'Access-Control-Request-Method' => 'POST',
    'Access-Control-Request-Headers' => 'authorization, content-type' });
is($r->{status}, 204, 'preflight from a listed origin: 204, no token needed');
is($r->{headers}{'access-control-allow-origin'}, $ORIGIN, 'allowed origin');
like($r->{headers}{'access-control-allow-methods'} // '', qr/\bPOST\b/,
    'POST allowed');
like($r->{headers}{'access-control-allow-headers'} // '',
    qr/Authorization.*Content-Type.*Idempotency-Key/, 'headers allowed');
is($r->{headers}{'access-control-max-age'}, '600', 'cached 10 minutes');

$r = $t->req('OPTIONS', '/api/v1/orders', headers => {
    Origin => 'https://evil.example.com',
    'Access-Control-Request-Method' => 'POST' });
is_error($r, 403, 'FORBIDDEN', 'preflight from another origin');
is($r->{headers}{'access-control-allow-origin'}, undef, 'no CORS headers');

$t->stop_nginx;

# without commerce_cors_origin: no CORS at all
$t->write_config($t->default_config);
$t->start_nginx;
$r = $t->get('/api/v1/balance', user => 7,
    headers => { Origin => $ORIGIN });
is($r->{headers}{'access-control-allow-origin'}, undef,
    'CORS off by default: no Access-Control-Allow-Origin');
$r = $t->req('OPTIONS', '/api/v1/orders', headers => { Origin => $ORIGIN,
    'Access-Control-Request-Method' => 'POST' });
is_error($r, 403, 'FORBIDDEN', 'CORS off: a preflight is refused');

$t->done;
