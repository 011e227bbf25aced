#!/usr/bin/perl
# Returns after delivery (issue 13 section 3): the buyer asks
# (POST /orders/{id}/parts/{partId}/returns), the seller approves with the
# parcel's pickup (a shipments row with return_id) or rejects; the parcel
# back (cm__return_received) refunds the returned units' share of the
# part's payment, card first at the gateway (the refund job's partial
# cancel), then the points; the seller restocks the undamaged units.
#
#   - a return of 2 units, 1 damaged: refund of both units' share, stock +1
#     (RETURN_RESTOCK), the card partially cancelled at the simulator;
#   - one open return per part, quantities bounded by what is left, a part
#     not delivered refused; reject, then a new request allowed;
#   - buyers see only their orders, sellers only their stores' returns
#     (404), a CONSUMER 403; bad bodies 400; nothing changed by a refusal.
#
# The two steps of the carrier (section 1) are helper subs at the end:
# deliver_part (the part DELIVERED, by SQL) and parcel_back (the return's
# parcel delivered: cm__return_received).

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

my ($t, $sim) = RefundTest::start(183, [11, 1000, 901], [13, 2000, 902]);

my %addr = (recipient => '홍길동', phone => '010-1234-5678', zipCode => '06236',
    address1 => '서울 강남구 테헤란로 152');
my %X = (token => $t->token(901, role => 'SELLER'));
my %Y = (token => $t->token(902, role => 'SELLER'));
my $v11 = $t->psql('SELECT id FROM product_variants WHERE product_id = 11');
my $v13 = $t->psql('SELECT id FROM product_variants WHERE product_id = 13');
my $TS = qr/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\z/;

sub request_return {
    my ($user, $order, $part, $body, %o) = @_;
    return $t->post("/api/v1/orders/$order/parts/$part/returns", $body, user => $user, %o);
}
sub seller {
    my ($who, $id, $action, $body) = @_;
    return $t->post("/api/v1/seller/returns/$id/$action", $body, %$who);
}
sub part_of {
    my ($order, $store) = @_;
    return 0 + $t->psql("SELECT id FROM order_parts WHERE order_id = $order"
        . " AND store_id = $store");
}
sub paid {
    my ($id, $user) = @_;
    return $t->wait_order($id, user => $user, timeout => 20,
        until => sub { $_[0]{status} ne 'PAYMENT_IN_PROGRESS' })->{status};
}
sub refunds {
    [ $t->psql("SELECT kind || ' ' || method || ' ' || amount || ' ' || status"
        . " FROM refunds WHERE order_id = $_[0] ORDER BY id") ]
}
sub vstock { 0 + $t->psql("SELECT stock FROM product_variants WHERE id = $_[0]") }

# ---------------------------------------------------------------------------
# an order of X 3 x 1000 and Y 1 x 2000, coupon 1000, points 1000 + card 3000

my $D = 31;
grant($D, 1000);
my $camp = $t->create_coupon(discountType => 'FIXED', discountValue => 1000);
my $uc = $t->issue_coupon($camp, $D)->{json}{id};
my $r = $t->post('/api/v1/orders', { items => [ { productId => 11, quantity => 3 },
    { productId => 13, quantity => 1 } ], couponId => $uc, shippingAddress => \%addr,
    payment => [ pts(1000), card(3000) ] }, user => $D);
is($r->{status}, 202, 'X 3x1000 + Y 2000, coupon 1000, points 1000 + card 3000: 202')
    or diag($r->{body});
my $o = $r->{json}{id};
is(paid($o, $D), 'PAID', '... PAID');
my ($px, $py) = (part_of($o, 901), part_of($o, 902));
is($t->psql("SELECT payment_amount FROM order_parts WHERE id = $px"), 2400,
    "... X's part pays 2400 (its share of the discount taken)");

