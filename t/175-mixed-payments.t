#!/usr/bin/perl
# Several ways to pay in one order (issue 12 section 3): "payment" as a
# list of parts, POINTS with BALANCE or with CARD, or POINTS alone.
#
#   - points 10,000 + card 20,000 on a 30,000 order: the PG (simulator) is
#     charged 20,000, the points ledger -10,000, the order PAID with two
#     payment rows ("payments"), "payment" the card's;
#   - the card declines: points back (ledger RESTORE) in the transaction
#     of the decline, stock back, coupon back, order PAYMENT_FAILED;
#   - the card times out (commerce_payment_timeout): PAYMENT_FAILED, points
#     back; the callback lost: the reconciler settles (approval: PAID,
#     decline: points back);
#   - points + balance, points alone: PAID at once;
#   - parts not adding up: 400 PAYMENT_AMOUNT_MISMATCH, nothing changed;
#     not enough points: 409 INSUFFICIENT_POINTS, nothing changed, nothing
#     sent to the PG;
#   - 20 orders at once spending the same points: never overspent;
#   - an aborted card part gives the points back at once and the expiry
#     of the order gives nothing twice;
#   - Idempotency-Key on a mixed card order and on points + balance:
#     replayed, paid once;
#   - bad parts: 400, nothing changed.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use PgSim;
use MixPay;
use JSON::PP;

binmode(Test::More->builder->$_, ':utf8')
    for qw(output failure_output todo_output);

my $LIMIT_CARD = '2222-2222-2222-2222';     # FAILED, limit exceeded
my $PENDING_CARD = '6666-6666-6666-6666';   # never decided

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
# product 3: 30,000 won; product 4: 1,000 won
$t->psql(q{UPDATE products p SET price = v.price, stock = v.stock
             FROM (VALUES (3, 30000, 1000), (4, 1000, 1000)) AS v(id, price, stock)
            WHERE p.id = v.id;
           UPDATE users SET role = 'ADMIN' WHERE id = 2});

my $sim = PgSim->start(seed => 175, failRate => 0, latencyMs => [0, 5],
    decisionMs => [50, 100], log => $t->dir . '/pgsim.log');
$sim->control(cards => { $PENDING_CARD => 'PENDING' });

my $port = $sim->port;
$t->write_config($t->default_config(http_extra => <<"EOF"));
commerce_zone 1m;
upstream pg_a { server 127.0.0.1:$port; keepalive 8; }
commerce_gateway pg_a upstream=pg_a timeout=1s connect_timeout=500ms window=10 min_calls=5 failure_rate=50 open=2s probes=2 probe_deadline=3s keepalive=8;
commerce_gateway_callback_url http://127.0.0.1:%%PORT%%/api/v1/payments/callback;
commerce_reconcile_interval 300ms;
commerce_reconcile_age 1s;
commerce_reconcile_grace 3s;
commerce_payment_timeout 3s;
EOF
$t->start_nginx;
MixPay::init($t, $sim);

# ---------------------------------------------------------------------------
# helpers

