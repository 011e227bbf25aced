#!/usr/bin/perl
# The Postgres pool's queue in the metrics: with one connection and no
# pipelining, a charge that waits for a row lock holds the connection, and
# reads behind it wait in the worker's queue:
#   - commerce_db_pool_queries_total counts every query the pool placed,
#     commerce_db_pool_waited_total those that were queued;
#   - commerce_db_pool_wait_seconds observes each queued query when it
#     leaves the queue (sent, or timed out): its count is waited_total once
#     the queue is empty, its sum holds the time they waited, its buckets
#     are cumulative;
#   - commerce_db_pool_queued_max keeps the longest queue seen;
#   - a query that times out in the queue is observed too.
# The periodic jobs of worker 0 share the one connection (the frequent ones
# are set to 1h here; the rest may still run): their queries may queue as
# well, so the counts are bounds (>=).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use Time::HiRes qw(time sleep);

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

sub config {
    my ($timeout) = @_;
    return $t->default_config(workers => 1, http_extra => <<"EOF",
commerce_zone 1m;
commerce_pg_pool_size 1;
commerce_pg_pipeline_depth 1;
commerce_pg_queue_timeout $timeout;
commerce_pg_statement_timeout 10s;
commerce_order_expiry_interval 1h;
commerce_waitlist_interval 1h;
commerce_refund interval=1h;
EOF
        server_extra => 'location = /metrics { commerce_metrics; }');
}

# the pool's series of one scrape
sub pool {
    my ($name) = @_;
    my $m = $t->metrics(name => $name);
    my %p = (
        queries => $t->metric($m, 'commerce_db_pool_queries_total'),
        waited  => $t->metric($m, 'commerce_db_pool_waited_total'),
        sum     => $t->metric($m, 'commerce_db_pool_wait_seconds_sum'),
        count   => $t->metric($m, 'commerce_db_pool_wait_seconds_count'),
        max     => $t->metric($m, 'commerce_db_pool_queued_max'),
        has_queued => exists $m->{commerce_db_pool_queued},
    );
    # the buckets in the order of their bounds, +Inf last
    my @le = sort { $a->[0] <=> $b->[0] }
        map { /^commerce_db_pool_wait_seconds_bucket\{le="([^"]+)"\}$/
            ? [ $1 eq '+Inf' ? 9**9**9 : $1, $m->{$_}, $1 ] : () } keys %$m;
    $p{buckets} = \@le;
    $p{le} = { map { $_->[2] => $_->[1] } @le };
    return \%p;
}