my $before = MixPay::state();
is_error(request_return($D, $o, $px, { reason => 'size', items => [
    { variantId => 0 + $v11, quantity => 2 } ] }), 409, 'RETURN_NOT_ALLOWED',
    'a part not delivered: 409');
is_deeply(MixPay::state(), $before, '... nothing changed');
deliver_part($px);

# ---------------------------------------------------------------------------
# the request

my %key = (headers => { 'Idempotency-Key' => 'return-183-a' });
$r = request_return($D, $o, $px, { reason => '사이즈가 맞지 않아요',
    items => [ { variantId => 0 + $v11, quantity => 2 } ] }, %key);
is_response($r, 201, { id => qr/^\d+$/, orderId => 0 + $o, partId => 0 + $px,
    status => 'REQUESTED', reason => '사이즈가 맞지 않아요', amount => 1600,
    items => [ { variantId => 0 + $v11, productId => 11, quantity => 2, amount => 1600,
                 restocked => undef } ],
    decisionNote => undef, shipment => undef, createdAt => $TS, decidedAt => undef,
    receivedAt => undef, refundedAt => undef, restockedAt => undef },
    'a return of 2 of 3 units: 201 REQUESTED, amount 1600 (2/3 of 2400)');
my $ret = $r->{json}{id};
my $r2 = request_return($D, $o, $px, { reason => '사이즈가 맞지 않아요',
    items => [ { variantId => 0 + $v11, quantity => 2 } ] }, %key);
is($r2->{headers}{'idempotent-replayed'}, 'true', '... replayed under its key');
is_deeply($r2->{json}, $r->{json}, '... the same answer');
$before = MixPay::state();
is_error(request_return($D, $o, $px, { reason => 'again', items => [
    { variantId => 0 + $v11, quantity => 1 } ] }), 409, 'RETURN_ALREADY_OPEN',
    'a second open return of the part: 409');
is_error(request_return(32, $o, $px, { reason => 'x', items => [
    { variantId => 0 + $v11, quantity => 1 } ] }), 404, 'ORDER_NOT_FOUND',
    "another buyer's order: 404");
is_error(request_return($D, $o, 99999999, { reason => 'x', items => [
    { variantId => 0 + $v11, quantity => 1 } ] }), 404, 'ORDER_PART_NOT_FOUND',
    'an unknown part: 404');
for my $bad ('', '{', '[]', '{"reason":"x"}', '{"items":[{"variantId":1,"quantity":1}]}',
             '{"reason":"","items":[{"variantId":1,"quantity":1}]}',
             '{"reason":1,"items":[{"variantId":1,"quantity":1}]}',
             '{"reason":"x","items":[]}', '{"reason":"x","items":{}}',
             '{"reason":"x","items":[{"variantId":1}]}',
             '{"reason":"x","items":[{"variantId":1,"quantity":0}]}',
             '{"reason":"x","items":[{"variantId":1,"quantity":1000}]}',
             '{"reason":"x","items":[{"variantId":"1","quantity":1}]}',
             '{"reason":"x","items":[{"variantId":1,"quantity":1.5}]}',
             '{"reason":"x","items":[{"variantId":1,"quantity":1,"extra":1}]}',
             '{"reason":"x","items":[{"variantId":1,"quantity":1},{"variantId":1,"quantity":1}]}',
             '{"reason":"x","items":[{"variantId":1,"quantity":1}],"more":1}',
             '{"reason":"x","reason":"y","items":[{"variantId":1,"quantity":1}]}',
             '{"reason":"' . ('가' x 501) . '","items":[{"variantId":1,"quantity":1}]}',
             '{"reason":"a\nb","items":[{"variantId":1,"quantity":1}]}',
             '{"reason":"x","items":[{"variantId":[[[1]]],"quantity":1}]}') {
    my $bytes = $bad;
    utf8::encode($bytes);
    is_error(request_return($D, $o, $py, $bytes), 400, 'INVALID_REQUEST',
        "bad request body " . substr($bad, 0, 60) . ": 400");
}
is_deeply(MixPay::state(), $before, '... none changed anything');

