#!/usr/bin/perl
# Easy payments and transfers (issue 12 section 3).
#
# Easy payments: {"method":"EASY_PAY","provider":
# "KAKAOPAY"|"NAVERPAY"} goes through the payment gateway exactly like a
# card (the same begin, gateway call, callback verified by GET, reconciler,
# interface log), with the provider sent to the PG instead of card fields,
# recorded in payments.provider and shown in the payment document.
#
#   - success: 202 PAYMENT_IN_PROGRESS, the PG charged with the provider,
#     PAID after the callback, the provider in the order's payment;
#   - decline (pay later): PAYMENT_FAILED with the PG's reason, stock back;
#   - duplicated callbacks: one settlement;
#   - a forged signature is refused (401), nothing changes;
#   - a PG that never calls back: the reconciler settles it by GET;
#   - Idempotency-Key on the create: one order, one PG transaction;
#   - bad input: unknown provider, provider on CARD or BALANCE, card fields
#     on EASY_PAY, no provider, unknown method: 400, nothing changed,
#     nothing sent.
#
# Transfers to a virtual account (issue 12 section 3): {"method":"TRANSFER"}
# goes through the payment gateway like a card; the gateway issues a virtual
# account (bank, number, holder, deadline) and the order waits in
# WAITING_FOR_DEPOSIT, holding its stock.  The deposit's signed callback,
# confirmed by the gateway's status, pays it; past the deadline the expiry
# job cancels it and releases the stock; a deposit after that is refunded
# through the gateway's cancel and recorded.
#
#   - deposited in time: PAID, payment SUCCESS, the virtual account shown;
#   - duplicated deposit callbacks: one settlement;
#   - a deposit whose callback is lost: the reconciler finds it, PAID;
#   - a forged signature: 401, nothing changes;
#   - deadline passed: CANCELLED, stock back, payment FAILED;
#   - a late deposit: refunded at the gateway (CANCELLED there), the
#     payment row and the interface log record it, the order stays
#     CANCELLED;
#   - Idempotency-Key on the create; bad input: 400, nothing changed.

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

binmode(Test::More->builder->$_, ':utf8')
    for qw(output failure_output todo_output);

my $LIMIT = '한도초과입니다. 다른 카드를 선택해주세요.';
my $SECRET = 'easy-secret-177';
my $TS_RE = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

my $sim = PgSim->start(seed => 177, failRate => 0, latencyMs => [0, 5],
    decisionMs => [50, 100], outcomeWeights => { SUCCESS => 100 },
    hmacSecret => $SECRET,
    log => $t->dir . '/pgsim.log');

my $port = $sim->port;
$t->write_config($t->default_config(http_extra => <<"CONF"));
commerce_zone 1m;
upstream pg_a { server 127.0.0.1:$port; keepalive 8; }
commerce_gateway pg_a upstream=pg_a timeout=1s connect_timeout=500ms window=10 min_calls=5 failure_rate=50 open=2s probes=2 probe_deadline=3s keepalive=8;
commerce_gateway_callback_url http://127.0.0.1:%%PORT%%/api/v1/payments/callback;
commerce_gateway_callback_secret "$SECRET";
commerce_gateway_retries 3;
commerce_gateway_retry_base 50ms;
commerce_gateway_retry_cap 500ms;
commerce_reconcile_interval 300ms;
commerce_reconcile_age 1s;
commerce_reconcile_grace 3s;
commerce_payment_timeout 2s;
commerce_transfer_deadline 1h;
commerce_order_expiry_interval 200ms;
CONF
$t->start_nginx;

# ---------------------------------------------------------------------------
# helpers

sub easy { { method => 'EASY_PAY', provider => $_[0] } }
sub pg_order_id { sprintf '%06d', $_[0] }
sub stock { $t->psql("SELECT stock FROM products WHERE id = $_[0]") + 0 }
sub price { $t->psql("SELECT price FROM products WHERE id = $_[0]") + 0 }

sub payment_row {
    return $t->psql_json("SELECT row_to_json(p) FROM payments p"
        . " WHERE id = $_[0]");
}

sub wait_decided {
    my ($id, $user) = @_;
    return $t->wait_order($id, user => $user, timeout => 10,
        until => sub { $_[0]{status} ne 'PAYMENT_IN_PROGRESS' });
}

