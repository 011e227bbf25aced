#!/usr/bin/perl
# Cancel before shipping (issue 13 section 3): POST /orders/{id}/cancel,
# whole or {"partIds":[..]}, with the PG simulator's partial cancel.
#
#   1. coupon + points + card: stock, coupon, points (RESTORE) and the card
#      (a gateway cancel of exactly the card part) given back once; the
#      first gateway cancel is applied at the simulator but never answered
#      (hangAfterCancel): the job retries with the same cancelKey and the
#      simulator answers the first result, cancelling nothing twice; the
#      route replayed under its Idempotency-Key, a second cancel 409;
#   2. a part of a two-seller card order: the other part untouched, the
#      card refunded partially at the simulator, the order still PAID;
#      then the other part: the order CANCELLED, the card all refunded;
#   3. a balance-paid order: the balance back (ledger REFUND);
#   4. an unpaid order, and a transfer waiting for its deposit, cancelled
#      whole (stock back, the transfer given up as the expiry does);
#   5. SHIPPED: 409 ORDER_NOT_CANCELLABLE changing nothing; another
#      buyer's order 404, unknown parts 404, bad bodies 400, nothing changed;
#   6. cancels racing: exactly one wins, refunded once;
#   7. a KakaoPay order: refunded by the same gateway cancel;
#   8. the gateway refuses a refund: FAILED, refund.failed;
#   9. the gateway fails every cancel: retried, FAILED after 5 attempts;
#   then the database refuses to refund a part more than it was paid, and
#   every part's refunded amount is the sum of its refunds.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use PgSim;
use MixPay;
use RefundTest;
use JSON::PP;

binmode(Test::More->builder->$_, ':encoding(UTF-8)')
    for qw(output failure_output todo_output);

my ($t, $sim) = RefundTest::start(182, [3, 30000], [4, 1000], [11, 1000, 901], [13, 2000, 902]);
# the gateway's cancels that time out are the test's business
$t->allow_log(qr/refund \d+ \(payment \d+\) at pg_a: (timed out|timeout|broken)/);

my %addr = (recipient => '홍길동', phone => '010-1234-5678', zipCode => '06236',
    address1 => '서울 강남구 테헤란로 152');

