#!/usr/bin/perl
# Several ways to pay one order (issue 12 section 3): "payment" as a list
# of parts, a POINTS part with a BALANCE part, with a CARD part, or alone;
# the parts add up exactly to paymentAmount, each is its own row in
# payments.  All or nothing:
#   - points 10,000 + card 20,000 on a 30,000 order: the gateway is asked
#     for 20,000, then PAID with both payments SUCCESS;
#   - the card declines: the points come back (payment CANCELLED, ledger
#     RESTORE) with the stock and the coupon, in the failure's transaction;
#   - the card never decides: PENDING, then the reconciler's payment
#     timeout fails it and gives the points back;
#   - points + balance and points alone: PAID in one transaction, with an
#     Idempotency-Key (one order, points moved once) and from the cart;
#   - bad parts (sums that do not add up, too many parts, POINTS without
#     amount, POINTS on POST /orders/{id}/payment), too few points or too
#     little balance: 4xx and nothing changed.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use PgSim;
use JSON::PP;

my $OK_CARD = '1111-1111-1111-1111';        # SUCCESS
my $LIMIT_CARD = '2222-2222-2222-2222';     # FAILED, limit exceeded
my $PENDING_CARD = '6666-6666-6666-6666';   # never decided (set below)

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
$t->psql(q{UPDATE products p SET price = v.price, stock = v.stock
             FROM (VALUES (1, 30000, 10), (2, 1000, 10)) AS v(id, price, stock)
            WHERE p.id = v.id});

my $sim = PgSim->start(seed => 178, failRate => 0, latencyMs => [0, 5],
    decisionMs => [50, 100], log => $t->dir . '/pgsim.log');
$sim->control(cards => { $PENDING_CARD => 'PENDING' });
my $port = $sim->port;
$t->write_config($t->default_config(http_extra => <<"EOF"));
commerce_zone 1m;
upstream pg_a { server 127.0.0.1:$port; keepalive 8; }
commerce_gateway pg_a upstream=pg_a timeout=1s connect_timeout=500ms;
commerce_gateway_callback_url http://127.0.0.1:%%PORT%%/api/v1/payments/callback;
commerce_reconcile_interval 300ms;
commerce_reconcile_age 1s;
commerce_reconcile_grace 3s;
commerce_payment_timeout 3s;
EOF
$t->start_nginx;

my ($ADM, $U) = (13, 30);
$t->psql("UPDATE users SET role = 'ADMIN' WHERE id = $ADM");

