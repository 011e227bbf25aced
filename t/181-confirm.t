#!/usr/bin/perl
# Purchase confirmation (issue 13 section 2): the buyer confirms a
# DELIVERED part of their own order (another buyer's order 404
# ORDER_NOT_FOUND, a part not of the order 404 ORDER_PART_NOT_FOUND, not
# delivered 409 ORDER_PART_STATE, a return open 409 RETURN_OPEN), or the
# job does confirm_after (8 days) after delivery, skipping parts with a
# return open; confirming earns floor(1% of the part's payment) points, one
# points_ledger EARN row naming the order, in the confirming transaction,
# and order.confirmed goes to the outbox; confirmed twice, or by the buyer
# racing the job: one EARN row.  The parcels are delivered through
# cm_shipment_track, the statement a carrier's tracking info goes to (no
# carrier here: t/180-shipping.t has it).

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use JSON::PP;
use Encode qw(encode_utf8);
use NotifySim;

binmode(Test::More->builder->$_, ':encoding(UTF-8)')
    for qw(output failure_output todo_output);

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
# the buyer is told of the shipment and the delivery (Alimtalk, t/notifysim)
my $ns = NotifySim->start(log => $t->dir . '/notifysim.log');
my $sfile = $t->write_file('kakao.secret', "kakao-secret-1\n");
chmod 0600, $sfile;
$ns->control(alimtalk => { secret => 'kakao-secret-1' });
my $ka = $ns->port('alimtalk');
my $tpl = $t->root . '/conf/notify-templates.json';
$t->write_config(encode_utf8($t->default_config(
    main_extra => $t->account_main,
    http_extra => $t->account_keys . <<"EOF")));
commerce_zone 1m;
commerce_shipping interval=200ms confirm_after=8d points=1%;
upstream kakao { server 127.0.0.1:$ka; }
commerce_notify_channel kakao alimtalk upstream=kakao app_key=AppKey1
    secret_file=$sfile sender_key=sk-0123abcd timeout=1s;
commerce_event_sink buyer notify channel=kakao templates=$tpl
    events=order.shipped,order.delivered retry_base=100ms retry_cap=400ms interval=100ms;
EOF
$t->start_nginx;

my $CT = 'v1.1.AAAAAAAAAAAAAAAA.' . ('A' x 22);
$t->psql(<<"SQL");
UPDATE users SET role = 'SELLER' WHERE id = 901;
INSERT INTO stores (id, owner_id, name, bank_code, account_number_ct, account_holder_ct,
                    account_last4)
VALUES (901, 901, 'Store X', '004', '$CT', '$CT', '1234');
UPDATE products p SET name = 'X one', price = 1050, stock = 1000, store_id = 901 WHERE p.id = 11;
UPDATE users SET balance = 1000000 WHERE id IN (1, 2);
SQL
my $X = $t->token(901, role => 'SELLER');
my ($A, $B) = (1, 2);
my %addr = (recipient => '홍길동', phone => '010-1234-5678', zipCode => '06236',
    address1 => '서울 강남구 테헤란로 152');
my $num = 300000000000;