sub payment_doc {
    my (%o) = @_;
    return { id => $o{id} // sub { $_[0] =~ /^\d+$/ }, method => 'EASY_PAY',
        status => $o{status}, amount => $o{amount},
        provider => $o{provider}, reason => $o{reason} };
}

# the database but the reconciler's leases and exchanges (a waiting
# transfer is polled): payments by their state, every other table whole
sub state_but_polls {
    return { %{ $t->db_state(skip => [ 'payment_interface_request_log',
        'payments' ]) }, payments => scalar $t->psql("SELECT string_agg(id"
        . " || ' ' || status || ' ' || coalesce(net_cancel, '-') || ' '"
        . " || coalesce(transaction_key, '-'), ',' ORDER BY id) FROM payments") };
}

sub pg_txn { $sim->transactions(orderId => pg_order_id($_[0]))->[0] }

sub deposit {
    my ($key) = @_;
    return $sim->request('POST', '/__deposit', body => {
        transactionKey => $key });
}

sub order_status {
    my ($id, $user, $status) = @_;
    return $t->wait_order($id, user => $user, timeout => 10,
        until => sub { $_[0]{status} eq $status });
}

# a transfer order: 202 WAITING_FOR_DEPOSIT with its virtual account
sub transfer_order {
    my ($user, $pid, $qty, %o) = @_;
    my $r = $t->post('/api/v1/orders', { items => [ { productId => $pid,
        quantity => $qty } ], payment => { method => 'TRANSFER' } },
        user => $user, %o);
    return $r;
}

# ---------------------------------------------------------------------------
# 1. Success: create and pay with KakaoPay

my $s3 = stock(3);
my $amount = 2 * price(3);
my $r = $t->post('/api/v1/orders', { items => [ { productId => 3,
    quantity => 2 } ], payment => easy('KAKAOPAY') }, user => 11);
is($r->{status}, 202, 'easy pay order: 202');
is($r->{json}{status}, 'PAYMENT_IN_PROGRESS', 'PAYMENT_IN_PROGRESS');
cmp_json($r->{json}{payment}, payment_doc(status => 'PENDING',
    amount => $amount, provider => 'KAKAOPAY', reason => undef),
    'the payment shows EASY_PAY, its provider, PENDING');
my $o1 = $r->{json}{id};
my $p1 = $r->{json}{payment}{id};
is(stock(3), $s3 - 2, 'stock reserved');

my $o = wait_decided($o1, 11);
is($o->{status}, 'PAID', 'after the callback: PAID');
cmp_json($o->{payment}, payment_doc(id => $p1, status => 'SUCCESS',
    amount => $amount, provider => 'KAKAOPAY', reason => undef),
    'payment SUCCESS, provider shown');
is(stock(3), $s3 - 2, 'stock kept');

my $txns = $sim->transactions(orderId => pg_order_id($o1));
is(scalar @$txns, 1, 'the PG holds one transaction');
cmp_json({ map { $_ => $txns->[0]{$_} } qw(userId orderId provider amount
    status cardNo) }, { userId => '11', orderId => pg_order_id($o1),
    provider => 'KAKAOPAY', amount => $amount, status => 'SUCCESS',
    cardNo => undef }, 'the PG was charged by KakaoPay, no card');
my $k1 = $txns->[0]{transactionKey};

my $row = payment_row($p1);
cmp_json({ map { $_ => $row->{$_} } qw(method provider status amount gateway
    transaction_key card_type card_last4) }, { method => 'EASY_PAY',
    provider => 'KAKAOPAY', status => 'SUCCESS', amount => $amount,
    gateway => 'pg_a', transaction_key => $k1, card_type => undef,
    card_last4 => undef }, 'payments row: EASY_PAY, provider, no card fields');

my $logs = $t->psql_json("SELECT json_agg(l ORDER BY id) FROM"
    . " payment_interface_request_log l WHERE payment_id = $p1");
my ($create) = grep { $_->{operation} eq 'CREATE' } @$logs;
ok($create, 'the interface log has the create');
like($create->{request_body} // '',
    qr/"method":"EASY_PAY","provider":"KAKAOPAY"/, 'which sent the provider');
