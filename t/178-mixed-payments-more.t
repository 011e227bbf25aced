#!/usr/bin/perl
# Mixed payments, the rest (issue 12 section 3): EASY_PAY and TRANSFER as
# the external part beside POINTS, and POST /orders/{id}/payment with a
# list of parts (t/175 has points with balance or card on order creation).
#
#   - points 1,000 + KakaoPay 2,000 on a 3,000 order: the PG charged 2,000
#     with the provider, PAID with two payment rows;
#   - points + NaverPay declined: points, stock and coupon back;
#   - points + transfer: the virtual account issued for 2,000, the deposit
#     pays it (PAID); past its deadline the order expires, points and stock
#     back;
#   - paying a PENDING_PAYMENT order with points + balance (PAID in one
#     transaction) and with points + card (the PG charged the card part);
#   - on the pay route: sums not matching paymentAmount 400
#     PAYMENT_AMOUNT_MISMATCH, short points 409 INSUFFICIENT_POINTS, bad
#     parts 400: nothing changed, nothing sent to the PG;
#   - Idempotency-Key on the pay route with parts (balance, card):
#     replayed, one PG create, paid once.

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

my $SECRET = 'pg-secret-178';

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
# product 3: 3,000 won
$t->psql(q{UPDATE products SET price = 3000, stock = 1000 WHERE id = 3;
           UPDATE users SET role = 'ADMIN' WHERE id = 2});

my $sim = PgSim->start(seed => 178, failRate => 0, latencyMs => [0, 5],
    decisionMs => [50, 100], outcomeWeights => { SUCCESS => 100 },
    hmacSecret => $SECRET, log => $t->dir . '/pgsim.log');

my $port = $sim->port;
$t->write_config($t->default_config(http_extra => <<"CONF"));
commerce_zone 1m;
upstream pg_a { server 127.0.0.1:$port; keepalive 8; }
commerce_gateway pg_a upstream=pg_a timeout=1s connect_timeout=500ms window=10 min_calls=5 failure_rate=50 open=2s probes=2 probe_deadline=3s keepalive=8;
commerce_gateway_callback_url http://127.0.0.1:%%PORT%%/api/v1/payments/callback;
commerce_gateway_callback_secret "$SECRET";
commerce_reconcile_interval 300ms;
commerce_reconcile_age 1s;
commerce_reconcile_grace 3s;
commerce_payment_timeout 5s;
commerce_transfer_deadline 1h;
commerce_order_expiry_interval 200ms;
CONF
$t->start_nginx;
MixPay::init($t, $sim);

# ---------------------------------------------------------------------------
# helpers

sub easy { { method => 'EASY_PAY', provider => $_[1], amount => $_[0] } }
sub xfer { { method => 'TRANSFER', amount => $_[0] } }
sub order {
    my ($user, $payment, %o) = @_;
    return $t->post('/api/v1/orders', { items => [ { productId => 3,
        quantity => 1 } ], payment => $payment,
        (defined $o{coupon} ? (couponId => $o{coupon}) : ()) },
        user => $user, %o);
}
sub unpaid {
    my ($user) = @_;
    my $r = order($user, undef);
    is($r->{status}, 201, "user $user: an unpaid order") or diag($r->{body});
    return $r->{json}{id};
}
sub pay {
    my ($id, $user, $parts, %o) = @_;
    return $t->post("/api/v1/orders/$id/payment", $parts, user => $user, %o);
}
sub until_status {
    my ($id, $user, $want) = @_;
    return $t->wait_order($id, user => $user, timeout => 20,
        until => sub { $_[0]{status} eq $want });
}
sub deposit {
    my ($key) = @_;
    return $sim->request('POST', '/__deposit', body => {
        transactionKey => $key });
}

# ---------------------------------------------------------------------------
# 1. points 1,000 + KakaoPay 2,000

