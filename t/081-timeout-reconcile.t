#!/usr/bin/perl
# Timeouts and the reconciler: what happens when the payment gateway (PG)
# does not answer, answers too late, or never calls back.
#
#   - the create times out but the transaction exists at the PG
#     (hangAfterCreate): 202, payment PENDING without a key; the reconciler
#     finds it with GET ?orderId= and settles it (and a callback that comes
#     before the key is known changes nothing by itself);
#   - the callback is dropped: the reconciler settles by key (approval and
#     decline), not before commerce_reconcile_age;
#   - the PG's status GET fails for a while: the payment waits, then settles;
#   - the request never arrived (the PG hangs before creating, or resets the
#     connection): PENDING until commerce_reconcile_grace, then FAILED,
#     order PAYMENT_FAILED, stock released once;
#   - a timed-out or reset create is never sent again (the PG counts 1);
#   - a payment older than commerce_payment_timeout is failed.

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

my $LIMIT = '한도초과입니다. 다른 카드를 선택해주세요.';
my $NEVER = 'payment request never reached the gateway';
my $KEY_RE = qr/\A\d{8}:TR:[0-9a-f]{6}\z/;

my $OK_CARD = '1111-1111-1111-1111';        # SUCCESS
my $LIMIT_CARD = '2222-2222-2222-2222';     # FAILED, limit exceeded
my $PENDING_CARD = '6666-6666-6666-6666';   # never decided
my $HANG_CARD = '5555-5555-5555-5555';      # the PG never answers the create
my $RESET_CARD = '7777-7777-7777-7777';     # the PG resets the connection

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

my $sim = PgSim->start(seed => 81, failRate => 0, latencyMs => [0, 5],
    decisionMs => [200, 400], log => $t->dir . '/pgsim.log');
$sim->control(cards => { $PENDING_CARD => 'PENDING', $RESET_CARD => 'RESET' });

sub config {
    my (%o) = @_;
    my $port = $sim->port;
    my $ptimeout = $o{payment_timeout} // '600s';
    return $t->default_config(
        server_extra => 'location = /metrics { commerce_metrics; }',
        http_extra => <<"EOF");
commerce_zone 1m;
upstream pg_a { server 127.0.0.1:$port; }
commerce_gateway pg_a upstream=pg_a timeout=1s connect_timeout=500ms window=100 min_calls=100 failure_rate=50 open=2s probes=2 probe_deadline=3s keepalive=8;
commerce_gateway_callback_url http://127.0.0.1:%%PORT%%/api/v1/payments/callback;
commerce_gateway_retries 3;
commerce_gateway_retry_base 50ms;
commerce_gateway_retry_cap 500ms;
commerce_gateway_retry_budget 20;
commerce_gateway_retry_budget_min 10;
commerce_reconcile_interval 500ms;
commerce_reconcile_age 1s;
commerce_reconcile_grace 3s;
commerce_payment_timeout $ptimeout;
EOF
}

$t->write_config(config());
$t->start_nginx;

# ---------------------------------------------------------------------------
# helpers