# (a callback that overtakes the create's answer finds no payment yet: its
# row names the key only)
ok(wait_until(sub { $t->psql("SELECT count(*) FROM"
    . " payment_interface_request_log WHERE operation = 'CALLBACK'"
    . " AND request_body LIKE '%$k1%'") > 0 }, timeout => 5),
    'and the callback');

# ---------------------------------------------------------------------------
# 2. Decline, paying later with NaverPay: PAYMENT_FAILED, stock back

$sim->control(providers => { NAVERPAY => 'LIMIT' });
my $s5 = stock(5);
$r = $t->post('/api/v1/orders', { items => [ { productId => 5,
    quantity => 1 } ] }, user => 12);
is($r->{status}, 201, 'an unpaid order');
my $o2 = $r->{json}{id};
is(stock(5), $s5 - 1, 'its stock reserved');
$r = $t->post("/api/v1/orders/$o2/payment", easy('NAVERPAY'), user => 12);
is($r->{status}, 202, 'paying it by NaverPay: 202');
$o = wait_decided($o2, 12);
is($o->{status}, 'PAYMENT_FAILED', 'declined: PAYMENT_FAILED');
cmp_json($o->{payment}, payment_doc(status => 'FAILED',
    amount => price(5), provider => 'NAVERPAY', reason => $LIMIT),
    'with the PG\'s reason and the provider');
is(stock(5), $s5, 'stock back');
$sim->control(providers => { NAVERPAY => undef });

# ---------------------------------------------------------------------------
# 3. Duplicated callbacks: one settlement

$sim->control(callback => { mode => 'duplicate' });
$r = $t->post('/api/v1/orders', { items => [ { productId => 4,
    quantity => 1 } ], payment => easy('NAVERPAY') }, user => 13);
is($r->{status}, 202, 'NaverPay order: 202');
my $o3 = $r->{json}{id};
$o = wait_decided($o3, 13);
is($o->{status}, 'PAID', 'PAID');
ok(wait_until(sub {
    my $x = $sim->transactions(orderId => pg_order_id($o3));
    @$x && @{ $x->[0]{callbacks} } == 2
        && !grep { !defined $_->{status} } @{ $x->[0]{callbacks} } },
    timeout => 5), 'both callbacks were answered');
is($t->psql("SELECT count(*) FROM payments WHERE order_id = $o3"), 1,
    'one payment row');
is($t->psql("SELECT count(*) FROM payments WHERE order_id = $o3"
    . " AND status = 'SUCCESS'"), 1, 'one SUCCESS');
$sim->control(callback => { mode => 'normal' });

# ---------------------------------------------------------------------------
# 4. A forged signature: 401, nothing changes

my $x = $sim->transactions(orderId => pg_order_id($o1))->[0];
my $body = encode_json({ transactionKey => $x->{transactionKey},
    orderId => $x->{orderId}, method => 'EASY_PAY', provider => 'KAKAOPAY',
    amount => $x->{amount}, status => 'FAILED', reason => 'forged' });
my $before = $t->db_state(skip => [ 'payment_interface_request_log' ]);
my $ts = time;
$r = $t->post('/api/v1/payments/callback?gateway=pg_a', $body,
    headers => { 'Content-Type' => 'application/json', 'X-PG-Signature' =>
        "t=$ts,v1=" . hmac_sha256_hex("$ts.$body", 'not-the-secret') });
is($r->{status}, 401, 'a callback signed with another secret: 401');
is_deeply($t->db_state(skip => [ 'payment_interface_request_log' ]),
    $before, 'nothing changed');

# ---------------------------------------------------------------------------
# 5. A PG that never calls back: the reconciler settles it by GET

$sim->control(callback => { mode => 'drop' });
$r = $t->post('/api/v1/orders', { items => [ { productId => 6,
    quantity => 1 } ], payment => easy('KAKAOPAY') }, user => 14);
is($r->{status}, 202, 'a KakaoPay order whose callback is lost: 202');
my $o5 = $r->{json}{id};
$o = wait_decided($o5, 14);
is($o->{status}, 'PAID', 'the reconciler asked the PG: PAID');
is($o->{payment}{provider}, 'KAKAOPAY', 'the provider still shown');
is($sim->counters->{callbacks_dropped} >= 1 ? 1 : 0, 1,
    'the callback was dropped');
