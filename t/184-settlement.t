#!/usr/bin/perl
# Weekly settlement and payouts (issue 13 section 4), against the real
# stack: Postgres, nginx with commerce_settlement (weekly=off: the admin
# route runs the week for a given time, the test clock), the payout
# simulator (t/payoutsim).  Real orders of real sellers' products paid
# through the API; their parts confirmed by SQL (confirm_part) and refunded
# by SQL (refund_part) until the shipping and refund routes are merged.
#
# A part is settled on the first Monday 00:00 Asia/Seoul at least 7 days
# after its confirmation (one second later: a week later), 5% fee of the
# gross (rounded down), its tax invoice (VAT included in the fee); a net
# below 10,000 carries over and is paid with the next week; a refund after
# a part was settled is deducted from the next settlement; a failed payout
# is retried 3 times, then DEAD (listed, replayed, paid once); a dropped
# callback is caught by the status pull; duplicated callbacks pay once; a
# forged one changes nothing; a week run twice, or twice at once, pays
# once; sellers see their own settlements (404 otherwise), buyers 403; the
# reconciliation balances (and fails on a broken row, rolled back).

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use PayoutSim;
use NotifySim;
use JSON::PP;
use Encode qw(encode_utf8);

binmode(Test::More->builder->$_, ':encoding(UTF-8)')
    for qw(output failure_output todo_output);

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
my $ps = PayoutSim->start(log => $t->dir . '/payoutsim.log');
my $pport = $ps->port;
my $ns = NotifySim->start(log => $t->dir . '/notifysim.log');
my $msecret = $t->write_file('mail.secret', "SG.mail-key-184\n");
chmod 0600, $msecret;
$ns->control(email => { secret => 'SG.mail-key-184' });
my $mport = $ns->port('email');
my $tpl = $t->root . '/conf/notify-templates.json';

my $keys = $t->account_keys;
sub conf {
    my (%o) = @_;
    my $extra = $o{extra} // '';
    my $line = $o{line} // "commerce_settlement upstream=payout_sim timeout=1s"
        . " connect_timeout=500ms\n    callback_url=http://127.0.0.1:%%PORT%%"
        . "/api/v1/settlements/payouts/callback\n    hold=7d fee=5% minimum=10000"
        . " interval=200ms retries=3 check=2s weekly=off $extra";
    return encode_utf8($t->default_config(
        main_extra => $t->account_main,
        http_extra => $keys . <<"EOF"));
commerce_zone 1m;
upstream mail { server 127.0.0.1:$mport; }
commerce_notify_channel mail email upstream=mail secret_file=$msecret
    sender=settlement\@shop.example timeout=1s;
commerce_event_sink sellers notify channel=mail templates=$tpl
    events=settlement.statement retry_base=100ms retry_cap=400ms interval=100ms;
upstream payout_sim { server 127.0.0.1:$pport; keepalive 4; }
$line;
EOF
}
$t->write_config(conf());
$t->start_nginx;
# a second instance on the same database: two payout jobs compete for the
# payouts (leased SKIP LOCKED), every "paid once" below holds across both
$t->write_config(conf(), name => 'b');
$t->start_nginx(name => 'b');