sub card { { method => 'CARD', cardType => $_[1] // 'KB', cardNo => $_[0] } }
sub pg_order_id { sprintf '%06d', $_[0] }
sub stock { $t->psql("SELECT stock FROM products WHERE id = $_[0]") + 0 }
sub pg_txns { $sim->transactions(orderId => pg_order_id($_[0])) }

sub payment_row {
    return $t->psql_json("SELECT row_to_json(p) FROM payments p"
        . " WHERE id = $_[0]");
}

sub log_rows {
    return $t->psql_json("SELECT coalesce(json_agg(l ORDER BY id), '[]')"
        . " FROM payment_interface_request_log l WHERE payment_id = $_[0]")
        // [];
}

sub order_card {
    my ($user, $pid, $qty, $no) = @_;
    return $t->post('/api/v1/orders', { items => [ { productId => $pid,
        quantity => $qty } ], payment => card($no) }, user => $user);
}

# polls the order until it leaves PAYMENT_IN_PROGRESS; returns it and when
# that was first seen
sub wait_decided {
    my ($id, $user, %o) = @_;
    my $o = $t->wait_order($id, user => $user, timeout => $o{timeout} // 15,
        interval => 0.05,
        until => sub { $_[0]{status} ne 'PAYMENT_IN_PROGRESS' });
    return wantarray ? ($o, time) : $o;
}

sub settled { $t->metric(undef, 'commerce_payments_settled_total',
    outcome => $_[0]) }

# ---------------------------------------------------------------------------
# 1. The create times out, yet the transaction exists at the PG

$sim->control(hangAfterCreate => 1, callback => { mode => 'drop' });
my $c0 = $sim->counters;
my $s3 = stock(3);
my $t0 = time;
my $r = order_card(31, 3, 2, $OK_CARD);
my $took = time - $t0;
is($r->{status}, 202, 'create timed out: 202 all the same');
ok($took >= 0.9 && $took < 3, sprintf('answered after the 1 s gateway'
    . ' timeout (%.2f s)', $took));
is($r->{json}{status}, 'PAYMENT_IN_PROGRESS', 'order PAYMENT_IN_PROGRESS');
is($r->{json}{payment}{status}, 'PENDING', 'payment PENDING');
my $o1 = $r->{json}{id};
my $p1 = $r->{json}{payment}{id};
# the create itself gave no key (the reconciler, 1 s later, may have found
# it by now: that is section 2)
ok(wait_until(sub { $t->psql("SELECT count(*) FROM"
    . " payment_interface_request_log WHERE payment_id = $p1 AND operation"
    . " = 'CREATE' AND error = 'timeout' AND http_status IS NULL") == 1 },
    timeout => 5), 'the create timed out: no answer, no transaction key');
is(stock(3), $s3 - 2, 'stock reserved');
ok(scalar($t->grep_log(qr/\[warn\].*payment $p1 left PENDING after timeout/)),
    'logged at warn: left PENDING after timeout');

my $c1 = $sim->counters;
is($c1->{create} - $c0->{create}, 1, 'the PG received one create');
is($c1->{created} - $c0->{created}, 1, 'and created the transaction');

my $o = wait_decided($o1, 31);
is($o->{status}, 'PAID', 'the reconciler found it by orderId: PAID');
is($o->{payment}{status}, 'SUCCESS', 'payment SUCCESS');
is(stock(3), $s3 - 2, 'stock kept');
my $txn = pg_txns($o1);
is(scalar @$txn, 1, 'one transaction at the PG');
is(payment_row($p1)->{transaction_key}, $txn->[0]{transactionKey},
    'its key recorded from the list');

my @rows = @{ log_rows($p1) };
my ($create) = grep { $_->{operation} eq 'CREATE' } @rows;
my @list = grep { $_->{operation} eq 'LIST' } @rows;
is($create->{error}, 'timeout', 'interface log: the create timed out');
is($create->{http_status}, undef, 'with no status');
ok($create->{latency_ms} >= 900, "and its latency ($create->{latency_ms} ms)");
ok(@list >= 1, 'interface log: the reconciler listed by orderId');
is($list[-1]{url}, '/api/v1/payments?orderId=' . pg_order_id($o1),
    'GET /api/v1/payments?orderId=<padded id>');
is($list[-1]{http_status}, 200, 'answered 200');
is($sim->counters->{create} - $c0->{create}, 1,
    'the timed-out create was never sent again');

# the same, a decline whose callback comes before the key is known: the
# callback alone finds no payment; the reconciler settles it
$sim->control(callback => { mode => 'normal' });
my $s5 = stock(5);
$c0 = $sim->counters;
$r = order_card(32, 5, 3, $LIMIT_CARD);
is($r->{status}, 202, 'decline, create timed out: 202');
my $o2 = $r->{json}{id};
ok($sim->wait_counters(sub { $_[0]{callbacks_sent} > $c0->{callbacks_sent} },
    timeout => 5), 'the PG called back');
($o) = wait_decided($o2, 32);
is($o->{status}, 'PAYMENT_FAILED', 'settled PAYMENT_FAILED');
is($o->{payment}{reason}, $LIMIT, 'with the reason');
is(stock(5), $s5, 'stock released');
ok((grep { $_->{operation} eq 'LIST' } @{ log_rows($r->{json}{payment}{id}) }),
    'by the reconciler (a LIST exchange)');
is($sim->counters->{create} - $c0->{create}, 1, 'one create');
$sim->control(hangAfterCreate => 0);

# ---------------------------------------------------------------------------
# 2. The callback is dropped: the reconciler settles by key

$sim->control(callback => { mode => 'drop' });
my $s7 = stock(7);
$c0 = $sim->counters;
my %dropped;
for my $no ($OK_CARD, $LIMIT_CARD) {
    my $t1 = time;
    $r = order_card(33, 7, 1, $no);
    is($r->{status}, 202, "card ...${\ substr($no, -4)}: 202");
    ok(time - $t1 < 0.8, 'answered at once');
    $dropped{$no} = { order => $r->{json}{id}, payment => $r->{json}{payment}{id},
        at => $t1 };
}
for my $no ($OK_CARD, $LIMIT_CARD) {
    my $d = $dropped{$no};
    like(payment_row($d->{payment})->{transaction_key} // '', $KEY_RE,
        'the key was recorded from the create answer');
    my ($od, $when) = wait_decided($d->{order}, 33);
    is($od->{status}, $no eq $OK_CARD ? 'PAID' : 'PAYMENT_FAILED',
        "callback dropped: the reconciler settled it $od->{status}");
    ok($when - $d->{at} >= 0.9, sprintf('not before commerce_reconcile_age'
        . ' (%.2f s)', $when - $d->{at}));
    my @st = grep { $_->{operation} eq 'STATUS' } @{ log_rows($d->{payment}) };
    ok(@st >= 1, 'by a status GET');
    like($st[-1]{url} // '', qr{^/api/v1/payments/\d{8}:TR:[0-9a-f]{6}$},
        'GET /api/v1/payments/{transactionKey}');
}
is($t->get("/api/v1/orders/$dropped{$LIMIT_CARD}{order}", user => 33)
    ->{json}{payment}{reason}, $LIMIT, 'the decline reason is shown');
is(stock(7), $s7 - 1, 'stock: the approved kept, the declined released');
my $c2 = $sim->counters;
is($c2->{callbacks_dropped} - $c0->{callbacks_dropped}, 2,
    'the PG dropped both callbacks');
is($c2->{create} - $c0->{create}, 2, 'one create each');

# ---------------------------------------------------------------------------
# 3. The PG's status GET fails for a while: the payment waits

$sim->control(opFailRate => { get => 1 });
$c0 = $sim->counters;
$t0 = time;
$r = order_card(34, 9, 1, $OK_CARD);
my $o3 = $r->{json}{id};
ok($sim->wait_counters(sub { $_[0]{get} >= $c0->{get} + 1 }, timeout => 6),
    'the reconciler asked (and got a 500)');
sleep 1;
is($t->get("/api/v1/orders/$o3", user => 34)->{json}{status},
    'PAYMENT_IN_PROGRESS', 'a failing status GET changes nothing');
$sim->control(opFailRate => { get => 0 });
($o) = wait_decided($o3, 34);
is($o->{status}, 'PAID', 'once the PG answers again: PAID');
is($sim->counters->{create} - $c0->{create}, 1, 'still one create');
$sim->control(callback => { mode => 'normal' });

# ---------------------------------------------------------------------------
# 4. The request never arrived: hang before creating, or reset

my $s11 = stock(11);
my $not_found0 = settled('not_found');
$c0 = $sim->counters;
$t0 = time;
my @never = $t->concurrent([
    [ 'POST', '/api/v1/orders', { items => [ { productId => 11,
      quantity => 2 } ], payment => card($HANG_CARD) }, { user => 35 } ],
    [ 'POST', '/api/v1/orders', { items => [ { productId => 11,
      quantity => 3 } ], payment => card($RESET_CARD) }, { user => 36 } ],
]);
my %never = (hang => $never[0], reset => $never[1]);
for my $k (qw(hang reset)) {
    is($never{$k}{status}, 202, "$k: 202 (it may have arrived)")
        or diag($never{$k}{body});
    is($never{$k}{json}{payment}{status}, 'PENDING', "$k: payment PENDING");
}
ok($never{hang}{elapsed} >= 0.9, sprintf('hang: answered after the timeout'
    . ' (%.2f s)', $never{hang}{elapsed}));
is(stock(11), $s11 - 5, 'stock reserved for both');
my $p_reset = $never{reset}{json}{payment}{id};
ok(scalar($t->grep_log(qr/\[warn\].*payment $p_reset left PENDING after broken/)),
    'reset: logged at warn as broken, left PENDING');

$c1 = $sim->counters;
is($c1->{create} - $c0->{create}, 2, 'the PG read both creates');
is($c1->{hung} - $c0->{hung}, 1, 'one hung');
is($c1->{reset} - $c0->{reset}, 1, 'one reset');
is($c1->{created} - $c0->{created}, 0, 'and created nothing');

# before the grace period: still PENDING
my $left = $t0 + 2.2 - time;
sleep $left if $left > 0;
for my $k (qw(hang reset)) {
    my $x = $t->get("/api/v1/orders/$never{$k}{json}{id}",
        user => $k eq 'hang' ? 35 : 36)->{json};
    is($x->{status}, 'PAYMENT_IN_PROGRESS', "$k: still in progress at 2.2 s"
        . ' (grace 3 s)');
}
ok($sim->counters->{list_404} > $c0->{list_404},
    'the reconciler already asked: the PG knows nothing of them (404)');

for my $k (qw(hang reset)) {
    my $u = $k eq 'hang' ? 35 : 36;
    my ($x, $when) = wait_decided($never{$k}{json}{id}, $u, timeout => 15);
    is($x->{status}, 'PAYMENT_FAILED', "$k: after the grace period"
        . ' PAYMENT_FAILED');
    is($x->{payment}{status}, 'FAILED', "$k: payment FAILED");
    is($x->{payment}{reason}, $NEVER, "$k: reason '$NEVER'");
    ok($when - $t0 >= 2.9, sprintf("$k: not before the grace period"
        . ' (%.2f s)', $when - $t0));
}
is(stock(11), $s11, 'stock released for both');
sleep 1.5;      # another reconciler round or two: nothing more happens
is(stock(11), $s11, 'released exactly once');
is(settled('not_found') - $not_found0, 2, 'metrics: 2 settled not_found');
my $c3 = $sim->counters;
is($c3->{create} - $c0->{create}, 2, 'neither create was ever sent again');
is($c3->{created} - $c0->{created}, 0, 'nothing was created at the PG');

# ---------------------------------------------------------------------------
# 5. The payment timeout (seed 003: 10 minutes; 3 s here)

my @old_workers = $t->reload_nginx(config => config(payment_timeout => '3s'));
ok($t->wait_pids_gone(\@old_workers, timeout => 15),
    'reloaded with commerce_payment_timeout 3s, old workers gone');
my $timeout0 = settled('timeout');
my $s13 = stock(13);
$c0 = $sim->counters;
$t0 = time;
$r = order_card(37, 13, 1, $PENDING_CARD);
is($r->{status}, 202, 'a card the PG never decides: 202');
my $o5 = $r->{json}{id};
($o, my $when) = wait_decided($o5, 37, timeout => 15);
is($o->{status}, 'PAYMENT_FAILED', 'after commerce_payment_timeout:'
    . ' PAYMENT_FAILED');
is($o->{payment}{reason}, 'payment timeout', "reason 'payment timeout'");
ok($when - $t0 >= 2.9, sprintf('not before the timeout (%.2f s)',
    $when - $t0));
is(stock(13), $s13, 'stock released');
is(settled('timeout') - $timeout0, 1, 'metrics: 1 settled timeout');
is($sim->counters->{create} - $c0->{create}, 1, 'one create');

# ---------------------------------------------------------------------------
# the whole story in the metrics

my $m = $t->metrics;
my $c = $sim->counters;
my $sent = 0;
$sent += $t->metric($m, 'commerce_gateway_requests_total', gateway => 'pg_a',
    op => 'create', outcome => $_) for qw(accepted declined error timeout
    broken);
is($sent, $c->{create}, "creates by outcome add up to the PG's ($sent)");
is($t->metric($m, 'commerce_gateway_requests_total', gateway => 'pg_a',
    op => 'create', outcome => 'timeout'), 3, 'create timeouts: 3');
is($t->metric($m, 'commerce_gateway_requests_total', gateway => 'pg_a',
    op => 'create', outcome => 'broken'), 1, 'create broken (reset): 1');
is($t->metric($m, 'commerce_gateway_retries_total', gateway => 'pg_a'), 0,
    'no retries: a timeout or a reset is never retried');
ok($t->metric($m, 'commerce_reconciler_runs_total') > 10,
    'the reconciler ran');
ok(wait_until(sub { $t->metric(undef, 'commerce_payments_pending') == 0 },
    timeout => 3), 'metrics: nothing pending now');
is($t->psql("SELECT count(*) FROM payments WHERE status = 'PENDING'"), 0,
    'no PENDING payment left');

$t->check_consistency('database consistent');
$sim->stop;
$t->done;