my $U = 31;
grant($U, 5000);
my $s3 = stock(3);
my $r = order($U, [ pts(1000), easy(2000, 'KAKAOPAY') ]);
is($r->{status}, 202, 'points + easy pay: 202') or diag($r->{body});
my $o1 = $r->{json}{id};
cmp_json([ map { "$_->{method} $_->{status} $_->{amount}" }
    @{ $r->{json}{payments} } ],
    [ 'POINTS SUCCESS 1000', 'EASY_PAY PENDING 2000' ],
    '... the points taken, the easy payment pending');
is(points($U), 4000, '... the points taken when it begins');
my $o = until_status($o1, $U, 'PAID');
is($o->{status}, 'PAID', 'approved: PAID');
is($o->{payment}{provider}, 'KAKAOPAY', '... the provider shown');
is_deeply(pay_rows($o1), [ 'POINTS SUCCESS 1000', 'EASY_PAY SUCCESS 2000' ],
    '... two payment rows');
my $tx = pg_txns($o1);
is(scalar @$tx, 1, 'one transaction at the PG');
is(0 + $tx->[0]{amount}, 2000, '... charged the easy-pay part only, 2000');
is($tx->[0]{provider}, 'KAKAOPAY', '... with the provider');
is_deeply(ledger($U), [ 'SPEND -1000 4000' ], 'points ledger: -1000');
is(stock(3), $s3 - 1, 'stock taken');

# ---------------------------------------------------------------------------
# 2. points + NaverPay declined: points, stock and coupon back

my $V = 32;
grant($V, 1000);
my $camp = $t->create_coupon(discountType => 'FIXED', discountValue => 500);
$r = $t->issue_coupon($camp, $V);
is($r->{status}, 201, 'a 500 coupon issued') or diag($r->{body});
my $uc = $r->{json}{id};
$sim->control(providers => { NAVERPAY => 'LIMIT' });
$s3 = stock(3);
$r = order($V, [ pts(1000), easy(1500, 'NAVERPAY') ], coupon => $uc);
ok($r->{status} == 202 || $r->{status} == 200,
    'coupon 500, points 1000 + NaverPay 1500: accepted') or diag($r->{body});
my $o2 = $r->{json}{id};
$o = until_status($o2, $V, 'PAYMENT_FAILED');
is($o->{status}, 'PAYMENT_FAILED', 'declined: PAYMENT_FAILED');
is_deeply(pay_rows($o2), [ 'POINTS CANCELLED 1000', 'EASY_PAY FAILED 1500' ],
    '... the points part CANCELLED, the easy payment FAILED');
is(points($V), 1000, '... the points back');
is_deeply(ledger($V), [ 'SPEND -1000 0', 'RESTORE 1000 1000' ],
    '... ledger SPEND then RESTORE');
is(stock(3), $s3, '... stock back');
is($t->psql("SELECT status || ' ' || coalesce(reserved_by::text, '-')"
    . " FROM user_coupons WHERE id = $uc"), 'AVAILABLE -', '... coupon back');
is(0 + pg_txns($o2)->[0]{amount}, 1500, '... the PG was asked for 1500');
$sim->control(providers => { NAVERPAY => undef });

# ---------------------------------------------------------------------------
# 3. points + transfer, deposited: PAID

my $W = 33;
grant($W, 1000);
$r = order($W, [ xfer(2000), pts(1000) ]);
is($r->{status}, 202, 'points + transfer: 202') or diag($r->{body});
my $o3 = $r->{json}{id};
is($r->{json}{status}, 'WAITING_FOR_DEPOSIT', '... WAITING_FOR_DEPOSIT');
is(0 + $r->{json}{payment}{amount}, 2000, '... the transfer of 2000');
ok($r->{json}{payment}{virtualAccount}{accountNumber},
    '... its virtual account shown');