# ---------------------------------------------------------------------------
# the seller's side: who sees it

is_error($t->get("/api/v1/seller/returns/$ret", %Y), 404, 'RETURN_NOT_FOUND',
    "another store's seller: 404");
is_error(seller(\%Y, $ret, 'approve', { carrier => 'CJ', trackingNumber => '123456789012' }),
    404, 'RETURN_NOT_FOUND', '... cannot approve it');
is_error(seller(\%Y, $ret, 'reject', { reason => 'no' }), 404, 'RETURN_NOT_FOUND',
    '... nor reject it');
is($t->get("/api/v1/seller/returns/$ret", user => $D)->{status}, 403, 'a CONSUMER: 403');
is_error($t->get("/api/v1/seller/returns/99999999", %X), 404, 'RETURN_NOT_FOUND',
    'unknown: 404');
$r = $t->get("/api/v1/seller/returns/$ret", %X);
is($r->{status}, 200, "the store's seller sees it") or diag($r->{body});
is($r->{json}{status}, 'REQUESTED', '... REQUESTED');
$r = $t->get('/api/v1/seller/returns?status=REQUESTED', %X);
is($r->{status}, 200, "... in its store's list of REQUESTED returns") or diag($r->{body});
is_deeply([ map { $_->{id} } @{ $r->{json}{items} } ], [ $ret ], '... the one');
is($r->{json}{total}, 1, '... total 1');
is_deeply($t->get('/api/v1/seller/returns', %Y)->{json}{items}, [],
    "... another store's list is empty");
is($t->get('/api/v1/seller/returns?status=APPROVED', %X)->{json}{total}, 0,
    '... none APPROVED');
for my $q ('status=LOST', 'status=', 'status=requested', 'status=REQUESTED&status=APPROVED',
           'page=-1', 'size=0', 'storeId=abc') {
    is_error($t->get("/api/v1/seller/returns?$q", %X), 400, 'INVALID_REQUEST',
        "list ?$q: 400");
}
is_error($t->get('/api/v1/seller/returns?storeId=902', %X), 404, 'STORE_NOT_FOUND',
    "list another store's: 404");
for my $bad ('{}', '{"carrier":"DHL","trackingNumber":"123456789012"}',
             '{"carrier":"CJ","trackingNumber":"12ab"}', '{"carrier":"CJ"}',
             '{"carrier":"CJ","trackingNumber":123456789012}',
             '{"carrier":"CJ","trackingNumber":"123456789012","x":1}') {
    is_error(seller(\%X, $ret, 'approve', $bad), 400, 'INVALID_REQUEST', "approve $bad: 400");
}
is_error(seller(\%X, $ret, 'restock', { items => [ { variantId => 0 + $v11, quantity => 1 } ] }),
    409, 'RETURN_NOT_RECEIVED', 'restock before the parcel is back: 409');
is_deeply(MixPay::state(), $before, '... none changed anything');

$r = seller(\%X, $ret, 'approve', { carrier => 'CJ', trackingNumber => '123456789012' });
is($r->{status}, 200, 'the seller approves with the pickup parcel') or diag($r->{body});
is($r->{json}{status}, 'APPROVED', '... APPROVED');
is_deeply($r->{json}{shipment}, { carrier => 'CJ', trackingNumber => '123456789012',
    level => 1 }, '... its shipment');
is($t->psql("SELECT part_id || ' ' || return_id || ' ' || (registered_at IS NULL)"
    . " FROM shipments WHERE return_id = $ret"), "$px $ret true",
    '... a shipments row for the carrier to register (return_id, part_id)');
is_error(seller(\%X, $ret, 'approve', { carrier => 'CJ', trackingNumber => '123456789013' }),
    409, 'RETURN_ALREADY_DECIDED', 'approve again: 409');
