#!/usr/bin/perl
# Coupons on orders (POST /api/v1/orders with "couponId"), against the real
# stack and a real PG simulator: the discount arithmetic (FIXED, RATE with
# and without a cap, floor, the minimum order), discountAmount and
# paymentAmount on the order, the balance and the card charged the payment
# amount, an order left with nothing to pay PAID at once (no payment row, no
# gateway call); the coupon held by the order, USED when it is paid, given
# back when the card payment fails or the unpaid order expires; another
# user's, an unknown, a used, an expired and a held coupon refused, each
# changing nothing; two orders racing for one coupon: exactly one holds it;
# Idempotency-Key on the order with a coupon and on the coupon issue; every
# bad couponId a 400.

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

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
$t->psql(<<'SQL');
UPDATE products SET price = 10000, stock = 1000 WHERE id = 1;
UPDATE products SET price = 3000,  stock = 1000 WHERE id = 2;
UPDATE products SET price = 999,   stock = 1000 WHERE id = 3;
SQL

my $sim = PgSim->start(seed => 125, failRate => 0, latencyMs => [0, 5],
    decisionMs => [50, 100], log => $t->dir . '/pgsim.log');

sub config {
    my (%o) = @_;
    my $port = $sim->port;
    return $t->default_config(http_extra => <<"EOF" . ($o{extra} // ''));
commerce_zone 1m;
commerce_pg_queue_length 2048;
upstream pg_a { server 127.0.0.1:$port; keepalive 8; }
commerce_gateway pg_a upstream=pg_a timeout=2s connect_timeout=500ms;
commerce_gateway_callback_url http://127.0.0.1:%%PORT%%/api/v1/payments/callback;
commerce_reconcile_interval 500ms;
commerce_reconcile_age 1s;
commerce_payment_timeout 600s;
EOF
}

$t->write_config(config());
$t->start_nginx;

# ---------------------------------------------------------------------------
# helpers

sub card { { method => 'CARD', cardType => 'KB', cardNo => $_[0] } }

# a campaign with these fields, one coupon of it issued to $user: its id
sub coupon_for {
    my ($user, %campaign) = @_;
    my $c = $t->create_coupon(perUserLimit => 1, %campaign);
    my $r = $t->issue_coupon($c, $user);
    die "issue: $r->{status} $r->{body}" unless $r->{status} == 201;
    return $r->{json}{id};
}

sub order {
    my ($user, $items, %o) = @_;
    my $body = { items => [ map { { productId => $_->[0], quantity => $_->[1] } }
        @$items ] };
    $body->{couponId} = $o{coupon} if exists $o{coupon};
    $body->{payment} = $o{pay} if $o{pay};
    return $t->post('/api/v1/orders', $body, user => $user,
        ($o{key} ? (headers => { 'Idempotency-Key' => $o{key} }) : ()));
}

# the coupon row: "status|reserved_by" (reserved_by '' when NULL)
sub coupon_state {
    return scalar $t->psql("SELECT status || '|' || coalesce(reserved_by::text, '')
        FROM user_coupons WHERE id = $_[0]");
}

sub stock { 0 + $t->psql("SELECT stock FROM products WHERE id = $_[0]") }
sub balance { 0 + $t->psql("SELECT balance FROM users WHERE id = $_[0]") }

# everything a refused order must leave as it was
sub snapshot {
    return scalar $t->psql(q{SELECT (SELECT count(*) FROM orders) || '|'
        || (SELECT count(*) FROM payments) || '|'
        || (SELECT string_agg(stock::text, ',' ORDER BY id) FROM products WHERE id <= 3)
        || '|' || (SELECT sum(balance) FROM users) || '|'
        || (SELECT string_agg(id || status || coalesce(reserved_by::text, '-'), ','
                              ORDER BY id) FROM user_coupons)});
}

# the order's amounts and status, as "status total/discount/payment"
sub amounts {
    my ($j) = @_;
    return "$j->{status} $j->{totalAmount}/$j->{discountAmount}/"
        . "$j->{paymentAmount}";
}

sub refused {
    my ($res, $status, $code, $before, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is_error($res, $status, $code, "$name: $status $code");
    is(snapshot(), $before, "$name: nothing changed");
}

# ---------------------------------------------------------------------------
# FIXED, paid by balance: the balance pays paymentAmount, the coupon is USED

my $u = 101;
my $cp = coupon_for($u, discountType => 'FIXED', discountValue => 1000);
is(coupon_state($cp), 'AVAILABLE|', 'a fresh coupon: AVAILABLE, held by nobody');
my $bal = balance($u);
my $r = order($u, [ [ 1, 1 ] ], coupon => $cp, pay => { method => 'BALANCE' });
is($r->{status}, 201, 'FIXED 1000 on 10000, BALANCE: 201') or diag($r->{raw});
is(amounts($r->{json}), 'PAID 10000/1000/9000',
    '... total 10000, discount 1000, payment 9000, PAID');
is($r->{json}{payment}{amount}, 9000, '... the payment is 9000');
is(balance($u), $bal - 9000, '... the balance paid 9000');
is($t->psql("SELECT amount FROM balance_ledger WHERE order_id = $r->{json}{id}"),
    -9000, '... the ledger row is -9000');
is(coupon_state($cp), "USED|$r->{json}{id}", '... the coupon is USED by it');
my $mine = $t->get('/api/v1/users/me/coupons?status=USED', user => $u);
is_deeply([ map { $_->{id} } @{ $mine->{json}{items} } ], [ $cp ],
    '... and listed as USED');

my $before = snapshot();
refused(order($u, [ [ 1, 1 ] ], coupon => $cp), 409, 'COUPON_NOT_AVAILABLE',
    $before, 'a used coupon again');

# ---------------------------------------------------------------------------
# the arithmetic

my @cases = (
    # [ campaign, items, expected total/discount/payment ]
    [ { discountType => 'RATE', discountValue => 15, maxDiscount => 1000 },
      [ [ 1, 1 ] ], '10000/1000/9000', 'RATE 15% of 10000 capped at 1000' ],
    [ { discountType => 'RATE', discountValue => 15, maxDiscount => 5000 },
      [ [ 1, 1 ] ], '10000/1500/8500', 'RATE 15% of 10000 under its cap' ],
    [ { discountType => 'RATE', discountValue => 15 },
      [ [ 2, 1 ] ], '3000/450/2550', 'RATE 15% of 3000, no cap' ],
    [ { discountType => 'RATE', discountValue => 33 },
      [ [ 3, 1 ] ], '999/329/670', 'RATE 33% of 999: floor(329.67)' ],
    [ { discountType => 'RATE', discountValue => 100 },
      [ [ 3, 2 ] ], '1998/1998/0', 'RATE 100%: nothing to pay' ],
    [ { discountType => 'FIXED', discountValue => 2500, minOrderAmount => 3000 },
      [ [ 2, 1 ] ], '3000/2500/500', 'FIXED with the total exactly the minimum' ],
    [ { discountType => 'FIXED', discountValue => 1000 },
      [ [ 1, 2 ], [ 3, 1 ] ], '20999/1000/19999', 'FIXED on two products' ],
);
my $n = 0;
for my $c (@cases) {
    my ($campaign, $items, $want, $name) = @$c;
    my $user = 110 + $n++;
    my $id = coupon_for($user, %$campaign);
    $r = order($user, $items, coupon => $id);
    my $status = $want =~ m{/0$} ? 'PAID' : 'PENDING_PAYMENT';
    is($r->{status}, 201, "$name: 201") or diag($r->{raw});
    is(amounts($r->{json} // {}), "$status $want", "$name: $status $want");
    is(coupon_state($id), ($status eq 'PAID' ? 'USED' : 'AVAILABLE')
        . "|$r->{json}{id}", "$name: the coupon is held by the order");
}

# ---------------------------------------------------------------------------
# minimum order, nothing to pay

$u = 120;
$cp = coupon_for($u, discountValue => 500, minOrderAmount => 5000);
$before = snapshot();
refused(order($u, [ [ 2, 1 ] ], coupon => $cp), 409, 'COUPON_NOT_APPLICABLE',
    $before, 'an order of 3000 on a minimum of 5000');
is(coupon_state($cp), 'AVAILABLE|', '... the coupon is still free');
$r = order($u, [ [ 2, 2 ] ], coupon => $cp);
is(amounts($r->{json} // {}), 'PENDING_PAYMENT 6000/500/5500',
    '... and an order of 6000 takes it');

$u = 121;
$cp = coupon_for($u, discountValue => 5000);
$bal = balance($u);
my $s2 = stock(2);
$r = order($u, [ [ 2, 1 ] ], coupon => $cp);
is($r->{status}, 201, 'FIXED 5000 on 3000, no payment: 201') or diag($r->{raw});
is(amounts($r->{json}), 'PAID 3000/3000/0', '... discount 3000, PAID at once');
ok(exists $r->{json}{payment} && !defined $r->{json}{payment},
    '... with no payment');
is($t->psql("SELECT count(*) FROM payments WHERE order_id = $r->{json}{id}"), 0,
    '... and no payment row');
is(balance($u), $bal, '... the balance untouched');
is(stock(2), $s2 - 1, '... the stock taken');
is(coupon_state($cp), "USED|$r->{json}{id}", '... the coupon USED');

$cp = coupon_for($u, discountValue => 50000);
my $txns = @{ $sim->transactions };
$r = order($u, [ [ 1, 1 ], [ 2, 1 ] ], coupon => $cp, pay => card($OK_CARD));
is($r->{status}, 201, 'a card order with nothing to pay: 201') or diag($r->{raw});
is(amounts($r->{json} // {}), 'PAID 13000/13000/0', '... PAID at once');
ok(!defined $r->{json}{payment}, '... no payment');
is(scalar @{ $sim->transactions }, $txns, '... and nothing sent to the gateway');
is(coupon_state($cp), "USED|$r->{json}{id}", '... the coupon USED');

# ---------------------------------------------------------------------------
# held by a pending order, then paid

$u = 122;
$cp = coupon_for($u, discountValue => 1500);
$r = order($u, [ [ 2, 1 ] ], coupon => $cp);
is(amounts($r->{json} // {}), 'PENDING_PAYMENT 3000/1500/1500',
    'a pending order with the coupon');
my $held = $r->{json}{id};
is(coupon_state($cp), "AVAILABLE|$held", '... holds it');
$before = snapshot();
refused(order($u, [ [ 1, 1 ] ], coupon => $cp), 409, 'COUPON_NOT_AVAILABLE',
    $before, 'the held coupon on a second order');
$bal = balance($u);
$r = $t->post("/api/v1/orders/$held/payment", { method => 'BALANCE' }, user => $u);
is($r->{status}, 200, 'the pending order paid by balance') or diag($r->{raw});
is(amounts($r->{json} // {}), 'PAID 3000/1500/1500', '... PAID');
is($r->{json}{payment}{amount}, 1500, '... the payment is 1500');
is(balance($u), $bal - 1500, '... the balance paid 1500');
is(coupon_state($cp), "USED|$held", '... the coupon USED');

# ---------------------------------------------------------------------------
# whose, which, and when

$cp = coupon_for(123, discountValue => 100);
$before = snapshot();
refused(order(124, [ [ 2, 1 ] ], coupon => $cp), 404, 'COUPON_NOT_FOUND',
    $before, "another user's coupon");
refused(order(124, [ [ 2, 1 ] ], coupon => 9000000000), 404,
    'COUPON_NOT_FOUND', $before, 'an unknown coupon');
$t->psql("UPDATE user_coupons SET issued_at = now() - interval '10 days',
    expires_at = now() - interval '1 second' WHERE id = $cp");
$before = snapshot();
refused(order(123, [ [ 2, 1 ] ], coupon => $cp), 409, 'COUPON_NOT_AVAILABLE',
    $before, 'an expired coupon');
refused(order(123, [ [ 2, 99999 ] ], coupon => $cp), 400, 'INVALID_REQUEST',
    $before, 'a bad quantity with a coupon');
refused(order(123, [ [ 2, 1000000 ] ], coupon => $cp), 400, 'INVALID_REQUEST',
    $before, 'a huge quantity with a coupon');
$t->psql("UPDATE products SET stock = 0 WHERE id = 3");
$before = snapshot();
refused(order(123, [ [ 3, 1 ] ], coupon => $cp), 409, 'OUT_OF_STOCK',
    $before, 'out of stock comes before the coupon');
$t->psql("UPDATE products SET stock = 1000 WHERE id = 3");

# ---------------------------------------------------------------------------
# bad couponId: 400, nothing changed

$before = snapshot();
for my $bad ('0', '-1', '"5"', '1.5', '1e3', 'true', '[5]', '{"id":5}',
             '9223372036854775808', '"1 OR 1=1"')
{
    my $body = qq({"items":[{"productId":2,"quantity":1}],"couponId":$bad});
    my $res = $t->post('/api/v1/orders', $body, user => 125);
    is_error($res, 400, 'INVALID_REQUEST', "couponId $bad: 400");
    like($res->{json}{message} // '', qr/couponId/, '... naming couponId');
}
is_error($t->post('/api/v1/orders',
    '{"items":[{"productId":2,"quantity":1}],"couponId":1,"couponId":2}',
    user => 125), 400, 'INVALID_REQUEST', 'couponId twice: 400');
is(snapshot(), $before, 'the bad couponIds changed nothing');
$r = $t->post('/api/v1/orders',
    '{"items":[{"productId":2,"quantity":1}],"couponId":null}', user => 125);
is(amounts($r->{json} // {}), 'PENDING_PAYMENT 3000/0/3000',
    'couponId null: an order without a coupon');

# ---------------------------------------------------------------------------
# card: the gateway charges paymentAmount; a failed payment gives it back

$u = 130;
$cp = coupon_for($u, discountType => 'RATE', discountValue => 10);
$r = order($u, [ [ 1, 1 ] ], coupon => $cp, pay => card($OK_CARD));
is($r->{status}, 202, 'card order with a RATE 10% coupon: 202') or diag($r->{raw});
is(amounts($r->{json} // {}), 'PAYMENT_IN_PROGRESS 10000/1000/9000',
    '... payment 9000');
my $oid = $r->{json}{id};
my $tx = $sim->transactions(orderId => sprintf('%06d', $oid));
is($tx->[0]{amount}, 9000, '... the gateway was asked for 9000');
my $o = $t->wait_order($oid, user => $u,
    until => sub { $_[0]{status} ne 'PAYMENT_IN_PROGRESS' });
is($o->{status}, 'PAID', '... PAID after the callback');
is($t->psql("SELECT amount FROM payments WHERE order_id = $oid"), 9000,
    '... the payment row is 9000');
is(coupon_state($cp), "USED|$oid", '... the coupon USED');

$u = 131;
$cp = coupon_for($u, discountValue => 2000);
my $s1 = stock(1);
$r = order($u, [ [ 1, 1 ] ], coupon => $cp, pay => card($LIMIT_CARD));
ok($r->{status} == 202 || $r->{status} == 200, 'a declined card with a coupon')
    or diag($r->{raw});
$oid = $r->{json}{id};
$o = $t->wait_order($oid, user => $u,
    until => sub { $_[0]{status} ne 'PAYMENT_IN_PROGRESS' });
is($o->{status}, 'PAYMENT_FAILED', '... PAYMENT_FAILED');
is(stock(1), $s1, '... its stock given back');
is(coupon_state($cp), 'AVAILABLE|', '... and its coupon');
$r = order($u, [ [ 1, 1 ] ], coupon => $cp, pay => { method => 'BALANCE' });
is(amounts($r->{json} // {}), 'PAID 10000/2000/8000',
    '... which the next order uses');

# ---------------------------------------------------------------------------
# orders racing for one coupon: exactly one holds it

my @coupons = map { coupon_for(140 + $_, discountValue => 700) } 0 .. 4;
$s2 = stock(2);
my @reqs;
for my $i (0 .. 4) {
    for my $k (1 .. 10) {
        push @reqs, { method => 'POST', path => '/api/v1/orders',
            user => 140 + $i, body => { items => [ { productId => 2,
            quantity => 1 } ], couponId => $coupons[$i],
            ($k % 2 ? (payment => { method => 'BALANCE' }) : ()) } };
    }
}
my @res = $t->concurrent(\@reqs, timeout => 60);
is_deeply(tally(@res), { 201 => 5, '409 COUPON_NOT_AVAILABLE' => 45 },
    '5 coupons x 10 orders at once: 5 x 201, 45 x COUPON_NOT_AVAILABLE');
for my $i (0 .. 4) {
    my @won = grep { $_->{status} == 201 } @res[ $i * 10 .. $i * 10 + 9 ];
    is(scalar @won, 1, "coupon $i: one order won it");
    my $w = $won[0]{json} // {};
    is(coupon_state($coupons[$i]),
        ($w->{status} // '') eq 'PAID' ? "USED|$w->{id}" : "AVAILABLE|$w->{id}",
        "coupon $i: held by the winner");
}
is(stock(2), $s2 - 5, 'the stock of 5 orders taken, no more');
is($t->psql("SELECT count(*) FROM orders WHERE user_id BETWEEN 140 AND 144"), 5,
    '5 orders in the database');

# ---------------------------------------------------------------------------
# Idempotency-Key: the order with its coupon, once

$u = 150;
$cp = coupon_for($u, discountValue => 300);
my $r1 = order($u, [ [ 2, 1 ] ], coupon => $cp, key => 'coupon-order-150',
    pay => { method => 'BALANCE' });
is(amounts($r1->{json} // {}), 'PAID 3000/300/2700', 'with a key: PAID 2700');
$before = snapshot();
my $r2 = order($u, [ [ 2, 1 ] ], coupon => $cp, key => 'coupon-order-150',
    pay => { method => 'BALANCE' });
is($r2->{status}, 201, 'the same key again: 201');
is($r2->{headers}{'idempotent-replayed'}, 'true', '... replayed');
is($r2->{body}, $r1->{body}, '... the same order');
is(snapshot(), $before, '... nothing more written');
is_error(order($u, [ [ 2, 1 ] ], coupon => $cp + 1000000, key => 'coupon-order-150'),
    422, 'IDEMPOTENCY_KEY_REUSED', 'the same key with another coupon: 422');

# the issue route takes a key too: a retry never gets a second coupon
my $camp = $t->create_coupon(perUserLimit => 3, totalQuantity => 10);
my %k1 = (headers => { 'Idempotency-Key' => 'issue-151-a' });
$r1 = $t->issue_coupon($camp, 151, %k1);
is($r1->{status}, 201, 'issue with a key: 201') or diag($r1->{raw});
$r2 = $t->issue_coupon($camp, 151, %k1);
is($r2->{status}, 201, 'the same key again: 201');
is($r2->{headers}{'idempotent-replayed'}, 'true', '... replayed');
is($r2->{json}{id}, $r1->{json}{id}, '... the same coupon');
is($t->coupon_rows($camp), '1|1', '... one row');
$r = $t->issue_coupon($camp, 151, headers => { 'Idempotency-Key' => 'issue-151-b' });
is($r->{status}, 201, 'another key: a second coupon');
isnt($r->{json}{id}, $r1->{json}{id}, '... a new one');
is($t->coupon_rows($camp), '2|1', '... two rows');
@res = $t->concurrent([ map { $t->issue_coupon_req($camp, 152,
    headers => { 'Idempotency-Key' => 'issue-152' }) } 1 .. 20 ], timeout => 60);
my $tl = tally(@res);
is($tl->{201}, scalar(grep { $_->{status} == 201 } @res),
    '20 at once with one key: 201s');
is(scalar(grep { $_->{status} != 201 && !(($_->{json}{code} // '') eq
    'IDEMPOTENCY_IN_FLIGHT') } @res), 0,
    '... the others IDEMPOTENCY_IN_FLIGHT') or diag(explain($tl));
is(scalar(keys %{ { map { $_->{json}{id} => 1 } grep { $_->{status} == 201 } @res } }),
    1, '... every 201 the same coupon');
is($t->coupon_rows($camp), '3|2', '... and one row for user 152');

# ---------------------------------------------------------------------------
# expiry of an unpaid order gives its coupon back (last: the expiry job of
# the 'ttl' instance expires every old unpaid order of the database)

$t->write_config(config(extra => "commerce_order_ttl 2s;\n"
    . "commerce_order_expiry_interval 500ms;\n"), name => 'ttl');
$t->start_nginx(name => 'ttl');
$u = 160;
$cp = coupon_for($u, discountValue => 400);
$r = $t->post('/api/v1/orders', { items => [ { productId => 2, quantity => 1 } ],
    couponId => $cp }, user => $u, name => 'ttl');
is(amounts($r->{json} // {}), 'PENDING_PAYMENT 3000/400/2600',
    'an unpaid order with a coupon (ttl 2s)');
$oid = $r->{json}{id};
is(coupon_state($cp), "AVAILABLE|$oid", '... holds it');
$o = $t->wait_order($oid, user => $u, name => 'ttl', timeout => 20,
    until => sub { $_[0]{status} eq 'CANCELLED' });
is($o->{status}, 'CANCELLED', '... expired: CANCELLED');
is(coupon_state($cp), 'AVAILABLE|', '... the coupon free again');
$r = order($u, [ [ 2, 1 ] ], coupon => $cp, pay => { method => 'BALANCE' });
is(amounts($r->{json} // {}), 'PAID 3000/400/2600', '... and usable');

is_deeply([ $t->log_problems ], [], 'no problems in the error log');
is_deeply([ $t->log_problems('ttl') ], [], 'none on the ttl instance');

done_testing;