sub order {
    my ($user, $payment, %o) = @_;
    return $t->post('/api/v1/orders', { items => [ { productId =>
        $o{product} // 3, quantity => 1 } ], payment => $payment,
        (defined $o{coupon} ? (couponId => $o{coupon}) : ()) },
        user => $user, %o);
}
sub decided {
    my ($id, $user) = @_;
    return $t->wait_order($id, user => $user, timeout => 20,
        until => sub { $_[0]{status} ne 'PAYMENT_IN_PROGRESS' });
}

# ---------------------------------------------------------------------------
# 1. points 10,000 + card 20,000 on a 30,000 order

my $U = 21;
grant($U, 50000);
my $s3 = stock(3);
my $r = order($U, [ pts(10000), card(20000) ]);
is($r->{status}, 202, 'points + card: 202') or diag($r->{body});
my $o1 = $r->{json}{id};
is($r->{json}{status}, 'PAYMENT_IN_PROGRESS', '... PAYMENT_IN_PROGRESS');
cmp_json([ map { "$_->{method} $_->{status} $_->{amount}" }
    @{ $r->{json}{payments} } ], [ 'POINTS SUCCESS 10000', 'CARD PENDING 20000' ],
    '... "payments": the points taken, the card pending');
is($r->{json}{payment}{method}, 'CARD', '... "payment" is the latest (the card)');
is(points($U), 40000, '... the points taken when the card payment begins');
my $o = decided($o1, $U);
is($o->{status}, 'PAID', 'the card approved: PAID');
is($o->{paymentAmount}, 30000, '... paymentAmount 30000');
is_deeply(pay_rows($o1), [ 'POINTS SUCCESS 10000', 'CARD SUCCESS 20000' ],
    '... two payment rows');
my $tx = pg_txns($o1);
is(scalar @$tx, 1, 'one transaction at the PG');
is(0 + $tx->[0]{amount}, 20000, '... charged exactly the card part, 20000');
is_deeply(ledger($U), [ 'SPEND -10000 40000' ], 'points ledger: -10000');
is(stock(3), $s3 - 1, 'stock taken');

# ---------------------------------------------------------------------------
# 2. the card declines: points, stock and coupon back

my $V = 22;
grant($V, 10000);
my $camp = $t->create_coupon(discountType => 'FIXED', discountValue => 5000);
$r = $t->issue_coupon($camp, $V);
is($r->{status}, 201, 'a 5000 coupon issued') or diag($r->{body});
my $uc = $r->{json}{id};
$s3 = stock(3);
$r = order($V, [ pts(10000), card(15000, $LIMIT_CARD) ], coupon => $uc);
is($r->{status}, 202, 'coupon 5000, points 10000 + card 15000: 202')
    or diag($r->{body});
my $o2 = $r->{json}{id};
is($r->{json}{paymentAmount}, 25000, '... paymentAmount 25000');
is($r->{json}{payments}[0]{status}, 'SUCCESS', '... the points taken');
$o = decided($o2, $V);
is($o->{status}, 'PAYMENT_FAILED', 'the card declined: PAYMENT_FAILED');
is_deeply(pay_rows($o2), [ 'POINTS CANCELLED 10000', 'CARD FAILED 15000' ],
    '... the points part CANCELLED, the card FAILED');
is(points($V), 10000, '... the points back');
is_deeply(ledger($V), [ 'SPEND -10000 0', 'RESTORE 10000 10000' ],
    '... ledger SPEND then RESTORE');
is(stock(3), $s3, '... stock back');
is($t->psql("SELECT status || ' ' || coalesce(reserved_by::text, '-')"
    . " FROM user_coupons WHERE id = $uc"), 'AVAILABLE -', '... coupon back');
is(0 + pg_txns($o2)->[0]{amount}, 15000, '... the PG was asked for 15000');

# ---------------------------------------------------------------------------
# 3. the card never decided: commerce_payment_timeout fails it

my $W = 23;
grant($W, 12345);
$r = order($W, [ pts(12345), card(30000 - 12345, $PENDING_CARD) ]);
is($r->{status}, 202, 'points + a card the PG never decides: 202')
    or diag($r->{body});
my $o3 = $r->{json}{id};
is(points($W), 0, '... points taken');
$o = decided($o3, $W);
is($o->{status}, 'PAYMENT_FAILED', 'after the payment timeout: PAYMENT_FAILED');
is(points($W), 12345, '... points back');
is_deeply(ledger($W), [ 'SPEND -12345 0', 'RESTORE 12345 12345' ],
    '... ledger SPEND then RESTORE');
is_deeply(pay_rows($o3), [ 'POINTS CANCELLED 12345', 'CARD FAILED 17655' ],
    '... payment rows');

# ---------------------------------------------------------------------------
# 4. the callback lost: the reconciler settles (approval, decline)

$sim->control(callback => { mode => 'drop' });
my $X = 24;
grant($X, 20000);
$r = order($X, [ pts(10000), card(20000) ]);
is($r->{status}, 202, 'callback dropped, approved card: 202');
my $o4 = $r->{json}{id};
$r = order($X, [ card(20000, $LIMIT_CARD), pts(10000) ]);
is($r->{status}, 202, 'callback dropped, declined card: 202');
my $o5 = $r->{json}{id};
is(points($X), 0, 'both orders took their points');
is(decided($o4, $X)->{status}, 'PAID', 'the reconciler: approval, PAID');
is(decided($o5, $X)->{status}, 'PAYMENT_FAILED',
    'the reconciler: decline, PAYMENT_FAILED');
is(points($X), 10000, '... the declined order\'s points back');
is_deeply(ledger($X), [ 'SPEND -10000 10000', 'SPEND -10000 0',
    'RESTORE 10000 10000' ], '... ledger');
$sim->control(callback => { mode => 'normal' });

# ---------------------------------------------------------------------------
# 5. points + balance; points alone

my $Y = 25;
grant($Y, 40000);
$r = $t->post('/api/v1/balance/charge', { amount => 50000 }, user => $Y);
is($r->{status}, 200, 'balance charged') or diag($r->{body});
my $b0 = balance($Y);
$r = order($Y, [ pts(10000), bal(20000) ]);
is($r->{status}, 201, 'points + balance: 201') or diag($r->{body});
is($r->{json}{status}, 'PAID', '... PAID');
my $o6 = $r->{json}{id};
cmp_json($r->{json}{payments}, [
    { id => qr/^\d+$/, method => 'POINTS', status => 'SUCCESS', amount => 10000 },
    { id => qr/^\d+$/, method => 'BALANCE', status => 'SUCCESS', amount => 20000 } ],
    '... "payments": both parts');
cmp_json($r->{json}{payment}, $r->{json}{payments}[1],
    '... "payment": the latest part');
is(points($Y), 30000, '... points -10000');
is(balance($Y), $b0 - 20000, '... balance -20000');
is($t->psql("SELECT amount || ' ' || balance_after FROM balance_ledger"
    . " WHERE order_id = $o6"), "-20000 " . ($b0 - 20000),
    '... its balance ledger row');

$r = order($Y, [ pts(30000) ]);
is($r->{status}, 201, 'points alone pay the whole order') or diag($r->{body});
is($r->{json}{status}, 'PAID', '... PAID');
is_deeply(pay_rows($r->{json}{id}), [ 'POINTS SUCCESS 30000' ], '... one row');
is(points($Y), 0, '... the points spent');
is($t->get("/api/v1/orders/$r->{json}{id}", user => $Y)->{body}, $r->{body},
    'GET shows the same document');

$r = order($Y, [ bal(30000) ]);
is($r->{status}, 201, 'a list of one balance part') or diag($r->{body});
is_deeply(pay_rows($r->{json}{id}), [ 'BALANCE SUCCESS 30000' ], '... one row');

# checkout from the cart: points + card for the cart's line, which leaves it
my $Q = 30;
grant($Q, 2000);
$r = $t->req('PUT', '/api/v1/cart/items/4', user => $Q, body => { quantity => 3 });
is($r->{status}, 200, 'a cart line of 3 x 1000') or diag($r->{body});
$r = $t->post('/api/v1/orders', { fromCart => JSON::PP::true,
    payment => [ pts(2000), card(1000) ] }, user => $Q);
is($r->{status}, 202, 'checkout with points 2000 + card 1000: 202')
    or diag($r->{body});
is(decided($r->{json}{id}, $Q)->{status}, 'PAID', '... PAID');
is(0 + pg_txns($r->{json}{id})->[0]{amount}, 1000, '... the PG charged 1000');
is(points($Q), 0, '... the points spent');
is(0 + $t->psql("SELECT count(*) FROM cart_items WHERE user_id = $Q"), 0,
    '... the line left the cart');

# ---------------------------------------------------------------------------
# 6. sums that do not add up, not enough points: nothing changes

my $Z = 26;
grant($Z, 15000);
$r = $t->post('/api/v1/balance/charge', { amount => 50000 }, user => $Z);
my $before = state();
my $c0 = creates();
for my $case ([ 'points + balance short', [ pts(10000), bal(10000) ] ],
              [ 'points + balance over', [ pts(10000), bal(30000) ] ],
              [ 'points alone short', [ pts(10000) ] ],
              [ 'points over the amount', [ pts(40000), bal(1) ] ],
              [ 'balance alone short', [ bal(29999) ] ],
              [ 'points + card short', [ pts(10000), card(19999) ] ],
              [ 'card alone over', [ card(30001) ] ]) {
    is_error(order($Z, $case->[1]), 400, 'PAYMENT_AMOUNT_MISMATCH',
        "$case->[0]: 400 PAYMENT_AMOUNT_MISMATCH");
}
is_error(order($Z, [ pts(20000), bal(10000) ]), 409, 'INSUFFICIENT_POINTS',
    'more points than held, with balance: 409 INSUFFICIENT_POINTS');
is_error(order($Z, [ pts(20000), card(10000) ]), 409, 'INSUFFICIENT_POINTS',
    'more points than held, with a card: 409 INSUFFICIENT_POINTS');
is_deeply(state(), $before, 'nothing changed in the database');
is(creates(), $c0, 'nothing sent to the PG');

# ---------------------------------------------------------------------------
# 7. 20 orders at once spend the same 5,000 points (1,000 each)

my $C = 27;
grant($C, 5000);
my $tok = $t->token($C);
my @res = $t->concurrent([ map { [ 'POST', '/api/v1/orders',
    { items => [ { productId => 4, quantity => 1 } ],
      payment => [ pts(1000) ] }, $tok ] } 1 .. 20 ]);
is(scalar(grep { $_->{status} == 201 } @res), 5, '5 orders paid by points');
is(scalar(grep { $_->{status} == 409 && $_->{json}{code} eq
    'INSUFFICIENT_POINTS' } @res), 15, '15 refused INSUFFICIENT_POINTS');
is(points($C), 0, 'points 0, never negative');
is_deeply(ledger($C), [ map { 'SPEND -1000 ' . (5000 - 1000 * $_) } 1 .. 5 ],
    'exact ledger: 5 SPEND rows, balance after each');

# ---------------------------------------------------------------------------
# 8. a card part aborted before reaching a PG: points back at once; the
#    order expires later with nothing given twice

my $E = 28;
grant($E, 3000);
my $doc = $t->psql_json("SELECT cm_order_create_card_points($E, '{4}', '{1}',"
    . " 'pg_a', 'KB', '1111', NULL, '{NULL}', 600, NULL, false)::json");
my $o8 = $doc->{orderId};
is($doc->{amount}, 400, 'in SQL: points 600 + card 400, the card part 400');
is(points($E), 2400, '... points taken');
$t->psql("SELECT cm_card_abort($doc->{paymentId}, 'test abort')");
is($t->psql("SELECT status FROM orders WHERE id = $o8"), 'PENDING_PAYMENT',
    'aborted: PENDING_PAYMENT again');
is(points($E), 3000, '... points back');
is_deeply(pay_rows($o8), [ 'POINTS CANCELLED 600', 'CARD FAILED 400' ],
    '... payment rows');
my $s4 = stock(4);
$t->psql("SELECT cm_orders_expire(0, 1000)");
is($t->psql("SELECT status FROM orders WHERE id = $o8"), 'CANCELLED',
    'expired: CANCELLED');
is(points($E), 3000, '... points not given twice');
is_deeply(ledger($E), [ 'SPEND -600 2400', 'RESTORE 600 3000' ], '... ledger');
is(stock(4), $s4 + 1, '... stock back');

# ---------------------------------------------------------------------------
# 9. Idempotency-Key on a mixed card order

my $K = 29;
grant($K, 10000);
my %key = (headers => { 'Idempotency-Key' => 'mixpay-175-a' });
my $k1 = order($K, [ pts(10000), card(20000) ], %key);
is($k1->{status}, 202, 'with an Idempotency-Key: 202') or diag($k1->{body});
my $o9 = $k1->{json}{id};
my $k2 = order($K, [ pts(10000), card(20000) ], %key);
is($k2->{status}, 202, 'the same request again: 202');
is($k2->{headers}{'idempotent-replayed'}, 'true', '... replayed');
is($k2->{json}{id}, $o9, '... the same order');
is(decided($o9, $K)->{status}, 'PAID', 'PAID');
is(order($K, [ pts(10000), card(20000) ], %key)->{json}{id}, $o9,
    'after PAID: replayed still');
is(0 + $t->psql("SELECT count(*) FROM orders WHERE user_id = $K"), 1,
    'one order');
is(scalar @{ pg_txns($o9) }, 1, 'one transaction at the PG');
is(points($K), 0, 'points spent once');
is_deeply(ledger($K), [ 'SPEND -10000 0' ], '... one SPEND row');

# points + balance with a key: one order, the points and balance moved once
grant($K, 10000);
$r = $t->post('/api/v1/balance/charge', { amount => 20000 }, user => $K);
my $kb0 = balance($K);
%key = (headers => { 'Idempotency-Key' => 'mixpay-175-b' });
$k1 = order($K, [ pts(10000), bal(20000) ], %key);
is($k1->{status}, 201, 'points + balance with an Idempotency-Key: 201')
    or diag($k1->{body});
$k2 = order($K, [ pts(10000), bal(20000) ], %key);
is($k2->{headers}{'idempotent-replayed'}, 'true', '... replayed');
is($k2->{body}, $k1->{body}, '... the same answer');
is(points($K), 0, '... points spent once');
is(balance($K), $kb0 - 20000, '... balance taken once');
is(0 + $t->psql("SELECT count(*) FROM orders WHERE user_id = $K"), 2,
    '... one more order');

# ---------------------------------------------------------------------------
# 10. bad parts: 400 INVALID_REQUEST, nothing changed

$before = state();
$c0 = creates();
for my $case (
    [ 'two CARD parts', [ card(10000), card(20000) ] ],
    [ 'two POINTS parts', [ pts(10000), pts(20000) ] ],
    [ 'balance and card', [ bal(10000), card(20000) ] ],
    [ 'three parts', [ pts(10000), bal(10000), card(10000) ] ],
    [ 'an empty list', [] ],
    [ 'a negative amount', [ pts(-10000), bal(40000) ] ],
    [ 'a zero amount', [ pts(0), bal(30000) ] ],
    [ 'an amount as a string', [ { method => 'POINTS', amount => '30000' } ] ],
    [ 'a fractional amount', [ { method => 'POINTS', amount => 1.5 } ] ],
    [ 'no amount', [ { method => 'BALANCE' } ] ],
    [ 'an unknown method', [ { method => 'BITCOIN', amount => 30000 } ] ],
    [ 'an unknown field', [ { %{ pts(30000) }, extra => 1 } ] ],
    [ 'a part not an object', [ 'POINTS' ] ],
    [ 'a card part without its card', [ { method => 'CARD',
        amount => 30000 } ] ],
    [ 'POINTS as a single object', { method => 'POINTS', amount => 30000 } ],
) {
    is_error(order($Z, $case->[1]), 400, 'INVALID_REQUEST',
        "$case->[0]: 400 INVALID_REQUEST");
}
is_deeply(state(), $before, 'nothing changed in the database');
is(creates(), $c0, 'nothing sent to the PG');

$t->check_consistency;
done_testing;
