#!/usr/bin/perl
# Sanity: nginx -t accepts the default configuration and rejects bad
# directive values with a message naming the directive; every response
# carries X-Request-Id; unknown routes and methods.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

# --- nginx -t --------------------------------------------------------------

my ($rc, $out) = $t->nginx_t($t->default_config);
is($rc, 0, 'nginx -t accepts the default config') or diag($out);

($rc, $out) = $t->nginx_t($t->default_config(secret_file => 1,
    http_extra => <<'EOF'));
commerce_pg_pool_size 4;
commerce_pg_queue_length 100;
commerce_pg_queue_timeout 500ms;
commerce_pg_statement_timeout 2s;
commerce_pg_connect_timeout 1s;
commerce_pg_pipeline_depth 4;
commerce_body_max 16k;
commerce_charge_max 5000;
commerce_balance_max 1000000;
commerce_order_ttl 1m;
commerce_order_expiry_interval 5s;
EOF
is($rc, 0, 'nginx -t accepts every directive with good values')
    or diag($out);

# the unix socket directory instead of an address is fine too
($rc, $out) = $t->nginx_t($t->default_config(conninfo =>
    'host=%%PGSOCKET%% port=%%PGPORT%% dbname=commerce user=postgres'));
is($rc, 0, 'nginx -t accepts a unix socket directory as host') or diag($out);

my @bad = (
    [ 'commerce_pg_pool_size 0;',             'commerce_pg_pool_size' ],
    [ 'commerce_pg_pool_size abc;',           'commerce_pg_pool_size' ],
    [ 'commerce_pg_pool_size 8 9;',           'commerce_pg_pool_size' ],
    [ 'commerce_pg_queue_length -1;',         'commerce_pg_queue_length' ],
    [ 'commerce_pg_queue_length many;',       'commerce_pg_queue_length' ],
    [ 'commerce_pg_queue_timeout abc;',       'commerce_pg_queue_timeout' ],
    [ 'commerce_pg_statement_timeout 5x;',    'commerce_pg_statement_timeout' ],
    [ 'commerce_pg_connect_timeout later;',   'commerce_pg_connect_timeout' ],
    [ 'commerce_pg_pipeline_depth 0;',        'commerce_pg_pipeline_depth' ],
    [ 'commerce_pg_pipeline_depth deep;',     'commerce_pg_pipeline_depth' ],
    [ 'commerce_body_max -1;',                'commerce_body_max' ],
    [ 'commerce_body_max lots;',              'commerce_body_max' ],
    [ 'commerce_charge_max 0;',               'commerce_charge_max' ],
    [ 'commerce_charge_max -5;',              'commerce_charge_max' ],
    [ 'commerce_charge_max 1.5;',             'commerce_charge_max' ],
    [ 'commerce_balance_max abc;',            'commerce_balance_max' ],
    [ 'commerce_order_ttl forever;',          'commerce_order_ttl' ],
    [ 'commerce_order_expiry_interval soon;', 'commerce_order_expiry_interval' ],
    [ 'commerce_pg_pool_size 4; commerce_pg_pool_size 5;',
        'commerce_pg_pool_size' ],
);
for my $case (@bad) {
    my ($directive, $name) = @$case;
    ($rc, $out) = $t->nginx_t($t->default_config(http_extra => $directive));
    isnt($rc, 0, "nginx -t rejects '$directive'");
    like($out, qr/\[emerg\].*\Q$name\E/, "... naming $name") or diag($out);
}

my @bad_conf = (
    [ 'no conninfo with commerce_api', 'commerce_pg_conninfo',
        $t->default_config(no_conninfo => 1) ],
    [ 'conninfo with a DNS host name', 'commerce_pg_conninfo',
        $t->default_config(conninfo =>
            'host=db.example.com port=5432 dbname=commerce user=postgres') ],
    [ 'unparsable conninfo', 'commerce_pg_conninfo',
        $t->default_config(conninfo => 'host=127.0.0.1 nonsense') ],
    [ 'no secret with commerce_api', 'commerce_jwt_secret',
        $t->default_config(no_secret => 1) ],
    [ 'missing secret file', 'commerce_jwt_secret_file',
        $t->default_config(no_secret => 1,
            http_extra => 'commerce_jwt_secret_file %%TESTDIR%%/nope;') ],
);
for my $case (@bad_conf) {
    my ($what, $name, $conf) = @$case;
    ($rc, $out) = $t->nginx_t($conf);
    isnt($rc, 0, "nginx -t rejects $what");
    like($out, qr/\[emerg\].*\Q$name\E/, "... naming $name") or diag($out);
}

# --- the running server ----------------------------------------------------

$t->write_config($t->default_config);
$t->start_nginx;

my %seen;
my @responses = (
    [ 'GET 200', $t->get('/api/v1/balance', user => 1), 200 ],
    [ 'GET 401', $t->get('/api/v1/balance'), 401 ],
    [ 'GET 404 route', $t->get('/api/v1/nope', user => 1), 404 ],
    [ 'GET 404 product', $t->get('/api/v1/products/99999', user => 1), 404 ],
    [ 'POST 400', $t->post('/api/v1/balance/charge', '{', user => 1), 400 ],
    [ 'DELETE 405', $t->req('DELETE', '/api/v1/balance', user => 1), 405 ],
);
for my $r (@responses) {
    my ($what, $res, $status) = @$r;
    is($res->{status}, $status, "$what: status");
    like($res->{headers}{'x-request-id'} // '', qr/\A[0-9a-f]{32}\z/,
        "$what: X-Request-Id is 32 hex digits");
    $seen{ $res->{headers}{'x-request-id'} // '' }++;
}
is(scalar(keys %seen), scalar(@responses), 'X-Request-Id differs per request');

is_response($t->get('/api/v1/balance', user => 1), 200,
    { userId => 1, balance => 100000 }, 'GET /balance');

is_error($t->get('/api/v1/nope', user => 1), 404, 'NOT_FOUND',
    'unknown route under /api/v1');
is_error($t->get('/api/v1/', user => 1), 404, 'NOT_FOUND', '/api/v1/ itself');
is_error($t->get('/api/v1/products/5/extra', user => 1), 404, 'NOT_FOUND',
    'extra path segment');
is_error($t->get('/api/v1/balancex', user => 1), 404, 'NOT_FOUND',
    'a route name with a suffix');

is_error($t->req('DELETE', '/api/v1/balance', user => 1), 405,
    'METHOD_NOT_ALLOWED', 'DELETE /balance');
is_error($t->post('/api/v1/balance', { amount => 5 }, user => 1), 405,
    'METHOD_NOT_ALLOWED', 'POST /balance');
is_error($t->get('/api/v1/balance/charge', user => 1), 405,
    'METHOD_NOT_ALLOWED', 'GET /balance/charge');
is_error($t->post('/api/v1/products', { name => 'x' }, user => 1), 405,
    'METHOD_NOT_ALLOWED', 'POST /products');
is_error($t->req('PUT', '/api/v1/products/5', body => '{}', user => 1), 405,
    'METHOD_NOT_ALLOWED', 'PUT /products/5');
is_error($t->get('/api/v1/orders/1/payment', user => 1), 405,
    'METHOD_NOT_ALLOWED', 'GET /orders/1/payment');

# a malformed request line is nginx's business, and must not upset it
my $r = $t->raw("GARBAGE\r\n\r\n");
is($r->{status}, 400, 'garbage request line: 400 from nginx');

is($t->get('/api/v1/balance', user => 1)->{status}, 200, 'still serving');

$t->done;