$tx = pg_txns($o3);
is(0 + $tx->[0]{amount}, 2000, 'the virtual account issued for 2000');
is(points($W), 0, 'the points taken');
$r = deposit($tx->[0]{transactionKey});
is($r->{status}, 200, 'the buyer deposits');
$o = until_status($o3, $W, 'PAID');
is($o->{status}, 'PAID', 'the deposit paid it: PAID');
is_deeply(pay_rows($o3), [ 'POINTS SUCCESS 1000', 'TRANSFER SUCCESS 2000' ],
    '... two payment rows');

# ---------------------------------------------------------------------------
# 4. points + transfer past its deadline: expired, points and stock back

my $X = 34;
grant($X, 1000);
$s3 = stock(3);
$r = order($X, [ pts(1000), xfer(2000) ]);
is($r->{status}, 202, 'points + transfer: 202') or diag($r->{body});
my $o4 = $r->{json}{id};
is(stock(3), $s3 - 1, '... its stock held');
$t->psql("UPDATE payments SET va_due_at = now() - interval '1 second'"
    . " WHERE order_id = $o4 AND method = 'TRANSFER'");
$o = until_status($o4, $X, 'CANCELLED');
is($o->{status}, 'CANCELLED', 'deadline passed: CANCELLED');
is_deeply(pay_rows($o4), [ 'POINTS CANCELLED 1000', 'TRANSFER FAILED 2000' ],
    '... the points part CANCELLED, the transfer FAILED');
is(points($X), 1000, '... the points back');
is_deeply(ledger($X), [ 'SPEND -1000 0', 'RESTORE 1000 1000' ],
    '... ledger SPEND then RESTORE');
is(stock(3), $s3, '... stock back');

# ---------------------------------------------------------------------------
# 5. paying a pending order: points + balance, one transaction

my $Y = 35;
grant($Y, 1000);
$r = $t->post('/api/v1/balance/charge', { amount => 5000 }, user => $Y);
is($r->{status}, 200, 'balance charged') or diag($r->{body});
my $o5 = unpaid($Y);
my $b0 = balance($Y);
$r = pay($o5, $Y, [ pts(1000), bal(2000) ]);
is($r->{status}, 200, 'pay: points + balance: 200') or diag($r->{body});
is($r->{json}{status}, 'PAID', '... PAID');
is_deeply(pay_rows($o5), [ 'POINTS SUCCESS 1000', 'BALANCE SUCCESS 2000' ],
    '... two payment rows');
is(points($Y), 0, '... points spent');
is(balance($Y), $b0 - 2000, '... balance spent: 2000');

# ---------------------------------------------------------------------------
# 6. paying a pending order: points + card, the card part charged

my $Z = 36;
grant($Z, 1000);
my $o6 = unpaid($Z);
$r = pay($o6, $Z, [ pts(1000), card(2000) ]);
is($r->{status}, 202, 'pay: points + card: 202') or diag($r->{body});
is(points($Z), 0, '... the points taken when it begins');
$o = until_status($o6, $Z, 'PAID');
is($o->{status}, 'PAID', 'approved: PAID');
is_deeply(pay_rows($o6), [ 'POINTS SUCCESS 1000', 'CARD SUCCESS 2000' ],
    '... two payment rows');
is(0 + pg_txns($o6)->[0]{amount}, 2000, '... the PG charged 2000');

# ---------------------------------------------------------------------------
# 7. mismatched sums, short points, bad parts: nothing changed

