#!/usr/bin/perl
# Net-cancel (망취소): the payment gateway (PG) approves a payment that can no
# longer be applied, so the module cancels it at the PG and records it.  The
# buyer is never charged for an order they do not get.
#
# Through the API an order whose card payment is pending is
# PAYMENT_IN_PROGRESS: the expiry job leaves it alone (checked first) and
# neither BALANCE nor another card can pay it.  An approval becomes
# unappliable when
#   - the payment was failed by commerce_payment_timeout before the PG
#     decided (3 s here; 10 minutes in production);
#   - the order was cancelled meanwhile (there is no cancel API: an
#     operator's UPDATE stands for a back office).
# Then:
#   - the cancel reaches the PG: transaction CANCELLED, payment recorded
#     (net_cancel DONE), metrics and the interface log count it;
#   - the cancel fails: it stays owed and the reconciler retries it;
#   - the approval's callback is lost after a payment timeout: the PG must
#     still not keep an approved transaction for an order we failed.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use PgSim;
use Time::HiRes qw(time sleep);

binmode(Test::More->builder->$_, ':utf8')
    for qw(output failure_output todo_output);

my $OK_CARD = '1111-1111-1111-1111';        # SUCCESS

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

my $sim = PgSim->start(seed => 83, failRate => 0, latencyMs => [0, 5],
    decisionMs => [100, 200], log => $t->dir . '/pgsim.log');
my $port = $sim->port;

$t->write_config($t->default_config(
    server_extra => 'location = /metrics { commerce_metrics; }',
    http_extra => <<"EOF"));
commerce_zone 1m;
upstream pg_a { server 127.0.0.1:$port; }
commerce_gateway pg_a upstream=pg_a timeout=1s connect_timeout=500ms window=10 min_calls=5 failure_rate=50 open=2s probes=2 probe_deadline=3s keepalive=8;
commerce_gateway_callback_url http://127.0.0.1:%%PORT%%/api/v1/payments/callback;
commerce_gateway_retries 3;
commerce_gateway_retry_base 50ms;
commerce_gateway_retry_cap 500ms;
commerce_gateway_retry_budget 20;
commerce_gateway_retry_budget_min 10;
commerce_reconcile_interval 500ms;
commerce_reconcile_age 1s;
commerce_reconcile_grace 3s;
commerce_payment_timeout 3s;
commerce_order_ttl 1s;
commerce_order_expiry_interval 500ms;
EOF
$t->start_nginx;

# ---------------------------------------------------------------------------
# helpers

sub card { { method => 'CARD', cardType => 'KB', cardNo => $_[0] } }
sub pg_order_id { sprintf '%06d', $_[0] }
sub stock { $t->psql("SELECT stock FROM products WHERE id = $_[0]") + 0 }
sub pg_txn { $sim->transactions(orderId => pg_order_id($_[0]))->[0] }

sub payment_row {
    return $t->psql_json("SELECT row_to_json(p) FROM payments p"
        . " WHERE id = $_[0]");
}

sub order_card {
    my ($user, $pid, $qty) = @_;
    my $r = $t->post('/api/v1/orders', { items => [ { productId => $pid,
        quantity => $qty } ], payment => card($OK_CARD) }, user => $user);
    die "card order: $r->{status} $r->{body}" unless $r->{status} == 202;
    return ($r->{json}{id}, $r->{json}{payment}{id});
}

sub metric_nc { $t->metric(undef, 'commerce_net_cancels_total',
    gateway => 'pg_a', outcome => $_[0]) }

sub cancel_rows {
    my ($payment_id) = @_;
    return $t->psql_json("SELECT coalesce(json_agg(l ORDER BY id), '[]')"
        . " FROM payment_interface_request_log l WHERE payment_id ="
        . " $payment_id AND operation = 'CANCEL'") // [];
}

# no approved, uncancelled transaction at the PG for the order
sub not_charged {
    my ($order_id) = @_;
    return !grep { $_->{status} eq 'SUCCESS' }
        @{ $sim->transactions(orderId => pg_order_id($order_id)) };
}

# ---------------------------------------------------------------------------
# 0. The expiry job leaves an order with a card payment in progress alone

$sim->control(decisionMs => [ 2000, 2000 ]);
my $s1 = stock(1);
my $unpaid = $t->post('/api/v1/orders', { items => [ { productId => 1,
    quantity => 1 } ] }, user => 40)->{json}{id};
