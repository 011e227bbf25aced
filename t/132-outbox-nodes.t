#!/usr/bin/perl
# The outbox relay on two nginx instances sharing one Postgres and one data
# platform (t/dpsim), each instance's worker 0 relaying the same sink:
#
#   - 120 orders through both instances at once, half paid at creation and
#     half paid later by a second request on the other instance, with the
#     platform answering 20-ish ms late so that both relays' claims overlap:
#     every event of the sink reaches the platform (nothing lost), and per
#     order the platform sees the events in their sequence, never a later
#     one before an earlier one (also not among retries or duplicates);
#   - a relay worker killed with SIGKILL while its deliveries are in flight
#     (the platform answering 400 ms late): its leases (lease=2s) expire,
#     the restarted worker or the other instance sends those events again,
#     with the same event id: every event arrives at least once, and the
#     duplicates carry the ids of events that were in flight;
#   - both instances reloaded twice while orders come in: the old workers
#     exit, nothing is lost or out of order.

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
my $dpport = $dp->port;

my $conf = $t->default_config(
    server_extra => 'location = /metrics { commerce_metrics; }',
    http_extra => <<"EOF");
commerce_zone 1m;
upstream dp { server 127.0.0.1:$dpport; }
commerce_event_sink dp http upstream=dp events=order.*,payment.*
    timeout=2s retry_base=100ms retry_cap=1s interval=50ms lease=2s
    batch=50 concurrency=8;
EOF
$t->write_config($conf);
$t->write_config($conf, name => 'b');
$t->start_nginx;
$t->start_nginx(name => 'b');
$t->allow_log(qr/exited on signal 9/);

for my $n (qw(main b)) {
    ok(wait_until(sub { $t->grep_log(qr/event sink dp registered/, name => $n) },
        timeout => 20), "instance $n relays the sink");
}

sub pending { 0 + $t->psql(q{SELECT count(*) FROM outbox_delivery
    WHERE state <> 'DELIVERED'}) }

sub all_events {
    return $t->psql_json(q{SELECT coalesce(json_agg(json_build_object('id', o.id,
        'seq', o.seq, 'agg', o.aggregate_id, 'type', o.type) ORDER BY o.seq), '[]')
        FROM outbox o JOIN outbox_delivery d ON d.seq = o.seq AND d.sink = 'dp'});
}

