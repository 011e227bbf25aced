#!/usr/bin/perl
# Card payments through a payment gateway (PG), the everyday story: a real
# PG simulator (t/pgsim) decides each card, calls back, and the module
# settles the order forward-only after asking the PG itself.
#
#   - happy path: 202 PAYMENT_IN_PROGRESS, callback, PAID, stock kept
#     (create+pay and pay-later);
#   - declines: LIMIT / INVALID cards end PAYMENT_FAILED with the PG's
#     reason, stock released exactly once (even with duplicated callbacks);
#     a request the PG refuses (400) is 200 PAYMENT_FAILED at once;
#   - validation: bad cardType / cardNo, CARD on a paid or in-progress
#     order, someone else's order: an error, nothing written, nothing sent;
#   - card numbers never stored whole (payments, interface log, logs);
#   - the interface log: one row per exchange (create, callback, status);
#   - forward only: duplicate, stale, reordered and replayed callbacks, a
#     callback lying about the status (only a hint: the PG's GET decides),
#     unknown keys and gateways;
#   - signed callbacks (reload with commerce_gateway_callback_secret):
#     unsigned, bad signature, old timestamp, malformed: 401, nothing
#     changes.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use PgSim;
use Digest::SHA qw(hmac_sha256_hex);
use JSON::PP;
use Time::HiRes qw(time sleep);

binmode(Test::More->builder->$_, ':utf8')
    for qw(output failure_output todo_output);

my $LIMIT = '한도초과입니다. 다른 카드를 선택해주세요.';
my $INVALID = '잘못된 카드입니다. 다른 카드를 선택해주세요.';
my $KEY_RE = qr/\A\d{8}:TR:[0-9a-f]{6}\z/;

my $OK_CARD = '1111-1111-1111-1111';        # SUCCESS
my $LIMIT_CARD = '2222-2222-2222-2222';     # FAILED, limit exceeded
my $INVALID_CARD = '3333-3333-3333-3333';   # FAILED, invalid card
my $PENDING_CARD = '6666-6666-6666-6666';   # never decided (set below)

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

my $sim = PgSim->start(seed => 80, failRate => 0, latencyMs => [0, 5],
    decisionMs => [100, 200], log => $t->dir . '/pgsim.log');
$sim->control(cards => { $PENDING_CARD => 'PENDING' });

sub config {
    my (%o) = @_;
    my $secret = $o{secret}
        ? "commerce_gateway_callback_secret \"$o{secret}\";" : '';
    my $port = $sim->port;
    return $t->default_config(
        server_extra => 'location = /metrics { commerce_metrics; }',
        http_extra => <<"EOF");
commerce_zone 1m;
upstream pg_a { server 127.0.0.1:$port; keepalive 8; }
commerce_gateway pg_a upstream=pg_a timeout=1s connect_timeout=500ms window=10 min_calls=5 failure_rate=50 open=2s probes=2 probe_deadline=3s keepalive=8;
commerce_gateway_callback_url http://127.0.0.1:%%PORT%%/api/v1/payments/callback;
$secret
commerce_gateway_retries 3;
commerce_gateway_retry_base 50ms;
commerce_gateway_retry_cap 500ms;
commerce_gateway_retry_budget 20;
commerce_gateway_retry_budget_min 10;
commerce_reconcile_interval 500ms;
commerce_reconcile_age 1s;
commerce_reconcile_grace 3s;
commerce_payment_timeout 600s;
EOF
}

# the real simulator's callbacks are unsigned: no secret at first
$t->write_config(config());
$t->start_nginx;

# ---------------------------------------------------------------------------
# helpers