my ($o0) = order_card(41, 1, 2);
is($t->wait_order($unpaid, user => 40, timeout => 5,
    until => sub { $_[0]{status} eq 'CANCELLED' })->{status}, 'CANCELLED',
    'an unpaid order expires after commerce_order_ttl (1 s)');
is($t->get("/api/v1/orders/$o0", user => 41)->{json}{status},
    'PAYMENT_IN_PROGRESS', 'the card order, older than the TTL, does not');
my $o = $t->wait_order($o0, user => 41, timeout => 5,
    until => sub { $_[0]{status} ne 'PAYMENT_IN_PROGRESS' });
is($o->{status}, 'PAID', 'the approval after 2 s makes it PAID');
is(stock(1), $s1 - 2, 'stock: the expired order released, the paid kept');
is($sim->counters->{cancel}, 0, 'no cancel needed');

# ---------------------------------------------------------------------------
# 1. The payment timed out while the PG still had it pending: the module
#    cancels the transaction at the PG when it gives up, so the PG can never
#    approve it later behind our back

$sim->control(decisionMs => [ 6500, 6500 ]);
my $s3 = stock(3);
my $t0 = time;
my ($o1, $p1) = order_card(42, 3, 2);
is(stock(3), $s3 - 2, 'stock reserved');

$o = $t->wait_order($o1, user => 42, timeout => 8,
    until => sub { $_[0]{status} ne 'PAYMENT_IN_PROGRESS' });
is($o->{status}, 'PAYMENT_FAILED', 'after the payment timeout: PAYMENT_FAILED');
is($o->{payment}{reason}, 'payment timeout', "reason 'payment timeout'");
ok(time - $t0 < 6.5, 'before the PG decided');
is(stock(3), $s3, 'stock released');