is_error(seller(\%X, $ret, 'reject', { reason => 'late' }), 409, 'RETURN_ALREADY_DECIDED',
    'reject an approved return: 409');

# ---------------------------------------------------------------------------
# the parcel back: the refund (card first, at the gateway)

my $pts = points($D);
parcel_back($ret);
like($t->psql("SELECT status || ' ' || (received_at IS NOT NULL) FROM order_returns"
    . " WHERE id = $ret"), qr/^(RECEIVED|REFUNDED) true$/,
    'the parcel back: RECEIVED (REFUNDED once the job is done)');
is_deeply([ $t->psql("SELECT kind || ' ' || method || ' ' || amount FROM refunds"
    . " WHERE order_id = $o") ], [ 'RETURN CARD 1600' ],
    '... a card refund of 1600 for the gateway (card first)');
is($t->psql("SELECT refunded_amount FROM order_parts WHERE id = $px"), 1600,
    "... the part's refunded amount 1600");
ok(wait_until(sub { $t->psql("SELECT status FROM order_returns WHERE id = $ret")
    eq 'REFUNDED' }, timeout => 30), '... the job refunded it: REFUNDED');
is_deeply(refunds($o), [ 'RETURN CARD 1600 DONE' ], '... DONE');
my $tx = pg_txns($o)->[0];
is(0 + $tx->{cancelledAmount}, 1600, '... the simulator cancelled 1600 of 3000');
is($tx->{status}, 'SUCCESS', '... the transaction still SUCCESS for the rest');
is(points($D), $pts, '... no points moved');
parcel_back($ret);
is(scalar @{ refunds($o) }, 1, 'a repeated carrier event refunds nothing more');

# restock: 1 of the 2 units is damaged
my $s11 = vstock($v11);
for my $bad ('{"items":[{"variantId":' . $v13 . ',"quantity":1}]}',
             '{"items":[{"variantId":' . $v11 . ',"quantity":3}]}',
             '{"items":[{"variantId":' . $v11 . ',"quantity":-1}]}', '{"items":[]}', '{}') {
    is_error(seller(\%X, $ret, 'restock', $bad), 400, 'INVALID_REQUEST', "restock $bad: 400");
}
$r = seller(\%X, $ret, 'restock', { items => [ { variantId => 0 + $v11, quantity => 1 } ] });
is($r->{status}, 200, 'restock 1 of the 2 (1 damaged): 200') or diag($r->{body});
is($r->{json}{items}[0]{restocked}, 1, '... restocked 1');
like($r->{json}{restockedAt}, $TS, '... restockedAt');
is(vstock($v11), $s11 + 1, '... stock +1');
is($t->psql("SELECT reason || ' ' || delta || ' ' || actor_id FROM stock_movements"
    . " WHERE variant_id = $v11 ORDER BY id DESC LIMIT 1"), 'RETURN_RESTOCK 1 901',
    '... ledger RETURN_RESTOCK 1 by the seller');
is_error(seller(\%X, $ret, 'restock', { items => [ { variantId => 0 + $v11, quantity => 1 } ] }),
    409, 'RETURN_ALREADY_RESTOCKED', 'restock again: 409');
is(vstock($v11), $s11 + 1, '... stock unchanged');

# the order document shows the return and the refund
$r = $t->get("/api/v1/orders/$o", user => $D);
is($r->{json}{returns}[0]{status}, 'REFUNDED', "the buyer's order shows the return");
is($r->{json}{refunds}[0]{amount}, 1600, '... and the refund');
is($r->{json}{shippingAddress}{recipient}, '홍길동', '... the address still opened');

# the last unit: the rest of the payment amount, card 1400 is what is left
# of the card (3000 - 1600), so 800 of it... the card first: 800 (2400 - 1600)
$r = request_return($D, $o, $px, { reason => 'the last one', items => [
    { variantId => 0 + $v11, quantity => 2 } ] });
