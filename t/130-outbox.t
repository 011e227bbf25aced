#!/usr/bin/perl
# The outbox and its relay to a data platform (issue 10, sections 1, 2, 5),
# against t/dpsim, a data-platform simulator:
#
#   - every event is a row of outbox written with its change: an order
#     created and paid at once is order.created + order.paid, in that order;
#     a signup, a coupon issue, a withdrawal are user.signed_up,
#     coupon.issued, user.withdrawn; an expired order is order.expired;
#   - 100 paid orders at once: the platform has 100 distinct order.paid ids
#     within 5 s, each with its Idempotency-Key = the event id, and every
#     order's order.created before its order.paid;
#   - 503 twice, then delivered on attempt 3, with backoff gaps (retry_base
#     200ms: the first gap at least 100 ms, the second at least 200 ms);
#   - always 500: 4 attempts, then dead (DLQ row: attempts 4, the last
#     error, the times); GET /admin/events/dead lists it; the replay
#     delivers it once more; the replay is audited;
#   - a poison 400 for a type: dead after 1 attempt; replay-all by type;
#   - the platform refusing connections for 8 s while 40 orders are paid:
#     nothing is attempted while its breaker is open (only probes, which
#     are not the events' attempts, nor are refused connections before it
#     opens), the backlog drains after it, nothing
#     is lost.  8 s and not 30: while the breaker is open no event's
#     attempt is spent, so a longer outage only adds probes (one per open=
#     period); the test checks that no event used more than one attempt;
#   - the response never waits for delivery: with the platform hanging,
#     create+pay answers as fast as with it healthy (best of 5);
#   - no PII (email, name, phone, card number) in any payload or the log;
#   - admin API: ADMIN only, bad input 4xx JSON; metrics by sink and type.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use CommerceTest;
use DpSim;

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

my $dp = DpSim->start(log => $t->dir . '/dpsim.log');
my $keys = $t->account_keys;
my $dpport = $dp->port;

my $conf = $t->default_config(
    main_extra => $t->account_main,
    server_extra => 'location = /metrics { commerce_metrics; }',
    http_extra => <<"EOF");
$keys
commerce_zone 1m;
commerce_order_ttl 2s;
commerce_order_expiry_interval 1s;
upstream dp { server 127.0.0.1:$dpport; }
commerce_event_sink dp http upstream=dp events=order.*,payment.*,coupon.*,user.*
    connect_timeout=500ms timeout=1s retry_base=200ms retry_cap=2s open=1s
    interval=100ms;
EOF
$t->write_config($conf);
$t->start_nginx;

my $ADMIN = $t->token(2, role => 'ADMIN');

ok(wait_until(sub { $t->psql(q{SELECT count(*) FROM outbox_sink
    WHERE name = 'dp'}) == 1 }, timeout => 20),
    'the relay registered its sink');

sub outbox {
    my ($where) = @_;
    my $rows = $t->psql_json(qq{SELECT coalesce(json_agg(x ORDER BY x.seq), '[]')
        FROM (SELECT o.seq, o.id, o.type, o.aggregate_type, o.aggregate_id,
                     o.payload, d.state, d.attempts, d.last_error
                FROM outbox o LEFT JOIN outbox_delivery d
                  ON d.seq = o.seq AND d.sink = 'dp'
               WHERE $where) x});
    return $rows;
}

sub order_events { outbox("o.aggregate_type = 'order' AND o.aggregate_id = $_[0]") }

sub pending { 0 + $t->psql(q{SELECT count(*) FROM outbox_delivery
    WHERE state = 'PENDING'}) }