$sim->control(callback => { mode => 'normal' });

# ---------------------------------------------------------------------------
# 6. Idempotency-Key on the create

my $c0 = $sim->counters->{create};
my $n0 = $t->psql('SELECT count(*) FROM orders');
my $req = { items => [ { productId => 7, quantity => 1 } ],
    payment => easy('NAVERPAY') };
my $r1 = $t->post('/api/v1/orders', $req, user => 15,
    headers => { 'Idempotency-Key' => 'easy-177-1' });
is($r1->{status}, 202, 'first with a key: 202');
my $r2 = $t->post('/api/v1/orders', $req, user => 15,
    headers => { 'Idempotency-Key' => 'easy-177-1' });
is($r2->{status}, 202, 'the same key again: the same status');
is($r2->{json}{id}, $r1->{json}{id}, 'the same order');
is($r2->{headers}{'idempotent-replayed'}, 'true', 'replayed');
is($t->psql('SELECT count(*) FROM orders'), $n0 + 1, 'one order made');
is($sim->counters->{create} - $c0, 1, 'one PG create');
wait_decided($r1->{json}{id}, 15);

# ---------------------------------------------------------------------------
# 7. Bad input: 400, nothing changed, nothing sent

$c0 = $sim->counters->{requests};
$before = $t->db_state;
for my $case (
    [ { method => 'EASY_PAY', provider => 'TOSSPAY' },
      qr/provider must be KAKAOPAY or NAVERPAY/, 'unknown provider' ],
    [ { method => 'EASY_PAY', provider => 7 },
      qr/provider must be KAKAOPAY or NAVERPAY/, 'provider not a string' ],
    [ { method => 'EASY_PAY' }, qr/provider is required/, 'no provider' ],
    [ { method => 'CARD', cardType => 'KB', cardNo => '1111-1111-1111-1111',
        provider => 'KAKAOPAY' }, qr/provider is only for EASY_PAY/,
      'provider on a CARD payment' ],
    [ { method => 'BALANCE', provider => 'KAKAOPAY' },
      qr/provider is only for EASY_PAY/, 'provider on a BALANCE payment' ],
    [ { method => 'EASY_PAY', provider => 'KAKAOPAY', cardType => 'KB' },
      qr/card fields are only for CARD/, 'card fields on EASY_PAY' ],
    [ { method => 'PAYPAL' }, qr/method must be BALANCE, CARD, EASY_PAY or TRANSFER/,
      'unknown method' ],
) {
    my ($pay, $re, $name) = @$case;
    $r = $t->post('/api/v1/orders', { items => [ { productId => 3,
        quantity => 1 } ], payment => $pay }, user => 16);
    is_error($r, 400, 'INVALID_REQUEST', "order: $name: 400");
    like($r->{json}{message} // '', $re, "order: $name: the reason");
    $r = $t->post("/api/v1/orders/$o2/payment", $pay, user => 12);
    is_error($r, 400, 'INVALID_REQUEST', "pay later: $name: 400");
}
is_deeply($t->db_state, $before, 'nothing changed');
is($sim->counters->{requests}, $c0, 'nothing sent to the PG');

# ---------------------------------------------------------------------------
# 8. Deposited in time: PAID

$s3 = stock(3);
$amount = 2 * price(3);
$r = transfer_order(11, 3, 2);
is($r->{status}, 202, 'transfer order: 202');
is($r->{json}{status}, 'WAITING_FOR_DEPOSIT', 'WAITING_FOR_DEPOSIT');
my $to1 = $r->{json}{id};
my $pay = $r->{json}{payment};
cmp_json($pay, { id => sub { $_[0] =~ /^\d+$/ }, method => 'TRANSFER',
    status => 'PENDING', amount => $amount, reason => undef,
    virtualAccount => { bank => sub { length $_[0] },
        accountNumber => qr/^\d{3}-\d{6}-\d{5}$/, holder => '(주)커머스',
        dueDate => $TS_RE } },
    'the payment shows its virtual account');
my $tp1 = $pay->{id};
is(stock(3), $s3 - 2, 'stock held');

$x = pg_txn($to1);
is($x->{status}, 'PENDING', 'the PG holds the transfer, PENDING');
is($x->{virtualAccount}{accountNumber}, $pay->{virtualAccount}{accountNumber},
    'the account number is the PG\'s');
is($x->{virtualAccount}{bank}, $pay->{virtualAccount}{bank}, 'and the bank');
is($x->{amount}, $amount, 'for the amount');
my $due = $t->psql("SELECT round(extract(epoch FROM va_due_at - created_at))"
    . " FROM payments WHERE id = $tp1");
ok($due >= 3598 && $due <= 3601, "due in commerce_transfer_deadline (${due}s)");

# the payment timeout (2s here) does not apply to a transfer waiting for
# its deposit: the reconciler asks, never gives up
my $g0 = $sim->counters->{get};
ok(wait_until(sub { $sim->counters->{get} >= $g0 + 2 }, timeout => 10),
    'the reconciler polls the waiting transfer');
ok($t->psql("SELECT extract(epoch FROM now() - created_at) > 2 FROM payments"
    . " WHERE id = $tp1") eq 't', 'past the payment timeout');
is($t->get("/api/v1/orders/$to1", user => 11)->{json}{status},
    'WAITING_FOR_DEPOSIT', 'still WAITING_FOR_DEPOSIT');

$r = deposit($x->{transactionKey});
is($r->{status}, 200, 'the buyer deposits');
$o = order_status($to1, 11, 'PAID');
is($o->{status}, 'PAID', 'the deposit callback paid it: PAID');
is($o->{payment}{status}, 'SUCCESS', 'payment SUCCESS');
is($o->{payment}{virtualAccount}{accountNumber},
    $pay->{virtualAccount}{accountNumber}, 'the virtual account still shown');
is(stock(3), $s3 - 2, 'stock kept');

# ---------------------------------------------------------------------------
# 9. Duplicated deposit callbacks: one settlement

$sim->control(callback => { mode => 'duplicate' });
$r = transfer_order(12, 4, 1);
is($r->{json}{status}, 'WAITING_FOR_DEPOSIT', 'another transfer waits');
my $to2 = $r->{json}{id};
my $s4 = stock(4);
deposit(pg_txn($to2)->{transactionKey});
order_status($to2, 12, 'PAID');
ok(wait_until(sub {
    my $cb = pg_txn($to2)->{callbacks};
    @$cb == 2 && !grep { !defined $_->{status} } @$cb }, timeout => 5),
    'both deposit callbacks were answered');
is($t->psql("SELECT count(*) FROM payments WHERE order_id = $to2"), 1,
    'one payment row');
is($t->psql("SELECT status FROM payments WHERE order_id = $to2"), 'SUCCESS',
    'SUCCESS once');
is($t->psql("SELECT status FROM orders WHERE id = $to2"), 'PAID', 'PAID');
is(stock(4), $s4, 'stock unchanged by the second callback');
$sim->control(callback => { mode => 'normal' });

# ---------------------------------------------------------------------------
# 10. A deposit whose callback is lost: the reconciler finds it

$sim->control(callback => { mode => 'drop' });
$r = transfer_order(13, 5, 1);
my $to3 = $r->{json}{id};
deposit(pg_txn($to3)->{transactionKey});
$o = order_status($to3, 13, 'PAID');
is($o->{status}, 'PAID', 'callback dropped, the reconciler settled it: PAID');
$sim->control(callback => { mode => 'normal' });

# ---------------------------------------------------------------------------
# 11. A forged deposit callback: 401, nothing changes

$r = transfer_order(14, 6, 1);
my $to4 = $r->{json}{id};
my $s6 = stock(6);
$x = pg_txn($to4);
$body = encode_json({ transactionKey => $x->{transactionKey},
    orderId => $x->{orderId}, method => 'TRANSFER', amount => $x->{amount},
    status => 'SUCCESS', reason => 'forged' });
$before = state_but_polls();
$ts = time;
$r = $t->post('/api/v1/payments/callback?gateway=pg_a', $body,
    headers => { 'Content-Type' => 'application/json', 'X-PG-Signature' =>
        "t=$ts,v1=" . hmac_sha256_hex("$ts.$body", 'not-the-secret') });
is($r->{status}, 401, 'a deposit callback with a forged signature: 401');
$r = $t->post('/api/v1/payments/callback?gateway=pg_a', $body,
    headers => { 'Content-Type' => 'application/json' });
is($r->{status}, 401, 'an unsigned one: 401');
is_deeply(state_but_polls(),
    $before, 'nothing changed: still waiting');

# ---------------------------------------------------------------------------
# 12. Deadline passed: the expiry job cancels it, stock back

# time passes: the virtual account's deadline is now behind us
$t->psql("UPDATE payments SET va_due_at = now() - interval '1 second'"
    . " WHERE order_id = $to4");
$o = order_status($to4, 14, 'CANCELLED');
is($o->{status}, 'CANCELLED', 'deadline passed: the order is CANCELLED');
is($o->{payment}{status}, 'FAILED', 'its transfer FAILED');
is($o->{payment}{reason}, 'deposit deadline passed', 'deposit deadline passed');
is(stock(6), $s6 + 1, 'stock released');

# ---------------------------------------------------------------------------
# 13. A late deposit: refunded at the gateway and recorded

my $tp4 = $o->{payment}{id};
$r = deposit($x->{transactionKey});
is($r->{status}, 200, 'the buyer deposits after the deadline');
ok(wait_until(sub { (payment_row($tp4)->{net_cancel} // '') eq 'DONE' },
    timeout => 10), 'the deposit is refunded (net_cancel DONE)');
$row = payment_row($tp4);
is($row->{status}, 'FAILED', 'the payment stays FAILED');
is($t->psql("SELECT status FROM orders WHERE id = $to4"), 'CANCELLED',
    'the order stays CANCELLED');
is(pg_txn($to4)->{status}, 'CANCELLED', 'the PG cancelled the deposit');
is(pg_txn($to4)->{cancelledFrom}, 'SUCCESS', 'from SUCCESS: a refund');
my $ops = $t->psql_json("SELECT json_agg(operation ORDER BY id) FROM"
    . " payment_interface_request_log WHERE payment_id = $tp4");
ok((grep { $_ eq 'CANCEL' } @$ops), 'the interface log records the cancel');
ok((grep { $_ eq 'CALLBACK' } @$ops), '... after the deposit callback');
is(stock(6), $s6 + 1, 'stock not taken again');

# ---------------------------------------------------------------------------
# 14. Idempotency-Key on the create

$c0 = $sim->counters->{create};
$n0 = $t->psql('SELECT count(*) FROM orders');
$r1 = transfer_order(15, 7, 1,
    headers => { 'Idempotency-Key' => 'transfer-178-1' });
$r2 = transfer_order(15, 7, 1,
    headers => { 'Idempotency-Key' => 'transfer-178-1' });
is($r1->{status}, 202, 'first with a key: 202');
is($r2->{status}, 202, 'again: 202');
is($r2->{json}{id}, $r1->{json}{id}, 'the same order');
is($r2->{headers}{'idempotent-replayed'}, 'true', 'replayed');
is_deeply($r2->{json}{payment}{virtualAccount},
    $r1->{json}{payment}{virtualAccount}, 'the same virtual account');
is($t->psql('SELECT count(*) FROM orders'), $n0 + 1, 'one order');
is($sim->counters->{create} - $c0, 1, 'one PG create');

# ---------------------------------------------------------------------------
# 15. Bad input: 400, nothing changed

# (the transfer of 14 is waiting: the reconciler's polls go on)
$c0 = $sim->counters->{create};
$before = state_but_polls();
for my $case (
    [ { method => 'TRANSFER', provider => 'KAKAOPAY' },
      qr/provider is only for EASY_PAY/, 'a provider' ],
    [ { method => 'TRANSFER', cardNo => '1111-1111-1111-1111' },
      qr/card fields are only for CARD/, 'a card number' ],
    [ { method => 'transfer' }, qr/method must be/, 'lower case' ],
) {
    my ($pay, $re, $name) = @$case;
    $r = $t->post('/api/v1/orders', { items => [ { productId => 3,
        quantity => 1 } ], payment => $pay }, user => 16);
    is_error($r, 400, 'INVALID_REQUEST', "TRANSFER with $name: 400");
    like($r->{json}{message} // '', $re, '... the reason');
}
is_deeply(state_but_polls(), $before,
    'nothing changed');
is($sim->counters->{create}, $c0, 'nothing sent');

$t->check_consistency;
$t->stop_nginx;
done_testing;