is_error($r, 409, 'RETURN_QUANTITY_EXCEEDED', '2 more of the 1 left: 409');
$r = request_return($D, $o, $px, { reason => 'the last one', items => [
    { variantId => 0 + $v11, quantity => 1 } ] });
is($r->{status}, 201, 'the last unit: 201') or diag($r->{body});
is($r->{json}{amount}, 800, '... what is left of the part: 2400 - 1600 = 800');
my $ret2 = $r->{json}{id};

# reject, then ask again
$r = seller(\%X, $ret2, 'reject', { reason => '사용 흔적이 있습니다' });
is($r->{status}, 200, 'the seller rejects: 200') or diag($r->{body});
is($r->{json}{status}, 'REJECTED', '... REJECTED');
is($r->{json}{decisionNote}, '사용 흔적이 있습니다', '... with its reason');
like($r->{json}{decidedAt}, $TS, '... decidedAt');
is_error(seller(\%X, $ret2, 'reject', { reason => 'again' }), 409, 'RETURN_ALREADY_DECIDED',
    'reject again: 409');
for my $bad ('{}', '{"reason":""}', '{"reason":5}', '{"reason":"x","y":1}') {
    is_error(seller(\%X, $ret2, 'reject', $bad), 400, 'INVALID_REQUEST', "reject $bad: 400");
}
$r = request_return($D, $o, $px, { reason => 'once more', items => [
    { variantId => 0 + $v11, quantity => 1 } ] });
is($r->{status}, 201, 'a rejected return closes: a new one is allowed') or diag($r->{body});
my $ret3 = $r->{json}{id};
is(seller(\%X, $ret3, 'approve', { carrier => 'HANJIN', trackingNumber => '987654321' })
    ->{status}, 200, '... approved');
parcel_back($ret3);
ok(wait_until(sub { $t->psql("SELECT status FROM order_returns WHERE id = $ret3")
    eq 'REFUNDED' }, timeout => 30), '... refunded');
is_deeply(refunds($o), [ 'RETURN CARD 1600 DONE', 'RETURN CARD 800 DONE' ],
    '... the card again (1400 left of it)');
is($t->psql("SELECT refunded_amount || '/' || payment_amount FROM order_parts"
    . " WHERE id = $px"), '2400/2400', "X's part all refunded, never more");
is(0 + pg_txns($o)->[0]{cancelledAmount}, 2400, '... the simulator: 2400 of 3000 cancelled');
is_deeply([ $t->psql("SELECT type FROM outbox WHERE aggregate_id = $o"
    . " AND aggregate_type = 'order' AND type LIKE 'return.%' ORDER BY seq") ],
    [ 'return.requested', 'return.approved', 'return.received', 'return.requested',
      'return.rejected', 'return.requested', 'return.approved', 'return.received' ],
    'return events');
is($t->psql(q{SELECT count(*) FROM order_parts x
     WHERE x.refunded_amount <> (SELECT coalesce(sum(f.amount), 0) FROM refunds f
                                  WHERE f.part_id = x.id AND f.status <> 'FAILED')}),
    0, 'every refunded_amount is the sum of its refunds');
ok($t->check_consistency, 'consistency');

$t->stop;
done_testing;

# ---------------------------------------------------------------------------
# The carrier's steps (section 1), to be switched to the carrier simulator
# after the merge.

# deliver_part($part): the part DELIVERED, its steps' times consistent with
# 027's order_parts_steps_check.
sub deliver_part {
    my ($part) = @_;
    $t->psql("UPDATE order_parts SET status = 'DELIVERED', prepared_at = now(),"
        . " shipped_at = now(), delivered_at = now() WHERE id = $part");
}

# parcel_back($return): the return's parcel reached the seller (level 6):
# cm__return_received, as the carrier's code calls it in the transaction
# that records the delivery.
sub parcel_back {
    my ($return) = @_;
    $t->psql("SELECT cm__return_received($return)");
}