sub check_buckets {
    my ($p, $what) = @_;
    my @v = map { $_->[1] } @{ $p->{buckets} };
    is(scalar @v, 13, "$what: 12 bounds and +Inf");
    is_deeply([ grep { $v[$_] < $v[$_ - 1] } 1 .. $#v ], [],
        "$what: the buckets are cumulative (never decrease)");
    is($v[-1], $p->{count}, "$what: le=\"+Inf\" is the count");
}

sub lock_user {
    my ($id, $secs, $tag) = @_;
    my $h = $t->psql_bg("BEGIN;
        SELECT id FROM users WHERE id = $id FOR UPDATE;
        SELECT pg_sleep($secs) AS $tag;
        COMMIT;");
    ok(wait_until(sub { $t->psql(qq{SELECT count(*) FROM pg_stat_activity
        WHERE query LIKE '%$tag%' AND state = 'active'
          AND pid <> pg_backend_pid()}) == 1 }), "user $id locked");
    return $h;
}

sub charge_waits {
    return $t->psql(q{SELECT count(*) FROM pg_stat_activity
        WHERE application_name = 'ngx_commerce'
          AND wait_event_type = 'Lock'}) == 1;
}

# --- reads queued behind a write that waits for a lock -----------------------

$t->write_config(config('10s'));
$t->start_nginx;
ok(wait_until(sub { $t->get('/api/v1/products/1', user => 1)->{status}
    == 200 }), 'warm');
# the jobs' first runs come within a second or two of the start
sleep 2.5;

my $p0 = pool();
ok($p0->{has_queued}, 'commerce_db_pool_queued is still served');
cmp_ok($p0->{queries}, '>', 0, 'the warm-up queries are counted');
check_buckets($p0, 'at rest');
is($p0->{count}, $p0->{waited}, 'at rest: wait count = waited_total');

my $NREADS = 5;
my $lock = lock_user(90, 3, 'pool_wait_lock_90');
my $slow = $t->background(sub {
    my $r = $t->post('/api/v1/balance/charge', { amount => 90 }, user => 90,
        timeout => 20);
    return { status => $r->{status} };
});
ok(wait_until(\&charge_waits), 'the charge holds the only connection, '
    . 'waiting for the lock');

my $reads = $t->background(sub {
    return [ map { { status => $_->{status}, elapsed => $_->{elapsed} } }
        $t->concurrent([ map { [ 'GET', "/api/v1/products/$_", undef,
            { user => $_ } ] } 1 .. $NREADS ], timeout => 20) ];
});

# waited_total counts a query as it is queued: once it has grown by the
# reads, they are all in the queue
my $queued_at;
ok(wait_until(sub { pool()->{waited} - $p0->{waited} >= $NREADS },
    interval => 0.02), "the $NREADS reads are queued");
$queued_at = time;
sleep 1;
my $still = charge_waits();
my $held = time - $queued_at;
ok($still, sprintf('the charge still waits %.2f s later: every read has '
    . 'waited at least that long', $held));

is($t->collect($slow)->{status}, 200, 'the charge completes after the lock');
my @r = @{ $t->collect($reads) };
is(scalar(grep { $_->{status} == 200 } @r), $NREADS,
    "the $NREADS reads: all 200");
$t->psql_wait($lock);

# at rest again (a job's query may be queued for a moment)
my $p1;
ok(wait_until(sub { $p1 = pool(); $p1->{count} == $p1->{waited} }),
    'the queue is empty: wait count = waited_total');
my $dq = $p1->{queries} - $p0->{queries};
my $dw = $p1->{waited} - $p0->{waited};
my $dc = $p1->{count} - $p0->{count};
my $ds = $p1->{sum} - $p0->{sum};
diag("placed $dq, waited $dw, observed $dc, sum $ds s");
cmp_ok($dq, '>=', $NREADS + 1, "queries_total grew by $dq "
    . "(the charge and the reads at least)");
cmp_ok($dw, '>=', $NREADS, "waited_total grew by $dw (>= the $NREADS reads)");
cmp_ok($dw, '<=', $dq, '... not more than were placed');
is($dc, $dw, "... $dc observations in the histogram");
my $slow_ones = ($p1->{le}{'+Inf'} - $p1->{le}{'0.5'})
    - ($p0->{le}{'+Inf'} - $p0->{le}{'0.5'});
cmp_ok($slow_ones, '>=', $NREADS, "$slow_ones waits over 0.5 s (the reads)");
cmp_ok($ds, '>=', $NREADS * 0.9, sprintf('the sum grew by %.3f s, >= %d x '
    . '0.9 s', $ds, $NREADS));
cmp_ok($p1->{max}, '>=', $NREADS, "queued_max $p1->{max}: the $NREADS reads "
    . 'were in the queue at once');
check_buckets($p1, 'after the wait');

# --- a query that times out in the queue is observed too ---------------------

$t->stop_nginx;
$t->write_config(config('300ms'));
$t->start_nginx;
ok(wait_until(sub { $t->get('/api/v1/products/1', user => 1)->{status}
    == 200 }), 'warm again, queue_timeout 300ms');
sleep 2.5;

$p0 = pool();
$lock = lock_user(91, 2, 'pool_wait_lock_91');
$slow = $t->background(sub {
    my $r = $t->post('/api/v1/balance/charge', { amount => 91 }, user => 91,
        timeout => 20);
    return { status => $r->{status} };
});
ok(wait_until(\&charge_waits), 'the charge holds the connection again');

my $late = $t->get('/api/v1/products/2', user => 2, timeout => 10);
is($late->{status}, 503, 'a read queued past queue_timeout: 503');
is($late->{json}{code}, 'DB_UNAVAILABLE', '... DB_UNAVAILABLE');
ok(charge_waits(), '... while the charge still waits');

is($t->collect($slow)->{status}, 200, 'the charge completes');
$t->psql_wait($lock);

ok(wait_until(sub { $p1 = pool(); $p1->{count} == $p1->{waited} }),
    'the queue is empty: wait count = waited_total');
cmp_ok($p1->{waited} - $p0->{waited}, '>=', 1, 'waited_total grew');
is($p1->{count} - $p0->{count}, $p1->{waited} - $p0->{waited},
    '... and the histogram by as many');
my $timed_out = ($p1->{le}{'0.5'} - $p0->{le}{'0.5'})
    - ($p1->{le}{'0.25'} - $p0->{le}{'0.25'});
cmp_ok($timed_out, '>=', 1, "$timed_out waits in (0.25, 0.5]: the 300 ms "
    . 'queue timeout');
$ds = $p1->{sum} - $p0->{sum};
cmp_ok($ds, '>=', 0.3, sprintf('the sum grew by %.3f s', $ds));
check_buckets($p1, 'after the timeout');

$t->allow_log(qr/failed: queue timeout/);
$t->done;