ok(wait_until(sub { (pg_txn($o1)->{status} // '') eq 'CANCELLED' },
    timeout => 6), 'the module cancelled the pending transaction at the PG');
my $txn = pg_txn($o1);
is($txn->{cancelledFrom}, 'PENDING', 'before the PG decided it');
is($txn->{cancelCount}, 1, 'cancelled once');
ok(scalar($t->grep_log(qr/\[warn\].*payment $p1 \(order $o1\) timed out/
    . qr/ while pending at pg_a: cancelling it/)), 'logged at warn');
sleep 7 - (time - $t0) if time - $t0 < 7;
is(pg_txn($o1)->{status}, 'CANCELLED', 'and the PG never approved it');

ok(wait_until(sub { (payment_row($p1)->{net_cancel} // '') eq 'DONE' },
    timeout => 3), 'the net-cancel is recorded (DONE)');
my $row = payment_row($p1);
is($row->{status}, 'FAILED', 'the payment stays FAILED');
is($row->{transaction_key}, $txn->{transactionKey}, 'with the PG\'s key');
$o = $t->get("/api/v1/orders/$o1", user => 42)->{json};
is($o->{status}, 'PAYMENT_FAILED', 'the order stays PAYMENT_FAILED');
is(stock(3), $s3, 'stock released exactly once');
my $rows = cancel_rows($p1);
is(scalar @$rows, 1, 'interface log: one CANCEL exchange');
is($rows->[0]{url}, "/api/v1/payments/$txn->{transactionKey}/cancel",
    'POST /api/v1/payments/{key}/cancel');
is($rows->[0]{http_status}, 200, 'answered 200');
is(metric_nc('ok'), 1, 'metrics: 1 net-cancel ok');
ok(not_charged($o1), 'the buyer is not charged');

# ---------------------------------------------------------------------------
# 2. The order is cancelled (back office) while the card payment is pending

$sim->control(decisionMs => [ 1500, 1500 ]);
my ($o2, $p2) = order_card(43, 5, 1);
$t->psql("UPDATE orders SET status = 'CANCELLED' WHERE id = $o2;"
    . " UPDATE products SET stock = stock + 1 WHERE id = 5");
my $s5 = stock(5);
ok(wait_until(sub { (pg_txn($o2)->{status} // '') eq 'CANCELLED' },
    timeout => 5), 'approved for a cancelled order: cancelled at the PG');
ok(wait_until(sub { (payment_row($p2)->{net_cancel} // '') eq 'DONE' },
    timeout => 3), 'recorded DONE');
$row = payment_row($p2);
is($row->{status}, 'CANCELLED', 'the payment is CANCELLED');
like($row->{reason} // '', qr/approved after the order became CANCELLED/,
    'with the reason');
$o = $t->get("/api/v1/orders/$o2", user => 43)->{json};
is($o->{status}, 'CANCELLED', 'the order stays CANCELLED');
is($o->{payment}{status}, 'CANCELLED', 'its payment shows CANCELLED');
is(stock(5), $s5, 'stock untouched');
is(metric_nc('ok'), 2, 'metrics: 2 net-cancels ok');
ok(not_charged($o2), 'the buyer is not charged');

# ---------------------------------------------------------------------------
# 3. The cancel fails at first: it stays owed, the reconciler retries it

$sim->control(decisionMs => [ 1000, 1000 ], opFailRate => { cancel => 1 });
my ($o3, $p3) = order_card(44, 7, 1);
$t->psql("UPDATE orders SET status = 'CANCELLED' WHERE id = $o3;"
    . " UPDATE products SET stock = stock + 1 WHERE id = 7");
ok(wait_until(sub { metric_nc('failed') >= 1 }, timeout => 5),
    'the net-cancel failed (the PG answers 500)');
$row = payment_row($p3);
is($row->{status}, 'SUCCESS', 'the payment is SUCCESS (approved)');
is($row->{net_cancel}, 'REQUIRED', 'with a net-cancel owed');
ok($row->{net_cancel_attempts} >= 1, 'attempts counted');
is(pg_txn($o3)->{status}, 'SUCCESS', 'the PG still holds the approval');
ok(scalar($t->grep_log(qr/net-cancel of payment $p3 at pg_a failed/)),
    'the failure is logged');
ok(wait_until(sub { (payment_row($p3)->{net_cancel_attempts} // 0) >= 2 },
    timeout => 8), 'the reconciler tries again');
is(pg_txn($o3)->{status}, 'SUCCESS', 'still failing');

$sim->control(opFailRate => { cancel => 0 });
ok(wait_until(sub { (payment_row($p3)->{net_cancel} // '') eq 'DONE' },
    timeout => 8), 'once the PG answers again, the owed cancel is done');
is(payment_row($p3)->{status}, 'CANCELLED', 'payment CANCELLED');
is(pg_txn($o3)->{status}, 'CANCELLED', 'transaction CANCELLED at the PG');
my @cr = map { $_->{http_status} } @{ cancel_rows($p3) };
ok(@cr >= 3 && $cr[-1] == 200 && !grep({ $_ != 500 } @cr[0 .. $#cr - 1]),
    'interface log: the failed cancels (500), then 200: ' . join(',', @cr));
ok(not_charged($o3), 'the buyer is not charged');

# ---------------------------------------------------------------------------
# 4. The payment timed out and the approval's callback is lost: the PG must
#    not keep the approval (the module cancels the transaction when it gives
#    up, or learns of the approval and net-cancels it)

$sim->control(decisionMs => [ 5000, 5000 ], callback => { mode => 'drop' });
my $s9 = stock(9);
my ($o4, $p4) = order_card(45, 9, 1);
$o = $t->wait_order($o4, user => 45, timeout => 8,
    until => sub { $_[0]{status} ne 'PAYMENT_IN_PROGRESS' });
is($o->{status}, 'PAYMENT_FAILED', 'payment timeout: PAYMENT_FAILED');
is(stock(9), $s9, 'stock released');
ok(wait_until(sub { my $x = pg_txn($o4); $x->{decidedAt}
    || $x->{status} eq 'CANCELLED' }, timeout => 6),
    'the PG decided (or the transaction was cancelled first)');
sleep 5;        # several reconciler rounds (interval 500 ms, lease 3 s)
$txn = pg_txn($o4);
diag("transaction at the PG: $txn->{status}"
    . ($txn->{cancelledFrom} ? " (from $txn->{cancelledFrom})" : '')
    . ", callbacks: " . scalar(@{ $txn->{callbacks} }));
ok(not_charged($o4), 'the buyer is not charged for the failed order'
    . ' (no approved transaction left at the PG)');
$sim->control(callback => { mode => 'normal' });

# ---------------------------------------------------------------------------

my $m = $t->metrics;
is($t->metric($m, 'commerce_gateway_requests_total', gateway => 'pg_a',
    op => 'cancel', outcome => 'accepted'), $sim->counters->{cancel}
    - $sim->counters->{cancel_404} - scalar(grep { $_ == 500 } @cr),
    "metrics: cancels accepted = the PG's successful cancels");
is($t->psql("SELECT count(*) FROM payments WHERE net_cancel = 'REQUIRED'"), 0,
    'no net-cancel left owed');
$t->check_consistency('database consistent');
$sim->stop;
$t->done;