sub points { 0 + $t->psql("SELECT points FROM users WHERE id = $_[0]") }
sub balance { 0 + $t->psql("SELECT balance FROM users WHERE id = $_[0]") }
sub stock { 0 + $t->psql("SELECT stock FROM products WHERE id = $_[0]") }
sub grant {
    $t->psql("SELECT cm_points_grant($ADM, $_[0], $_[1], 'test', NULL)");
}
sub order { $t->post('/api/v1/orders', $_[0], user => $U, @_[1 .. $#_]) }
sub card { { method => 'CARD', cardType => 'KB', cardNo => $_[0] } }
sub pts { { method => 'POINTS', amount => $_[0] } }
# "METHOD:STATUS:amount,..." of an order's payments, in id order
sub parts {
    return scalar $t->psql("SELECT string_agg(method || ':' || status || ':' || amount, ','"
        . " ORDER BY id) FROM payments WHERE order_id = $_[0]");
}
# "KIND:amount,..." of an order's points ledger rows
sub ledger {
    return scalar $t->psql("SELECT coalesce(string_agg(kind || ':' || amount, ','"
        . " ORDER BY id), '') FROM points_ledger WHERE order_id = $_[0]");
}
sub state { $t->db_state(skip => ['audit_log']) }
sub decided {
    my ($id, %o) = @_;
    return $t->wait_order($id, user => $U, timeout => $o{timeout} // 10,
        until => sub { $_[0]{status} ne 'PAYMENT_IN_PROGRESS' });
}

grant($U, 50000);
is(points($U), 50000, 'the buyer has 50,000 points');

# --- points 10,000 + card 20,000 on a 30,000 order -------------------------

my $r = order({ items => [ { productId => 1, quantity => 1 } ],
    payment => [ pts(10000), card($OK_CARD) ] });
is($r->{status}, 202, 'points + card: 202') or diag($r->{body});
my $id = $r->{json}{order}{id} // $r->{json}{id};
ok($id, '... an order') or BAIL_OUT("no order: $r->{body}");
is(points($U), 40000, '... the points taken at once');
my $doc = decided($id);
is($doc->{status}, 'PAID', '... the card approved: PAID');
is(parts($id), 'POINTS:SUCCESS:10000,CARD:SUCCESS:20000',
    '... two payments: POINTS 10,000 and CARD 20,000');
my @txns = @{ $sim->transactions(orderId => sprintf('%06d', $id)) };
is(scalar @txns, 1, '... one transaction at the gateway');
is($txns[0]{amount}, 20000, '... the gateway charged 20,000, not 30,000');
is(ledger($id), 'SPEND:-10000', '... the ledger: SPEND 10,000');
is(stock(1), 9, '... one unit sold');
$t->check_consistency('consistent after points + card');

# --- the card declines: points, stock and coupon back ---------------------

my $camp = $t->create_coupon(discountType => 'FIXED', discountValue => 1000,
    minOrderAmount => 0);
my $ucid = $t->issue_coupon($camp, $U)->{json}{id};
ok($ucid, 'a coupon of 1,000 issued to the buyer');
{
    $r = order({ items => [ { productId => 1, quantity => 1 } ], couponId => 0 + $ucid,
        payment => [ pts(10000), card($LIMIT_CARD) ] });
    is($r->{status}, 202, 'points + a declined card, with a coupon: 202')
        or diag($r->{body});
    $id = $r->{json}{order}{id} // $r->{json}{id};
    $doc = decided($id);
    is($doc->{status}, 'PAYMENT_FAILED', '... the card declined: PAYMENT_FAILED');
    is(parts($id), 'POINTS:CANCELLED:10000,CARD:FAILED:19000',
        '... the points part CANCELLED, the card part (29,000 - 10,000) FAILED');
    is(points($U), 40000, '... the points back');
    is(ledger($id), 'SPEND:-10000,RESTORE:10000', '... the ledger: SPEND then RESTORE');
    is(stock(1), 9, '... the stock back');
    is($t->psql("SELECT coalesce(reserved_by::text, 'free') || ' ' || status FROM user_coupons"
        . " WHERE id = $ucid"), 'free AVAILABLE', '... the coupon back');
}
$t->check_consistency('consistent after a declined card');

# --- the card never decides: the payment timeout gives the points back ----

$r = order({ items => [ { productId => 2, quantity => 2 } ],
    payment => [ card($PENDING_CARD), pts(500) ] });
is($r->{status}, 202, 'points + a card the gateway never decides: 202')
    or diag($r->{body});
$id = $r->{json}{order}{id} // $r->{json}{id};
is(parts($id), 'POINTS:SUCCESS:500,CARD:PENDING:1500', '... POINTS 500, CARD 1,500 PENDING');
is(points($U), 39500, '... the points taken');
$doc = decided($id, timeout => 20);
is($doc->{status}, 'PAYMENT_FAILED', '... the reconciler\'s payment timeout: PAYMENT_FAILED');
is(parts($id), 'POINTS:CANCELLED:500,CARD:FAILED:1500', '... the points part CANCELLED');
is(points($U), 40000, '... the points back');
is(stock(2), 10, '... the stock back');
$t->check_consistency('consistent after a payment timeout');

# --- points + balance, points alone ---------------------------------------

my $bal = balance($U);
is($t->post('/api/v1/balance/charge', { amount => 100000 }, user => $U)->{status}, 200,
    'the buyer charges 100,000');
$bal += 100000;

$r = order({ items => [ { productId => 1, quantity => 1 } ],
    payment => [ pts(5000), { method => 'BALANCE' } ] }, headers => { 'Idempotency-Key' => 'mix-178-a' });
is($r->{status}, 201, 'points 5,000 + balance: 201') or diag($r->{body});
is($r->{json}{status}, 'PAID', '... PAID at once');
$id = $r->{json}{id};
is(parts($id), 'POINTS:SUCCESS:5000,BALANCE:SUCCESS:25000',
    '... POINTS 5,000 and BALANCE 25,000');
is(points($U) . ' ' . balance($U), '35000 ' . ($bal - 25000), '... both moved');
my $again = order({ items => [ { productId => 1, quantity => 1 } ],
    payment => [ pts(5000), { method => 'BALANCE' } ] }, headers => { 'Idempotency-Key' => 'mix-178-a' });
is($again->{status} . ' ' . $again->{body}, $r->{status} . ' ' . $r->{body},
    '... the same Idempotency-Key again: the same answer');
is(points($U) . ' ' . balance($U), '35000 ' . ($bal - 25000), '... nothing moved twice');

$r = order({ items => [ { productId => 2, quantity => 3 } ],
    payment => { method => 'POINTS', amount => 3000 } });
is($r->{status} . ' ' . ($r->{json}{status} // ''), '201 PAID', 'points alone (an object): 201 PAID');
is(parts($r->{json}{id}), 'POINTS:SUCCESS:3000', '... one POINTS payment');

$t->req('PUT', '/api/v1/cart/items/2', user => $U, body => { quantity => 2 });
$r = order({ fromCart => JSON::PP::true,
    payment => [ pts(500), { method => 'BALANCE', amount => 1500 } ] });
is($r->{status} . ' ' . ($r->{json}{status} // ''), '201 PAID',
    'from the cart, points 500 + balance 1,500 (amount given): 201 PAID') or diag($r->{body});
is($t->psql("SELECT count(*) FROM cart_items WHERE user_id = $U"), 0, '... the cart emptied');
is(points($U) . ' ' . balance($U), '31500 ' . ($bal - 26500), '... both moved');
$t->check_consistency('consistent after points + balance');

# --- bad parts, too few points, too little balance: nothing changes --------

my $before = state();
my @bad = (
    [ 'points short of the amount', [ pts(1000) ], 400, 'INVALID_REQUEST' ],
    [ 'points over the amount', [ pts(30001), { method => 'BALANCE' } ], 400, 'INVALID_REQUEST' ],
    [ 'points covering all, a balance part left nothing', [ pts(30000), { method => 'BALANCE' } ],
      400, 'INVALID_REQUEST' ],
    [ 'parts not adding up', [ pts(1000), { method => 'BALANCE', amount => 1000 } ],
      400, 'INVALID_REQUEST' ],
    [ 'points and a card not adding up', [ pts(1000), { %{ card($OK_CARD) }, amount => 5 } ],
      400, 'INVALID_REQUEST' ],
    [ 'an empty list', [], 400, 'INVALID_REQUEST' ],
    [ 'three parts', [ pts(1), { method => 'BALANCE' }, card($OK_CARD) ], 400, 'INVALID_REQUEST' ],
    [ 'two POINTS parts', [ pts(1), pts(2) ], 400, 'INVALID_REQUEST' ],
    [ 'balance and card', [ { method => 'BALANCE' }, card($OK_CARD) ], 400, 'INVALID_REQUEST' ],
    [ 'POINTS without amount', [ { method => 'POINTS' } ], 400, 'INVALID_REQUEST' ],
    [ 'amount 0', [ pts(0) ], 400, 'INVALID_REQUEST' ],
    [ 'amount a string', [ pts('10') ], 400, 'INVALID_REQUEST' ],
    [ 'amount a fraction', [ pts(1.5) ], 400, 'INVALID_REQUEST' ],
    [ 'a part not an object', [ 'POINTS' ], 400, 'INVALID_REQUEST' ],
    [ 'a part a list', [ [ pts(1) ] ], 400, 'INVALID_REQUEST' ],
    [ 'an unknown method', [ { method => 'GIFT', amount => 1 } ], 400, 'INVALID_REQUEST' ],
    [ 'more points than the buyer has (31,500)', [ pts(60000) ], 409, 'INSUFFICIENT_POINTS', 2 ],
);
for my $b (@bad) {
    my ($name, $pay, $status, $code, $q) = @$b;
    is_error(order({ items => [ { productId => 1, quantity => $q // 1 } ], payment => $pay }),
        $status, $code, "$name: $status $code");
}
is_deeply(state(), $before, '... nothing changed by any of them');
$t->psql('UPDATE products SET price = 1000000000000 WHERE id = 2');
$before = state();
is_error(order({ items => [ { productId => 2, quantity => 1 } ],
    payment => [ pts(1000), { method => 'BALANCE' } ] }), 409, 'INSUFFICIENT_BALANCE',
    'too little balance for the rest: 409 INSUFFICIENT_BALANCE');
is_error($t->post('/api/v1/orders/1/payment', { method => 'POINTS', amount => 1 }, user => $U),
    400, 'INVALID_REQUEST', 'POINTS on POST /orders/{id}/payment: 400');
is_deeply(state(), $before, '... nothing changed by either');
$t->check_consistency('consistent at the end');

done_testing();
