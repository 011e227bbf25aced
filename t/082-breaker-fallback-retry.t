#!/usr/bin/perl
# Resilience against a misbehaving payment gateway (PG): the circuit
# breaker, fallback to a second PG, retries and the retry budget, each
# driven by the simulator's fault controls and proven by its counters.
#
#   1. the breaker (window 10, min_calls 5, failure_rate 50, open 2 s,
#      2 probes): opens exactly at the threshold, logs every transition at
#      warn with its reason, rejects with 503 PG_UNAVAILABLE while open
#      without touching the PG or the database, half-opens after the open
#      time, admits exactly 2 probes, closes after them, re-opens on a
#      failed probe;
#   2. never stuck half-open: a probe that does not report within
#      probe_deadline re-opens it; its late result is ignored;
#   3. operator overrides: mode=forced_open rejects, mode=disabled admits
#      and never opens, back to normal;
#   4. fallback: pg_a refuses connections -> once its breaker opens, the
#      payments go to pg_b; with both open: 503, nothing written, the order
#      stays payable and a later payment succeeds;
#   5. retries: refused and 500 only, at most 3 creates per payment, never
#      for declines (decided or 400), timeouts or resets;
#   6. the retry budget: retries beyond the share are refused and counted.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use PgSim;
use JSON::PP;
use Time::HiRes qw(time sleep);

binmode(Test::More->builder->$_, ':utf8')
    for qw(output failure_output todo_output);

my $OK_CARD = '1111-1111-1111-1111';        # SUCCESS
my $LIMIT_CARD = '2222-2222-2222-2222';     # FAILED, limit exceeded
my $FAIL_CARD = '4444-4444-4444-4444';      # every create answers 500
my $HANG_CARD = '5555-5555-5555-5555';      # the create is never answered
my $RESET_CARD = '7777-7777-7777-7777';     # the create's connection reset

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

my %sim;
for my $n (qw(a b)) {
    $sim{$n} = PgSim->start(seed => 82, failRate => 0, latencyMs => [0, 5],
        decisionMs => [100, 200], log => $t->dir . "/pgsim-$n.log");
    $sim{$n}->control(cards => { $RESET_CARD => 'RESET' });
}
my ($A, $B) = @sim{qw(a b)};

# config(gateways => [ [ name, sim, params ], ... ], retries => N, ...)
sub config {
    my (%o) = @_;
    my $gw = '';
    for my $g (@{ $o{gateways} }) {
        my ($name, $sim, $params) = @$g;
        $gw .= "upstream $name { server 127.0.0.1:${\ $sim->port }; }\n"
            . "commerce_gateway $name upstream=$name $params;\n";
    }
    my $retries = $o{retries} // 3;
    my $budget = $o{budget} // 20;
    my $budget_min = $o{budget_min} // 10;
    return $t->default_config(
        server_extra => 'location = /metrics { commerce_metrics; }',
        http_extra => <<"EOF");
commerce_zone 1m;
$gw
commerce_gateway_callback_url http://127.0.0.1:%%PORT%%/api/v1/payments/callback;
commerce_gateway_retries $retries;
commerce_gateway_retry_base 50ms;
commerce_gateway_retry_cap 500ms;
commerce_gateway_retry_budget $budget;
commerce_gateway_retry_budget_min $budget_min;
commerce_reconcile_interval 500ms;
commerce_reconcile_age 1s;
commerce_reconcile_grace 3s;
commerce_payment_timeout 600s;
EOF
}

my $STD = 'timeout=1s connect_timeout=500ms window=10 min_calls=5'
    . ' failure_rate=50 open=2s probes=2 probe_deadline=3s keepalive=8';

# ---------------------------------------------------------------------------
# helpers

sub card { { method => 'CARD', cardType => 'KB', cardNo => $_[0] } }
sub pg_order_id { sprintf '%06d', $_[0] }
sub stock { $t->psql("SELECT stock FROM products WHERE id = $_[0]") + 0 }