sub drained { wait_until(sub { pending() == 0 }, timeout => $_[0] // 20) }

sub buy {
    my ($user, %o) = @_;
    my $r = $t->post('/api/v1/orders', { items => [ { productId => 1 + $user % 200,
        quantity => 1 } ], ($o{pay} // 1 ? (payment => { method => 'BALANCE' }) : ()) },
        user => $user);
    return $r;
}

sub requests_for {
    my ($id) = @_;
    return [ grep { ($_->{id} // '') eq $id } @{ $dp->stats->{received} } ];
}

# --- §1: the rows -----------------------------------------------------------

my $r = buy(5);
is($r->{status}, 201, 'an order created and paid');
my $oid = $r->{json}{id};
my $ev = order_events($oid);
is_deeply([ map { $_->{type} } @$ev ], [ 'order.created', 'order.paid' ],
    'created and paid at once: order.created, order.paid, in that order');
is($ev->[1]{payload}{paymentMethod}, 'BALANCE', 'order.paid says how');
is($ev->[1]{payload}{paymentAmount}, $r->{json}{paymentAmount},
    'and the amount paid');
is_deeply($ev->[1]{payload}{items}, [ { productId => 6, name => 'Product 6',
    quantity => 1, unitPrice => $r->{json}{items}[0]{unitPrice},
    amount => $r->{json}{items}[0]{amount} } ], 'and the items');
like($ev->[0]{id}, qr/^[0-9a-f-]{36}$/, 'the event id is a UUID');
ok(drained(), 'delivered');
is(scalar @{ requests_for($ev->[1]{id}) }, 1, 'the platform got order.paid once');
is(requests_for($ev->[1]{id})->[0]{key}, $ev->[1]{id},
    'with Idempotency-Key = the event id');

# an order left unpaid expires (commerce_order_ttl 2s)
$r = buy(6, pay => 0);
my $expiring = $r->{json}{id};
ok(wait_until(sub { grep { $_->{type} eq 'order.expired' }
    @{ order_events($expiring) } }, timeout => 15), 'an unpaid order: order.expired');
is_deeply([ map { $_->{type} } @{ order_events($expiring) } ],
    [ 'order.created', 'order.expired' ], '... after its order.created');

# --- 100 paid orders at once: 100 distinct order.paid within 5 s ------------

ok(drained(), 'nothing pending');
$dp->reset;
my $t0 = time;
my @res = $t->concurrent([ map { [ POST => '/api/v1/orders',
    { items => [ { productId => 1 + $_ % 200, quantity => 1 } ],
      payment => { method => 'BALANCE' } }, { user => 100 + $_ } ] } 1 .. 100 ]);
is_deeply(tally(@res), { 201 => 100 }, '100 orders paid');
my %ids = map { $_->{json}{id} => 1 } @res;
my $got = wait_until(sub {
    my %paid = map { $_->{id} => 1 } grep { ($_->{status} // 0) =~ /^20/ }
        @{ $dp->received('order.paid') };
    return keys(%paid) >= 100 ? time : 0 }, timeout => 15, interval => 0.05);
ok($got && $got - $t0 <= 5, sprintf('the platform has 100 distinct order.paid '
    . 'within 5 s (%.2f s)', ($got || time) - $t0));
my $recv = $dp->received;
my %paid_ids = map { $_->{id} => 1 } grep { $_->{type} eq 'order.paid' } @$recv;
is(scalar keys %paid_ids, 100, 'exactly 100 distinct order.paid ids');
is_deeply([ sort { $a <=> $b } map { $_->{aggregateId} }
    grep { $_->{type} eq 'order.paid' } @$recv ], [ sort { $a <=> $b } keys %ids ],
    'one per order');
my %first;
my $order_ok = 1;
for my $e (@$recv) {
    next unless $e->{aggregateType} eq 'order';
    $first{$e->{aggregateId}} //= $e->{type};
}
$order_ok &&= ($first{$_} // '') eq 'order.created' for keys %ids;
ok($order_ok, "every order's order.created reached the platform before its order.paid");
ok(!grep({ $_->{key} ne $_->{id} } @$recv), 'every request keyed by its event id');

# --- 503 twice, then delivered on attempt 3, with backoff gaps --------------

ok(drained(), 'nothing pending');
$dp->reset;
$dp->control(failCount => 2, failStatus => 503);
$r = buy(7, pay => 0);
my ($created) = @{ order_events($r->{json}{id}) };
ok(wait_until(sub { ($created = order_events($r->{json}{id})->[0])->{state}
    eq 'DELIVERED' }, timeout => 10), '503 twice: delivered');
my $req = requests_for($created->{id});
is_deeply([ map { $_->{status} } @$req ], [ 503, 503, 202 ],
    'the platform saw 503, 503, then 202');
is($created->{attempts}, 3, 'on attempt 3');
my @gap = ($req->[1]{at} - $req->[0]{at}, $req->[2]{at} - $req->[1]{at});
ok($gap[0] >= 0.1 && $gap[1] >= 0.2, sprintf('backoff gaps %.3f s >= 0.1, '
    . '%.3f s >= 0.2 (retry_base 200ms, half of it at least)', @gap));
ok($gap[0] < 2 && $gap[1] < 2, 'and bounded by retry_cap');

# --- always 500: 4 attempts, then dead; replay ------------------------------

ok(drained(), 'nothing pending');
$dp->reset;
$dp->control(alwaysStatus => 500);
$r = buy(8, pay => 0);
my $dead_order = $r->{json}{id};
# this unpaid order must not expire (commerce_order_ttl 2s) while the
# platform answers 500: its order.expired would die too, and the DLQ checks
# below found it there once (a loaded machine made this phase last > 2 s)
$t->psql("UPDATE orders SET created_at = now() + interval '1 hour'"
    . " WHERE id = $dead_order");
ok(wait_until(sub { order_events($dead_order)->[0]{state} eq 'DEAD' },
    timeout => 15), 'always 500: dead');
my ($dead) = @{ order_events($dead_order) };
is(scalar @{ requests_for($dead->{id}) }, 4, '4 attempts (1 + 3 retries)');
is($dead->{attempts}, 4, 'the DLQ row keeps the attempts');
is($dead->{last_error}, 'HTTP 500', 'and the last error');
$dp->control(alwaysStatus => undef);

$r = $t->get('/api/v1/admin/events/dead', token => $ADMIN);
is($r->{status}, 200, 'GET /admin/events/dead');
my ($item) = grep { $_->{eventId} eq $dead->{id} } @{ $r->{json}{items} };
ok($item, 'lists the dead event');
is_deeply([ map { $item->{$_} } qw(sink type aggregateType aggregateId attempts lastError) ],
    [ 'dp', 'order.created', 'order', $dead_order, 4, 'HTTP 500' ], '... with what it needs');
ok($item->{firstAttemptAt} && $item->{lastAttemptAt} && $item->{deadAt},
    '... and the times');

$r = $t->post("/api/v1/admin/events/dead/$item->{id}/replay", {}, token => $ADMIN);
is_response($r, 200, { replayed => 1, ids => [ json_num($item->{id}) ] }, 'replay');
ok(wait_until(sub { order_events($dead_order)->[0]{state} eq 'DELIVERED' },
    timeout => 10), 'the replayed event is delivered');
is_deeply([ map { $_->{status} } @{ requests_for($dead->{id}) } ], [ 500, 500, 500, 500, 202 ],
    'once more');
is($t->psql(q{SELECT count(*) FROM audit_log WHERE event = 'EVENT_REPLAY' AND actor_id = 2}),
    1, 'the replay is audited');
is_error($t->post("/api/v1/admin/events/dead/$item->{id}/replay", {}, token => $ADMIN),
    404, 'DEAD_EVENT_NOT_FOUND', 'replaying it again: not dead any more');

# --- a poison 400: dead after 1; replay-all by type -------------------------

ok(drained(), 'nothing pending');
$dp->reset;
$dp->control(poisonType => 'order.paid');
$r = buy(9);
my $poison_order = $r->{json}{id};
ok(wait_until(sub { (order_events($poison_order)->[1]{state} // '') eq 'DEAD' },
    timeout => 10), 'a poison order.paid: dead');
my $pev = order_events($poison_order);
is($pev->[0]{state}, 'DELIVERED', 'its order.created delivered');
is($pev->[1]{attempts}, 1, 'dead after 1 attempt');
like($pev->[1]{last_error}, qr/^HTTP 400: \{"error":"invalid_event"/, 'the last error says why');
is(scalar @{ requests_for($pev->[1]{id}) }, 1, 'sent once');
# a dead event does not block its aggregate: a later event of it goes on
# (one written by hand: a paid order has no later event yet)
$t->psql(qq{SELECT cm__outbox_emit('order', $poison_order, 'order.cancelled',
    '{"orderId":$poison_order,"note":"written by t/130"}')});
ok(wait_until(sub { (order_events($poison_order)->[2]{state} // '') eq 'DELIVERED' },
    timeout => 10), 'a later event of the same order is delivered');

$dp->control(poisonType => undef);
$r = $t->post('/api/v1/admin/events/dead/replay', { type => 'order.paid' }, token => $ADMIN);
is($r->{status}, 200, 'replay-all of a type');
is($r->{json}{replayed}, 1, 'one dead order.paid replayed');
ok(wait_until(sub { order_events($poison_order)->[1]{state} eq 'DELIVERED' },
    timeout => 10), 'delivered (late: after the order.cancelled that followed it)');

# --- the platform down 8 s: the backlog drains after it, nothing lost -------

ok(drained(), 'nothing pending');
$dp->reset;
$dp->control(refuse => JSON::PP::true);
@res = $t->concurrent([ map { [ POST => '/api/v1/orders',
    { items => [ { productId => 1 + $_ % 200, quantity => 1 } ],
      payment => { method => 'BALANCE' } }, { user => 300 + $_ } ] } 1 .. 40 ]);
is_deeply(tally(@res), { 201 => 40 }, 'orders are paid while the platform is down');
my @down = map { $_->{json}{id} } @res;
sleep 2;
cmp_ok($t->metric(undef, 'commerce_events_backlog', sink => 'dp'), '>=', 1,
    'the backlog shows');
sleep 6;
is(0 + $t->psql(q{SELECT count(*) FROM outbox_delivery WHERE state = 'DEAD'}), 0,
    'after 8 s down nothing is dead')
    or diag(scalar $t->psql(q{SELECT string_agg(concat_ws(' ', o.type, d.attempts,
        d.last_error, d.dead_at), E'\n') FROM outbox_delivery d JOIN outbox o ON o.seq = d.seq
        WHERE d.state = 'DEAD'}));
cmp_ok(0 + $t->psql(q{SELECT coalesce(max(attempts), 0) FROM outbox_delivery
    WHERE state = 'PENDING'}),
    '<=', 1, 'no event spent more than one attempt (the breaker holds them)');
cmp_ok($t->metric(undef, 'commerce_events_oldest_age_seconds', sink => 'dp'), '>=', 4,
    'the oldest undelivered age grows');
$dp->control(refuse => JSON::PP::false);
ok(drained(30), 'the platform back: the backlog drains');
my %have = map { ($_->{status} // 0) =~ /^20/ ? ($_->{id} => 1) : () } @{ $dp->received };
my @want = map { $_->{id} } map { @{ order_events($_) } } @down;
is(scalar @want, 80, '80 events of the 40 orders');
is(scalar(grep { $have{$_} } @want), 80, 'every one reached the platform');
like($t->read_file($t->error_log), qr/event sink dp: circuit closed -> open/,
    'the sink was judged down (logged)');

# --- the response never waits for delivery ----------------------------------

sub best_of {
    my ($n, $base) = @_;
    my $best = 1e9;
    for my $i (1 .. $n) {
        my $s = time;
        my $x = buy($base + $i);
        $best = time - $s if $x->{status} == 201 && time - $s < $best;
    }
    return $best;
}
ok(drained(), 'nothing pending');
my $healthy = best_of(5, 400);
$dp->control(hang => JSON::PP::true);
sleep 0.5;
my $hanging = best_of(5, 420);
ok($hanging < $healthy + 0.05, sprintf('create+pay with the platform hanging '
    . '(best of 5: %.1f ms) as with it healthy (%.1f ms)', $hanging * 1000, $healthy * 1000));
$dp->control(hang => JSON::PP::false);
ok(drained(30), 'and its events are delivered once it answers again');

# --- no PII ---------------------------------------------------------------

my $email = 'outbox.person@example.com';
my $name = 'Pat Outbox';
my $phone = '010-5555-1234';
$r = $t->post('/api/v1/auth/signup', { email => $email, password => 'correct horse battery',
    name => $name, phone => $phone });
is($r->{status}, 201, 'a signup');
my $uid = $r->{json}{id};
my $cid = $t->create_coupon(totalQuantity => 10, perUserLimit => 1);
is($t->issue_coupon($cid, $uid)->{status}, 201, 'a coupon issued');
is($t->req('DELETE', '/api/v1/users/me', user => $uid)->{status}, 204, 'a withdrawal');
my $uev = outbox("o.aggregate_type = 'user' AND o.aggregate_id = $uid");
is_deeply([ map { $_->{type} } @$uev ], [ 'user.signed_up', 'coupon.issued', 'user.withdrawn' ],
    "the user's events, in order");
ok(drained(), 'delivered');
my $all = $t->psql(q{SELECT string_agg(payload::text, E'\n') FROM outbox});
my $log = $t->read_file($t->error_log) . $t->read_file($t->dir . '/dpsim.log');
for my $pii ($email, $name, $phone, '5555-1234', 'outbox.person') {
    unlike($all, qr/\Q$pii\E/i, "no '$pii' in any outbox payload");
    unlike($log, qr/\Q$pii\E/i, "nor in the logs");
}
unlike($all, qr/\d{4}-?\d{4}-?\d{4}-?\d{4}|email|phone|cardNo|last4/i,
    'no card number, no email/phone field in any payload');

# --- the admin API: roles and bad input ------------------------------------

for my $role (qw(CONSUMER SELLER MANAGER)) {
    is_error($t->get('/api/v1/admin/events/dead', token => $t->token(3, role => $role)),
        403, 'FORBIDDEN', "GET dead as $role: 403");
    is_error($t->post('/api/v1/admin/events/dead/replay', {}, token => $t->token(3, role => $role)),
        403, 'FORBIDDEN', "replay-all as $role: 403");
}
is_error($t->get('/api/v1/admin/events/dead'), 401, 'UNAUTHORIZED', 'no token: 401');
for my $q ('limit=0', 'limit=501', 'limit=abc', 'limit=1.5', 'limit=', 'limit=-1',
           'limit=1&limit=2')
{
    is_error($t->get("/api/v1/admin/events/dead?$q", token => $ADMIN), 400,
        'INVALID_REQUEST', "dead?$q: 400");
}
is_error($t->post('/api/v1/admin/events/dead/0/replay', {}, token => $ADMIN), 400,
    'INVALID_REQUEST', 'replay of id 0: 400');
is_error($t->post('/api/v1/admin/events/dead/abc/replay', {}, token => $ADMIN), 400,
    'INVALID_REQUEST', 'replay of id abc: 400');
is_error($t->post('/api/v1/admin/events/dead/999999/replay', {}, token => $ADMIN), 404,
    'DEAD_EVENT_NOT_FOUND', 'replay of an unknown id: 404');
is_error($t->post('/api/v1/admin/events/dead/1/replay', 'not json', token => $ADMIN), 400,
    'INVALID_REQUEST', 'replay with a malformed body: 400');
is_error($t->post('/api/v1/admin/events/dead/1/replay', '{}', token => $ADMIN,
    content_type => 'text/plain'), 415, 'UNSUPPORTED_MEDIA_TYPE', 'replay as text/plain: 415');
for my $b ('{"sink":5}', '{"sink":""}', '{"sink":"a b"}', '{"type":"order"}',
           '{"type":"Order.Paid"}', '{"type":"order.paid.x"}', '{"type":".paid"}',
           '{"type":"order."}', '{"type":null}', '[]', '{', '{"sink":"dp","sink":"dp"}')
{
    is_error($t->post('/api/v1/admin/events/dead/replay', $b, token => $ADMIN), 400,
        'INVALID_REQUEST', "replay-all $b: 400");
}
is_response($t->post('/api/v1/admin/events/dead/replay', { sink => 'nosuch' }, token => $ADMIN),
    200, { replayed => 0, ids => [] }, 'replay-all of a sink with nothing dead: 0');
is_error($t->req('DELETE', '/api/v1/admin/events/dead', token => $ADMIN), 405,
    'METHOD_NOT_ALLOWED', 'DELETE: 405');

# --- metrics ----------------------------------------------------------------

my $m = $t->metrics;
cmp_ok($t->metric($m, 'commerce_events_delivered_total', sink => 'dp', type => 'order.paid'),
    '>=', 140, 'delivered by sink and type');
cmp_ok($t->metric($m, 'commerce_events_retried_total', sink => 'dp', type => 'order.created'),
    '>=', 5, 'retried by sink and type');
is($t->metric($m, 'commerce_events_dead_total', sink => 'dp', type => 'order.created'), 1,
    'dead by sink and type');
is($t->metric($m, 'commerce_events_dead_total', sink => 'dp', type => 'order.paid'), 1,
    'dead by sink and type (the poison one)');
ok(wait_until(sub { $t->metric(undef, 'commerce_events_backlog', sink => 'dp') == 0
    && $t->metric(undef, 'commerce_events_oldest_age_seconds', sink => 'dp') == 0 },
    timeout => 10), 'backlog and oldest age back to 0');
is($t->metric(undef, 'commerce_events_dead', sink => 'dp'), 0, 'the DLQ is empty (replayed)');

$t->check_consistency;
done_testing;
