#!/usr/bin/perl
# Idempotency-Key (IETF draft-ietf-httpapi-idempotency-key-header) on
# POST /balance/charge, POST /orders and POST /orders/{id}/payment:
#
#   - the same key and the same request replays the first answer exactly
#     (status, body) with Idempotent-Replayed: true, and changes nothing;
#   - the same key with another body, path or route: 422
#     IDEMPOTENCY_KEY_REUSED, nothing changes;
#   - while the first request runs: 409 IDEMPOTENCY_IN_FLIGHT;
#   - keys are per user;
#   - bad keys (empty, > 255 bytes, not printable ASCII, given twice): 400;
#   - 4xx answers (business errors, bad bodies) are stored and replayed;
#     a 5xx answer frees the key (card payment: PG_UNAVAILABLE, retry runs);
#   - a client retry never charges twice: 50 concurrent charges, orders and
#     card payments with one key do the work once;
#   - a client that leaves before the answer: the request still stores it,
#     the retry replays it; a connection that breaks while the answer is
#     stored: it is stored on another one.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use PgSim;

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

my $sim = PgSim->start(seed => 86, failRate => 0, latencyMs => [0, 5],
    decisionMs => [100, 200], log => $t->dir . '/pgsim.log');
my $simport = $sim->port;

$t->write_config($t->default_config(http_extra => <<"EOF"));
commerce_zone 1m;
upstream pg_a { server 127.0.0.1:$simport; keepalive 8; }
commerce_gateway pg_a upstream=pg_a timeout=1s connect_timeout=500ms window=20 min_calls=20 failure_rate=100 keepalive=8;
commerce_gateway_callback_url http://127.0.0.1:%%PORT%%/api/v1/payments/callback;
commerce_gateway_retries 3;
commerce_gateway_retry_base 20ms;
commerce_gateway_retry_cap 100ms;
commerce_gateway_retry_budget 100;
commerce_gateway_retry_budget_min 100;
commerce_reconcile_interval 500ms;
commerce_reconcile_age 5s;
commerce_reconcile_grace 30s;
EOF
$t->start_nginx;

my $OK_CARD = '1111-1111-1111-1111';

# ---------------------------------------------------------------------------
# helpers

