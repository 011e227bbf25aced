#!/usr/bin/perl
# Shipping per seller part through a carrier (issue 13 section 1), with
# t/carriersim (Sweet Tracker's shape): a paid part prepared and shipped
# by its seller (another store 404, a buyer 403, wrong states 409
# ORDER_PART_STATE, bad bodies 400 changing nothing, a tracking number used
# 409); the parcel registered for push by the poll job; pushed events
# verified by pulling the tracking info (a forged push changes nothing),
# recorded once (duplicated pushes), in time order (reordered pushes),
# states only forward (a level 2 after level 6 is history); level 6 makes
# the part DELIVERED; a dropped push caught by the poll job; the carrier
# failing 5xx at registration (tried again after the lease); the buyer's
# history in GET /orders/{id}; the seller's list by the part's status;
# order.shipped and order.delivered in the outbox, once each; two nginx
# instances on one database register and poll each parcel exactly once.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use CarrierSim;
use JSON::PP;
use Time::HiRes qw(time);

binmode(Test::More->builder->$_, ':encoding(UTF-8)')
    for qw(output failure_output todo_output);

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
my $cs = CarrierSim->start(key => 'test-key-180', log => $t->dir . '/carriersim.log');
my $cport = $cs->port;

sub conf {
    my (%o) = @_;
    return $t->default_config(
        main_extra => $t->account_main,
        http_extra => $t->account_keys . <<"EOF");
commerce_zone 1m;
upstream carrier { server 127.0.0.1:$cport; keepalive 4; }
commerce_gateway carrier_sim upstream=carrier timeout=2s connect_timeout=500ms;
commerce_gateway_callback_url http://127.0.0.1:%%PORT%%/api/v1/payments/callback;
commerce_shipping gateway=carrier_sim key=test-key-180
                  callback_url=http://127.0.0.1:%%PORT%%/api/v1/shipping/callback
                  poll_after=1h interval=200ms lease=2s confirm_after=8d points=1%;
EOF
}
$t->write_config(conf());
$t->start_nginx;

my $CT = 'v1.1.AAAAAAAAAAAAAAAA.' . ('A' x 22);
$t->psql(<<"SQL");
UPDATE users SET role = 'SELLER' WHERE id IN (901, 902);
INSERT INTO stores (id, owner_id, name, bank_code, account_number_ct, account_holder_ct,
                    account_last4)
VALUES (901, 901, 'Store X', '004', '$CT', '$CT', '1234'),
       (902, 902, 'Store Y', '004', '$CT', '$CT', '5678');
UPDATE products p SET name = v.name, price = v.price, stock = 1000, store_id = v.store
  FROM (VALUES (11, 'X one', 10000, 901), (13, 'Y one', 2000, 902)) AS v(id, name, price, store)
 WHERE p.id = v.id;
SQL
my %seller = (X => $t->token(901, role => 'SELLER'), Y => $t->token(902, role => 'SELLER'));
my ($A, $B) = (1, 2);
my %addr = (recipient => '홍길동', phone => '010-1234-5678', zipCode => '06236',
    address1 => '서울 강남구 테헤란로 152');