my $M = 37;
grant($M, 500);
$r = $t->post('/api/v1/balance/charge', { amount => 5000 }, user => $M);
my $o7 = unpaid($M);
my $c0 = creates();
my $before = state();
for my $case (
    [ [ pts(500), bal(2000) ], 400, 'PAYMENT_AMOUNT_MISMATCH',
      'points 500 + balance 2000 on 3000' ],
    [ [ pts(500), card(3000) ], 400, 'PAYMENT_AMOUNT_MISMATCH',
      'points 500 + card 3000 on 3000' ],
    [ [ bal(2999) ], 400, 'PAYMENT_AMOUNT_MISMATCH', 'balance 2999 alone' ],
    [ [ pts(500) ], 400, 'PAYMENT_AMOUNT_MISMATCH', 'points 500 alone' ],
    [ [ pts(1000), bal(2000) ], 409, 'INSUFFICIENT_POINTS',
      'points 1000 of 500 + balance' ],
    [ [ pts(1000), card(2000) ], 409, 'INSUFFICIENT_POINTS',
      'points 1000 of 500 + card' ],
    [ [ pts(1000), easy(2000, 'KAKAOPAY') ], 409, 'INSUFFICIENT_POINTS',
      'points 1000 of 500 + easy pay' ],
    [ [], 400, 'INVALID_REQUEST', 'no part' ],
    [ [ pts(1), bal(1), bal(1) ], 400, 'INVALID_REQUEST', 'three parts' ],
    [ [ pts(1), { method => 'EASY_PAY', amount => 2 } ], 400,
      'INVALID_REQUEST', 'easy pay without provider' ],
    [ [ { method => 'POINTS' } ], 400, 'INVALID_REQUEST', 'no amount' ],
) {
    my ($parts, $status, $code, $name) = @$case;
    $r = pay($o7, $M, $parts);
    is_error($r, $status, $code, "pay with $name: $status $code");
}
is_deeply(state(), $before, 'nothing changed');
is(creates(), $c0, 'nothing sent to the PG');
is($t->psql("SELECT status FROM orders WHERE id = $o7"), 'PENDING_PAYMENT',
    'the order still PENDING_PAYMENT');

# ---------------------------------------------------------------------------
# 8. Idempotency-Key on the pay route with parts: paid once

my $K = 38;
grant($K, 2000);
$r = $t->post('/api/v1/balance/charge', { amount => 5000 }, user => $K);
my $o8 = unpaid($K);
$b0 = balance($K);
my %key = (headers => { 'Idempotency-Key' => 'mixpay-178-a' });
my $k1 = pay($o8, $K, [ pts(1000), bal(2000) ], %key);
is($k1->{status}, 200, 'points + balance with an Idempotency-Key: 200')
    or diag($k1->{body});
my $k2 = pay($o8, $K, [ pts(1000), bal(2000) ], %key);
is($k2->{status}, 200, '... again: 200');
is($k2->{headers}{'idempotent-replayed'}, 'true', '... replayed');
is($k2->{json}{id}, $o8, '... the same order');
is(points($K), 1000, '... the points spent once');
is(balance($K), $b0 - 2000, '... the balance spent once');
is_deeply(pay_rows($o8), [ 'POINTS SUCCESS 1000', 'BALANCE SUCCESS 2000' ],
    '... paid once');

# points + card on the pay route: one PG create, points taken once
my $L = 39;
grant($L, 1000);
my $o9 = unpaid($L);
$c0 = creates();
%key = (headers => { 'Idempotency-Key' => 'mixpay-178-b' });
$k1 = pay($o9, $L, [ pts(1000), card(2000) ], %key);
is($k1->{status}, 202, 'points + card with an Idempotency-Key: 202')
    or diag($k1->{body});
$k2 = pay($o9, $L, [ pts(1000), card(2000) ], %key);
is($k2->{status}, 202, '... again: 202');
is($k2->{headers}{'idempotent-replayed'}, 'true', '... replayed');
is($k2->{json}{id}, $o9, '... the same order');
is(creates() - $c0, 1, '... one PG create');
$o = until_status($o9, $L, 'PAID');
is($o->{status}, 'PAID', '... PAID');
is_deeply(ledger($L), [ 'SPEND -1000 0' ], '... the points spent once');
is_deeply(pay_rows($o9), [ 'POINTS SUCCESS 1000', 'CARD SUCCESS 2000' ],
    '... paid once');

$t->check_consistency;
$t->stop_nginx;
done_testing;