sub card { { method => 'CARD', cardType => $_[1] // 'KB', cardNo => $_[0] } }
sub pg_order_id { sprintf '%06d', $_[0] }
sub stock { $t->psql("SELECT stock FROM products WHERE id = $_[0]") + 0 }

# the PG's transactions for one of our orders
sub pg_txns {
    my ($order_id) = @_;
    return $sim->transactions(orderId => pg_order_id($order_id));
}

sub payment_row {
    my ($payment_id) = @_;
    return $t->psql_json("SELECT row_to_json(p) FROM payments p"
        . " WHERE id = $payment_id");
}

sub log_rows {
    my ($payment_id) = @_;
    return $t->psql_json("SELECT coalesce(json_agg(l ORDER BY id), '[]')"
        . " FROM payment_interface_request_log l"
        . " WHERE payment_id = $payment_id") // [];
}

# an order document with a card payment, as the API shows it
sub order_doc {
    my (%o) = @_;
    return {
        id => defined $o{id} ? 0 + $o{id} : sub { $_[0] =~ /^\d+$/ },
        userId => 0 + $o{user},
        status => $o{status},
        items => $o{items},
        totalAmount => $o{total}, discountAmount => 0,
        paymentAmount => $o{total},
        payment => $o{payment} // {
            id => defined $o{payment_id} ? 0 + $o{payment_id}
                : sub { $_[0] =~ /^\d+$/ },
            method => 'CARD', status => $o{pay_status},
            amount => $o{total}, reason => $o{reason},
        },
        payments => sub { ref $_[0] eq 'ARRAY' && @{ $_[0] } >= 1 },   # t/175
        createdAt => qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
    };
}

sub item {
    my ($pid, $qty) = @_;
    my $price = $t->psql("SELECT price FROM products WHERE id = $pid") + 0;
    return { productId => 0 + $pid, name => "Product $pid",
        quantity => 0 + $qty, unitPrice => $price, amount => $price * $qty };
}

sub wait_decided {
    my ($id, $user, %o) = @_;
    return $t->wait_order($id, user => $user, timeout => $o{timeout} // 10,
        until => sub { $_[0]{status} ne 'PAYMENT_IN_PROGRESS' });
}

# nothing pending anywhere: the reconciler sends nothing in the background
sub no_pending {
    return wait_until(sub {
        $t->psql("SELECT count(*) FROM payments WHERE status = 'PENDING'")
            == 0 }, timeout => 15);
}

my $m0 = $t->metrics;

# ---------------------------------------------------------------------------
# 1. Happy path: create and pay in one request

my ($s3, $s5) = (stock(3), stock(5));
my @items = (item(3, 2), item(5, 1));
my $total = $items[0]{amount} + $items[1]{amount};

my $r = $t->post('/api/v1/orders', { items => [ { productId => 5,
    quantity => 1 }, { productId => 3, quantity => 2 } ],
    payment => card($OK_CARD) }, user => 11);
is_response($r, 202, order_doc(user => 11, status => 'PAYMENT_IN_PROGRESS',
    items => \@items, total => $total, pay_status => 'PENDING',
    reason => undef), 'card order: 202, PAYMENT_IN_PROGRESS, payment PENDING');
my $o1 = $r->{json}{id};
my $p1 = $r->{json}{payment}{id};
is(stock(3), $s3 - 2, 'stock of product 3 reserved');
is(stock(5), $s5 - 1, 'stock of product 5 reserved');

my $o = wait_decided($o1, 11);
cmp_json($o, order_doc(id => $o1, user => 11, status => 'PAID',
    items => \@items, total => $total, payment_id => $p1,
    pay_status => 'SUCCESS', reason => undef),
    'after the callback: PAID, payment SUCCESS');
is(stock(3), $s3 - 2, 'stock kept after PAID (3)');
is(stock(5), $s5 - 1, 'stock kept after PAID (5)');

my $txns = pg_txns($o1);
is(scalar @$txns, 1, 'the PG holds one transaction for the order');
my $k1 = $txns->[0]{transactionKey};
like($k1, $KEY_RE, "its key $k1");
cmp_json({ map { $_ => $txns->[0]{$_} } qw(userId orderId cardType cardNo
    amount status) }, { userId => '11', orderId => pg_order_id($o1),
    cardType => 'KB', cardNo => $OK_CARD, amount => $total,
    status => 'SUCCESS' }, 'the PG got user, padded order id, card, amount');
like($txns->[0]{callbackUrl},
    qr{^http://127\.0\.0\.1:\d+/api/v1/payments/callback\?gateway=pg_a$},
    'callback URL names the gateway');
is(scalar @{ $txns->[0]{callbacks} }, 1, 'one callback sent');
is($txns->[0]{callbacks}[0]{status}, 200, 'and answered 200');

my $row = payment_row($p1);
cmp_json({ map { $_ => $row->{$_} } qw(order_id method status amount gateway
    transaction_key card_type card_last4 reason net_cancel) },
    { order_id => $o1, method => 'CARD', status => 'SUCCESS',
      amount => $total, gateway => 'pg_a', transaction_key => $k1,
      card_type => 'KB', card_last4 => '1111', reason => undef,
      net_cancel => undef },
    'payments row: gateway, key, card type and last 4 only');
ok(defined $row->{decided_at}, 'decided_at set');

# ---------------------------------------------------------------------------
# 2. The interface log of that payment: create, callback, confirming GET

my $rows = log_rows($p1);
my @ops = map { "$_->{direction} $_->{operation}" } @$rows;
is_deeply(\@ops, [ 'OUT CREATE', 'IN CALLBACK', 'OUT STATUS' ],
    'interface log: OUT CREATE, IN CALLBACK, OUT STATUS, in that order')
    or diag(explain(\@ops));
my ($create) = grep { $_->{operation} eq 'CREATE' } @$rows;
my ($status) = grep { $_->{operation} eq 'STATUS' } @$rows;
my ($cb) = grep { $_->{operation} eq 'CALLBACK' } @$rows;
cmp_json({ map { $_ => $create->{$_} } qw(order_id gateway attempt method
    url http_status error) }, { order_id => $o1, gateway => 'pg_a',
    attempt => 1, method => 'POST', url => '/api/v1/payments',
    http_status => 200, error => undef }, 'create row');
like($create->{request_body} // '', qr/"cardNo":"\*\*\*\*-\*\*\*\*-\*\*\*\*-1111"/,
    'create row: card number masked in the request body');
like($create->{request_body} // '', qr/"orderId":"${\ pg_order_id($o1)}"/,
    'create row: the padded orderId');
like($create->{response_body} // '', qr/\Q$k1\E/,
    'create row: the response with the transaction key');
ok(defined $create->{latency_ms} && $create->{latency_ms} >= 0,
    'create row: latency');
cmp_json({ map { $_ => $status->{$_} } qw(method url http_status error) },
    { method => 'GET', url => "/api/v1/payments/$k1", http_status => 200,
      error => undef }, 'status row: the confirming GET by key');
like($status->{response_body} // '', qr/"status":"SUCCESS"/,
    'status row: the PG said SUCCESS');
unlike($status->{response_body} // '', qr/\Q$OK_CARD\E/,
    'status row: the cardNo of the GET answer is masked');
SKIP: {
    skip 'no IN CALLBACK row', 2 unless $cb;
    like($cb->{request_body} // '', qr/\Q$k1\E/,
        'callback row: the callback body');
    unlike($cb->{request_body} // '', qr/\Q$OK_CARD\E/,
        'callback row: its cardNo masked');
}

# ---------------------------------------------------------------------------
# 3. Pay later: POST /orders, then POST /orders/{id}/payment with CARD

$r = $t->post('/api/v1/orders', { items => [ { productId => 9,
    quantity => 1 } ] }, user => 12);
is($r->{status}, 201, 'unpaid order created');
my $o2 = $r->{json}{id};
@items = (item(9, 1));
$r = $t->post("/api/v1/orders/$o2/payment", card($OK_CARD, 'SAMSUNG'),
    user => 12);
is_response($r, 202, order_doc(id => $o2, user => 12,
    status => 'PAYMENT_IN_PROGRESS', items => \@items,
    total => $items[0]{amount}, pay_status => 'PENDING', reason => undef),
    'pay later by card: 202');
$o = wait_decided($o2, 12);
is($o->{status}, 'PAID', 'pay later: PAID');
is(pg_txns($o2)->[0]{cardType}, 'SAMSUNG', 'the PG got cardType SAMSUNG');

# ---------------------------------------------------------------------------
# 3b. Many at once: 40 card payments while the database pool is busy (its
#     queries wait in the pool's queue); each one is taken as sent

my @later = $t->concurrent([ map { [ 'POST', '/api/v1/orders',
    { items => [ { productId => 25, quantity => 1 } ] }, { user => 300 + $_ } ]
    } 1 .. 20 ]);
is(scalar(grep { $_->{status} == 201 } @later), 20, '20 unpaid orders');
my @many = $t->concurrent([
    (map { [ 'POST', "/api/v1/orders/$later[$_]{json}{id}/payment",
        card($OK_CARD, (qw(SAMSUNG KB HYUNDAI))[$_ % 3]),
        { user => 301 + $_ } ] } 0 .. 19),
    (map { [ 'POST', '/api/v1/orders', { items => [ { productId => 27,
        quantity => 1 } ], payment => card($OK_CARD,
        (qw(SAMSUNG KB HYUNDAI))[$_ % 3]) }, { user => 321 + $_ } ] } 0 .. 19),
]);
my %answers;
$answers{ "$_->{status} " . ($_->{json}{code} // $_->{json}{status} // '') }++
    for @many;
is_deeply(\%answers, { '202 PAYMENT_IN_PROGRESS' => 40 },
    '40 card payments at once: 202 PAYMENT_IN_PROGRESS each')
    or diag(explain(\%answers), explain([ map { $_->{body} }
        grep { $_->{status} != 202 } @many[0 .. 39] ]->[0]));
my %types;
for my $i (0 .. 39) {
    my $id = $many[$i]{json}{id} // next;
    my $x = pg_txns($id)->[0] or next;
    $types{ $x->{cardType} eq (qw(SAMSUNG KB HYUNDAI))[$i % 20 % 3]
        ? 'same' : "sent $x->{cardType}" }++;
}
is_deeply(\%types, { same => 40 }, 'each reached the PG with its own cardType');
my @paid = grep { defined } map { $_->{json}{id} } @many;
ok(wait_until(sub { $t->psql("SELECT count(*) FROM orders WHERE status ="
    . " 'PAID' AND id IN (" . join(',', @paid, 0) . ')') == 40 },
    timeout => 10), 'all 40 PAID');

# ---------------------------------------------------------------------------
# 4. Declines: LIMIT and INVALID cards, stock released exactly once

my $s7 = stock(7);
my %declined;
# decided 1 s after creation: time to see the reservation first
$sim->control(decisionMs => [ 1000, 1000 ]);
for my $case ([ $LIMIT_CARD, $LIMIT, 'HYUNDAI' ],
              [ $INVALID_CARD, $INVALID, 'KB' ]) {
    my ($no, $reason, $type) = @$case;
    $r = $t->post('/api/v1/orders', { items => [ { productId => 7,
        quantity => 3 } ], payment => card($no, $type) }, user => 13);
    is($r->{status}, 202, "card ...${\ substr($no, -4)}: 202");
    is(stock(7), $s7 - 3, 'stock reserved while pending');
    my $id = $r->{json}{id};
    $o = wait_decided($id, 13);
    @items = (item(7, 3));
    cmp_json($o, order_doc(id => $id, user => 13, status => 'PAYMENT_FAILED',
        items => \@items, total => $items[0]{amount},
        payment_id => $r->{json}{payment}{id}, pay_status => 'FAILED',
        reason => $reason), "declined: PAYMENT_FAILED with reason '$reason'");
    is(stock(7), $s7, 'stock released');
    $declined{$no} = { order => $id, payment => $r->{json}{payment}{id} };
}
$sim->control(decisionMs => [ 100, 200 ]);

# a duplicated decline callback releases the stock once
$sim->control(callback => { mode => 'duplicate' });
my $c0 = $sim->counters;
$r = $t->post('/api/v1/orders', { items => [ { productId => 7,
    quantity => 4 } ], payment => card($LIMIT_CARD) }, user => 14);
my $o_dup = $r->{json}{id};
ok($sim->wait_counters(sub { $_[0]{callbacks_sent}
    >= $c0->{callbacks_sent} + 2 }, timeout => 5),
    'the PG sent the decline callback twice');
$o = wait_decided($o_dup, 14);
is($o->{status}, 'PAYMENT_FAILED', 'duplicated decline callbacks: PAYMENT_FAILED');
wait_until(sub { @{ log_rows($r->{json}{payment}{id}) } >= 3 }, timeout => 5);
sleep 0.3;
is(stock(7), $s7, 'stock of product 7 released exactly once (not +4 twice)');
my $dup_txn = pg_txns($o_dup)->[0];
is(scalar @{ $dup_txn->{callbacks} }, 2, 'the PG sent two callbacks');
$sim->control(callback => { mode => 'normal' });

# ---------------------------------------------------------------------------
# 5. The PG refuses the request itself (400): a decline at once, no retry

my $s11 = stock(11);
$sim->control(minOrderIdLength => 12);
$c0 = $sim->counters;
$r = $t->post('/api/v1/orders', { items => [ { productId => 11,
    quantity => 2 } ], payment => card($OK_CARD) }, user => 15);
@items = (item(11, 2));
is_response($r, 200, order_doc(user => 15, status => 'PAYMENT_FAILED',
    items => \@items, total => $items[0]{amount}, pay_status => 'FAILED',
    reason => '주문 ID는 12자리 이상 문자열이어야 합니다.'),
    "PG answers 400: 200 PAYMENT_FAILED with the PG's message");
my $c1 = $sim->counters;
is($c1->{create} - $c0->{create}, 1, 'exactly one create (never retried)');
is($c1->{create_400} - $c0->{create_400}, 1, 'and it was the 400');
is(stock(11), $s11, 'stock released');
$sim->control(minOrderIdLength => 6);

# ---------------------------------------------------------------------------
# 6. Validation: nothing written, nothing sent

ok(no_pending(), 'no payment pending (the reconciler is quiet)');

# bad card fields, a paid order, a declined order, someone else's order
my $paid = $o1;
my @bad = (
    [ 'cardType VISA', "/api/v1/orders/$o2/payment",
      { method => 'CARD', cardType => 'VISA', cardNo => $OK_CARD }, 12,
      400, 'INVALID_REQUEST' ],
    [ 'cardType lower case', '/api/v1/orders', { items => [ { productId => 1,
      quantity => 1 } ], payment => { method => 'CARD', cardType => 'kb',
      cardNo => $OK_CARD } }, 12, 400, 'INVALID_REQUEST' ],
    [ 'no cardType', '/api/v1/orders', { items => [ { productId => 1,
      quantity => 1 } ], payment => { method => 'CARD',
      cardNo => $OK_CARD } }, 12, 400, 'INVALID_REQUEST' ],
    [ 'no cardNo', '/api/v1/orders', { items => [ { productId => 1,
      quantity => 1 } ], payment => { method => 'CARD', cardType => 'KB' } },
      12, 400, 'INVALID_REQUEST' ],
    map({ [ "cardNo '$_'", '/api/v1/orders', { items => [ { productId => 1,
      quantity => 1 } ], payment => { method => 'CARD', cardType => 'KB',
      cardNo => $_ } }, 12, 400, 'INVALID_REQUEST' ] }
      '1111111111111111', '1111-1111-1111-111', '1111-1111-1111-11111',
      '1111-1111-1111-111a', '1111 1111 1111 1111', '',
      '１１１１-1111-1111-1111'),
    [ 'cardNo a number', '/api/v1/orders', '{"items":[{"productId":1,'
      . '"quantity":1}],"payment":{"method":"CARD","cardType":"KB",'
      . '"cardNo":1111111111111111}}', 12, 400, 'INVALID_REQUEST' ],
    [ 'method card (lower case)', "/api/v1/orders/$o2/payment",
      { method => 'card', cardType => 'KB', cardNo => $OK_CARD }, 12,
      400, 'INVALID_REQUEST' ],
    [ 'CARD on a PAID order', "/api/v1/orders/$paid/payment",
      card($OK_CARD), 11, 409, 'ORDER_NOT_PAYABLE' ],
    [ 'CARD on a PAYMENT_FAILED order',
      "/api/v1/orders/$declined{$LIMIT_CARD}{order}/payment",
      card($OK_CARD), 13, 409, 'ORDER_NOT_PAYABLE' ],
    [ "CARD on someone else's order", "/api/v1/orders/$paid/payment",
      card($OK_CARD), 12, 404, 'ORDER_NOT_FOUND' ],
    [ 'CARD on an unknown order', '/api/v1/orders/999999/payment',
      card($OK_CARD), 12, 404, 'ORDER_NOT_FOUND' ],
    [ 'CARD order of an unknown product', '/api/v1/orders',
      { items => [ { productId => 9999, quantity => 1 } ],
        payment => card($OK_CARD) }, 12, 404, 'PRODUCT_NOT_FOUND' ],
    [ 'CARD order out of stock', '/api/v1/orders',
      { items => [ { productId => 1, quantity => 999 }, { productId => 2,
        quantity => 999 } ], payment => card($OK_CARD) }, 12, 409,
      'OUT_OF_STOCK' ],
);
$t->psql('UPDATE products SET stock = 5 WHERE id = 2');
my $before = $t->db_state;
$c0 = $sim->counters;
for my $case (@bad) {
    my ($name, $path, $body, $user, $st, $code) = @$case;
    is_error($t->post($path, $body, user => $user), $st, $code,
        "$name: $st $code");
}
is_deeply($t->db_state, $before, 'validation errors wrote nothing');
my $c2 = $sim->counters;
is($c2->{create}, $c0->{create}, 'and sent no create to the PG');
is($c2->{connections}, $c0->{connections}, 'not even a connection');
$t->psql('UPDATE products SET stock = 1000 WHERE id = 2');

# an order whose card payment is in progress takes no other payment
$r = $t->post('/api/v1/orders', { items => [ { productId => 13,
    quantity => 1 } ], payment => card($PENDING_CARD) }, user => 16);
is($r->{status}, 202, 'a card order the PG never decides: 202');
my $o_pend = $r->{json}{id};
my $p_pend = $r->{json}{payment}{id};
my $decisive = q{SELECT md5(string_agg(x, ',' ORDER BY x)) FROM (
    SELECT o::text AS x FROM orders o
    UNION ALL SELECT p::text FROM products p
    UNION ALL SELECT concat_ws('|', id, order_id, status, amount, gateway,
        transaction_key, reason, net_cancel) FROM payments) s};
my $before_pend = $t->psql($decisive);
$c0 = $sim->counters;
is_error($t->post("/api/v1/orders/$o_pend/payment", card($OK_CARD),
    user => 16), 409, 'ORDER_NOT_PAYABLE',
    'CARD on an order with a card payment in progress: 409');
is_error($t->post("/api/v1/orders/$o_pend/payment", { method => 'BALANCE' },
    user => 16), 409, 'ORDER_NOT_PAYABLE',
    'BALANCE on an order with a card payment in progress: 409');
is($t->psql($decisive), $before_pend, 'nothing written');
is($sim->counters->{create}, $c0->{create}, 'no create sent');

# ---------------------------------------------------------------------------
# 7. Callbacks are only hints; states only move forward

# A callback that lies: SUCCESS for a transaction the PG holds PENDING.
# The module asks the PG (PENDING) and changes nothing.
my $k_pend = pg_txns($o_pend)->[0]{transactionKey};
like($k_pend, $KEY_RE, 'the undecided transaction has a key');
my $s13 = stock(13);
my $lie = { transactionKey => $k_pend, orderId => pg_order_id($o_pend),
    cardType => 'KB', cardNo => $PENDING_CARD, amount => 1000,
    status => 'SUCCESS', reason => '정상 승인되었습니다.' };
$c0 = $sim->counters;
$r = $t->post('/api/v1/payments/callback?gateway=pg_a', $lie);
is_response($r, 200, { received => JSON::PP::true },
    'a lying callback is received (200)');
ok($sim->wait_counters(sub { $_[0]{get} > $c0->{get} }, timeout => 5),
    'the module asked the PG about it');
sleep 0.3;
$o = $t->get("/api/v1/orders/$o_pend", user => 16)->{json};
is($o->{status}, 'PAYMENT_IN_PROGRESS', 'the lie changed nothing: still in progress');
is($o->{payment}{status}, 'PENDING', 'payment still PENDING');
is(stock(13), $s13, 'stock untouched');

# The PG cancels that transaction (it will never be decided): the module
# learns it from the PG and fails the payment, releasing the stock.
my $cancel = $sim->request('POST', "/api/v1/payments/$k_pend/cancel",
    user => 16);
is($cancel->{status}, 200, 'the PG cancels the undecided transaction');
$o = wait_decided($o_pend, 16, timeout => 10);
is($o->{status}, 'PAYMENT_FAILED', 'the reconciler sees CANCELLED: PAYMENT_FAILED');
is($o->{payment}{status}, 'FAILED', 'payment FAILED');
is(stock(13), $s13 + 1, 'stock released');

# A replayed callback claiming SUCCESS for a declined payment
my $lim = $declined{$LIMIT_CARD};
my $k_lim = pg_txns($lim->{order})->[0]{transactionKey};
my $before_row = payment_row($lim->{payment});
$s7 = stock(7);
$c0 = $sim->counters;
$r = $t->post('/api/v1/payments/callback?gateway=pg_a', { %$lie,
    transactionKey => $k_lim, orderId => pg_order_id($lim->{order}) });
is($r->{status}, 200, 'a forged SUCCESS for a declined payment is received');
ok($sim->wait_counters(sub { $_[0]{get} > $c0->{get} }, timeout => 5),
    'and checked with the PG');
sleep 0.3;
is_deeply(payment_row($lim->{payment}), $before_row,
    'the FAILED payment is unchanged');
is($t->get("/api/v1/orders/$lim->{order}", user => 13)->{json}{status},
    'PAYMENT_FAILED', 'order still PAYMENT_FAILED');
is(stock(7), $s7, 'stock unchanged');

# Duplicate callbacks of an approval: PAID once
ok(no_pending(), 'nothing pending');
my $settled0 = $t->metric(undef, 'commerce_payments_settled_total',
    outcome => 'success');
$sim->control(callback => { mode => 'duplicate' });
$c0 = $sim->counters;
$r = $t->post('/api/v1/orders', { items => [ { productId => 15,
    quantity => 1 } ], payment => card($OK_CARD) }, user => 17);
my $o_d = $r->{json}{id};
my $p_d = $r->{json}{payment}{id};
ok($sim->wait_counters(sub { $_[0]{callbacks_sent} >= $c0->{callbacks_sent} + 2
    && $_[0]{get} >= $c0->{get} + 2 }, timeout => 5),
    'two callbacks sent, both confirmed with a GET');
$o = wait_decided($o_d, 17);
is($o->{status}, 'PAID', 'duplicated approval: PAID');
sleep 0.3;
my $row_d = payment_row($p_d);
is($row_d->{status}, 'SUCCESS', 'payment SUCCESS');
is($t->metric(undef, 'commerce_payments_settled_total', outcome => 'success')
    - $settled0, 1, 'settled once (metrics)');
is(stock(15), 999, 'stock taken once');

# Stale callbacks: the decided state, then a late PENDING copy
$sim->control(callback => { mode => 'stale' });
$c0 = $sim->counters;
my %stale;
for my $no ($OK_CARD, $LIMIT_CARD) {
    $r = $t->post('/api/v1/orders', { items => [ { productId => 17,
        quantity => 1 } ], payment => card($no) }, user => 18);
    $stale{$no} = $r->{json}{id};
}
ok($sim->wait_counters(sub {
    $_[0]{callbacks_sent} >= $c0->{callbacks_sent} + 4 }, timeout => 5),
    'stale: 4 callbacks (decided, then PENDING) sent');
sleep 0.5;
is($t->get("/api/v1/orders/$stale{$OK_CARD}", user => 18)->{json}{status},
    'PAID', 'stale PENDING after SUCCESS: stays PAID');
$o = $t->get("/api/v1/orders/$stale{$LIMIT_CARD}", user => 18)->{json};
is($o->{status}, 'PAYMENT_FAILED', 'stale PENDING after FAILED: stays PAYMENT_FAILED');
is($o->{payment}{reason}, $LIMIT, 'with its reason');
is(stock(17), 999, 'stock: one kept, one released');

# Reordered callbacks: newest decision first
$sim->control(callback => { mode => 'reorder', reorderWindow => 2,
    reorderWaitMs => 3000 });
my %reo;
for my $no ($LIMIT_CARD, $OK_CARD) {
    $r = $t->post('/api/v1/orders', { items => [ { productId => 19,
        quantity => 1 } ], payment => card($no) }, user => 19);
    $reo{$no} = $r->{json}{id};
    sleep 0.25;     # decided one after the other
}
for my $no ($LIMIT_CARD, $OK_CARD) {
    $o = wait_decided($reo{$no}, 19);
    is($o->{status}, $no eq $OK_CARD ? 'PAID' : 'PAYMENT_FAILED',
        "reordered callbacks: order of card ...${\ substr($no, -4)} "
        . "is $o->{status}");
}
my ($ta) = @{ pg_txns($reo{$LIMIT_CARD}) };
my ($tb) = @{ pg_txns($reo{$OK_CARD}) };
ok($ta->{callbacks}[0]{at} gt $tb->{callbacks}[0]{at}
    || $ta->{callbacks}[0]{at} eq $tb->{callbacks}[0]{at},
    'the PG really sent the later decision first');
is(stock(19), 999, 'stock: the approved one kept, the declined one released');
$sim->control(callback => { mode => 'normal' });

# Unknown key, unknown gateway, no key: nothing changes
ok(no_pending(), 'nothing pending');
$before = $t->db_state(skip => [ 'payment_interface_request_log' ]);
$c0 = $sim->counters;
$r = $t->post('/api/v1/payments/callback?gateway=pg_a', { %$lie,
    transactionKey => '20200101:TR:abcdef' });
is($r->{status}, 200, 'a callback for an unknown key is received');
is_error($t->post('/api/v1/payments/callback?gateway=pg_z', $lie), 400,
    'INVALID_REQUEST', 'unknown gateway: 400');
is_error($t->post('/api/v1/payments/callback', $lie), 400,
    'INVALID_REQUEST', 'no gateway: 400');
is_error($t->post('/api/v1/payments/callback?gateway=pg_a',
    { status => 'SUCCESS' }), 400, 'INVALID_REQUEST', 'no transactionKey: 400');
is_error($t->post('/api/v1/payments/callback?gateway=pg_a', 'not json'),
    400, 'INVALID_REQUEST', 'not JSON: 400');
sleep 0.5;
is_deeply($t->db_state(skip => [ 'payment_interface_request_log' ]), $before,
    'nothing changed');
is($sim->counters->{get}, $c0->{get}, 'and the PG was not asked (no such payment)');

# ---------------------------------------------------------------------------
# 8. Signed callbacks: reload with a shared secret

my $SECRET = 'cb-secret-' . int(rand(1e9));
my @old_workers = $t->reload_nginx(config => config(secret => $SECRET));
ok($t->wait_pids_gone(\@old_workers, timeout => 15),
    'reloaded with a callback secret, old workers gone');
$sim->control(hmacSecret => $SECRET);

$r = $t->post('/api/v1/orders', { items => [ { productId => 21,
    quantity => 1 } ], payment => card($OK_CARD) }, user => 20);
is($r->{status}, 202, 'with a secret: card order 202');
my $o_sig = $r->{json}{id};
$o = wait_decided($o_sig, 20, timeout => 5);
is($o->{status}, 'PAID', 'a signed callback settles it: PAID');
my $t_sig = pg_txns($o_sig)->[0];
like($t_sig->{callbacks}[0]{signature} // '', qr/^t=\d+,v1=[0-9a-f]{64}$/,
    'the PG signed its callback');
is($t_sig->{callbacks}[0]{status}, 200, 'accepted (200)');

# forged callbacks against a decided payment: 401, nothing changes
ok(no_pending(), 'nothing pending');
my $body = JSON::PP->new->canonical->utf8->encode({
    transactionKey => $t_sig->{transactionKey}, orderId => pg_order_id($o_sig),
    cardType => 'KB', cardNo => $OK_CARD, amount => 1000,
    status => 'FAILED', reason => $LIMIT });
my $now = time;
my $sign = sub {
    my ($ts, $secret) = @_;
    return "t=$ts,v1=" . hmac_sha256_hex("$ts.$body", $secret);
};
my $rejected0 = $t->metric(undef, 'commerce_callbacks_total',
    result => 'rejected');
$before = $t->db_state(skip => [ 'payment_interface_request_log' ]);
my $before_all = $t->db_state;
$c0 = $sim->counters;
my @forged = (
    [ 'unsigned', {} ],
    [ 'signed with another secret',
      { 'X-PG-Signature' => $sign->(int $now, 'not-the-secret') } ],
    [ 'right secret, timestamp 10 minutes old',
      { 'X-PG-Signature' => $sign->(int($now) - 600, $SECRET) } ],
    [ 'right secret, timestamp 10 minutes ahead',
      { 'X-PG-Signature' => $sign->(int($now) + 600, $SECRET) } ],
    [ 'signature of another body',
      { 'X-PG-Signature' => "t=${\ int $now},v1="
          . hmac_sha256_hex(int($now) . '.{}', $SECRET) } ],
    [ 'malformed header', { 'X-PG-Signature' => 'v1=abc' } ],
    [ 'empty header', { 'X-PG-Signature' => '' } ],
);
for my $f (@forged) {
    my ($name, $h) = @$f;
    $r = $t->req('POST', '/api/v1/payments/callback?gateway=pg_a',
        body => $body, headers => $h);
    is_error($r, 401, 'UNAUTHORIZED', "forged callback ($name): 401");
}
# the genuine signature of this body is accepted (and confirmed: SUCCESS)
$r = $t->req('POST', '/api/v1/payments/callback?gateway=pg_a', body => $body,
    headers => { 'X-PG-Signature' => $sign->(int $now, $SECRET) });
is($r->{status}, 200, 'the same body correctly signed: 200');
sleep 0.5;
is_deeply($t->db_state(skip => [ 'payment_interface_request_log' ]), $before,
    'forged callbacks changed nothing; the signed FAILED claim neither');
is($t->get("/api/v1/orders/$o_sig", user => 20)->{json}{status}, 'PAID',
    'the order stays PAID');
is($sim->counters->{get}, $c0->{get} + 1,
    'only the correctly signed one made the module ask the PG');
is($t->metric(undef, 'commerce_callbacks_total', result => 'rejected')
    - $rejected0, scalar @forged, 'rejected callbacks counted');
is(scalar($t->grep_log(qr/\[warn\].*gateway callback rejected/)),
    scalar @forged, 'each rejection logged at warn');

# the PG's own callbacks with an old timestamp are rejected too; the
# reconciler settles the payment anyway
$sim->control(callback => { timestampSkewSec => 900 });
$r = $t->post('/api/v1/orders', { items => [ { productId => 23,
    quantity => 1 } ], payment => card($LIMIT_CARD) }, user => 21);
my $o_old = $r->{json}{id};
ok(wait_until(sub { my $x = pg_txns($o_old)->[0];
    $x && @{ $x->{callbacks} } && defined $x->{callbacks}[0]{status} },
    timeout => 5), 'the PG sent its callback');
is(pg_txns($o_old)->[0]{callbacks}[0]{status}, 401,
    'an old-timestamp callback from the PG: 401');
$o = wait_decided($o_old, 21, timeout => 10);
is($o->{status}, 'PAYMENT_FAILED', 'the reconciler settled it anyway');
is($o->{payment}{reason}, $LIMIT, 'with the reason');
$sim->control(callback => { timestampSkewSec => 0 });

# ---------------------------------------------------------------------------
# 9. Card numbers are never stored whole

my @dump = $t->psql(q{
    SELECT 'payments ' || p::text FROM payments p
    UNION ALL SELECT 'log ' || l::text FROM payment_interface_request_log l
    UNION ALL SELECT 'idem ' || i::text FROM idempotency_keys i
    UNION ALL SELECT 'orders ' || o::text FROM orders o});
my @whole = grep { /\d{4}[- ]?\d{4}[- ]?\d{4}[- ]?\d{4}/ } @dump;
ok(@dump > 10, scalar(@dump) . ' rows looked at');
is_deeply(\@whole, [], 'no whole card number in payments, the interface'
    . ' log, idempotency keys or orders');
my @last4 = $t->psql("SELECT DISTINCT card_last4 FROM payments"
    . " WHERE method = 'CARD' ORDER BY 1");
is_deeply(\@last4, [ '1111', '2222', '3333', '6666' ],
    'only the last 4 digits are kept');
my @logged = grep { /\d{4}-\d{4}-\d{4}-\d{4}/ }
    map { split /\n/, $t->read_file($_) } $t->error_log,
    $t->dir . '/access.log';
is_deeply(\@logged, [], 'no whole card number in error.log or access.log');
is($t->psql("SELECT count(*) FROM payment_interface_request_log"
    . " WHERE payment_id IS NULL AND operation <> 'CALLBACK'"), 0,
    'every outbound log row names its payment');

# ---------------------------------------------------------------------------
# 10. Metrics counted the exchanges

my $m = $t->metrics;
my $c = $sim->counters;
my $sent = 0;
$sent += $t->metric($m, 'commerce_gateway_requests_total', gateway => 'pg_a',
    op => 'create', outcome => $_) for qw(accepted declined error timeout
    broken);
is($sent, $c->{create}, "creates counted by outcome = the PG's creates ($sent)");
is($t->metric($m, 'commerce_gateway_requests_total', gateway => 'pg_a',
    op => 'create', outcome => 'accepted'), $c->{created},
    'accepted creates = transactions the PG created');
is($t->metric($m, 'commerce_gateway_requests_total', gateway => 'pg_a',
    op => 'create', outcome => 'declined'), $c->{create_400},
    'declined creates = the PG\'s 400s');
is($t->metric($m, 'commerce_gateway_retries_total', gateway => 'pg_a'), 0,
    'no retry happened');
is($t->metric($m, 'commerce_gateway_breaker_state', gateway => 'pg_a',
    state => 'closed'), 1, 'breaker closed');
ok($t->metric($m, 'commerce_callbacks_total', result => 'accepted') >= 10,
    'callbacks accepted counted');

$t->check_consistency('database consistent');
$sim->stop;
$t->done;