# a paid order of $qty of product $pid by $user: (order id, its seller part id)
sub buy {
    my ($user, $pid, $qty) = @_;
    my $r = $t->post('/api/v1/orders', { items => [ { productId => $pid,
        quantity => $qty // 1 } ], payment => { method => 'BALANCE' },
        shippingAddress => \%addr }, user => $user);
    die "order: $r->{status} $r->{body}" unless $r->{status} == 201;
    my ($part) = grep { defined $_->{storeId} } @{ $r->{json}{parts} };
    return (0 + $r->{json}{id}, 0 + $part->{id});
}
sub sreq {
    my ($who, $method, $path, $body) = @_;
    return $t->req($method, $path, token => $seller{$who},
        (defined $body ? (body => $body) : ()));
}
sub prepare { sreq($_[0], 'POST', "/api/v1/seller/orders/$_[1]/prepare", '{}') }
sub ship {
    my ($who, $part, $carrier, $number) = @_;
    return sreq($who, 'POST', "/api/v1/seller/orders/$part/shipment",
        { carrier => $carrier, trackingNumber => $number });
}
sub part_status { $t->psql("SELECT status FROM order_parts WHERE id = $_[0]") }
sub shipment { $t->psql_json("SELECT row_to_json(s) FROM shipments s WHERE part_id = $_[0]"
    . " AND return_id IS NULL") }
sub nevents { $t->psql("SELECT count(*) FROM shipment_events e JOIN shipments s"
    . " ON s.id = e.shipment_id WHERE s.tracking_number = '$_[0]'") }
sub outbox { $t->psql("SELECT count(*) FROM outbox WHERE aggregate_id = $_[0]"
    . " AND type = '$_[1]'") }
# the pulls of a parcel the module recorded (each pull is one statement)
sub recorded { scalar $t->grep_log(qr/parcel \w+ $_[0]: tracking info recorded/, @_[1 .. $#_]) }
sub pulls { scalar grep { $_->{invoice} eq $_[0] } @{ $cs->stats->{tracking} } }
sub regs { scalar grep { $_->{num} eq $_[0] } @{ $cs->stats->{registrations} } }
sub state { $t->db_state(skip => ['audit_log']) }
sub iso_ms {
    my @g = gmtime(int($_[0] / 1000));
    return sprintf '%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', $g[5] + 1900, $g[4] + 1,
        @g[3, 2, 1, 0], $_[0] % 1000;
}

# --- prepare and ship: who, states, bodies ------------------------------------

my ($O1, $P1) = buy($A, 11, 2);
is(part_status($P1), 'PAID', 'a paid order: its seller part PAID');
is_error(prepare('Y', $P1), 404, 'ORDER_PART_NOT_FOUND', "another store's seller: 404");
is_error($t->req('POST', "/api/v1/seller/orders/$P1/prepare", user => $A, body => '{}'), 403,
    'FORBIDDEN', 'the buyer: 403');
is_error(ship('X', $P1, 'CJ', '123456789012'), 409, 'ORDER_PART_STATE',
    'shipped before it is prepared: 409 ORDER_PART_STATE');
is_error(prepare('X', 999999), 404, 'ORDER_PART_NOT_FOUND', 'an unknown part: 404');
my $r = prepare('X', $P1);
is($r->{status}, 200, 'the store owner prepares it: 200');
is($r->{json}{status}, 'PREPARING', '... the part PREPARING');
is($r->{json}{shippingAddress}{recipient}, '홍길동', '... with the address opened');
is_error(prepare('X', $P1), 409, 'ORDER_PART_STATE', 'prepared again: 409');

my $before = state();
for my $bad (
    [ '{}', 'nothing' ],
    [ '{"carrier":"CJ"}', 'no number' ],
    [ '{"trackingNumber":"123456789012"}', 'no carrier' ],
    [ '{"carrier":"DHL","trackingNumber":"123456789012"}', 'an unknown carrier' ],
    [ '{"carrier":"cj","trackingNumber":"123456789012"}', 'a lower-case carrier' ],
    [ '{"carrier":"CJ","trackingNumber":"12345678"}', '8 digits' ],
    [ '{"carrier":"CJ","trackingNumber":"123456789012345"}', '15 digits' ],
    [ '{"carrier":"CJ","trackingNumber":"12345-6789"}', 'a dash' ],
    [ '{"carrier":"CJ","trackingNumber":123456789012}', 'a number' ],
    [ '{"carrier":"CJ","trackingNumber":"123456789012","x":1}', 'an unknown field' ],
    [ '{"carrier":"CJ","carrier":"CJ","trackingNumber":"123456789012"}', 'a repeated field' ],
    [ '{"carrier":"CJ","trackingNumber":"123456789012"', 'cut JSON' ],
    [ '[]', 'an array' ],
    [ "{\"carrier\":\"CJ\",\"trackingNumber\":\"1234567890'1\"}", 'a quote' ],
) {
    is_error($t->req('POST', "/api/v1/seller/orders/$P1/shipment", token => $seller{X},
        body => $bad->[0]), 400, 'INVALID_REQUEST', "shipment body $bad->[1]: 400");
}
is_deeply(state(), $before, '... nothing changed');

$r = ship('X', $P1, 'CJ', '123456789012');
is($r->{status}, 201, 'shipped with CJ 123456789012: 201');
is($r->{json}{status}, 'SHIPPED', '... the part SHIPPED');
is_deeply($r->{json}{shipment}, { carrier => 'CJ', trackingNumber => '123456789012',
    level => 1, deliveredAt => undef, events => [] }, '... its parcel, no event yet');
is(outbox($O1, 'order.shipped'), 1, '... order.shipped in the outbox');
my $ev = $t->psql_json("SELECT payload FROM outbox WHERE aggregate_id = $O1"
    . " AND type = 'order.shipped'");
is_deeply($ev, { orderId => $O1, partId => $P1, storeId => 901, userId => $A,
    paymentAmount => 20000, carrier => 'CJ', trackingNumber => '123456789012' },
    '... naming the order, the part, the buyer and the parcel');
is_error(ship('X', $P1, 'CJ', '123456789013'), 409, 'ORDER_PART_STATE', 'shipped again: 409');
is_error(prepare('X', $P1), 409, 'ORDER_PART_STATE', 'prepared after shipping: 409');

my ($O2, $P2) = buy($B, 11);
prepare('X', $P2);
is_error(ship('X', $P2, 'CJ', '123456789012'), 409, 'TRACKING_NUMBER_TAKEN',
    "CJ's number used already: 409 TRACKING_NUMBER_TAKEN");
is(part_status($P2), 'PREPARING', '... the part still PREPARING');

# --- registration, pushes verified by pulls ------------------------------------

ok(CommerceTest::wait_until(sub { shipment($P1)->{registered_at} }, timeout => 10),
    'the poll job registers the parcel for push');
my ($reg) = grep { $_->{num} eq '123456789012' } @{ $cs->stats->{registrations} };
is_deeply([ @$reg{qw(code fid callback_url)} ], [ '04', '' . shipment($P1)->{id},
    'http://127.0.0.1:' . $t->nginx_port . '/api/v1/shipping/callback?carrier=CJ' ],
    '... with the CJ code 04, our shipment id and the callback URL');
is(regs('123456789012'), 1, '... once');

my $T0 = int(time * 1000) - 3_600_000;
$cs->advance('CJ', '123456789012', 2, time => $T0, where => '대전HUB');
ok(CommerceTest::wait_until(sub { nevents('123456789012') == 1 }), 'a pushed level 2: recorded');
$cs->advance('CJ', '123456789012', 3, time => $T0 + 60_000);
$cs->advance('CJ', '123456789012', 5, time => $T0 + 120_000);
ok(CommerceTest::wait_until(sub { nevents('123456789012') == 3 }), 'levels 3 and 5: recorded');
is(shipment($P1)->{level}, 5, '... the parcel at level 5');
is(part_status($P1), 'SHIPPED', '... the part still SHIPPED');

# a forged push: the carrier says 5, the body says 6
my $pulls = pulls('123456789012');
my $rec = recorded('123456789012');
$r = $t->post('/api/v1/shipping/callback?carrier=CJ', { fid => '1',
    invoice_no => '123456789012', level => '6', details => '배송완료' });
is_response($r, 200, { code => JSON::PP::true, message => 'success' },
    'a forged push (level 6): 200 in the service\'s words');
ok(CommerceTest::wait_until(sub { recorded('123456789012') == $rec + 1 }),
    '... the module pulled the parcel and recorded what the carrier says');
is(pulls('123456789012'), $pulls + 1, '... one pull');
is(shipment($P1)->{level}, 5, '... still level 5');
is(part_status($P1), 'SHIPPED', '... the part still SHIPPED');
is(nevents('123456789012'), 3, '... no event added');
is_error($t->post('/api/v1/shipping/callback?carrier=DHL', { invoice_no => '123456789012' }),
    400, 'INVALID_REQUEST', 'a push naming an unknown carrier: 400');
is_error($t->post('/api/v1/shipping/callback?carrier=CJ', { invoice_no => '12' }),
    400, 'INVALID_REQUEST', 'a push with a bad invoice number: 400');
is_error($t->post('/api/v1/shipping/callback?carrier=CJ', { fid => '1' }),
    400, 'INVALID_REQUEST', 'a push without invoice_no: 400');

# duplicated pushes of the delivery
$cs->control(duplicatePushes => 2);
$rec = recorded('123456789012');
$cs->advance('CJ', '123456789012', 6, time => $T0 + 180_000, where => '서울 강남');
ok(CommerceTest::wait_until(sub { recorded('123456789012') == $rec + 3 }),
    'level 6 pushed three times: three pulls recorded');
$cs->control(duplicatePushes => undef);
is(nevents('123456789012'), 4, '... one event added');
is(part_status($P1), 'DELIVERED', '... the part DELIVERED');
is(outbox($O1, 'order.delivered'), 1, '... order.delivered once');
my $s1 = shipment($P1);
is($s1->{level}, 6, '... the parcel at level 6');
ok(defined $s1->{delivered_at}, '... delivered_at set');
is($t->psql("SELECT delivered_at = (SELECT delivered_at FROM shipments WHERE part_id = $P1)"
    . " FROM order_parts WHERE id = $P1"), 't', "... the part's delivered_at: the carrier's time");

# a level 2 after level 6: history only
$rec = recorded('123456789012');
$cs->advance('CJ', '123456789012', 2, time => $T0 + 240_000, kind => '반송 집화');
ok(CommerceTest::wait_until(sub { recorded('123456789012') == $rec + 1 }),
    'a level 2 after level 6: pulled');
is(nevents('123456789012'), 5, '... recorded as history');
is(shipment($P1)->{level}, 6, '... the parcel stays at level 6');
is(part_status($P1), 'DELIVERED', '... the part stays DELIVERED');
is(outbox($O1, 'order.delivered'), 1, '... no second order.delivered');

# --- what the buyer sees --------------------------------------------------------

$r = $t->get("/api/v1/orders/$O1", user => $A);
is($r->{status}, 200, 'GET /orders/{id}');
my ($bp) = @{ $r->{json}{parts} };
is($bp->{status}, 'DELIVERED', "... the part's own status");
is_deeply([ map { $_->{level} } @{ $bp->{shipment}{events} } ], [ 2, 3, 5, 6, 2 ],
    '... the history in time order');
is_deeply($bp->{shipment}{events}[0], { level => 2, kind => '집화완료', where => '대전HUB',
    time => iso_ms($T0) }, '... an event: level, kind, where, time');
is($bp->{shipment}{carrier} . ' ' . $bp->{shipment}{trackingNumber} . ' '
    . $bp->{shipment}{level}, 'CJ 123456789012 6', '... carrier, number, level');
is_error($t->get("/api/v1/orders/$O1", user => $B), 404, 'ORDER_NOT_FOUND',
    "another buyer: 404");

# --- reordered pushes ------------------------------------------------------------

ok(ship('X', $P2, 'LOTTE', '987654321098')->{status} == 201, 'a second part shipped (LOTTE)');
ok(CommerceTest::wait_until(sub { shipment($P2)->{registered_at} }), '... registered');
$cs->control(holdPushes => JSON::PP::true);
$cs->advance('LOTTE', '987654321098', 3, time => $T0 + 1000);
$cs->advance('LOTTE', '987654321098', 6, time => $T0 + 2000);
is($cs->stats->{held}, 2, '... two pushes held by the carrier');
$cs->control(holdPushes => undef);
$rec = recorded('987654321098');
is($cs->release('reverse')->{released}, 2, '... sent in reverse order');
ok(CommerceTest::wait_until(sub { recorded('987654321098') == $rec + 2 }), '... both pulled');
is(part_status($P2), 'DELIVERED', '... the part DELIVERED');
is($t->psql("SELECT string_agg(e.level::text, ',' ORDER BY e.event_time) FROM shipment_events e"
    . " JOIN shipments s ON s.id = e.shipment_id WHERE s.part_id = $P2"), '3,6',
    '... the history in time order');
is(outbox($O2, 'order.delivered'), 1, '... order.delivered once');

# --- a dropped push, caught by the poll job ------------------------------------------

my ($O3, $P3) = buy($A, 11);
prepare('X', $P3);
ship('X', $P3, 'HANJIN', '555000111222');
ok(CommerceTest::wait_until(sub { shipment($P3)->{registered_at} }), 'a HANJIN parcel registered');
my $npush = @{ $cs->stats->{pushes} };
$cs->control(dropPushes => JSON::PP::true);
$cs->advance('HANJIN', '555000111222', 6);
$cs->control(dropPushes => undef);
is(scalar @{ $cs->stats->{pushes} }, $npush, 'its delivery is never pushed');
is(pulls('555000111222'), 0, '... nor pulled');
$t->psql("UPDATE shipments SET registered_at = registered_at - interval '2 hours',"
    . " created_at = created_at - interval '2 hours' WHERE part_id = $P3");
ok(CommerceTest::wait_until(sub { part_status($P3) eq 'DELIVERED' }),
    'its news older than poll_after: the poll job pulls it, DELIVERED');
is(pulls('555000111222'), 1, '... one pull');
is(outbox($O3, 'order.delivered'), 1, '... order.delivered once');

# --- the carrier failing at registration -------------------------------------------

my ($O4, $P4) = buy($B, 13);
prepare('Y', $P4);
$cs->control(failCount => 1, failStatus => 503);
ship('Y', $P4, 'CJ', '700000000001');
ok(CommerceTest::wait_until(sub { shipment($P4)->{registered_at} }, timeout => 15),
    'the carrier answers 503 to the registration: tried again after the lease, registered');
is(regs('700000000001'), 1, '... registered once');
ok(scalar($t->grep_log(qr/registration of parcel CJ 700000000001 failed/)) >= 1,
    '... the failure logged');

# --- the carrier's gateway is no payment gateway --------------------------------

is_error($t->post('/api/v1/payments/callback?gateway=carrier_sim', { transactionKey => 'tx-1' }),
    400, 'INVALID_REQUEST', 'a payment callback naming the carrier gateway: 400');
my $unpaid = $t->post('/api/v1/orders', { items => [ { productId => 13, quantity => 1 } ],
    shippingAddress => \%addr }, user => $A)->{json}{id};
is_error($t->post("/api/v1/orders/$unpaid/payment", { method => 'CARD', cardType => 'KB',
    cardNo => '1111-1111-1111-1111' }, user => $A), 503, 'PG_UNAVAILABLE',
    'a card payment never goes to the carrier: 503 PG_UNAVAILABLE');
is($t->psql("SELECT count(*) FROM payments WHERE order_id = $unpaid"), 0, '... no payment written');

# --- the seller's list by the part's status ----------------------------------------

$r = sreq('X', 'GET', '/api/v1/seller/orders?status=DELIVERED');
is($r->{status}, 200, 'the seller lists DELIVERED parts');
is_deeply([ sort map { $_->{id} } @{ $r->{json}{items} } ], [ sort { $a <=> $b } $P1, $P2, $P3 ],
    '... the three delivered');
$r = sreq('Y', 'GET', '/api/v1/seller/orders?status=SHIPPED');
is_deeply([ map { $_->{id} } @{ $r->{json}{items} } ], [ $P4 ], "Y's SHIPPED: its one");
is(sreq('X', 'GET', '/api/v1/seller/orders?status=SHIPPED')->{json}{total}, 0, "X's SHIPPED: none");
is_error(sreq('X', 'GET', '/api/v1/seller/orders?status=LOST'), 400, 'INVALID_REQUEST',
    'an unknown status: 400');

# --- two instances on one database ----------------------------------------------------

$t->write_config(conf(), name => 'b');
$t->start_nginx(name => 'b');
$cs->control(latencyMs => 300);
my @parts;
for my $i (1 .. 12) {
    my (undef, $p) = buy($i % 2 ? $A : $B, 11);
    prepare('X', $p);
    push @parts, [ $p, sprintf('81000000%04d', $i) ];
}
for (@parts) {
    is(ship('X', $_->[0], 'CJ', $_->[1])->{status}, 201, "part $_->[0] shipped") or last;
}
ok(CommerceTest::wait_until(sub { $t->psql("SELECT count(*) FROM shipments WHERE"
    . " tracking_number LIKE '81000000%' AND registered_at IS NOT NULL") == 12 },
    timeout => 30), 'two instances: the 12 parcels registered');
is_deeply([ map { regs($_->[1]) } @parts ], [ (1) x 12 ], '... each exactly once');
my %by = (main => 0, b => 0);
for my $n (qw(main b)) {
    $by{$n} = scalar $t->grep_log(qr/parcel CJ 81000000\d+: registration recorded/, name => $n);
}
is($by{main} + $by{b}, 12, "... registrations recorded: $by{main} by one, $by{b} by the other");
$t->psql("UPDATE shipments SET registered_at = registered_at - interval '2 hours',"
    . " created_at = created_at - interval '2 hours' WHERE tracking_number LIKE '81000000%'");
ok(CommerceTest::wait_until(sub { $t->psql("SELECT count(*) FROM shipments WHERE"
    . " tracking_number LIKE '81000000%' AND polled_at IS NOT NULL") == 12 },
    timeout => 30), '... all 12 polled once due');
$cs->control(latencyMs => undef);
is_deeply([ map { pulls($_->[1]) } @parts ], [ (1) x 12 ], '... each pulled exactly once');

$t->stop;
$cs->stop;
done_testing;