# a paid order of $qty units (1,050 won each) by $user, its seller part
# shipped and delivered: (order id, part id)
sub delivered {
    my ($user, $qty) = @_;
    my $r = $t->post('/api/v1/orders', { items => [ { productId => 11,
        quantity => $qty // 1 } ], payment => { method => 'BALANCE' },
        shippingAddress => \%addr }, user => $user);
    die "order: $r->{status} $r->{body}" unless $r->{status} == 201;
    my ($o, $p) = (0 + $r->{json}{id}, 0 + $r->{json}{parts}[0]{id});
    $num++;
    for ([ 'prepare', '{}' ], [ 'shipment', { carrier => 'CJ', trackingNumber => "$num" } ]) {
        my $s = $t->req('POST', "/api/v1/seller/orders/$p/$_->[0]", token => $X,
            body => $_->[1]);
        die "$_->[0]: $s->{status} $s->{body}" unless $s->{status} =~ /^20[01]$/;
    }
    my $ms = int(Time::HiRes::time() * 1000);
    $t->psql("SELECT cm_shipment_track('CJ', '$num', '{\"trackingDetails\":"
        . "[{\"level\":6,\"time\":$ms,\"kind\":\"배송완료\",\"where\":\"서울\"}]}', now())");
    die "not delivered" unless part_status($p) eq 'DELIVERED';
    return ($o, $p);
}
sub confirm { $t->req('POST', "/api/v1/orders/$_[1]/parts/$_[2]/confirm", user => $_[0],
    body => '{}') }
sub part_status { $t->psql("SELECT status FROM order_parts WHERE id = $_[0]") }
sub earned { $t->psql("SELECT count(*) || ' ' || coalesce(sum(amount), 0) FROM points_ledger"
    . " WHERE kind = 'EARN' AND order_id = $_[0]") }
sub points { $t->psql("SELECT points FROM users WHERE id = $_[0]") }
sub back { $t->psql("UPDATE order_parts SET delivered_at = now() - interval '$_[1]'"
    . " WHERE id IN (" . join(',', @{ $_[0] }) . ")") }
sub state { $t->db_state(skip => ['audit_log']) }

# --- the buyer confirms -------------------------------------------------------

my $r = $t->post('/api/v1/orders', { items => [ { productId => 11, quantity => 3 } ],
    payment => { method => 'BALANCE' }, shippingAddress => \%addr }, user => $A);
my ($O1, $P1) = (0 + $r->{json}{id}, 0 + $r->{json}{parts}[0]{id});
my $before = state();
is_error(confirm($A, $O1, $P1), 409, 'ORDER_PART_STATE', 'a PAID part: 409 ORDER_PART_STATE');
is_deeply(state(), $before, '... nothing changed');

my ($O2, $P2) = delivered($A, 3);
my ($O3, $P3) = delivered($B, 1);
$before = state();
is_error(confirm($B, $O2, $P2), 404, 'ORDER_NOT_FOUND', "another buyer's order: 404");
is_error(confirm($A, $O2, $P3), 404, 'ORDER_PART_NOT_FOUND', 'a part not of the order: 404');
is_error(confirm($A, 999999, $P2), 404, 'ORDER_NOT_FOUND', 'an unknown order: 404');
is_error($t->req('POST', "/api/v1/orders/$O2/parts/$P2/confirm", body => '{}'), 401,
    'UNAUTHORIZED', 'no token: 401');
is_deeply(state(), $before, '... nothing changed');

my $pts = points($A);
$r = confirm($A, $O2, $P2);
is($r->{status}, 200, 'the buyer confirms a DELIVERED part: 200');
is($r->{json}{status}, 'PURCHASE_CONFIRMED', '... PURCHASE_CONFIRMED');
is($r->{json}{shipment}{level}, 6, '... the part document with its parcel');
is(earned($O2), '1 31', '... floor(1% of 3,150) = 31 points: one EARN row naming the order');
is(points($A), $pts + 31, "... the buyer's points");
is($t->psql("SELECT points_after = (SELECT points FROM users WHERE id = $A) FROM points_ledger"
    . " WHERE kind = 'EARN' AND order_id = $O2"), 't', '... points_after');
is($t->psql("SELECT confirmed_at IS NOT NULL FROM order_parts WHERE id = $P2"), 't',
    '... confirmed_at set (settlement reads it)');
is_deeply($t->psql_json("SELECT payload FROM outbox WHERE type = 'order.confirmed'"
    . " AND aggregate_id = $O2"), { orderId => $O2, partId => $P2, storeId => 901,
    userId => $A, paymentAmount => 3150, carrier => 'CJ', trackingNumber => "300000000001",
    pointsEarned => 31, automatic => JSON::PP::false }, '... order.confirmed in the outbox');
is_error(confirm($A, $O2, $P2), 409, 'ORDER_PART_STATE', 'confirmed again: 409');
is(earned($O2), '1 31', '... still one EARN row');
is($t->get("/api/v1/orders/$O2", user => $A)->{json}{parts}[0]{status}, 'PURCHASE_CONFIRMED',
    'GET /orders/{id}: the part PURCHASE_CONFIRMED');

# --- a return open --------------------------------------------------------------

$t->psql("INSERT INTO order_returns (order_id, part_id, user_id, status, reason, amount)"
    . " VALUES ($O3, $P3, $B, 'REQUESTED', '사이즈가 맞지 않아요', 1050)");
is_error(confirm($B, $O3, $P3), 409, 'RETURN_OPEN', 'a return requested: 409 RETURN_OPEN');
is(earned($O3), '0 0', '... no points');

# --- the job: 8 days after delivery, not before, not with a return open -----------

my ($O4, $P4) = delivered($A, 1);
my ($O5, $P5) = delivered($A, 2);
back([ $P3, $P5 ], '8 days 1 minute');
back([ $P4 ], '7 days 23 hours');
ok(CommerceTest::wait_until(sub { part_status($P5) eq 'PURCHASE_CONFIRMED' }),
    'delivered 8 days ago: confirmed by the job');
is(earned($O5), '1 21', '... floor(1% of 2,100) = 21 points, one EARN row');
is($t->psql_json("SELECT payload->'automatic' FROM outbox WHERE type = 'order.confirmed'"
    . " AND aggregate_id = $O5") ? 1 : 0, 1, '... order.confirmed, automatic');
is(part_status($P4), 'DELIVERED', 'delivered 7 days 23 hours ago: not yet');
is(part_status($P3), 'DELIVERED', 'a return open: skipped');
$t->psql("UPDATE order_returns SET status = 'REJECTED', decided_at = now() WHERE part_id = $P3");
ok(CommerceTest::wait_until(sub { part_status($P3) eq 'PURCHASE_CONFIRMED' }),
    '... the return rejected: confirmed by the job');
is(earned($O3), '1 10', '... floor(1% of 1,050) = 10 points');
back([ $P4 ], '8 days');
ok(CommerceTest::wait_until(sub { part_status($P4) eq 'PURCHASE_CONFIRMED' }),
    'the other one, 8 days on: confirmed');
is(earned($O4), '1 10', '... 10 points');

# --- the buyer racing the job: one EARN row each -----------------------------------

my @race = map { [ delivered($_ % 2 ? $A : $B, 1), $_ % 2 ? $A : $B ] } 1 .. 16;
my %pts = map { ($_ => points($_)) } $A, $B;
back([ map { $_->[1] } @race ], '9 days');
my @res = $t->concurrent([ map { { method => 'POST',
    path => "/api/v1/orders/$_->[0]/parts/$_->[1]/confirm", body => '{}',
    user => $_->[2] } } @race ], timeout => 60);
my $tally = CommerceTest::tally(@res);
my $won = $tally->{200} // 0;
is($won + ($tally->{'409 ORDER_PART_STATE'} // 0), 16,
    "16 buyers confirm as the job runs: $won by the buyers, the rest 409 ORDER_PART_STATE");
ok(CommerceTest::wait_until(sub { $t->psql("SELECT count(*) FROM order_parts WHERE id IN ("
    . join(',', map { $_->[1] } @race) . ") AND status = 'PURCHASE_CONFIRMED'") == 16 }),
    '... all 16 confirmed');
is_deeply([ map { earned($_->[0]) } @race ], [ ('1 10') x 16 ], '... exactly one EARN row each');
is($t->psql("SELECT count(*) FROM outbox WHERE type = 'order.confirmed' AND aggregate_id IN ("
    . join(',', map { $_->[0] } @race) . ") AND payload->>'automatic' = 'false'"), $won,
    '... the buyers\' confirmations are theirs');
is(points($A) + points($B), $pts{$A} + $pts{$B} + 160, '... 160 points in all');

# --- the buyer told of the shipment and the delivery -------------------------------

my $su = $t->post('/api/v1/auth/signup', { email => 'kim@example.com',
    password => 'correct horse battery', name => '김배송', phone => '010-5555-0001' });
is($su->{status}, 201, 'a buyer signs up with a phone number');
my $K = 0 + $su->{json}{id};
$t->psql("UPDATE users SET balance = 100000 WHERE id = $K");
my ($OK) = delivered($K, 1);
ok(CommerceTest::wait_until(sub { $t->psql(q{SELECT count(*) FROM outbox_delivery d
    JOIN outbox o ON o.seq = d.seq WHERE d.sink = 'buyer' AND d.state = 'DELIVERED'
    AND o.aggregate_id = } . $OK) == 2 }, timeout => 20),
    '... order.shipped and order.delivered delivered by the notify sink');
my @got = map { my $m = $_; join ' ', $m->{templateCode},
        map { "$_=$m->{templateParameter}{$_}" } sort keys %{ $m->{templateParameter} } }
    grep { $_->{recipientNo} eq '01055550001' } @{ $ns->received('alimtalk') };
is_deeply([ sort @got ], [
    "COMMERCE_ORDER_DELIVERED_01 carrier=CJ name=김배송 orderId=$OK productName=X one"
        . " trackingNumber=$num",
    "COMMERCE_ORDER_SHIPPED_01 carrier=CJ name=김배송 orderId=$OK productName=X one"
        . " trackingNumber=$num" ],
    '... two Alimtalk messages: the carrier and the tracking number');

# --- two confirmation jobs at once (two instances): one EARN row ----------------

my @two = map { [ delivered($A, 1) ] } 1 .. 6;
back([ map { $_->[1] } @two ], '9 days');
my @bg = map { $t->psql_bg("SELECT cm_parts_autoconfirm(now(), 691200, 100, 100)") } 1 .. 2;
$t->psql_wait($_) for @bg;
ok(CommerceTest::wait_until(sub { $t->psql("SELECT count(*) FROM order_parts WHERE id IN ("
    . join(',', map { $_->[1] } @two) . ") AND status = 'PURCHASE_CONFIRMED'") == 6 }),
    'two jobs at once: all 6 confirmed');
is_deeply([ map { earned($_->[0]) } @two ], [ ('1 10') x 6 ], '... one EARN row each');

# --- nginx -t ---------------------------------------------------------------------

for my $bad (
    [ 'points=101%', 'invalid points' ], [ 'points=1', 'invalid points' ],
    [ 'points=1.234%', 'invalid points' ], [ 'confirm_after=0', 'invalid confirm_after' ],
    [ 'interval=10ms', 'invalid interval' ], [ 'poll_after=forever', 'invalid poll_after' ],
    [ 'batch=0', 'invalid batch' ], [ 'colour=red', 'unknown parameter "colour"' ],
    [ 'gateway=nope key=k callback_url=http://127.0.0.1/cb', 'is not a commerce_gateway' ],
    [ 'gateway=g', 'needs callback_url' ],
    [ 'gateway=g callback_url=http://h/cb', 'needs key' ],
    [ 'key=a/b', 'invalid key' ], [ 'callback_url=ftp://h/cb', 'invalid callback_url' ],
    [ 'callback_url=http://h/cb?x=1', 'invalid callback_url' ], [ 'lease', 'not name=value' ],
) {
    my ($rc, $out) = $t->nginx_t($t->default_config(http_extra =>
        "commerce_shipping $bad->[0];"));
    ok($rc != 0 && $out =~ /commerce_shipping/ && index($out, $bad->[1]) >= 0,
        "nginx -t refuses commerce_shipping $bad->[0]") or diag $out;
}
my ($rc, $out) = $t->nginx_t($t->default_config(http_extra =>
    "commerce_shipping confirm_after=8d points=0.5% interval=10s batch=50;"));
is($rc, 0, 'nginx -t accepts good values') or diag $out;
# conf/nginx.conf.in's shipping block (make run's), its ports filled in
my ($block) = $t->read_file(CommerceTest->root . '/conf/nginx.conf.in')
    =~ /(    # --- shipping:.*?)\n    # ---/s;
$block =~ s/%%CARRIERSIM_PORT%%/9/g;
$block =~ s/%%PORT%%/80/g;
($rc, $out) = $t->nginx_t($t->default_config(http_extra => "commerce_zone 1m;\n"
    . "commerce_gateway_callback_url http://127.0.0.1/cb;\n$block"));
is($rc, 0, "conf/nginx.conf.in's shipping block: nginx -t takes it") or diag $out;
like($block, qr/commerce_shipping gateway=carrier_sim/, '... it names the carrier gateway');
($rc, $out) = $t->nginx_t($t->default_config(http_extra =>
    "commerce_shipping points=1%; commerce_shipping points=2%;"));
ok($rc != 0 && $out =~ /commerce_shipping.*duplicate/, 'a second commerce_shipping: refused');

$t->stop;
done_testing;