# per order, the sequences the platform saw, in arrival order: never down
sub check_order {
    my ($what) = @_;
    my %last;
    my @bad;
    for my $e (@{ $dp->stats->{received} }) {
        next unless ($e->{aggregateType} // '') eq 'order';
        my $a = $e->{aggregateId};
        push @bad, "order $a: $e->{sequence} after $last{$a}"
            if defined $last{$a} && $e->{sequence} < $last{$a};
        $last{$a} = $e->{sequence};
    }
    ok(!@bad, "$what: per order, never a later event before an earlier one")
        or diag(join "\n", @bad[0 .. ($#bad > 9 ? 9 : $#bad)]);
}

sub check_all_delivered {
    my ($what, $from) = @_;
    my %got = map { ($_->{status} // 0) =~ /^20/ ? ($_->{id} => 1) : () }
        @{ $dp->stats->{received} };
    my @missing = grep { !$got{$_->{id}} && $_->{seq} > ($from // 0) }
        @{ all_events() };
    is(scalar @missing, 0, "$what: every event reached the platform")
        or diag(scalar(@missing) . ' missing');
}

# --- two relays, one sink ----------------------------------------------------

$dp->control(latencyMs => 20);
my @reqs;
for my $i (1 .. 120) {
    push @reqs, { method => 'POST', path => '/api/v1/orders',
        body => { items => [ { productId => 1 + $i % 200, quantity => 1 } ],
                  ($i % 2 ? (payment => { method => 'BALANCE' }) : ()) },
        user => 10 + $i, name => $i % 3 ? 'main' : 'b' };
}
my @res = $t->concurrent(\@reqs);
is_deeply(tally(@res), { 201 => 120 }, '120 orders through both instances');
my @later = map { [ $res[$_]{json}{id}, 10 + $_ + 1 ] }
    grep { $res[$_]{json}{status} eq 'PENDING_PAYMENT' } 0 .. $#res;
is(scalar @later, 60, '60 of them to pay later');
@res = $t->concurrent([ map { { method => 'POST',
    path => "/api/v1/orders/$_->[0]/payment", body => { method => 'BALANCE' },
    user => $_->[1], name => $_->[0] % 2 ? 'main' : 'b' } } @later ]);
is_deeply(tally(@res), { 200 => 60 }, '... paid through the other instance');

ok(wait_until(sub { pending() == 0 }, timeout => 60), 'the backlog drains');
is(scalar @{ all_events() }, 240, '240 events (created and paid of 120 orders)');
check_all_delivered('two relays');
check_order('two relays');
my %relayed = map { my $n = $_; ($n => $t->metric($t->metrics(name => $n),
    'commerce_events_delivered_total', sink => 'dp', type => 'order.paid')) } qw(main b);
diag("order.paid delivered by main: $relayed{main}, by b: $relayed{b}");
is($relayed{main} + $relayed{b} >= 120, 1, 'both relays counted their deliveries');

# --- a relay killed mid-delivery ---------------------------------------------

my $from = 0 + $t->psql('SELECT max(seq) FROM outbox');
$dp->reset;
$dp->control(latencyMs => 400);
@res = $t->concurrent([ map { { method => 'POST', path => '/api/v1/orders',
    body => { items => [ { productId => 1 + $_ % 200, quantity => 1 } ],
              payment => { method => 'BALANCE' } }, user => 300 + $_,
    name => 'main' } } 1 .. 60 ]);
is_deeply(tally(@res), { 201 => 60 }, '60 more orders');
ok(wait_until(sub { $dp->stats->{requests} >= 4 }, timeout => 10, interval => 0.02),
    'deliveries in flight');

# worker 0 of main: the one that registered the sink
my ($line) = $t->grep_log(qr/event sink dp registered/);
my ($w0) = $line =~ /\[info\] (\d+)#/;
ok($w0 && grep({ $_ == $w0 } $t->worker_pids), "main's relay worker is $w0");
my $inflight_before = $dp->stats->{requests};
kill 'KILL', $w0;
ok(wait_until(sub { !kill 0, $w0 }, timeout => 5), 'killed with SIGKILL');
$dp->control(latencyMs => 0);
ok(wait_until(sub { pending() == 0 }, timeout => 60), 'the backlog drains anyway');
check_all_delivered('after the kill', $from);
is(scalar(grep { $_->{seq} > $from } @{ all_events() }), 120, '120 events of the 60 orders');
check_order('after the kill');
my %count;
$count{$_->{id}}++ for grep { defined $_->{id} } @{ $dp->stats->{received} };
my @dups = grep { $count{$_} > 1 } keys %count;
diag(scalar(@dups) . " event(s) sent twice (the killed worker's leases), "
    . "$inflight_before request(s) seen before the kill");
my %dead_ids = map { $_->{id} => 1 } @{ all_events() };
ok(!grep({ !$dead_ids{$_} } @dups), 'duplicates carry real event ids only');
ok(wait_until(sub { scalar($t->worker_pids) == 2 }, timeout => 10),
    'the master started a new worker');

# --- reloads while relaying ------------------------------------------------------

# both instances reloaded twice while orders keep coming and the platform
# answers 100 ms late: the old workers finish their sends and exit (their
# timers are cancelable, their sends bounded by timeout=), the new worker 0
# relays; nothing is lost, nothing out of order
$from = 0 + $t->psql('SELECT max(seq) FROM outbox');
$dp->reset;
$dp->control(latencyMs => 100);
my @old;
my $sent = 0;
for my $round (1 .. 4) {
    @res = $t->concurrent([ map { { method => 'POST', path => '/api/v1/orders',
        body => { items => [ { productId => 1 + $_ % 200, quantity => 1 } ],
                  payment => { method => 'BALANCE' } }, user => 500 + $round * 20 + $_,
        name => $_ % 2 ? 'main' : 'b' } } 1 .. 20 ]);
    $sent += grep { $_->{status} == 201 } @res;
    push @old, $t->reload_nginx(name => $round % 2 ? 'main' : 'b');
}
is($sent, 80, '80 orders across four reloads');
ok($t->wait_pids_gone(\@old, timeout => 30), 'the old workers exited');
$dp->control(latencyMs => 0);
ok(wait_until(sub { pending() == 0 }, timeout => 60), 'the backlog drains');
check_all_delivered('across reloads', $from);
check_order('across reloads');

$t->check_consistency;
$t->done;