sub with_key {
    my ($key, %o) = @_;
    return (%o, headers => { %{ $o{headers} // {} },
        'Idempotency-Key' => $key });
}

sub charge {
    my ($user, $body, $key, %o) = @_;
    return $t->post('/api/v1/balance/charge', $body, user => $user,
        defined $key ? with_key($key, %o) : %o);
}

sub order {
    my ($user, $body, $key, %o) = @_;
    return $t->post('/api/v1/orders', $body, user => $user,
        defined $key ? with_key($key, %o) : %o);
}

sub pay {
    my ($user, $id, $body, $key, %o) = @_;
    return $t->post("/api/v1/orders/$id/payment", $body, user => $user,
        defined $key ? with_key($key, %o) : %o);
}

sub balance { 0 + $t->psql("SELECT balance FROM users WHERE id = $_[0]") }
sub stock { 0 + $t->psql("SELECT stock FROM products WHERE id = $_[0]") }
sub ledger_rows {
    0 + $t->psql("SELECT count(*) FROM balance_ledger WHERE user_id = $_[0]");
}
sub norders {
    0 + $t->psql("SELECT count(*) FROM orders WHERE user_id = $_[0]");
}
sub key_row {
    my ($user, $key) = @_;
    $key =~ s/'/''/g;
    return scalar $t->psql("SELECT state || '|' || coalesce(http_status::text,"
        . " '-') FROM idempotency_keys WHERE user_id = $user"
        . " AND idem_key = '$key'");
}

sub replayed { $_[0]{headers}{'idempotent-replayed'} }

# the second answer is the first one again, marked as a replay
sub is_replay {
    my ($r, $first, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($r->{status}, $first->{status}, "$name: same status $first->{status}");
    is($r->{body}, $first->{body}, "$name: byte-identical body");
    is(replayed($r), 'true', "$name: Idempotent-Replayed: true");
    like($r->{headers}{'content-type'} // '', qr{^application/json},
        "$name: JSON content type");
}

sub is_first {
    my ($r, $status, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($r->{status}, $status, "$name: $status") or diag($r->{body});
    ok(!defined replayed($r), "$name: not marked as a replay");
}

# wait until a query (in another session) is blocked or sleeping
sub wait_active {
    my ($like) = @_;
    return wait_until(sub { $t->psql("SELECT count(*) FROM pg_stat_activity"
        . " WHERE query LIKE '$like' AND state = 'active'"
        . " AND pid <> pg_backend_pid()") >= 1 });
}

# ---------------------------------------------------------------------------
# 1. charge: replay, mismatch, other routes

my $r1 = charge(21, { amount => 500 }, 'charge-21-a');
is_first($r1, 200, 'first charge with a key');
is_response($r1, 200, { userId => 21, balance => 100500 },
    'first charge: the new balance');
is(key_row(21, 'charge-21-a'), 'DONE|200', 'key stored DONE with 200');

my $before = $t->db_state;
for my $n (1 .. 3) {
    is_replay(charge(21, { amount => 500 }, 'charge-21-a'), $r1,
        "same key and body, retry $n");
}
is_deeply($t->db_state, $before, 'replays changed nothing in the database');
is(balance(21), 100500, 'balance increased once');
is(ledger_rows(21), 1, 'one ledger row');

is_replay($t->post('/api/v1/balance/charge', { amount => 500 }, user => 21,
    headers => { 'idempotency-key' => 'charge-21-a' }), $r1,
    'header name in lower case');

my $o21 = order(21, { items => [ { productId => 1, quantity => 1 } ] });
is($o21->{status}, 201, 'an unpaid order (no key)');
$before = $t->db_state;
is_error(charge(21, { amount => 501 }, 'charge-21-a'), 422,
    'IDEMPOTENCY_KEY_REUSED', 'same key, different amount');
is_error(charge(21, '{"amount": 500}', 'charge-21-a'), 422,
    'IDEMPOTENCY_KEY_REUSED', 'same key, same JSON with other bytes');
is_error(order(21, { items => [ { productId => 1, quantity => 1 } ] },
    'charge-21-a'), 422, 'IDEMPOTENCY_KEY_REUSED',
    'same key on POST /orders');
is_error(pay(21, $o21->{json}{id}, { method => 'BALANCE' }, 'charge-21-a'),
    422, 'IDEMPOTENCY_KEY_REUSED', 'same key on POST /orders/{id}/payment');
is_deeply($t->db_state, $before, 'the 422s changed nothing');
is(replayed(charge(21, { amount => 500 }, 'charge-21-a')), 'true',
    'the key still replays its first answer after the 422s');

# another key (keys are case-sensitive strings) is another charge
is_first(charge(21, { amount => 500 }, 'CHARGE-21-A'), 200,
    'the key in upper case is another key');
is(balance(21), 101000, '... and charged again');
is_first(charge(21, { amount => 500 }), 200, 'no key: charged again');
is(balance(21), 101500, '... balance');
is(ledger_rows(21), 3, 'three ledger rows for three operations');

# printable ASCII of any kind, up to 255 bytes
for my $key ('a', 'x' x 255, q{ key with "quotes", \back\slash; and {}=~ },
    "'; DROP TABLE idempotency_keys; --")
{
    my $b0 = balance(21);
    my $f = charge(21, { amount => 7 }, $key);
    my $shown = length $key > 40 ? length($key) . ' bytes' : "'$key'";
    is_first($f, 200, "key $shown");
    is_replay(charge(21, { amount => 7 }, $key), $f, "key $shown replayed");
    is(balance(21), $b0 + 7, "key $shown: charged once");
}

# answers sent before the key is claimed (415 here) are not stored
is_error(charge(21, { amount => 5 }, 'charge-21-415',
    content_type => 'text/plain'), 415, 'UNSUPPORTED_MEDIA_TYPE',
    '415 with a key');
is(key_row(21, 'charge-21-415'), '', '... the key is not taken');
is_first(charge(21, { amount => 5 }, 'charge-21-415'), 200,
    'the key then runs the charge');

# a key first used more than 24 h ago is taken over as new
$t->psql(q{UPDATE idempotency_keys SET created_at = now() - interval '25 hours'
    WHERE user_id = 21 AND idem_key = 'charge-21-a'});
my $b21 = balance(21);
my $old = charge(21, { amount => 600 }, 'charge-21-a');
is_first($old, 200, 'a 25 h old key with another body: a new operation');
is(balance(21), $b21 + 600, '... charged');
is_replay(charge(21, { amount => 600 }, 'charge-21-a'), $old,
    '... and the key now replays the new answer');

# ---------------------------------------------------------------------------
# 2. invalid keys: 400, nothing happens

$before = $t->db_state;
my %bad = (
    'empty' => '',
    '256 bytes' => 'k' x 256,
    '1000 bytes' => 'k' x 1000,
    'a tab inside' => "a\tb",
    'a control character' => "a\x01b",
    'DEL' => "a\x7fb",
    'UTF-8' => "caf\xc3\xa9",
    'a high byte' => "a\xffb",
);
for my $what (sort keys %bad) {
    is_error(charge(22, { amount => 100 }, $bad{$what}), 400,
        'INVALID_REQUEST', "charge with a key: $what");
}
is_error(order(22, { items => [ { productId => 2, quantity => 1 } ],
    payment => { method => 'BALANCE' } }, 'k' x 256), 400,
    'INVALID_REQUEST', 'order with a 256-byte key');
is_error(pay(22, $o21->{json}{id}, { method => 'BALANCE' }, ''), 400,
    'INVALID_REQUEST', 'payment with an empty key');
is_error($t->post('/api/v1/balance/charge', { amount => 100 }, user => 22,
    headers => { 'Idempotency-Key' => 'twice-1',
                 'idempotency-key' => 'twice-2' }),
    400, 'INVALID_REQUEST', 'the header given twice');
is_deeply($t->db_state, $before, 'bad keys: nothing charged or stored');
is(balance(22), 100000, 'balance of user 22 untouched');

# ---------------------------------------------------------------------------
# 3. errors are answers too: 4xx stored and replayed

# product 200 costs 100000: two are more than the balance
my $big = { items => [ { productId => 200, quantity => 2 } ],
            payment => { method => 'BALANCE' } };
my $s200 = stock(200);
my $e1 = order(23, $big, 'order-23-big');
is_first($e1, 409, 'create+pay beyond the balance');
is_error($e1, 409, 'INSUFFICIENT_BALANCE', '... INSUFFICIENT_BALANCE');
is(key_row(23, 'order-23-big'), 'DONE|409', 'the 409 is stored under the key');
$before = $t->db_state;
is_replay(order(23, $big, 'order-23-big'), $e1, 'INSUFFICIENT_BALANCE again');
is_deeply($t->db_state, $before, '... nothing changed');

# the first answer stands even once the operation could succeed
is(charge(23, { amount => 200000 })->{status}, 200, 'top up (no key)');
is_replay(order(23, $big, 'order-23-big'), $e1,
    'after the top-up the key still answers its first 409');
is(norders(23), 0, '... and no order was created');
is(stock(200), $s200, '... stock of product 200 untouched');
my $ok = order(23, $big, 'order-23-big-2');
is_first($ok, 201, 'a new key runs the order');
is($ok->{json}{status}, 'PAID', '... PAID');
is(balance(23), 100000, '... balance 300000 - 200000');

# a bad body with a key: its 400 is the answer for that key
my $v1 = charge(24, { amount => 0 }, 'charge-24-zero');
is_first($v1, 400, 'amount 0 with a key');
is_error($v1, 400, 'INVALID_REQUEST', '... INVALID_REQUEST');
is_replay(charge(24, { amount => 0 }, 'charge-24-zero'), $v1,
    'the 400 replayed');
is(balance(24), 100000, 'nothing charged');

# ---------------------------------------------------------------------------
# 4. orders: create+pay and pay later

my $body31 = { items => [ { productId => 7, quantity => 2 },
                          { productId => 8, quantity => 1 } ],
               payment => { method => 'BALANCE' } };
my ($s7, $s8, $b31) = (stock(7), stock(8), balance(31));
my $c1 = order(31, $body31, 'order-31');
is_first($c1, 201, 'create+pay with a key');
is($c1->{json}{status}, 'PAID', '... PAID');
my $total31 = $c1->{json}{totalAmount};
$before = $t->db_state;
for my $n (1 .. 3) {
    is_replay(order(31, $body31, 'order-31'), $c1, "create+pay retry $n");
}
is_deeply($t->db_state, $before, 'create+pay replays changed nothing');
is(norders(31), 1, 'one order');
is(stock(7), $s7 - 2, 'stock of product 7 taken once');
is(stock(8), $s8 - 1, 'stock of product 8 taken once');
is(balance(31), $b31 - $total31, 'paid once');
is(ledger_rows(31), 1, 'one ledger row');

is_error(order(31, { %$body31, items => [ { productId => 7, quantity => 3 },
    { productId => 8, quantity => 1 } ] }, 'order-31'), 422,
    'IDEMPOTENCY_KEY_REUSED', 'same key, other quantities');
is_error(order(31, { items => $body31->{items} }, 'order-31'), 422,
    'IDEMPOTENCY_KEY_REUSED', 'same key, without the payment');
is_error(charge(31, { amount => 10 }, 'order-31'), 422,
    'IDEMPOTENCY_KEY_REUSED', 'the order key on /balance/charge');
is_deeply($t->db_state, $before, 'nothing changed');

# pay later
my $p = order(32, { items => [ { productId => 9, quantity => 1 } ] });
is($p->{status}, 201, 'unpaid order');
my $oid32 = $p->{json}{id};
my $p2 = order(32, { items => [ { productId => 9, quantity => 1 } ] });
my $oid32b = $p2->{json}{id};
my $b32 = balance(32);
my $pay1 = pay(32, $oid32, { method => 'BALANCE' }, 'pay-32');
is_first($pay1, 200, 'pay with a key');
is($pay1->{json}{status}, 'PAID', '... PAID');
$before = $t->db_state;
is_replay(pay(32, $oid32, { method => 'BALANCE' }, 'pay-32'), $pay1,
    'pay retried');
is_deeply($t->db_state, $before, '... nothing changed');
is(balance(32), $b32 - $pay1->{json}{totalAmount}, 'paid once');
is_error(pay(32, $oid32, { method => 'BALANCE' }), 409, 'ORDER_NOT_PAYABLE',
    'without the key, paying again is 409 ORDER_NOT_PAYABLE');
is_error(pay(32, $oid32b, { method => 'BALANCE' }, 'pay-32'), 422,
    'IDEMPOTENCY_KEY_REUSED', 'the key on another order (path differs)');
is($t->get("/api/v1/orders/$oid32b", user => 32)->{json}{status},
    'PENDING_PAYMENT', '... that order stays unpaid');

# ---------------------------------------------------------------------------
# 5. keys are per user

my $k = 'shared-key';
my $u41 = charge(41, { amount => 300 }, $k);
my $u42 = charge(42, { amount => 300 }, $k);
is_first($u41, 200, 'user 41 with the key');
is_first($u42, 200, 'user 42 with the same key and body');
is_response($u41, 200, { userId => 41, balance => 100300 }, 'user 41 charged');
is_response($u42, 200, { userId => 42, balance => 100300 }, 'user 42 charged');
is_replay(charge(42, { amount => 300 }, $k), $u42,
    "user 42's retry replays user 42's answer");
is_replay(charge(41, { amount => 300 }, $k), $u41,
    "user 41's retry replays user 41's answer");
is_first(charge(43, { amount => 999 }, $k), 200,
    'user 43: the key with another body is a new key');
is(ledger_rows(41) + ledger_rows(42) + ledger_rows(43), 3,
    'one ledger row each');
is(0 + $t->psql("SELECT count(*) FROM idempotency_keys"
    . " WHERE idem_key = '$k'"), 3, 'three key rows, one per user');

# ---------------------------------------------------------------------------
# 6. in flight: 409 while the first request runs

# hold user 51's row: the first charge waits on it with its key IN_FLIGHT;
# held until the checks below are done, not for a fixed time (a loaded
# machine once took over 2 s to reach the second request)
my $lock = $t->psql_bg(q{BEGIN;
    SELECT id FROM users WHERE id = 51 FOR UPDATE;
    SELECT pg_sleep(60) AS idem_lock_51;
    COMMIT;});
ok(wait_active('%idem_lock_51%'), 'user 51 locked');
my $slow = $t->background(sub {
    my $r = charge(51, { amount => 250 }, 'slow-51');
    return { status => $r->{status}, body => $r->{body},
             replayed => replayed($r) };
});
ok(wait_until(sub { (key_row(51, 'slow-51') // '') eq 'IN_FLIGHT|-' }),
    'the first charge holds its key IN_FLIGHT');
$before = $t->db_state(skip => [ 'idempotency_keys' ]);
is_error(charge(51, { amount => 250 }, 'slow-51'), 409,
    'IDEMPOTENCY_IN_FLIGHT', 'same key while the first runs');
is_error(charge(51, { amount => 251 }, 'slow-51'), 422,
    'IDEMPOTENCY_KEY_REUSED', 'another body while the first runs');
is_deeply($t->db_state(skip => [ 'idempotency_keys' ]), $before,
    'nothing done meanwhile');
is($t->psql(q{SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity
    WHERE query LIKE '%idem_lock_51%' AND pid <> pg_backend_pid()}), 1,
    "user 51's row is let go");
my $first = $t->collect($slow);
is($first->{status}, 200, 'the first charge completes after the lock');
ok(!defined $first->{replayed}, '... not a replay');
$t->psql_wait($lock);
is_replay(charge(51, { amount => 250 }, 'slow-51'), $first,
    'afterwards: the replay');
is(balance(51), 100250, 'charged once');

# the same with 50 requests at once, the first one held on the lock
$lock = $t->psql_bg(q{BEGIN;
    SELECT id FROM users WHERE id = 52 FOR UPDATE;
    SELECT pg_sleep(1.5) AS idem_lock_52;
    COMMIT;});
ok(wait_active('%idem_lock_52%'), 'user 52 locked');
my @res = $t->concurrent([ map { { method => 'POST',
    path => '/api/v1/balance/charge', body => { amount => 40 },
    token => $t->token(52), headers => { 'Idempotency-Key' => 'burst-52' } }
    } 1 .. 50 ]);
$t->psql_wait($lock);
my @done = grep { $_->{status} == 200 && !defined replayed($_) } @res;
my @busy = grep { $_->{status} == 409
    && ($_->{json}{code} // '') eq 'IDEMPOTENCY_IN_FLIGHT' } @res;
# a claim that reached the database after the first finished (a slow build,
# or pipelined behind the first on its connection) replays its answer
my @late = grep { $_->{status} == 200 && (replayed($_) // '') eq 'true'
    && @done && $_->{body} eq $done[0]{body} } @res;
is(scalar @done, 1, '50 at once on a held row: exactly one did the work');
is(scalar @busy + scalar @late, 49,
    '... the 49 others: 409 IDEMPOTENCY_IN_FLIGHT, or the replay once done')
    or diag(join ' ', map { $_->{status} } @res);
cmp_ok(scalar @busy, '>=', 25, '... most of them while it ran: 409')
    or diag(join ' ', map { $_->{status} } @res);
is(balance(52), 100040, '... charged once');
is(ledger_rows(52), 1, '... one ledger row');

# ---------------------------------------------------------------------------
# 7. a client retry never charges twice: 50 at once, nothing held

sub burst {
    my ($name, $reqs, $status) = @_;
    my @res = $t->concurrent($reqs);
    my @work = grep { $_->{status} == $status && !defined replayed($_) } @res;
    my @rest = grep { !($_->{status} == $status && !defined replayed($_)) }
        @res;
    is(scalar @work, 1, "$name: exactly one answer did the work")
        or diag(join ' ', map { $_->{status} } @res);
    my @bad = grep {
        !(($_->{status} == 409
            && ($_->{json}{code} // '') eq 'IDEMPOTENCY_IN_FLIGHT')
          || ($_->{status} == $status && (replayed($_) // '') eq 'true'
            && @work && $_->{body} eq $work[0]{body}))
    } @rest;
    is(scalar @bad, 0, "$name: the others are 409 IN_FLIGHT or the replay")
        or diag(explain([ map { "$_->{status} $_->{body}" } @bad ]));
    note(sprintf '%s: %d in flight, %d replayed', $name,
        scalar(grep { $_->{status} == 409 } @rest),
        scalar(grep { $_->{status} != 409 } @rest));
    return ($work[0], \@res);
}

my $b61 = balance(61);
my ($w61) = burst('50 charges, one key', [ map { { method => 'POST',
    path => '/api/v1/balance/charge', body => { amount => 1234 },
    token => $t->token(61), headers => { 'Idempotency-Key' => 'retry-61' } }
    } 1 .. 50 ], 200);
is(balance(61), $b61 + 1234, 'balance increased exactly once');
is(ledger_rows(61), 1, 'exactly one ledger row');
is(key_row(61, 'retry-61'), 'DONE|200', 'the key is DONE');
is_replay(charge(61, { amount => 1234 }, 'retry-61'), $w61,
    'a later retry replays the winner');
$t->check_consistency('balances match the ledger');

my ($s12, $b63) = (stock(12), balance(63));
my $body63 = { items => [ { productId => 12, quantity => 3 } ],
               payment => { method => 'BALANCE' } };
my ($w63) = burst('50 create+pay, one key', [ map { { method => 'POST',
    path => '/api/v1/orders', body => $body63, token => $t->token(63),
    headers => { 'Idempotency-Key' => 'retry-63' } } } 1 .. 50 ], 201);
is(norders(63), 1, 'one order');
is(stock(12), $s12 - 3, 'stock taken once');
is(balance(63), $b63 - ($w63 ? $w63->{json}{totalAmount} : 0), 'paid once');
is(ledger_rows(63), 1, 'one ledger row');

my $o64 = order(64, { items => [ { productId => 13, quantity => 1 } ] });
my $b64 = balance(64);
burst('50 payments of one order, one key', [ map { { method => 'POST',
    path => "/api/v1/orders/$o64->{json}{id}/payment",
    body => { method => 'BALANCE' }, token => $t->token(64),
    headers => { 'Idempotency-Key' => 'retry-64' } } } 1 .. 50 ], 200);
is(balance(64), $b64 - $o64->{json}{totalAmount}, 'paid once');
is(0 + $t->psql("SELECT count(*) FROM payments WHERE order_id = "
    . $o64->{json}{id}), 1, 'one payment row');

# ---------------------------------------------------------------------------
# 8. card payments

sub card { { method => 'CARD', cardType => 'KB', cardNo => $_[0] // $OK_CARD } }
sub pg_txns { $sim->transactions(orderId => sprintf('%06d', $_[0])) }

# create+pay by card: the 202 is the answer for the key, even once PAID
my $body71 = { items => [ { productId => 11, quantity => 1 } ],
               payment => card() };
my $k1 = order(71, $body71, 'card-71');
is_first($k1, 202, 'card order with a key');
is($k1->{json}{status}, 'PAYMENT_IN_PROGRESS', '... PAYMENT_IN_PROGRESS');
my $oid71 = $k1->{json}{id};
is_replay(order(71, $body71, 'card-71'), $k1, 'card order retried at once');
my $o = $t->wait_order($oid71, user => 71,
    until => sub { $_[0]{status} ne 'PAYMENT_IN_PROGRESS' });
is($o->{status}, 'PAID', 'the order is PAID after the callback');
is_replay(order(71, $body71, 'card-71'), $k1,
    'retried after PAID: still the first 202');
is(norders(71), 1, 'one order');
is(scalar @{ pg_txns($oid71) }, 1, 'one transaction at the PG');

# a 5xx frees the key: the retry runs
my $o72 = order(72, { items => [ { productId => 14, quantity => 1 } ] });
my $oid72 = $o72->{json}{id};
my $creates = $sim->counters->{create};
$sim->control(failNext => 3);
my $u1 = pay(72, $oid72, card(), 'card-72');
is_error($u1, 503, 'PG_UNAVAILABLE', 'three 500s from the PG: 503');
is($sim->counters->{create} - $creates, 3, '... after 3 attempts');
is(key_row(72, 'card-72'), '', 'the 503 freed the key');
my $u2 = pay(72, $oid72, card(), 'card-72');
is_first($u2, 202, 'the retry with the key runs');
is($u2->{json}{status}, 'PAYMENT_IN_PROGRESS', '... PAYMENT_IN_PROGRESS');
is_replay(pay(72, $oid72, card(), 'card-72'), $u2, '... and is replayed');
$o = $t->wait_order($oid72, user => 72,
    until => sub { $_[0]{status} ne 'PAYMENT_IN_PROGRESS' });
is($o->{status}, 'PAID', 'PAID');
is(scalar @{ pg_txns($oid72) }, 1, 'one transaction at the PG');

# an answer with non-ASCII text (the PG's Korean refusal) replays byte for byte
$sim->control(minOrderIdLength => 12);
my $body74 = { items => [ { productId => 16, quantity => 1 } ],
               payment => card() };
my $d1 = order(74, $body74, 'card-74');
is_first($d1, 200, 'the PG refuses the request: declined at once');
is($d1->{json}{status}, 'PAYMENT_FAILED', '... PAYMENT_FAILED');
like($d1->{body}, qr/[\x80-\xff]/, '... with a UTF-8 reason in the body');
$sim->control(minOrderIdLength => 6);
$creates = $sim->counters->{create};
is_replay(order(74, $body74, 'card-74'), $d1, 'the decline replayed');
is($sim->counters->{create}, $creates, '... without asking the PG again');
is(norders(74), 1, '... one order');

# 50 at once: one request reaches the PG
my $o73 = order(73, { items => [ { productId => 15, quantity => 1 } ] });
my $oid73 = $o73->{json}{id};
burst('50 card payments, one key', [ map { { method => 'POST',
    path => "/api/v1/orders/$oid73/payment", body => card(),
    token => $t->token(73), headers => { 'Idempotency-Key' => 'card-73' } }
    } 1 .. 50 ], 202);
$o = $t->wait_order($oid73, user => 73,
    until => sub { $_[0]{status} ne 'PAYMENT_IN_PROGRESS' });
is($o->{status}, 'PAID', 'PAID');
is(scalar @{ pg_txns($oid73) }, 1, 'one transaction at the PG');
is(0 + $t->psql("SELECT count(*) FROM payments WHERE order_id = $oid73"), 1,
    'one payment row');

# ---------------------------------------------------------------------------
# 9. the client leaves before the answer: the request still runs to its end
# and stores its answer, so the retry with the key gets it (not 409 for 24 h)

# a charge waiting on user 81's row lock when its client goes; the lock is
# held well past the check of the claimed key (a loaded machine once took
# over 1 s between the client's close and that check, and the charge had
# finished: DONE|200 instead of IN_FLIGHT)
my $bal81 = balance(81);
$lock = $t->psql_bg(q{BEGIN;
    SELECT id FROM users WHERE id = 81 FOR UPDATE;
    SELECT pg_sleep(4) AS idem_lock_81;
    COMMIT;});
ok(wait_active('%idem_lock_81%'), 'user 81 locked');
my $gone = $t->raw($t->build_request('POST', '/api/v1/balance/charge',
    user => 81, body => { amount => 700 },
    headers => { 'Idempotency-Key' => 'gone-81' }), close_after => 0.5,
    timeout => 5);
is($gone->{status}, 0, 'charge: the client closed before the answer');
is(key_row(81, 'gone-81'), 'IN_FLIGHT|-', '... its key still claimed');
$t->psql_wait($lock);
ok(wait_until(sub { (key_row(81, 'gone-81') // '') eq 'DONE|200' }),
    '... the charge finished and stored its answer');
my $again = charge(81, { amount => 700 }, 'gone-81');
is($again->{status}, 200, 'the retry: 200');
is(replayed($again), 'true', '... the stored answer, replayed');
is($again->{json}{balance}, $bal81 + 700, '... with the balance it made');
is(balance(81), $bal81 + 700, 'charged once');

# an order with a key whose client leaves while its row lock waits
my $stock17 = stock(17);
$lock = $t->psql_bg(q{BEGIN;
    SELECT id FROM products WHERE id = 17 FOR UPDATE;
    SELECT pg_sleep(1.5) AS idem_lock_p17;
    COMMIT;});
ok(wait_active('%idem_lock_p17%'), 'product 17 locked');
my $body82 = { items => [ { productId => 17, quantity => 2 } ],
               payment => { method => 'BALANCE' } };
$gone = $t->raw($t->build_request('POST', '/api/v1/orders', user => 82,
    body => $body82, headers => { 'Idempotency-Key' => 'gone-82' }),
    close_after => 0.5, timeout => 5);
is($gone->{status}, 0, 'order: the client closed before the answer');
$t->psql_wait($lock);
ok(wait_until(sub { (key_row(82, 'gone-82') // '') eq 'DONE|201' }),
    '... the order was created and its answer stored');
$again = order(82, $body82, 'gone-82');
is($again->{status}, 201, 'the retry: 201');
is(replayed($again), 'true', '... replayed');
is($again->{json}{status}, 'PAID', '... the PAID order');
is(norders(82), 1, 'one order');
is(stock(17), $stock17 - 2, 'stock taken once');

# a card payment whose client leaves while the PG is slow to answer
my $o83 = order(83, { items => [ { productId => 18, quantity => 1 } ] });
my $oid83 = $o83->{json}{id};
$creates = $sim->counters->{create};
$sim->control(latencyMs => [700, 700]);
$gone = $t->raw($t->build_request('POST', "/api/v1/orders/$oid83/payment",
    user => 83, body => card(), headers => { 'Idempotency-Key' => 'gone-83' }),
    close_after => 0.3, timeout => 5);
is($gone->{status}, 0, 'card: the client closed before the answer');
ok(wait_until(sub { (key_row(83, 'gone-83') // '') eq 'DONE|202' }),
    '... the payment went to the PG and its answer was stored');
$sim->control(latencyMs => [0, 5]);
$again = pay(83, $oid83, card(), 'gone-83');
is($again->{status}, 202, 'the retry: 202');
is(replayed($again), 'true', '... replayed');
is($sim->counters->{create} - $creates, 1, 'one request reached the PG');
$o = $t->wait_order($oid83, user => 83,
    until => sub { $_[0]{status} ne 'PAYMENT_IN_PROGRESS' });
is($o->{status}, 'PAID', 'PAID');
is(scalar @{ pg_txns($oid83) }, 1, 'one transaction at the PG');

# ---------------------------------------------------------------------------
# 10. the connection breaks while the answer is being stored: storing is
# idempotent (it changes only a key still IN_FLIGHT), so it is sent again on
# another connection, and the retry gets the replay instead of 409 for 24 h

my $o84 = order(84, { items => [ { productId => 19, quantity => 1 } ] });
my $oid84 = $o84->{json}{id};
# Storing this key's answer waits on a lock the test holds from before the
# request: a trigger of the test's own (dropped below) makes the UPDATE to
# DONE wait for it.  (Taking the key's row lock after the claim raced the
# PG's answer: a loaded machine took the lock after it was stored.)
$t->psql(q{CREATE FUNCTION t086_hold() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_advisory_xact_lock(86084); RETURN NEW; END $$;
    CREATE TRIGGER t086_hold BEFORE UPDATE ON idempotency_keys FOR EACH ROW
      WHEN (NEW.idem_key = 'finish-84' AND NEW.state = 'DONE')
      EXECUTE FUNCTION t086_hold();});
$lock = $t->psql_bg(q{BEGIN;
    SELECT pg_advisory_xact_lock(86084);
    SELECT pg_sleep(60) AS finish_lock_84;
    COMMIT;});
ok(wait_active('%finish_lock_84%'), "storing the key's answer is held");
$sim->control(latencyMs => [1200, 1200]);
my $storing = $t->background(sub {
    my $r = pay(84, $oid84, card(), 'finish-84', timeout => 20);
    return { status => $r->{status}, body => $r->{body} };
});
ok(wait_until(sub { (key_row(84, 'finish-84') // '') eq 'IN_FLIGHT|-' }),
    'card payment with a key: claimed, the PG is slow to answer');
ok(wait_until(sub { $t->psql(q{SELECT count(*) FROM pg_stat_activity
    WHERE application_name = 'ngx_commerce' AND wait_event_type = 'Lock'
      AND query LIKE '%cm_idem_finish%'}) == 1 }, timeout => 10),
    'storing the answer waits for the row');
is($t->psql(q{SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
    WHERE application_name = 'ngx_commerce' AND wait_event_type = 'Lock'
      AND query LIKE '%cm_idem_finish%'}), 1,
    'the server ends that connection');
# then the holder lets the row go (held until now, not for a fixed time: a
# loaded machine took longer than 3 s to reach the wait)
is($t->psql(q{SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity
    WHERE query LIKE '%finish_lock_84%' AND pid <> pg_backend_pid()}), 1,
    "the key's row is let go");
my $stored = $t->collect($storing);
is($stored->{status}, 202, 'the client gets its 202');
$t->psql_wait($lock);
$t->psql('DROP TRIGGER t086_hold ON idempotency_keys; DROP FUNCTION t086_hold()');
is(key_row(84, 'finish-84'), 'DONE|202',
    'the answer was stored on another connection');
$sim->control(latencyMs => [0, 5]);
my $replay84 = pay(84, $oid84, card(), 'finish-84');
is($replay84->{status}, 202, 'the retry: 202');
is(replayed($replay84), 'true', '... replayed');
is($replay84->{body}, $stored->{body}, '... the same answer');
ok(scalar $t->grep_log(qr/retrying "cm_idem_finish" on another connection/),
    '... the log says it was sent again');
$o = $t->wait_order($oid84, user => 84,
    until => sub { $_[0]{status} ne 'PAYMENT_IN_PROGRESS' });
is($o->{status}, 'PAID', 'PAID');
is(scalar @{ pg_txns($oid84) }, 1, 'one transaction at the PG');
$t->allow_log(qr/terminating connection due to administrator command|server closed the connection/);

$t->check_consistency;

$t->done;
$sim->stop;
