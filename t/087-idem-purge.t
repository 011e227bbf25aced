#!/usr/bin/perl
# Idempotency-Keys are kept 24 h, then purged by the background job (its
# first run after start, then every 10 minutes): the table does not grow
# without bound, and a purged key is simply new again.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

my $hash = '0' x 64;
$t->psql("INSERT INTO idempotency_keys (user_id, idem_key, route, request_hash,"
    . " state, http_status, response_body, created_at, updated_at) SELECT 5,"
    . " 'old-' || n, 'POST /api/v1/balance/charge', '$hash', 'DONE', 200,"
    . " '{}', now() - interval '25 hours', now() - interval '25 hours'"
    . " FROM generate_series(1, 300) n");
$t->psql("INSERT INTO idempotency_keys (user_id, idem_key, route, request_hash,"
    . " state, http_status, response_body, created_at, updated_at) VALUES (5,"
    . " 'recent', 'POST /api/v1/balance/charge', '$hash', 'DONE', 200, '{}',"
    . " now() - interval '23 hours', now() - interval '23 hours')");

$t->write_config($t->default_config(
    http_extra => 'commerce_order_expiry_interval 200ms;'));
$t->start_nginx;

ok(wait_until(sub { $t->psql("SELECT count(*) FROM idempotency_keys WHERE"
    . " idem_key LIKE 'old-%'") == 0 }, timeout => 10),
    'the 300 keys older than 24 h are purged');
is($t->psql("SELECT count(*) FROM idempotency_keys WHERE idem_key ="
    . " 'recent'"), 1, 'the key of 23 h is kept');
ok(scalar($t->grep_log(qr/purged 300 Idempotency-Key\(s\) older than 24 h/)),
    'logged');

# a purged key is new: the charge runs
my $b0 = $t->get('/api/v1/balance', user => 5)->{json}{balance};
my $r = $t->post('/api/v1/balance/charge', { amount => 100 }, user => 5,
    headers => { 'Idempotency-Key' => 'old-1' });
is($r->{status}, 200, 'a purged key is taken as new');
is($r->{json}{balance}, $b0 + 100, 'and the charge happened');
is($r->{headers}{'idempotent-replayed'}, undef, 'not a replay');

# the expiry job still runs beside the purge
my $o = $t->post('/api/v1/orders', { items => [ { productId => 1,
    quantity => 1 } ] }, user => 6)->{json}{id};
$t->psql("UPDATE orders SET created_at = now() - interval '31 minutes'"
    . " WHERE id = $o");
ok(wait_until(sub { $t->psql("SELECT status FROM orders WHERE id = $o")
    eq 'CANCELLED' }, timeout => 5), 'order expiry still runs');

$t->done;
