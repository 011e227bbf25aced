#!/usr/bin/perl
# The outbox's Redis Stream sink for internal consumers, with a real
# redis-server, beside an http sink with its own filter:
#
#   - a consumer group created before any event reads every event of the
#     sink's filter (XREADGROUP), each entry {id, type, event} with the
#     event document; after XACK nothing is pending;
#   - each sink gets what its filter takes: the stream every type, the
#     http sink order.paid only;
#   - Redis stopped while orders are paid: the stream sink's events wait
#     (its breaker opens, nothing is dead), the http sink is not held up;
#     Redis back: the backlog drains into the stream.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use CommerceTest;
use DpSim;

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
$t->start_redis;
my $dp = DpSim->start;
my $dpport = $dp->port;

my $STREAM = 'commerce:events';
my $conf = $t->default_config(http_extra => <<"EOF");
commerce_zone 1m;
commerce_redis %%REDIS%%;
commerce_redis_connections 1;
upstream dp { server 127.0.0.1:$dpport; }
commerce_event_sink internal redis stream=$STREAM maxlen=500 interval=50ms
    retry_base=100ms open=1s;
commerce_event_sink dp http upstream=dp events=order.paid interval=50ms;
EOF
$t->write_config($conf);

# the group first: it reads the stream from its first entry
is($t->redis_cli('XGROUP', 'CREATE', $STREAM, 'analytics', '0', 'MKSTREAM'), 'OK',
    'a consumer group');
$t->start_nginx;
ok(wait_until(sub { $t->psql(q{SELECT count(*) FROM outbox_sink}) == 2 },
    timeout => 20), 'both sinks registered');

sub pending { 0 + $t->psql(q{SELECT count(*) FROM outbox_delivery
    WHERE state <> 'DELIVERED'}) }

sub events_of {
    my ($sink) = @_;
    return [ $t->psql(qq{SELECT o.id FROM outbox o JOIN outbox_delivery d
        ON d.seq = o.seq AND d.sink = '$sink' ORDER BY o.seq}) ];
}

# XREADGROUP's raw output: stream, then per entry its id and field/values
sub read_group {
    my %read;
    my @entries;
    for (1 .. 100) {
        my @l = split /\n/, $t->redis_cli('XREADGROUP', 'GROUP', 'analytics', 'c1',
            'COUNT', '100', 'STREAMS', $STREAM, '>');
        last if @l <= 1;
        for (my $i = 0; $i < @l; $i++) {
            next unless $l[$i] eq 'id' && $i + 5 < @l && $l[$i + 2] eq 'type'
                && $l[$i + 4] eq 'event';
            push @entries, { entry => $l[$i - 1], id => $l[$i + 1],
                type => $l[$i + 3], event => decode_json($l[$i + 5]) };
        }
    }
    return \@entries;
}

my @res = $t->concurrent([ map { [ POST => '/api/v1/orders',
    { items => [ { productId => $_, quantity => 1 } ],
      ($_ % 2 ? (payment => { method => 'BALANCE' }) : ()) }, { user => $_ } ] } 1 .. 40 ]);
is_deeply(tally(@res), { 201 => 40 }, '40 orders, 20 of them paid');
ok(wait_until(sub { pending() == 0 }, timeout => 20), 'delivered to both sinks');

my $want = events_of('internal');
is(scalar @$want, 60, 'the stream sink: 60 events (40 created, 20 paid)');
my $entries = read_group();
is_deeply([ sort map { $_->{id} } @$entries ], [ sort @$want ],
    'the consumer group read every event of the stream sink, once');
my ($paid) = grep { $_->{type} eq 'order.paid' } @$entries;
is($paid->{event}{id}, $paid->{id}, 'an entry carries the event document');
is($paid->{event}{data}{paymentMethod}, 'BALANCE', '... with its data');
is($t->redis_cli('XACK', $STREAM, 'analytics', map { $_->{entry} } @$entries),
    scalar @$entries, 'acknowledged');
like($t->redis_cli('XPENDING', $STREAM, 'analytics'), qr/\A0\n/, 'nothing pending in the group');
my $dp_types = { map { ($_->{type} => 1) } @{ $dp->received } };
is_deeply($dp_types, { 'order.paid' => 1 }, 'the http sink got order.paid only');
is(scalar @{ events_of('dp') }, 20, '... 20 of them');

# --- Redis stopped ------------------------------------------------------------

$t->stop_redis;
@res = $t->concurrent([ map { [ POST => '/api/v1/orders',
    { items => [ { productId => $_, quantity => 1 } ],
      payment => { method => 'BALANCE' } }, { user => 100 + $_ } ] } 1 .. 20 ]);
is_deeply(tally(@res), { 201 => 20 }, 'orders are paid while Redis is down');
ok(wait_until(sub { $t->psql(q{SELECT count(*) FROM outbox_delivery
    WHERE sink = 'dp' AND state = 'PENDING'}) == 0 }, timeout => 20),
    'the http sink is not held up by the stream sink');
sleep 3;
is(0 + $t->psql(q{SELECT count(*) FROM outbox_delivery WHERE state = 'DEAD'}), 0,
    'after 3 s nothing is dead');
cmp_ok(0 + $t->psql(q{SELECT count(*) FROM outbox_delivery WHERE sink = 'internal'
    AND state = 'PENDING'}), '==', 40, 'the stream sink holds its 40 events');
$t->start_redis;
ok(wait_until(sub { pending() == 0 }, timeout => 30), 'Redis back: the backlog drains');
my %in = map { $_ => 1 } grep { /^[0-9a-f-]{36}$/ }
    split /\n/, $t->redis_cli('XRANGE', $STREAM, '-', '+');
is(scalar(grep { $in{$_} } @{ events_of('internal') }[60 .. 99]), 40,
    'all 40 are in the (new) stream');

$t->allow_log(qr/Redis|redis/);
$t->check_consistency;
$t->done;