sub cancel {
    my ($user, $order, $body, %o) = @_;
    # no body: Content-Type application/json and Content-Length 0
    return $t->post("/api/v1/orders/$order/cancel", $body // '', user => $user, %o);
}
sub refunds {
    [ $t->psql("SELECT kind || ' ' || method || ' ' || amount || ' ' || status"
        . " FROM refunds WHERE order_id = $_[0] ORDER BY id") ]
}
sub part_states {
    [ $t->psql("SELECT coalesce(store_id::text, '-') || ' ' || status || ' '"
        . " || refunded_amount FROM order_parts WHERE order_id = $_[0]"
        . " ORDER BY store_id NULLS LAST") ]
}
sub moves {
    [ $t->psql("SELECT reason || ' ' || delta FROM stock_movements"
        . " WHERE order_id = $_[0] ORDER BY id") ]
}
sub events {
    [ $t->psql("SELECT type FROM outbox WHERE aggregate_type = 'order'"
        . " AND aggregate_id = $_[0] ORDER BY seq") ]
}
sub paid {
    my ($id, $user) = @_;
    my $o = $t->wait_order($id, user => $user, timeout => 20,
        until => sub { $_[0]{status} ne 'PAYMENT_IN_PROGRESS' });
    return $o->{status};
}
sub refunds_settled {
    my ($order) = @_;
    return wait_until(sub {
        $t->psql("SELECT count(*) FROM refunds WHERE order_id = $order"
            . " AND status = 'PENDING'") eq '0' }, timeout => 30);
}

# ---------------------------------------------------------------------------
# 1. coupon + points + card, the first gateway cancel times out

my $U = 21;
grant($U, 10000);
my $camp = $t->create_coupon(discountType => 'FIXED', discountValue => 5000);
my $r = $t->issue_coupon($camp, $U);
is($r->{status}, 201, 'a 5000 coupon issued') or diag($r->{body});
my $uc = $r->{json}{id};
my $s3 = stock(3);
$r = $t->post('/api/v1/orders', { items => [ { productId => 3, quantity => 1 } ],
    couponId => $uc, payment => [ pts(10000), card(15000) ] }, user => $U);
is($r->{status}, 202, 'coupon 5000 + points 10000 + card 15000: 202') or diag($r->{body});
my $o1 = $r->{json}{id};
is(paid($o1, $U), 'PAID', '... PAID');
is(0 + pg_txns($o1)->[0]{amount}, 15000, '... the card charged 15000');
is(stock(3), $s3 - 1, '... one unit taken');

$sim->control(hangAfterCancel => JSON::PP::true);
my %key = (headers => { 'Idempotency-Key' => 'cancel-182-a' });
$r = cancel($U, $o1, undef, %key);
is($r->{status}, 200, 'cancel (Idempotency-Key): 200') or diag($r->{body});
is($r->{json}{status}, 'CANCELLED', '... the order CANCELLED');
cmp_json($r->{json}{refunds}, [
    { id => qr/^\d+$/, partId => qr/^\d+$/, returnId => undef, paymentId => qr/^\d+$/,
      kind => 'CANCEL', method => 'CARD', amount => 15000, status => 'PENDING',
      createdAt => qr/Z$/, doneAt => undef },
    { id => qr/^\d+$/, partId => qr/^\d+$/, returnId => undef, paymentId => qr/^\d+$/,
      kind => 'CANCEL', method => 'POINTS', amount => 10000, status => 'DONE',
      createdAt => qr/Z$/, doneAt => qr/Z$/ } ],
    '... refunds: the card first (PENDING at the gateway), then the points (DONE)');
is(points($U), 10000, '... the points back at once');
is_deeply(ledger($U), [ 'SPEND -10000 0', 'RESTORE 10000 10000' ], '... ledger RESTORE');
is(stock(3), $s3, '... the unit back');
is_deeply(moves($o1), [ 'ORDER -1', 'ORDER_CANCELLED 1' ], '... stock ledger ORDER_CANCELLED');
is($t->psql("SELECT status || ' ' || coalesce(reserved_by::text, '-') || ' '"
    . " || coalesce(used_at::text, '-') FROM user_coupons WHERE id = $uc"),
    'AVAILABLE - -', '... the coupon free again');

# the simulator applied the cancel but never answered: the job times out,
# then asks again with the same key
ok(wait_until(sub { $t->psql("SELECT attempts FROM refunds WHERE order_id = $o1"
    . " AND method = 'CARD'") >= 1
    && $t->psql("SELECT count(*) FROM payment_interface_request_log WHERE order_id = $o1"
        . " AND operation = 'CANCEL'") >= 1 }, timeout => 20),
    'the first gateway cancel went out and timed out');
$sim->control(hangAfterCancel => JSON::PP::false);
ok(refunds_settled($o1), 'the job retried: the card refund DONE');
my $tx = pg_txns($o1)->[0];
is($tx->{status}, 'CANCELLED', '... the simulator: CANCELLED');
is(0 + $tx->{cancelledAmount}, 15000, '... cancelled amount 15000');
is(scalar @{ $tx->{partialCancels} }, 1, '... cancelled once, not twice');
is($t->psql("SELECT attempts FROM refunds WHERE order_id = $o1 AND method = 'CARD'"),
    2, '... on the second attempt');
is_deeply([ $t->psql("SELECT coalesce(http_status::text, error) FROM"
    . " payment_interface_request_log WHERE order_id = $o1 AND operation = 'CANCEL'"
    . " ORDER BY id") ], [ 'timeout', 200 ],
    '... the interface log: the timed-out cancel, then the answered one');
is_deeply(part_states($o1), [ '- CANCELLED 25000' ], '... the part refunded 25000');
is_deeply(refunds($o1), [ 'CANCEL CARD 15000 DONE', 'CANCEL POINTS 10000 DONE' ],
    '... the refunds rows');
is_deeply(events($o1), [ 'order.created', 'order.paid', 'order.refunded', 'order.cancelled' ],
    '... events: order.refunded, order.cancelled');

my $before = state();
my $r2 = cancel($U, $o1, undef, %key);
is($r2->{status}, 200, 'the same Idempotency-Key again: 200');
is($r2->{headers}{'idempotent-replayed'}, 'true', '... replayed');
is_deeply($r2->{json}, $r->{json}, '... the same answer');
is_error(cancel($U, $o1), 409, 'ORDER_ALREADY_CANCELLED', 'a cancel without the key: 409');
is_deeply(state(), $before, '... nothing changed');
is(scalar @{ pg_txns($o1)->[0]{partialCancels} }, 1, '... nothing more cancelled at the PG');

# ---------------------------------------------------------------------------
# 2. a part of a two-seller order: partial cancel at the gateway

my $B = 22;
my ($s11, $s13) = (stock(11), stock(13));
$r = $t->post('/api/v1/orders', { items => [ { productId => 11, quantity => 2 },
    { productId => 13, quantity => 1 } ], shippingAddress => \%addr,
    payment => { method => 'CARD', cardType => 'KB', cardNo => $MixPay::OK_CARD } },
    user => $B);
is($r->{status}, 202, 'X 2x1000 + Y 1x2000 by card: 202') or diag($r->{body});
my $o2 = $r->{json}{id};
is(paid($o2, $B), 'PAID', '... PAID');
my $py = $t->psql("SELECT id FROM order_parts WHERE order_id = $o2 AND store_id = 902");
my $px = $t->psql("SELECT id FROM order_parts WHERE order_id = $o2 AND store_id = 901");
$r = cancel($B, $o2, { partIds => [ 0 + $py ] });
is($r->{status}, 200, "cancel Y's part: 200") or diag($r->{body});
is($r->{json}{status}, 'PAID', '... the order stays PAID');
is($r->{json}{shippingAddress}{recipient}, '홍길동', '... the address still opened');
cmp_json($r->{json}{partStates}, [
    { partId => 0 + $px, status => 'PAID', refundedAmount => 0, cancelledAt => undef },
    { partId => 0 + $py, status => 'CANCELLED', refundedAmount => 2000,
      cancelledAt => qr/Z$/ } ], '... partStates: X PAID, Y CANCELLED refunded 2000');
is_deeply(part_states($o2), [ '901 PAID 0', '902 CANCELLED 2000' ], '... in the table');
is(stock(11), $s11 - 2, "... X's units still taken");
is(stock(13), $s13, "... Y's unit back");
ok(refunds_settled($o2), '... the card refund carried out');
$tx = pg_txns($o2)->[0];
is($tx->{status}, 'SUCCESS', '... the simulator: the transaction still SUCCESS');
is(0 + $tx->{cancelledAmount}, 2000, '... 2000 cancelled');
is($sim->request('GET', "/api/v1/payments/$tx->{transactionKey}",
    user => $B)->{json}{data}{remainingAmount}, 2000,
    '... GET at the simulator: 2000 remaining');
is_error(cancel($B, $o2, { partIds => [ 0 + $py ] }), 409, 'ORDER_ALREADY_CANCELLED',
    "Y's part again: 409");
is_deeply(events($o2), [ 'order.created', 'order.paid', 'order.refunded',
    'order.parts_cancelled' ], '... events: order.refunded, order.parts_cancelled');

$r = cancel($B, $o2, { partIds => [ 0 + $px ] });
is($r->{status}, 200, "then X's part: 200") or diag($r->{body});
is($r->{json}{status}, 'CANCELLED', '... no part left: the order CANCELLED');
ok(refunds_settled($o2), '... refunded at the gateway');
$tx = pg_txns($o2)->[0];
is($tx->{status}, 'CANCELLED', '... the simulator: CANCELLED');
is(0 + $tx->{cancelledAmount}, 4000, '... all 4000 cancelled, in two cancels');
is_deeply(refunds($o2), [ 'CANCEL CARD 2000 DONE', 'CANCEL CARD 2000 DONE' ],
    '... two card refunds');
is(stock(11), $s11, "... X's units back");

# ---------------------------------------------------------------------------
# 3. a balance-paid order

my $C = 23;
$t->psql("SELECT cm_balance_charge($C, 5000, 100000000)");
my $bal = balance($C);
$r = $t->post('/api/v1/orders', { items => [ { productId => 4, quantity => 2 } ],
    payment => { method => 'BALANCE' } }, user => $C);
is($r->{status}, 201, 'a balance order of 2000: 201') or diag($r->{body});
my $o3 = $r->{json}{id};
is(balance($C), $bal - 2000, '... paid');
$r = cancel($C, $o3, {});
is($r->{status}, 200, 'cancel with {}: 200') or diag($r->{body});
is($r->{json}{status}, 'CANCELLED', '... CANCELLED');
is(balance($C), $bal, '... the balance back');
is($t->psql("SELECT kind || ' ' || amount FROM balance_ledger WHERE order_id = $o3"
    . " ORDER BY id DESC LIMIT 1"), 'REFUND 2000', '... ledger REFUND 2000');
is_deeply(refunds($o3), [ 'CANCEL BALANCE 2000 DONE' ], '... one refunds row, DONE');

# ---------------------------------------------------------------------------
# 4. an unpaid order: cancelled whole, as the expiry does

my $s4 = stock(4);
$r = $t->post('/api/v1/orders', { items => [ { productId => 4, quantity => 3 } ] },
    user => $C);
is($r->{status}, 201, 'an unpaid order') or diag($r->{body});
my $o4 = $r->{json}{id};
is(stock(4), $s4 - 3, '... its units held');
my $p4 = $t->psql("SELECT id FROM order_parts WHERE order_id = $o4");
is_error(cancel($C, $o4, { partIds => [ 0 + $p4, 999999 ] }), 404, 'ORDER_PART_NOT_FOUND',
    '... a part of no such order: 404');
$r = cancel($C, $o4);
is($r->{status}, 200, 'cancel the unpaid order: 200') or diag($r->{body});
is($r->{json}{status}, 'CANCELLED', '... CANCELLED');
is(stock(4), $s4, '... its units back');
is_deeply(moves($o4), [ 'ORDER -3', 'ORDER_CANCELLED 3' ], '... ledger ORDER_CANCELLED');
is_deeply(refunds($o4), [], '... nothing to refund');
is_deeply(events($o4), [ 'order.created', 'order.cancelled' ], '... order.cancelled');

# a transfer waiting for its deposit: cancelled whole, as the expiry does
my $s4b = stock(4);
$r = $t->post('/api/v1/orders', { items => [ { productId => 4, quantity => 2 } ],
    payment => { method => 'TRANSFER' } }, user => $C);
is($r->{status}, 202, 'a transfer order') or diag($r->{body});
my $o4t = $r->{json}{id};
ok(wait_until(sub { $t->psql("SELECT status FROM orders WHERE id = $o4t")
    eq 'WAITING_FOR_DEPOSIT' }, timeout => 20), '... WAITING_FOR_DEPOSIT');
$r = cancel($C, $o4t);
is($r->{status}, 200, 'cancel it: 200') or diag($r->{body});
is($r->{json}{status}, 'CANCELLED', '... CANCELLED');
is(stock(4), $s4b, '... its units back');
is_deeply(pay_rows($o4t), [ 'TRANSFER FAILED 2000' ],
    '... the transfer given up (a deposit after this is refunded by the net-cancel)');
is_deeply(refunds($o4t), [], '... nothing to refund');

# ---------------------------------------------------------------------------
# 5. shipped, another buyer's, unknown, bad bodies: nothing changed

$r = $t->post('/api/v1/orders', { items => [ { productId => 11, quantity => 1 },
    { productId => 13, quantity => 1 } ], shippingAddress => \%addr,
    payment => { method => 'BALANCE' } }, user => $C);
is($r->{status}, 201, 'a two-seller balance order') or diag($r->{body});
my $o5 = $r->{json}{id};
my $p5x = $t->psql("SELECT id FROM order_parts WHERE order_id = $o5 AND store_id = 901");
my $p5y = $t->psql("SELECT id FROM order_parts WHERE order_id = $o5 AND store_id = 902");
ship_part($p5x);
$before = state();
is_error(cancel($C, $o5), 409, 'ORDER_NOT_CANCELLABLE', 'X shipped: the whole order 409');
is_error(cancel($C, $o5, { partIds => [ 0 + $p5x ] }), 409, 'ORDER_NOT_CANCELLABLE',
    '... its part 409');
is_error(cancel($C, $o5, { partIds => [ 0 + $p5y, 0 + $p5x ] }), 409,
    'ORDER_NOT_CANCELLABLE', '... both parts 409');
is_error(cancel($U, $o5), 404, 'ORDER_NOT_FOUND', "another buyer: 404");
is_error(cancel($U, $o5, { partIds => [ 0 + $p5y ] }), 404, 'ORDER_NOT_FOUND',
    "... with a part: 404");
is_error(cancel($C, 99999999), 404, 'ORDER_NOT_FOUND', 'unknown order: 404');
is_error(cancel($C, $o5, { partIds => [ 0 + $p4 ] }), 404, 'ORDER_PART_NOT_FOUND',
    "another order's part: 404");
for my $bad ('{', '[]', '"x"', '{"partIds":[]}', '{"partIds":1}', '{"partIds":["1"]}',
             '{"partIds":[1.5]}', '{"partIds":[0]}', '{"partIds":[-3]}',
             '{"partIds":[1,1]}', '{"partIds":null}', '{"partIds":[1],"partIds":[2]}',
             '{"other":1}', '{"partIds":[[1]]}',
             '{"partIds":[' . join(',', 1 .. 51) . ']}',
             '{"partIds":[99999999999999999999]}') {
    is_error(cancel($C, $o5, $bad), 400, 'INVALID_REQUEST', "bad body $bad: 400");
}
is_error($t->post("/api/v1/orders/abc/cancel", undef, user => $C), 400, 'INVALID_REQUEST',
    'a bad id: 400');
is_deeply(state(), $before, '... none changed anything');
$r = cancel($C, $o5, { partIds => [ 0 + $p5y ] });
is($r->{status}, 200, 'the part not shipped is cancelled: 200') or diag($r->{body});
is_deeply(part_states($o5), [ '901 SHIPPED 0', '902 CANCELLED 2000' ],
    '... X SHIPPED, Y CANCELLED and refunded');

# ---------------------------------------------------------------------------
# 6. races and the ceiling

$t->psql("SELECT cm_balance_charge($C, 10000, 100000000)");
$bal = balance($C);
$r = $t->post('/api/v1/orders', { items => [ { productId => 11, quantity => 1 },
    { productId => 13, quantity => 1 } ], shippingAddress => \%addr,
    payment => { method => 'BALANCE' } }, user => $C);
is($r->{status}, 201, 'a 3000 balance order') or diag($r->{body});
my $o6 = $r->{json}{id};
my $p6 = $t->psql("SELECT id FROM order_parts WHERE order_id = $o6 AND store_id = 902");
my @res = $t->concurrent([
    map { { method => 'POST', path => "/api/v1/orders/$o6/cancel", user => $C,
            body => { partIds => [ 0 + $p6 ] } } } 1 .. 6 ]);
is_deeply(tally(@res), { 200 => 1, '409 ORDER_ALREADY_CANCELLED' => 5 },
    "6 cancels of Y's part at once: exactly one 200, five 409");
is(balance($C), $bal - 1000, "... Y's 2000 refunded once");
@res = $t->concurrent([
    map { { method => 'POST', path => "/api/v1/orders/$o6/cancel", user => $C,
            body => {} } } 1 .. 6 ]);
is_deeply(tally(@res), { 200 => 1, '409 ORDER_ALREADY_CANCELLED' => 5 },
    '6 cancels of the rest at once: exactly one 200, five 409');
is(balance($C), $bal, '... the balance all back, once');
is_deeply(refunds($o6), [ 'CANCEL BALANCE 2000 DONE', 'CANCEL BALANCE 1000 DONE' ],
    '... one refund per part');

# ---------------------------------------------------------------------------
# 7. easy pay: the same gateway refund

my $E = 24;
$r = $t->post('/api/v1/orders', { items => [ { productId => 4, quantity => 1 } ],
    payment => { method => 'EASY_PAY', provider => 'KAKAOPAY' } }, user => $E);
is($r->{status}, 202, 'a KakaoPay order: 202') or diag($r->{body});
my $o7 = $r->{json}{id};
is(paid($o7, $E), 'PAID', '... PAID');
$r = cancel($E, $o7);
is($r->{status}, 200, '... cancelled: 200') or diag($r->{body});
ok(refunds_settled($o7), '... refunded at the gateway');
is_deeply(refunds($o7), [ 'CANCEL EASY_PAY 1000 DONE' ], '... one EASY_PAY refund, DONE');
$tx = pg_txns($o7)->[0];
is($tx->{status} . ' ' . $tx->{cancelledAmount} . ' ' . $tx->{provider},
    'CANCELLED 1000 KAKAOPAY', '... the simulator: the KakaoPay transaction cancelled');

# ---------------------------------------------------------------------------
# 8. the gateway refuses (the transaction was cancelled there already):
#    FAILED at once, the part's refunded amount given back, refund.failed

$r = $t->post('/api/v1/orders', { items => [ { productId => 4, quantity => 1 } ],
    payment => { method => 'CARD', cardType => 'KB', cardNo => $MixPay::OK_CARD } },
    user => $E);
is($r->{status}, 202, 'a card order') or diag($r->{body});
my $o8 = $r->{json}{id};
is(paid($o8, $E), 'PAID', '... PAID');
my $k8 = pg_txns($o8)->[0]{transactionKey};
is($sim->request('POST', "/api/v1/payments/$k8/cancel", user => $E)->{status}, 200,
    '... cancelled at the simulator behind our back');
is(cancel($E, $o8)->{status}, 200, 'the buyer cancels: 200');
ok(refunds_settled($o8), '... the job asked the gateway');
is_deeply(refunds($o8), [ 'CANCEL CARD 1000 FAILED' ], '... refused (409): FAILED');
is($t->psql("SELECT refunded_amount FROM order_parts WHERE order_id = $o8"), 0,
    "... the part's refunded amount given back to what may be refunded");
is_deeply([ grep { /^refund\./ } @{ events($o8) } ], [ 'refund.failed' ],
    '... refund.failed for an operator');

# ---------------------------------------------------------------------------
# 9. the gateway fails every cancel (500): retried with a backoff, FAILED
#    after commerce_refund's attempts=5 (the test moves each wait's end to
#    now instead of waiting it out)

$r = $t->post('/api/v1/orders', { items => [ { productId => 4, quantity => 1 } ],
    payment => { method => 'CARD', cardType => 'KB', cardNo => $MixPay::OK_CARD } },
    user => $E);
my $o9 = $r->{json}{id};
is(paid($o9, $E), 'PAID', 'a card order PAID');
$sim->control(opFailRate => { cancel => 1 });
is(cancel($E, $o9)->{status}, 200, 'cancelled while the gateway fails every cancel');
my $attempts = 0;
for my $n (1 .. 5) {
    ok(wait_until(sub { $t->psql("SELECT attempts || ' ' || status || ' '"
        . " || (next_attempt_at > now() OR status <> 'PENDING') FROM refunds"
        . " WHERE order_id = $o9") =~ /^$n (PENDING true|FAILED t)/ }, timeout => 20),
        "attempt $n answered 500") or last;
    $attempts = $n;
    $t->psql("UPDATE refunds SET next_attempt_at = now() WHERE order_id = $o9"
        . " AND status = 'PENDING'");
}
is($attempts, 5, '... five attempts');
ok(refunds_settled($o9), '... then no more');
is_deeply(refunds($o9), [ 'CANCEL CARD 1000 FAILED' ], '... FAILED after 5 attempts');
is($t->psql("SELECT count(*) || ' ' || min(http_status) || ' ' || max(attempt)"
    . " FROM payment_interface_request_log WHERE order_id = $o9 AND operation = 'CANCEL'"),
    '5 500 5', '... the interface log: 5 cancels answered 500, attempts 1..5');
is(pg_txns($o9)->[0]{status}, 'SUCCESS', '... nothing cancelled at the gateway');
$sim->control(opFailRate => { cancel => 0 });

my $err = eval { $t->psql("SELECT cm__refund_part($p6, 1, 'CANCEL', NULL)"); '' } // $@;
like($err, qr/REFUND_EXCEEDS_PAID|order_parts_refunded_check/,
    'the database refuses one won more than was paid');
is($t->psql("SELECT count(*) FROM order_parts WHERE refunded_amount > payment_amount"),
    0, 'no part refunded more than it was paid');
is($t->psql(q{SELECT count(*) FROM order_parts x
     WHERE x.refunded_amount <> (SELECT coalesce(sum(f.amount), 0) FROM refunds f
                                  WHERE f.part_id = x.id AND f.status <> 'FAILED')}),
    0, 'every refunded_amount is the sum of its refunds');
is($t->psql(q{SELECT count(*) FROM payments p
     WHERE p.amount < (SELECT coalesce(sum(f.amount), 0) FROM refunds f
                        WHERE f.payment_id = p.id AND f.status <> 'FAILED')}),
    0, 'no payment refunded more than it took');
ok($t->check_consistency, 'consistency');

$t->stop;
done_testing;

# A part shipped (the carrier flow of section 1 after the merge): status and
# steps' times consistent with 027's CHECK.
sub ship_part {
    my ($part) = @_;
    $t->psql("UPDATE order_parts SET status = 'SHIPPED', prepared_at = now(),"
        . " shipped_at = now() WHERE id = $part");
}