my $next_user = 100;
# a new unpaid order (PENDING_PAYMENT): [ id, user ]
sub new_order {
    my ($pid, $qty) = @_;
    my $user = ++$next_user;
    my $r = $t->post('/api/v1/orders', { items => [ { productId => $pid // 1,
        quantity => $qty // 1 } ] }, user => $user);
    die "order: $r->{status} $r->{body}" unless $r->{status} == 201;
    return [ $r->{json}{id}, $user ];
}

sub pay {
    my ($o, $no, %x) = @_;
    return $t->post("/api/v1/orders/$o->[0]/payment", card($no),
        user => $o->[1], %x);
}

sub order_of { $t->get("/api/v1/orders/$_[0][0]", user => $_[0][1])->{json} }

sub state_of {
    my ($gw, $m) = @_;
    $m //= $t->metrics;
    my @on = grep { $t->metric($m, 'commerce_gateway_breaker_state',
        gateway => $gw, state => $_) } qw(closed open half_open forced_open
        disabled);
    return join ',', @on;
}

sub transitions_logged {
    my ($gw) = @_;
    return map { /circuit breaker for \Q$gw\E: (\S+ -> \S+): (.*?)(?:, client|$)/
        ? "$1: $2" : () } $t->grep_log(qr/\[warn\].*circuit breaker for \Q$gw\E:/);
}

sub is_unavailable {
    my ($r, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is_error($r, 503, 'PG_UNAVAILABLE', "$name: 503 PG_UNAVAILABLE");
    like($r->{headers}{'retry-after'} // '', qr/^\d+$/,
        "$name: with Retry-After");
}

sub creates { $_[0]->counters->{create} }

# a new configuration, served only once the old workers are gone (until
# they exit they may still accept a connection under the old one)
sub reload {
    my ($conf) = @_;
    my @old = $t->reload_nginx(config => $conf);
    ok($t->wait_pids_gone(\@old, timeout => 15), 'reloaded, old workers gone');
}

# ===========================================================================
# 1. The breaker, one call per payment (no retries), so calls are counted

$t->write_config(config(gateways => [ [ 'pg_a', $A, $STD ] ], retries => 1));
$t->start_nginx;

my @orders = map { new_order(1) } 1 .. 30;

# 3 successes and 2 failures: 40% of 5 calls, below 50%: closed
for my $i (0 .. 2) {
    is(pay($orders[$i], $OK_CARD)->{status}, 202, "call " . ($i + 1)
        . ': success (202)');
}
for my $i (3, 4) {
    my $r = pay($orders[$i], $FAIL_CARD);
    is_unavailable($r, 'call ' . ($i + 1) . ': the PG answers 500');
    is(order_of($orders[$i])->{status}, 'PENDING_PAYMENT',
        'the order is payable again');
}
is(state_of('pg_a'), 'closed', '2 failures of 5 calls (40%): closed');
is(creates($A), 5, 'the PG received 5 creates');

# the 6th call fails: 3 of 6 = 50% >= 50%: open
is_unavailable(pay($orders[5], $FAIL_CARD), 'call 6: the PG answers 500');
is(state_of('pg_a'), 'open', '3 failures of 6 calls (50%): open');
my $opened = time;
is_deeply([ transitions_logged('pg_a') ],
    [ 'closed -> open: failure rate 50% over last 6 calls >= 50%' ],
    'the transition is logged at warn with its reason');

# while open: 503 at once, nothing written, nothing sent
ok(wait_until(sub { $t->psql("SELECT count(*) FROM payments"
    . " WHERE status = 'PENDING'") == 0 }, timeout => 5),
    'no payment pending (the reconciler sends nothing)');
my $before = $t->db_state;
my $c0 = $A->counters;
for my $i (6 .. 9) {
    my $r = pay($orders[$i], $OK_CARD);
    is_unavailable($r, "open, payment $i");
    ok($r->{elapsed} < 0.5, 'answered at once');
}
is_unavailable($t->post('/api/v1/orders', { items => [ { productId => 2,
    quantity => 1 } ], payment => card($OK_CARD) }, user => 99),
    'open, create-and-pay');
is_deeply($t->db_state, $before, 'open: nothing written (no order, no payment)');
my $c1 = $A->counters;
is_deeply([ @$c1{qw(requests connections create)} ],
    [ @$c0{qw(requests connections create)} ],
    'open: the PG received nothing (requests, connections, creates)');

# after the open time: half-open, exactly 2 probes
my $wait = $opened + 2.1 - time;
sleep $wait if $wait > 0;
is(state_of('pg_a'), 'half_open', 'after open=2s: half_open');
$A->control(opLatencyMs => { create => [ 400, 400 ] });
$c0 = $A->counters;
my @probe = $t->concurrent([ map { [ 'POST',
    "/api/v1/orders/$orders[$_][0]/payment", card($OK_CARD),
    { user => $orders[$_][1] } ] } 10 .. 12 ]);
my @st = sort map { $_->{status} } @probe;
is_deeply(\@st, [ 202, 202, 503 ],
    'three payments at once while half-open: two probes admitted, one 503');
is(creates($A) - $c0->{create}, 2, 'the PG received exactly 2 creates');
my ($rej) = grep { $probe[$_]{status} == 503 } 0 .. 2;
is(order_of($orders[10 + $rej])->{status}, 'PENDING_PAYMENT',
    'the rejected order is still payable');
$A->control(opLatencyMs => { create => undef });
is(state_of('pg_a'), 'closed', 'both probes succeeded: closed');

# closed with an empty window: the 5th failure (min_calls) opens it
for my $i (13 .. 16) {
    is_unavailable(pay($orders[$i], $FAIL_CARD), "failure " . ($i - 12));
}
is(state_of('pg_a'), 'closed', '4 failures: below min_calls, still closed');
is_unavailable(pay($orders[17], $FAIL_CARD), 'failure 5');
is(state_of('pg_a'), 'open', 'the 5th failure (min_calls 5, 100%): open');
$opened = time;

# half-open again, a failed probe re-opens it
$wait = $opened + 2.1 - time;
sleep $wait if $wait > 0;
is(state_of('pg_a'), 'half_open', 'half_open again');
$c0 = $A->counters;
is_unavailable(pay($orders[18], $FAIL_CARD), 'a failing probe');
is(state_of('pg_a'), 'open', 'a failed probe re-opens the breaker');
is_unavailable(pay($orders[19], $OK_CARD), 'right after');
is(creates($A) - $c0->{create}, 1, 'only the probe reached the PG');

my @expected = (
    'closed -> open: failure rate 50% over last 6 calls >= 50%',
    'open -> half_open: open duration of 2000 ms elapsed',
    'half_open -> closed: 2 of 2 probes succeeded',
    'closed -> open: failure rate 100% over last 5 calls >= 50%',
    'open -> half_open: open duration of 2000 ms elapsed',
    'half_open -> open: probe 1 of 2 failed',
);
is_deeply([ transitions_logged('pg_a') ], \@expected,
    'every transition logged at warn with its reason, in order')
    or diag(explain([ transitions_logged('pg_a') ]));
my $m = $t->metrics;
my %tr = (closed_open => 2, open_half_open => 2, half_open_closed => 1,
    half_open_open => 1);
for my $k (sort keys %tr) {
    my ($from, $to) = $k =~ /^(closed|open|half_open)_(.*)$/;
    is($t->metric($m, 'commerce_gateway_breaker_transitions_total',
        gateway => 'pg_a', from => $from, to => $to), $tr{$k},
        "metrics: $from -> $to counted $tr{$k}");
}

# ===========================================================================
# 2. Never stuck half-open: a probe that never reports (here: a create that
#    hangs for 4 s, longer than probe_deadline=1500ms) expires

reload(config(retries => 1, gateways => [ [ 'pg_slow',
    $A, 'timeout=4s connect_timeout=500ms window=10 min_calls=5'
    . ' failure_rate=50 open=2s probes=2 probe_deadline=1500ms' ] ]));
@orders = map { new_order(1) } 1 .. 10;
is_unavailable(pay($orders[$_], $FAIL_CARD), "pg_slow failure " . ($_ + 1))
    for 0 .. 4;
is(state_of('pg_slow'), 'open', 'pg_slow: open');
$opened = time;
$wait = $opened + 2.1 - time;
sleep $wait if $wait > 0;
is(state_of('pg_slow'), 'half_open', 'pg_slow: half_open');

my $hung = $t->background(sub { pay($orders[5], $HANG_CARD)->{status} });
ok(wait_until(sub { $A->counters->{hung} >= 1 }, timeout => 3),
    'a probe is out: its create hangs at the PG');
my $probe_at = time;
sleep 0.3;
is(state_of('pg_slow'), 'half_open', 'still half_open with the probe out');
ok(wait_until(sub { state_of('pg_slow') eq 'open' }, timeout => 3),
    'the probe did not report within probe_deadline: open again');
my $expired_after = time - $probe_at;
# measured from when the test saw the create hang (polled), so a little
# after the probe really started: the deadline ran at about 1.5 s
ok($expired_after >= 1.0 && $expired_after < 2.5,
    sprintf('after about 1.5 s (%.2f s after the hang was seen)',
        $expired_after));
ok(wait_until(sub { state_of('pg_slow') eq 'half_open' }, timeout => 3),
    'and half_open again after the open time');
is(pay($orders[6], $OK_CARD)->{status}, 202, 'probe 1 succeeds');
is(pay($orders[7], $OK_CARD)->{status}, 202, 'probe 2 succeeds');
is(state_of('pg_slow'), 'closed', 'closed');
is($t->collect($hung, timeout => 10), 202,
    'the hung create timed out at last (202, left PENDING)');
is(state_of('pg_slow'), 'closed', 'its late failure is ignored: still closed');
is_deeply([ grep { /-> open/ } transitions_logged('pg_slow') ],
    [ 'closed -> open: failure rate 100% over last 5 calls >= 50%',
      'half_open -> open: probe 1 of 2 not reported within 1500 ms' ],
    'the expiry is logged with its reason');
# the hung probe's payment: nothing was created at the PG, so the reconciler
# fails it after the grace period (before pg_slow leaves the configuration)
is($t->wait_order($orders[5][0], user => $orders[5][1], timeout => 10,
    until => sub { $_[0]{status} ne 'PAYMENT_IN_PROGRESS' })->{status},
    'PAYMENT_FAILED', 'the hung probe\'s payment fails after the grace period');

# ===========================================================================
# 3. Operator overrides (nginx.conf, applied on reload)

reload(config(retries => 1, gateways => [ [ 'pg_a', $A,
    "$STD mode=forced_open" ] ]));
@orders = map { new_order(1) } 1 .. 14;
is(state_of('pg_a'), 'forced_open', 'mode=forced_open');
$c0 = $A->counters;
$before = $t->db_state(skip => [ 'payment_interface_request_log' ]);
is_unavailable(pay($orders[0], $OK_CARD), 'forced open');
is_unavailable(pay($orders[1], $OK_CARD), 'forced open, again');
is(creates($A), $c0->{create}, 'forced open: nothing sent');
is_deeply($t->db_state(skip => [ 'payment_interface_request_log' ]),
    $before, 'forced open: nothing written');
ok(scalar(grep { /-> forced_open: operator override/ }
    transitions_logged('pg_a')), 'the override is logged');

reload(config(retries => 1, gateways => [ [ 'pg_a', $A,
    "$STD mode=disabled" ] ]));
is(state_of('pg_a'), 'disabled', 'mode=disabled');
$c0 = $A->counters;
is_unavailable(pay($orders[$_], $FAIL_CARD), "disabled: failure " . ($_ - 1))
    for 2 .. 9;
is(state_of('pg_a'), 'disabled', '8 failures: the breaker never opens');
is(pay($orders[10], $OK_CARD)->{status}, 202, 'and admits the next payment');
is(creates($A) - $c0->{create}, 9, 'all 9 reached the PG');

reload(config(retries => 1, gateways => [ [ 'pg_a', $A,
    $STD ] ]));
is(state_of('pg_a'), 'closed', 'mode back to normal: closed');
is(pay($orders[11], $OK_CARD)->{status}, 202, 'payments go through');

# ===========================================================================
# 4. Fallback to a second PG (pg_a first, pg_b second)

reload(config(retries => 3, gateways => [
    [ 'pg_a', $A, 'timeout=1s connect_timeout=500ms window=10 min_calls=5'
      . ' failure_rate=50 open=10s probes=2 probe_deadline=3s' ],
    [ 'pg_b', $B, $STD ] ]));
@orders = map { new_order(3, 2) } 1 .. 10;
my $s3 = stock(3);
my $ca = $A->counters;
my $cb = $B->counters;

$A->control(refuse => 1);
# payment 1: pg_a still admits (closed): its 3 attempts are refused
my $r = pay($orders[0], $OK_CARD);
is_unavailable($r, 'pg_a refuses, payment 1 (3 attempts at pg_a)');
my $p = $t->psql_json("SELECT row_to_json(p) FROM payments p WHERE order_id"
    . " = $orders[0][0] ORDER BY id DESC LIMIT 1");
is($p->{status}, 'FAILED', 'its payment FAILED (nothing reached a PG)');
is($p->{reason}, 'payment gateway unavailable', 'reason');
is(order_of($orders[0])->{status}, 'PENDING_PAYMENT', 'order payable again');
is(state_of('pg_a'), 'closed', 'pg_a: 3 failures (< min_calls 5), closed');

# payment 2: 2 more refusals open pg_a; its 3rd attempt falls back to pg_b
$r = pay($orders[1], $OK_CARD);
is($r->{status}, 202, 'payment 2: 202 through pg_b');
is(state_of('pg_a'), 'open', 'pg_a: open');
$p = $t->psql_json("SELECT row_to_json(p) FROM payments p WHERE order_id"
    . " = $orders[1][0]");
is($p->{gateway}, 'pg_b', 'the payment names pg_b');
is($t->wait_order($orders[1][0], user => $orders[1][1],
    until => sub { $_[0]{status} eq 'PAID' })->{status}, 'PAID',
    'PAID through pg_b (its callback)');
my $tb = $B->transactions(orderId => pg_order_id($orders[1][0]));
is(scalar @$tb, 1, 'pg_b holds the transaction');
is($p->{transaction_key}, $tb->[0]{transactionKey}, 'with the recorded key');
like($tb->[0]{callbackUrl}, qr/\?gateway=pg_b$/, 'callback URL names pg_b');
# interface log rows are written beside the flow, not in its way
wait_until(sub { $t->psql("SELECT count(*) FROM payment_interface_request_log"
    . " WHERE payment_id = $p->{id} AND operation = 'CREATE'") >= 3 },
    timeout => 5);
my @att = $t->psql("SELECT attempt || ' ' || gateway || ' ' || coalesce("
    . "error, http_status::text) FROM payment_interface_request_log WHERE"
    . " payment_id = $p->{id} AND operation = 'CREATE' ORDER BY attempt, id");
is_deeply(\@att, [ '1 pg_a refused', '2 pg_a refused', '3 pg_b 200' ],
    'interface log: refused, refused, then pg_b');

# the next payments go straight to pg_b
for my $i (2, 3) {
    $cb = $B->counters;
    $r = pay($orders[$i], $OK_CARD);
    is($r->{status}, 202, "payment " . ($i + 1) . ': 202');
    is(creates($B) - $cb->{create}, 1, 'one create at pg_b');
    is($t->psql("SELECT gateway FROM payments WHERE order_id ="
        . " $orders[$i][0]"), 'pg_b', 'begun with pg_b');
}

# both unavailable: pg_b refuses too
ok(wait_until(sub { $t->psql("SELECT count(*) FROM payments"
    . " WHERE status = 'PENDING'") == 0 }, timeout => 5),
    'nothing pending');
$B->control(refuse => 1);
$r = pay($orders[4], $OK_CARD);
is_unavailable($r, 'both refuse: payment 5 (pg_a open, 3 attempts at pg_b)');
$r = pay($orders[5], $OK_CARD);
is_unavailable($r, 'payment 6 (2 refusals open pg_b)');
is(state_of('pg_b'), 'open', 'pg_b: open');
$before = $t->db_state;
$r = pay($orders[6], $OK_CARD);
is_unavailable($r, 'both open: payment 7');
ok($r->{elapsed} < 0.5, 'answered at once');
is_deeply($t->db_state, $before, 'both open: nothing written');
for my $o (@orders[4 .. 6]) {
    is(order_of($o)->{status}, 'PENDING_PAYMENT', "order $o->[0] stays"
        . ' payable (PENDING_PAYMENT)');
}
is(stock(3), $s3, 'its stock stays reserved');

# both PGs come back; pg_b half-opens first (open=2s); the same order pays
$A->control(refuse => 0);
$B->control(refuse => 0);
ok(wait_until(sub { state_of('pg_b') eq 'half_open' }, timeout => 5),
    'pg_b half_open');
is(state_of('pg_a'), 'open', 'pg_a still open (open=10s)');
$r = pay($orders[6], $OK_CARD);
is($r->{status}, 202, 'a later payment of the same order: 202');
is($t->wait_order($orders[6][0], user => $orders[6][1],
    until => sub { $_[0]{status} eq 'PAID' })->{status}, 'PAID',
    'the order is PAID');
is(stock(3), $s3, 'stock unchanged (reserved once, kept)');

# ===========================================================================
# 5. Retries: only what provably created nothing, at most 3 creates

reload(config(retries => 3, gateways => [ [ 'pg_a', $A,
    'timeout=1s connect_timeout=500ms window=100 min_calls=100'
    . ' failure_rate=50 open=2s probes=2 probe_deadline=3s' ] ]));
@orders = map { new_order(5) } 1 .. 10;
my $retries0 = $t->metric(undef, 'commerce_gateway_retries_total',
    gateway => 'pg_a');

# an order's create attempts in the interface log, in attempt order: each
# row is written on its own, on any connection, so ids need not follow the
# attempts; and beside the flow, so the answer may come before the last row
# is committed: wait (bounded) for the $n rows expected
sub create_rows {
    my ($order, $n) = @_;
    my $where = "FROM payment_interface_request_log WHERE order_id ="
        . " $order->[0] AND operation = 'CREATE'";
    wait_until(sub { $t->psql("SELECT count(*) $where") >= $n }, timeout => 5);
    return [ $t->psql("SELECT attempt || ' ' || coalesce(http_status::text,"
        . " error) $where ORDER BY attempt, id") ];
}

# 500 every time: 3 creates, then 503, the order payable
$c0 = $A->counters;
$r = pay($orders[0], $FAIL_CARD);
is_unavailable($r, '500, 500, 500');
is(creates($A) - $c0->{create}, 3, 'exactly 3 creates');
is_deeply(create_rows($orders[0], 3), [ '1 500', '2 500', '3 500' ],
    'interface log: attempts 1, 2, 3, each 500');
is(order_of($orders[0])->{status}, 'PENDING_PAYMENT', 'order payable again');
ok(scalar($t->grep_log(qr/attempt 1 failed, retrying in \d+ms/)),
    'the retry and its backoff are logged');

# 500 twice, then accepted: PAID
$A->control(failNext => 2);
$c0 = $A->counters;
$r = pay($orders[1], $OK_CARD);
is($r->{status}, 202, '500, 500, accepted: 202');
is(creates($A) - $c0->{create}, 3, '3 creates');
is_deeply(create_rows($orders[1], 3), [ '1 500', '2 500', '3 200' ],
    'interface log: 500, 500, 200');
is($t->wait_order($orders[1][0], user => $orders[1][1],
    until => sub { $_[0]{status} eq 'PAID' })->{status}, 'PAID', 'PAID');
is(scalar @{ $A->transactions(orderId => pg_order_id($orders[1][0])) }, 1,
    'one transaction at the PG: charged once');

# 500 once: 2 creates
$A->control(failNext => 1);
$c0 = $A->counters;
is(pay($orders[2], $OK_CARD)->{status}, 202, '500, accepted: 202');
is(creates($A) - $c0->{create}, 2, '2 creates');

# refused every time: 3 attempts, nothing reaches the PG
$A->control(refuse => 1);
$c0 = $A->counters;
$r = pay($orders[3], $OK_CARD);
is_unavailable($r, 'refused 3 times');
is_deeply(create_rows($orders[3], 3),
    [ '1 refused', '2 refused', '3 refused' ],
    'interface log: 3 refused attempts');
$A->control(refuse => 0);
is(creates($A), $c0->{create}, 'the PG received nothing');

# never retried: a decline decided later, a 400, a timeout, a reset
$c0 = $A->counters;
is(pay($orders[4], $LIMIT_CARD)->{status}, 202, 'LIMIT card: 202');
is(creates($A) - $c0->{create}, 1, 'LIMIT card: exactly 1 create');
is($t->wait_order($orders[4][0], user => $orders[4][1],
    until => sub { $_[0]{status} ne 'PAYMENT_IN_PROGRESS' })->{status},
    'PAYMENT_FAILED', 'LIMIT card: PAYMENT_FAILED, never retried');
is(creates($A) - $c0->{create}, 1, 'still 1 create');

$A->control(minOrderIdLength => 12);
$c0 = $A->counters;
$r = pay($orders[5], $OK_CARD);
is($r->{status}, 200, 'the PG answers 400: 200');
is($r->{json}{status}, 'PAYMENT_FAILED', 'PAYMENT_FAILED');
is(creates($A) - $c0->{create}, 1, '400: exactly 1 create');
$A->control(minOrderIdLength => 6);

$c0 = $A->counters;
$r = pay($orders[6], $HANG_CARD);
is($r->{status}, 202, 'timeout: 202');
is(creates($A) - $c0->{create}, 1, 'timeout: exactly 1 create');
$r = pay($orders[7], $RESET_CARD);
is($r->{status}, 202, 'reset: 202');
is(creates($A) - $c0->{create}, 2, 'reset: exactly 1 create');
is_deeply(create_rows($orders[6], 1), [ '1 timeout' ], 'timeout: one attempt');
is_deeply(create_rows($orders[7], 1), [ '1 broken' ], 'reset: one attempt');
sleep 1.2;
is(creates($A) - $c0->{create}, 2, 'neither is sent again');
is($t->metric(undef, 'commerce_gateway_retries_total', gateway => 'pg_a')
    - $retries0, 2 + 2 + 1 + 2, 'metrics: 7 retries');

# ===========================================================================
# 6. The retry budget: at most 20% of first attempts may be retries
#    (commerce_gateway_retry_budget 20, no per-second reserve)

reload(config(retries => 3, budget => 20,
    budget_min => 0, gateways => [ [ 'pg_r', $A, 'timeout=1s'
    . ' connect_timeout=500ms window=100 min_calls=100 failure_rate=50'
    . ' open=2s probes=2 probe_deadline=3s' ] ]));
@orders = map { new_order(7) } 1 .. 10;
my $gave_up0 = () = $t->grep_log(qr/gateway unavailable after 1 attempt\(s\)/);
$A->control(opLatencyMs => { create => [ 150, 150 ] });
$c0 = $A->counters;
my @res = $t->concurrent([ map { [ 'POST', "/api/v1/orders/$_->[0]/payment",
    card($FAIL_CARD), { user => $_->[1] } ] } @orders ]);
$A->control(opLatencyMs => { create => undef });
diag(explain([ map { $_->{raw} } grep { $_->{status} != 503 } @res ]));
is_deeply([ map { $_->{status} } @res ], [ (503) x 10 ],
    '10 payments at once against a failing PG: 503 each');
$m = $t->metrics;
is($t->metric($m, 'commerce_gateway_retries_total', gateway => 'pg_r'), 2,
    '10 first attempts allow 2 retries (20%)');
is($t->metric($m, 'commerce_gateway_retry_budget_exhausted_total',
    gateway => 'pg_r'), 10, 'the other 10 retries were refused by the budget');
is(creates($A) - $c0->{create}, 12, 'the PG received 10 + 2 creates');
is(scalar($t->grep_log(qr/gateway unavailable after 1 attempt\(s\)/))
    - $gave_up0, 8,
    '8 payments gave up after their first attempt');
for my $o (@orders) {
    is(order_of($o)->{status}, 'PENDING_PAYMENT', "order $o->[0] payable")
        if $o == $orders[0] || $o == $orders[-1];
}

$t->check_consistency('database consistent');
$_->stop for values %sim;
$t->done;