my $ID = sub { CommerceTest::_is_num($_[0]) && $_[0] > 0 };
my $TS = qr/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\z/;
my ($A, $ADMIN) = (1, 1000);
# the sellers sign up (their e-mail sealed: the statements' e-mail)
my (%uid, %tok);
for my $s (qw(X Y Z)) {
    my $r = $t->post('/api/v1/auth/signup', { email => lc("seller.$s\@example.com"),
        password => 'correct horse battery', name => "판매자$s",
        phone => '010-5555-000' . (ord($s) - 87) });
    is($r->{status}, 201, "seller $s signs up") or diag $r->{raw};
    $uid{$s} = $r->{json}{id};
    $t->psql("UPDATE users SET role = 'SELLER' WHERE id = $uid{$s}");
    $tok{$s} = $t->token($uid{$s}, role => 'SELLER');
}
$t->psql("UPDATE users SET role = 'MANAGER' WHERE id = 904;
          UPDATE users SET role = 'ADMIN' WHERE id = $ADMIN");
%tok = (%tok, M => $t->token(904, role => 'MANAGER'),
        admin => $t->token($ADMIN, role => 'ADMIN'), buyer => $t->token($A));

sub req {
    my ($method, $path, $who, $body) = @_;
    return $t->req($method, $path, token => $tok{$who},
        (defined $body ? (body => $body) : ()));
}

# --- stores (their accounts sealed by the module), products, an address ----

my %acct = (X => '110-123-456789', Y => '220-987-654321', Z => '330-000-111111');
my %store;
for my $s (qw(X Y Z)) {
    my $r = req('POST', '/api/v1/seller/store', $s, { name => "Store $s", bankCode => '004',
        accountNumber => $acct{$s}, accountHolder => "판매자 $s" });
    is($r->{status}, 201, "store $s opened") or diag $r->{raw};
    $store{$s} = $r->{json}{id};
}
$t->psql("INSERT INTO store_managers (store_id, user_id, assigned_by)
          VALUES ($store{X}, 904, $ADMIN)");
# products: 11 (10,000) and 12 (2,500) of X, 13 (10,000) and 14 (2,000) of
# Y, 15 (5,000) of Z, 16 (3,000) the platform's
$t->psql(<<"SQL");
UPDATE products p SET price = v.price, stock = 1000, store_id = v.store
  FROM (VALUES (11, 10000, $store{X}), (12, 2500, $store{X}), (13, 10000, $store{Y}),
               (14, 2000, $store{Y}), (15, 5000, $store{Z}), (16, 3000, NULL::bigint))
       AS v(id, price, store)
 WHERE p.id = v.id;
SQL
my %addr = (recipient => '홍길동', phone => '010-1234-5678', zipCode => '06236',
    address1 => '서울 강남구 테헤란로 152');

# an order paid from the balance of buyers 1..20 in turn: its parts by
# store ('X', 'Y', 'Z', ..., '' the platform's)
my $buyer = 0;
sub buy {
    my (@items) = @_;
    my $r = $t->post('/api/v1/orders', { items => [ map { { productId => $_->[0],
        quantity => $_->[1] } } @items ], payment => { method => 'BALANCE' },
        shippingAddress => \%addr }, user => 1 + $buyer++ % 20);
    is($r->{status}, 201, 'an order paid') or diag $r->{raw};
    my %name = reverse %store;
    my %by = map { ($name{ $_->{storeId} // 0 } // '') => $_->{id} }
             @{ $r->{json}{parts} // [] };
    return \%by;
}

# The part moved to PURCHASE_CONFIRMED at $at (the shipping steps before
# it).  ONE helper: the lead switches it to the real confirm flow.
sub confirm_part {
    my ($part, $at) = @_;
    $t->psql("UPDATE order_parts SET status = 'PURCHASE_CONFIRMED',
                     prepared_at = '$at'::timestamptz - interval '3 days',
                     shipped_at = '$at'::timestamptz - interval '2 days',
                     delivered_at = '$at'::timestamptz - interval '1 day',
                     confirmed_at = '$at'
               WHERE id = $part");
}

# A refund of $amount of part $part made at $at (one BALANCE row, DONE).
# ONE helper: the lead switches it to the real refund routes.
sub refund_part {
    my ($part, $amount, $at) = @_;
    $t->psql("INSERT INTO refunds (order_id, part_id, kind, method, amount, status,
                                   created_at, done_at)
              SELECT order_id, id, 'CANCEL', 'BALANCE', $amount, 'DONE', '$at', '$at'
                FROM order_parts WHERE id = $part;
              UPDATE order_parts SET refunded_amount = refunded_amount + $amount
               WHERE id = $part");
}

sub run_week {
    my ($as_of) = @_;
    my $r = req('POST', '/api/v1/admin/settlements/run', 'admin', { asOf => $as_of });
    is($r->{status}, 200, "the week of $as_of run") or diag $r->{raw};
    return $r->{json};
}
sub payout_of { $t->psql("SELECT id FROM payouts WHERE settlement_id = $_[0]") }
sub payout_status { scalar $t->psql("SELECT status FROM payouts WHERE id = $_[0]") }
sub wait_paid {
    my ($po, $timeout) = @_;
    return wait_until(sub { payout_status($po) eq 'SUCCEEDED' }, timeout => $timeout // 15);
}
sub statement { req('GET', "/api/v1/seller/settlements/$_[1]", $_[0]) }
sub reconcile_ok {
    my @bad = $t->psql("SELECT store_id FROM cm_settlement_reconcile() WHERE NOT balanced");
    return !@bad;
}

# --- the first Monday after 7 days, a 5% fee ------------------------------

my $o1 = buy([11, 3], [16, 1]);          # X 30,000; the platform 3,000
my $o2 = buy([11, 2]);                   # X 20,000
confirm_part($o1->{X}, '2026-10-26T00:00:00+09:00');   # settleable 11-02 00:00 KST
confirm_part($o1->{''}, '2026-10-20T00:00:00+09:00');  # the platform's: never settled
confirm_part($o2->{X}, '2026-10-26T00:00:01+09:00');   # one second too late

my $w1 = run_week('2026-11-02T00:00:00+09:00');
is($w1->{weekStart}, '2026-11-01T15:00:00.000Z', 'the week: Monday 2 November 00:00 KST');
is(scalar @{ $w1->{settlements} }, 1, 'one settlement: store X');
my $s1 = $w1->{settlements}[0];
is_deeply([ @$s1{qw(storeId week gross refunds fee carriedIn net paidAmount carriedOut
                    status)} ],
    [ $store{X}, '2026-11-02', 30000, 0, 1500, 0, 28500, 28500, 0, 'PAYING' ],
    '30,000 confirmed 7 days before: fee 1,500 (5%), 28,500 paid');
is($t->psql("SELECT count(*) FROM settlement_lines WHERE part_id = $o2->{X}"), 0,
    'the part confirmed one second later waits');

is_deeply(run_week('2026-11-08T23:59:59+09:00')->{settlements}, [],
    'the same week run again (Sunday night): nothing more');

my $po1 = payout_of($s1->{id});
ok(wait_paid($po1), 'the payout SUCCEEDED (callback, then the status pulled)');
is($ps->sent_for($po1), 28500, 'the simulator sent exactly 28,500 for it');
my $sent = $ps->payout("po-$po1-1");
is_deeply([ @$sent{qw(amount bankCode accountNumber holder)} ],
    [ 28500, '004', $acct{X}, '판매자 X' ], "to X's account, opened from its seal");

my $r = statement('X', $s1->{id});
is_response($r, 200, { id => 0 + $s1->{id}, storeId => 0 + $store{X}, week => '2026-11-02',
    weekStart => '2026-11-01T15:00:00.000Z', gross => 30000, refunds => 0, feeRate => 5,
    fee => 1500, carriedIn => 0, net => 28500, minimum => 10000, paidAmount => 28500,
    carriedOut => 0, status => 'PAID',
    payout => { id => 0 + $po1, amount => 28500, status => 'SUCCEEDED', attempt => 1,
                idempotencyKey => "po-$po1-1", paidAt => $TS },
    lines => [ { partId => $o1->{X}, orderId => $ID, confirmedAt => '2026-10-25T15:00:00.000Z',
                 amount => 30000, refunded => 0 } ],
    refundLines => [],
    taxInvoice => { id => $ID, issuer => 'PLATFORM',
                    recipient => { storeId => 0 + $store{X}, name => 'Store X' },
                    supplyAmount => 1364, vat => 136, total => 1500, issuedAt => $TS },
    createdAt => $TS }, "X's statement: its line, the fee, the payout, the tax invoice");

my $mails = sub { [ grep { ($_->{to} // '') eq $_[0] } @{ $ns->received('email') } ] };
ok(wait_until(sub { @{ $mails->('seller.x@example.com') } >= 1 }, timeout => 20),
    "the statement's e-mail reaches X's owner through the notify sink");
my $m = $mails->('seller.x@example.com')->[0];
is($m->{status}, 202, '... accepted (SendGrid 202)');
is($m->{subject}, '[커머스] Store X 2026-11-02 주 정산 내역', '... its subject');
is($m->{text}, "판매자X님, Store X의 2026-11-02 주 정산 내역입니다.\n\n"
    . "판매금액: 30,000원\n환불: 0원\n수수료(부가세 포함): 1,500원\n지급액: 28,500원\n"
    . "이월액: 0원\n\n자세한 내역과 세금계산서는 판매자 센터에서 확인하세요.", '... its text');

# --- a net below 10,000 carries over --------------------------------------

my $o3 = buy([13, 1]);                   # Y 10,000
confirm_part($o3->{Y}, '2026-11-01T10:00:00+09:00');
my $w2 = run_week('2026-11-09T09:00:00+09:00');
my %w2 = map { $_->{storeId} => $_ } @{ $w2->{settlements} };
is_deeply([ @{ $w2{ $store{X} } }{qw(gross fee net paidAmount status)} ],
    [ 20000, 1000, 19000, 19000, 'PAYING' ], 'X: the part that waited, a week later');
my $s2y = $w2{ $store{Y} };
is_deeply([ @$s2y{qw(gross fee carriedIn net paidAmount carriedOut status payout)} ],
    [ 10000, 500, 0, 9500, 0, 9500, 'CARRIED_OVER', undef ],
    'Y: 9,500 is below 10,000: nothing paid, carried over');
is($t->psql("SELECT count(*) FROM payouts WHERE settlement_id = $s2y->{id}"), 0,
    '... no payout');
ok(wait_paid(payout_of($w2{ $store{X} }{id})), "X's second payout paid");

my $o4 = buy([14, 1]);                   # Y 2,000
confirm_part($o4->{Y}, '2026-11-05T10:00:00+09:00');
my $w3 = run_week('2026-11-16T00:00:00+09:00');
my ($s3y) = grep { $_->{storeId} == $store{Y} } @{ $w3->{settlements} };
is_deeply([ @$s3y{qw(gross fee carriedIn net paidAmount carriedOut)} ],
    [ 2000, 100, 9500, 11400, 11400, 0 ],
    "Y's next week: 9,500 carried in + 2,000 - 100 = 11,400 paid");
ok(wait_paid(payout_of($s3y->{id})), '... paid');
is($ps->sent_for(payout_of($s3y->{id})), 11400, '... exactly 11,400 sent');
$r = statement('Y', $s2y->{id});
is_deeply([ @{ $r->{json} }{qw(status carriedOut paidAmount)} ], [ 'CARRIED_OVER', 9500, 0 ],
    "the carried week's statement shows the carry-over");

# --- a refund after settlement: from the next payout -----------------------

my $o5 = buy([11, 3]);                   # X 30,000
refund_part($o1->{X}, 5000, '2026-11-10T12:00:00+09:00');   # settled on 11-02
refund_part($o5->{X}, 3000, '2026-11-08T12:00:00+09:00');   # before its settlement
confirm_part($o5->{X}, '2026-11-08T13:00:00+09:00');
my $w4 = run_week('2026-11-23T00:00:00+09:00');
my ($s4x) = grep { $_->{storeId} == $store{X} } @{ $w4->{settlements} };
is_deeply([ @$s4x{qw(gross refunds fee carriedIn net paidAmount)} ],
    [ 30000, 8000, 1500, 0, 20500, 20500 ],
    'X: 30,000 - its own 3,000 refund - 5,000 refunded after settlement - 1,500 fee');
is($t->psql("SELECT string_agg(amount || ':' || settled_in, ',' ORDER BY id) FROM refunds"),
    "5000:$s4x->{id},3000:$s4x->{id}", '... both refund rows settled_in that settlement');
$r = statement('X', $s4x->{id});
is_deeply($r->{json}{refundLines}, [
    { refundId => $t->psql("SELECT id FROM refunds WHERE amount = 5000") + 0,
      partId => $o1->{X}, amount => 5000, afterSettlement => JSON::PP::true },
    { refundId => $t->psql("SELECT id FROM refunds WHERE amount = 3000") + 0,
      partId => $o5->{X}, amount => 3000, afterSettlement => JSON::PP::false } ],
    '... the statement lists them, the later one marked');
ok(wait_paid(payout_of($s4x->{id})), '... paid');
ok(reconcile_ok(), 'the reconciliation balances so far');

# --- a failed payout: retried 3 times, DEAD, replayed, paid once -----------

$ps->control(failPayouts => 4, failReason => 'account closed');
my $o6 = buy([15, 3]);                   # Z 15,000
confirm_part($o6->{Z}, '2026-11-16T00:00:00+09:00');
my $w5 = run_week('2026-11-23T09:00:00+09:00');
my ($s5z) = grep { $_->{storeId} == $store{Z} } @{ $w5->{settlements} };
is_deeply([ @$s5z{qw(gross fee net paidAmount)} ], [ 15000, 750, 14250, 14250 ],
    'Z: 15,000 - 750');
my $po5 = payout_of($s5z->{id});
ok(wait_until(sub { payout_status($po5) eq 'DEAD' }, timeout => 40),
    'four FAILED tries (the first and 3 retries): DEAD');
is($t->psql("SELECT attempt || ' ' || tries || ' ' || last_error FROM payouts WHERE id = $po5"),
    '5 4 account closed', '... each failure a new key; the reason kept');
is_deeply([ map { $ps->payout("po-$po5-$_")->{status} } 1 .. 4 ],
    [ ('FAILED') x 4 ], '... the simulator failed the four requests');
is($ps->sent_for($po5), 0, '... nothing sent');
is($t->psql("SELECT count(*) FROM outbox WHERE type = 'settlement.payout_dead'"
    . " AND (payload->>'payoutId')::bigint = $po5"), 1, '... one settlement.payout_dead event');
$r = req('GET', '/api/v1/admin/settlements/payouts/dead', 'admin');
is_response($r, 200, { items => [ { id => 0 + $po5, settlementId => 0 + $s5z->{id},
    storeId => 0 + $store{Z}, amount => 14250, attempt => 5, tries => 4, replays => 0,
    lastError => 'account closed', deadAt => $TS } ], page => 0, size => 20, total => 1 },
    'the dead payouts list');
is(statement('Z', $s5z->{id})->{json}{status}, 'PAYOUT_FAILED',
    "Z's statement shows PAYOUT_FAILED");

is_error(req('POST', "/api/v1/admin/settlements/payouts/$po1/replay", 'admin', {}),
    409, 'PAYOUT_NOT_DEAD', 'a paid payout is not replayed');
is_error(req('POST', '/api/v1/admin/settlements/payouts/999999/replay', 'admin', {}),
    404, 'PAYOUT_NOT_FOUND', 'an unknown one 404');
is(req('POST', "/api/v1/admin/settlements/payouts/$po5/replay", 'X', {})->{status}, 403,
    'a seller may not replay');
is_error(req('POST', "/api/v1/admin/settlements/payouts/$po5/replay", 'admin',
    [1]), 400, 'INVALID_REQUEST', 'a replay takes a JSON object');
$r = req('POST', "/api/v1/admin/settlements/payouts/$po5/replay", 'admin', {});
is_response($r, 200, { id => 0 + $po5, settlementId => 0 + $s5z->{id}, status => 'REQUESTED',
    attempt => 5, replays => 1 }, 'replayed by the admin');
ok(wait_paid($po5), '... then paid');
is($ps->sent_for($po5), 14250, '... exactly once: 14,250');
is_deeply(req('GET', '/api/v1/admin/settlements/payouts/dead', 'admin')->{json}{items}, [],
    '... the dead list is empty');

# --- a payout API that errors, then times out: the same key, paid once -----

$ps->control(failCount => 1, failStatus => 503, hangCount => 1);
my $o7 = buy([15, 3]);                   # Z 15,000
confirm_part($o7->{Z}, '2026-11-20T00:00:00+09:00');
my ($s6z) = grep { $_->{storeId} == $store{Z} }
    @{ run_week('2026-11-30T00:00:00+09:00')->{settlements} };
my $po6 = payout_of($s6z->{id});
ok(wait_paid($po6, 30), 'a 503, then a request taken but never answered: paid');
is($t->psql("SELECT attempt || ' ' || tries FROM payouts WHERE id = $po6"), '1 2',
    '... two failed tries, always the same key');
is($ps->sent_for($po6), 14250, '... 14,250 sent once');
ok($ps->payout("po-$po6-1")->{repeats} >= 1, '... the key was sent again, not paid again');

# --- callbacks: dropped, duplicated, forged --------------------------------

$ps->control(dropCallbacks => 1);
my $o8 = buy([11, 2]);                   # X 20,000
confirm_part($o8->{X}, '2026-11-20T00:00:00+09:00');
my ($s7x) = grep { $_->{storeId} == $store{X} }
    @{ run_week('2026-11-30T01:00:00+09:00')->{settlements} };
my $po7 = payout_of($s7x->{id});
ok(wait_paid($po7, 20), 'the callback dropped: the status pulled after check=2s, paid');
ok((grep { $_->{payoutId} eq "po-$po7-1" && $_->{dropped} } @{ $ps->callbacks }),
    '... the simulator dropped it');
is($ps->sent_for($po7), 19000, '... 19,000 once');

$ps->control(duplicateCallbacks => 2);
my $o9 = buy([13, 2]);                   # Y 20,000
confirm_part($o9->{Y}, '2026-11-20T00:00:00+09:00');
my ($s8y) = grep { $_->{storeId} == $store{Y} }
    @{ run_week('2026-11-30T02:00:00+09:00')->{settlements} };
my $po8 = payout_of($s8y->{id});
ok(wait_paid($po8), 'three callbacks of one payout');
ok(wait_until(sub { 3 == grep { $_->{payoutId} eq "po-$po8-1" } @{ $ps->callbacks } }),
    '... all sent');
is($ps->sent_for($po8), 19000, '... paid once');
is($t->psql("SELECT count(*) FROM outbox WHERE type = 'settlement.paid'"
    . " AND (payload->>'payoutId')::bigint = $po8"), 1, '... one settlement.paid event');
$ps->control(duplicateCallbacks => undef);

# a store settled for the first time, its payout left pending at the API
sub new_store {
    my ($name, $user, $product, $price, $holder) = @_;
    $t->psql("UPDATE users SET role = 'SELLER' WHERE id = $user");
    $tok{$name} = $t->token($user, role => 'SELLER');
    my $x = req('POST', '/api/v1/seller/store', $name, { name => "Store $name",
        bankCode => '088', accountNumber => '440-555-' . (600000 + $user),
        accountHolder => $holder // "판매자 $name" });
    is($x->{status}, 201, "store $name opened");
    $store{$name} = $x->{json}{id};
    $t->psql("UPDATE products SET store_id = $store{$name}, price = $price, stock = 1000"
        . " WHERE id = $product");
}
new_store('W', 905, 17, 4000);
$ps->control(neverDecide => JSON::PP::true);
my $o10 = buy([17, 5]);                  # W 20,000
confirm_part($o10->{W}, '2026-11-22T00:00:00+09:00');
my ($s10) = grep { $_->{storeId} == $store{W} }
    @{ run_week('2026-11-30T03:00:00+09:00')->{settlements} };
my $po10 = payout_of($s10->{id});
ok(wait_until(sub { payout_status($po10) eq 'PENDING' }), "W's payout accepted, PENDING");
my $cb = sub { $t->post('/api/v1/settlements/payouts/callback', $_[0]) };
my $gets = sub { scalar grep { $_->{method} eq 'GET' && $_->{path} eq "/v1/payouts/po-$po10-1" }
    @{ $ps->requests } };
my $n0 = $gets->();
is_response($cb->({ payoutId => "po-$po10-1", status => 'SUCCEEDED', amount => 19000 }),
    200, { received => JSON::PP::true }, 'a forged SUCCEEDED callback: 200');
ok(wait_until(sub { $gets->() > $n0 }), '... the module pulled the status');
is(payout_status($po10), 'PENDING', '... the payout still PENDING: the API says so');
is($ps->sent_for($po10), 0, '... nothing sent');
is_response($cb->({ payoutId => 'po-999999-1', status => 'SUCCEEDED' }), 200,
    { received => JSON::PP::true }, 'one of an unknown payout: 200, nothing changed');
for my $bad ({}, { payoutId => 12 }, { payoutId => "x'; DROP TABLE payouts; --" },
             { payoutId => 'po-1' }) {
    is_error($cb->($bad), 400, 'INVALID_REQUEST', 'a bad callback 400: ' . encode_json($bad));
}
$ps->control(neverDecide => undef);
$ps->decide;
ok(wait_paid($po10, 20), 'the API decides: paid');
is($ps->sent_for($po10), 19000, '... 19,000 once');

# --- one week from four requests at once: one settlement -------------------

new_store('V', 906, 18, 5000, '가' x 100);    # a holder of 300 bytes
my $o11 = buy([18, 4]);                  # V 20,000
confirm_part($o11->{V}, '2026-11-22T00:00:00+09:00');
my @jobs = map { $t->background(sub {
    my $x = req('POST', '/api/v1/admin/settlements/run', 'admin',
        { asOf => '2026-11-30T05:00:00+09:00' });
    return { status => $x->{status}, n => scalar @{ $x->{json}{settlements} // [] } };
}) } 1 .. 4;
my @res = map { $t->collect($_) } @jobs;
is_deeply([ map { $_->{status} } @res ], [ (200) x 4 ], 'four runs of one week at once');
is_deeply([ sort map { $_->{n} } @res ], [ 0, 0, 0, 1 ], '... exactly one made it');
is($t->psql("SELECT count(*) FROM settlements WHERE store_id = $store{V}"), 1,
    '... one settlement of V');
my $poV = payout_of($t->psql("SELECT id FROM settlements WHERE store_id = $store{V}"));
ok(wait_paid($poV), '... paid');
is($ps->payout("po-$poV-1")->{holder}, '가' x 100, '... to its holder of 100 characters');
is_deeply(run_week('2026-11-30T06:00:00+09:00')->{settlements}, [],
    '... and a rerun later makes nothing');

# --- refunds after settlement beyond the next week's sales: a negative carry

new_store('T', 908, 20, 10000);
my $o13 = buy([20, 2]);                  # T 20,000
confirm_part($o13->{T}, '2026-11-10T00:00:00+09:00');
my ($s13) = grep { $_->{storeId} == $store{T} }
    @{ run_week('2026-11-23T10:00:00+09:00')->{settlements} };
is_deeply([ @$s13{qw(gross fee paidAmount)} ], [ 20000, 1000, 19000 ], 'T: 19,000 paid');
ok(wait_paid(payout_of($s13->{id})), '... paid');
refund_part($o13->{T}, 15000, '2026-11-25T12:00:00+09:00');
my ($s14) = grep { $_->{storeId} == $store{T} }
    @{ run_week('2026-11-30T07:00:00+09:00')->{settlements} };
is_deeply([ @$s14{qw(gross refunds fee carriedIn net paidAmount carriedOut status payout
                     taxInvoice)} ],
    [ 0, 15000, 0, 0, -15000, 0, -15000, 'CARRIED_OVER', undef, undef ],
    'no sales, a 15,000 refund: -15,000 carried (owed by the store), nothing paid, no invoice');

# --- who sees what --------------------------------------------------------

$r = req('GET', '/api/v1/seller/settlements', 'X');
is($r->{status}, 200, "X's list");
is_deeply([ map { $_->{week} } @{ $r->{json}{items} } ],
    [ '2026-11-30', '2026-11-23', '2026-11-09', '2026-11-02' ], '... newest week first');
is($r->{json}{total}, 4, '... 4 in all');
$r = req('GET', '/api/v1/seller/settlements?page=1&size=3', 'X');
is_deeply([ map { $_->{week} } @{ $r->{json}{items} } ], [ '2026-11-02' ], '... paged');
is(req('GET', "/api/v1/seller/settlements/$s1->{id}", 'M')->{status}, 200,
    "X's manager reads X's statement");
is_error(req('GET', "/api/v1/seller/settlements/$s2y->{id}", 'M'), 404,
    'SETTLEMENT_NOT_FOUND', "... not Y's");
is_error(req('GET', "/api/v1/seller/settlements/$s2y->{id}", 'X'), 404,
    'SETTLEMENT_NOT_FOUND', "X may not read Y's statement: 404");
is_error(req('GET', '/api/v1/seller/settlements/999999', 'X'), 404, 'SETTLEMENT_NOT_FOUND',
    'an unknown one 404');
is_error(req('GET', "/api/v1/seller/settlements?storeId=$store{Y}", 'X'), 404,
    'STORE_NOT_FOUND', "X may not list Y's");
is(req('GET', "/api/v1/seller/settlements?storeId=$store{Y}", 'admin')->{json}{total}, 3,
    "an ADMIN lists Y's");
is(req('GET', "/api/v1/seller/settlements/$s1->{id}", 'admin')->{status}, 200,
    "an ADMIN reads X's statement");
is(req('GET', '/api/v1/seller/settlements', 'buyer')->{status}, 403, 'a buyer 403');
is(req('GET', "/api/v1/seller/settlements/$s1->{id}", 'buyer')->{status}, 403, '... 403');
is($t->get('/api/v1/seller/settlements')->{status}, 401, 'no token 401');
for my $q ('page=-1', 'size=0', 'size=101', 'storeId=x', 'page=abc') {
    is_error(req('GET', "/api/v1/seller/settlements?$q", 'X'), 400, 'INVALID_REQUEST',
        "a bad list parameter 400: $q");
}
is_error(req('GET', '/api/v1/admin/settlements/payouts/dead?size=0', 'admin'), 400,
    'INVALID_REQUEST', 'the dead list: bad size 400');
is(req('GET', '/api/v1/admin/settlements/payouts/dead', 'X')->{status}, 403,
    '... a seller 403');

# --- the admin run's input -------------------------------------------------

my $state = $t->db_state(skip => ['audit_log']);
for my $bad ({}, { asOf => 5 }, { asOf => '2026-11-30' }, { asOf => 'yesterday' },
             { asOf => '2026-11-30T00:00:00' }, { asOf => '2026-13-30T00:00:00Z' },
             { asOf => '2099-01-05T00:00:00+09:00' },
             { asOf => "2026-11-30T00:00:00Z'; DROP TABLE settlements; --" }) {
    is_error(req('POST', '/api/v1/admin/settlements/run', 'admin', $bad), 400,
        'INVALID_REQUEST', 'a bad run 400: ' . encode_json($bad));
}
is(req('POST', '/api/v1/admin/settlements/run', 'X',
    { asOf => '2026-11-30T00:00:00Z' })->{status}, 403, 'a seller may not run it');
is_deeply($t->db_state(skip => ['audit_log']), $state, '... nothing changed');

# --- the weekly job: a third instance with weekly=on settles by itself ------

new_store('U', 907, 19, 6000);
my $o12 = buy([19, 5]);                  # U 30,000
confirm_part($o12->{U}, '2026-11-20T00:00:00+09:00');
$t->write_config(conf(line => 'commerce_settlement upstream=payout_sim timeout=1s'
    . ' callback_url=http://127.0.0.1:%%PORT%%/api/v1/settlements/payouts/callback'
    . ' interval=200ms check=2s weekly=on'), name => 'c');
$t->start_nginx(name => 'c');
ok(wait_until(sub { $t->psql("SELECT count(*) FROM settlements WHERE store_id = $store{U}")
    eq '1' }, timeout => 20), 'the weekly job settled U without the admin route');
is($t->psql("SELECT to_char(week_start AT TIME ZONE 'Asia/Seoul', 'YYYY-MM-DD') || ' '"
    . " || gross || ' ' || fee || ' ' || paid_amount FROM settlements WHERE store_id = $store{U}"),
    $t->psql("SELECT to_char(cm__settlement_week(now()) AT TIME ZONE 'Asia/Seoul', 'YYYY-MM-DD')")
    . ' 30000 1500 28500', '... the week of the latest Monday (now), 5% (the default)');
ok(wait_paid(payout_of($t->psql("SELECT id FROM settlements WHERE store_id = $store{U}"))),
    '... and paid');
$t->stop_nginx(name => 'c');

# --- the directive: every value checked by nginx -t ------------------------

my ($rc, $out) = $t->nginx_t(conf(line => 'commerce_settlement upstream=payout_sim'
    . ' fee=12.5% hold=0 minimum=1 interval=100ms retries=0 check=1s weekly=on'
    . ' keepalive=0 host=payouts.example'));
is($rc, 0, 'nginx -t: the least values and another host') or diag $out;
for my $bad (
    [ 'fee=5', 'fee' ], [ 'fee=100.01%', 'fee' ], [ 'fee=5.123%', 'fee' ],
    [ 'fee=-1%', 'fee' ], [ 'hold=7x', 'hold' ], [ 'check=0', 'check' ],
    [ 'minimum=0', 'minimum' ], [ 'minimum=ten', 'minimum' ],
    [ 'interval=10ms', 'interval' ], [ 'retries=21', 'retries' ],
    [ 'weekly=yes', 'weekly' ], [ 'callback_url=ftp://x/', 'callback_url' ],
    [ 'timeout=0', 'timeout' ], [ 'colour=blue', 'colour' ], [ 'fee', 'fee' ])
{
    ($rc, $out) = $t->nginx_t(conf(line => "commerce_settlement upstream=payout_sim $bad->[0]"));
    ok($rc != 0 && $out =~ /"commerce_settlement".*\b\Q$bad->[1]\E\b/,
        "nginx -t refuses $bad->[0], naming the directive and the parameter")
        or diag $out;
}
($rc, $out) = $t->nginx_t(conf(line => 'commerce_settlement fee=5%'));
ok($rc != 0 && $out =~ /"commerce_settlement" needs upstream=/, 'nginx -t: upstream= is required');
($rc, $out) = $t->nginx_t(encode_utf8($t->default_config(http_extra => 'commerce_zone 1m;'
    . " upstream payout_sim { server 127.0.0.1:$pport; }\n"
    . 'commerce_settlement upstream=payout_sim;')));
ok($rc != 0 && $out =~ /"commerce_settlement" needs commerce_pii_keys_file/,
    'nginx -t: the PII keys are required (the accounts are sealed)') or diag $out;
($rc, $out) = $t->nginx_t(conf(line => 'commerce_settlement upstream=nowhere'));
ok($rc != 0 && $out =~ /"commerce_settlement".*upstream "nowhere" not found/,
    'nginx -t: an unknown upstream') or diag $out;

# --- the reconciliation ----------------------------------------------------

ok(wait_until(sub { $t->psql("SELECT count(*) FROM payouts WHERE status <> 'SUCCEEDED'")
    eq '0' }, timeout => 20), 'every payout paid');
my @rec = $t->psql("SELECT store_id, sales, refunds, fees, paid, owed, carried, balanced"
    . " FROM cm_settlement_reconcile()");
is(scalar(grep { /\|t\z/ } @rec), scalar @rec, 'the reconciliation balances for every store')
    or diag join("\n", @rec);
my ($xrow) = grep { /\A$store{X}\|/ } @rec;
is($xrow, "$store{X}|100000|8000|5000|87000|0|0|t",
    'X: 100,000 sold = 87,000 paid + 5,000 fees + 8,000 refunds');
my $ledger = 0;
$ledger += $_->{amount} for @{ $ps->ledger };
is($ledger, $t->psql("SELECT sum(amount) FROM payouts WHERE status = 'SUCCEEDED'"),
    "the simulator's ledger is the payouts paid, to the won");
is($t->psql(<<'SQL'), "f", 'a refund marked settled that no payout deducted: unbalanced');
BEGIN;
INSERT INTO refunds (order_id, part_id, kind, method, amount, status, settled_in, done_at)
SELECT l.order_id, l.part_id, 'CANCEL', 'BALANCE', 1, 'DONE', l.settlement_id, now()
  FROM settlement_lines l ORDER BY l.part_id LIMIT 1;
SELECT bool_and(balanced) FROM cm_settlement_reconcile();
ROLLBACK;
SQL
ok(reconcile_ok(), '... rolled back: balanced again');

$t->done;
