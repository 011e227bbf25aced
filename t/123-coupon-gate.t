#!/usr/bin/perl
# The Redis gate in front of coupon issuing (Redis the gate, Postgres the
# truth): with a real redis-server, 1,000 distinct users on 100 coupons
# and one user x 50 on a limit of 1 give the same exact outcomes as
# Postgres alone; the gate is warmed from Postgres (at start by a job of
# worker 0, when a campaign is created, and on a missing key; with a TTL),
# hash-tagged by campaign, and given back when Postgres refuses a
# write that passed it; Redis flushed in the middle of a burst never lets
# Postgres hold more than the total; Redis stopped: issuing falls back to
# Postgres alone, exact.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
$t->start_redis;
$t->write_config($t->default_config(http_extra => <<'EOF'));
commerce_pg_queue_length 2048;
commerce_pg_pool_size 8;
commerce_redis %%REDIS%%;
commerce_redis_connections 2;
commerce_redis_queue_length 4096;
commerce_redis_command_timeout 1s;
EOF
# a campaign older than nginx: the warm job sets its gate at start
my $probe = 0 + $t->psql(q{SELECT (cm_coupon_create(2, 'Before start', 'FIXED',
    100, NULL, 0, 50, 5, now() - interval '1 hour', now() + interval '1 day',
    7)::json->>'id')});
$t->start_nginx;

sub issued {
    0 + $t->psql("SELECT issued_quantity FROM coupon_campaigns WHERE id = $_[0]")
}

# --- warming, keys, the gate's own refusals ------------------------------------

# (also: the job's first run is over, so it cannot meet the keys deleted
# below; its next run is a TTL, 60 s, later)
ok(wait_until(sub { $t->redis_cli('EXISTS', "coupon:{$probe}:users") == 1 },
    timeout => 15), 'at start, with no request: the gate of a campaign in its'
    . ' window is warm');
is($t->redis_cli('GET', "coupon:{$probe}:remaining") . '/'
    . $t->redis_cli('HGET', "coupon:{$probe}:users", 'limit'), '50/5',
    '... remaining 50, limit 5');

# warmed when created (the warm is sent beside the answer, not before it)
my $c = $t->create_coupon(totalQuantity => 3, perUserLimit => 2);
ok(wait_until(sub { $t->redis_cli('EXISTS', "coupon:{$c}:remaining") == 1 },
    timeout => 10), 'a new campaign: its gate warmed');
is($t->redis_cli('GET', "coupon:{$c}:remaining"), 3, '... remaining 3');
is($t->redis_cli('HGET', "coupon:{$c}:users", 'limit'), 2, '... limit 2');
is($t->redis_cli('HLEN', "coupon:{$c}:users"), 1, '... nobody counted');
my $ttl = $t->redis_cli('PTTL', "coupon:{$c}:remaining");
ok($ttl > 0 && $ttl <= 60000, "... with a TTL ($ttl ms)");

# a missing key (expired, flushed): warmed from Postgres by the issue
$t->redis_cli('DEL', "coupon:{$c}:remaining", "coupon:{$c}:users");
is($t->redis_cli('EXISTS', "coupon:{$c}:remaining"), 0, 'keys deleted');
is($t->issue_coupon($c, 10)->{status}, 201, 'first issue');
is($t->redis_cli('GET', "coupon:{$c}:remaining"), 2,
    'warmed from Postgres on the missing key, then taken: 2');
is($t->redis_cli('HGET', "coupon:{$c}:users", 'limit'), 2, 'limit in the gate');
is($t->redis_cli('HGET', "coupon:{$c}:users", 10), 1, "the user's count");
$ttl = $t->redis_cli('PTTL', "coupon:{$c}:remaining");
ok($ttl > 0 && $ttl <= 60000, "the warmed key has a TTL ($ttl ms)");
is($t->issue_coupon($c, 10)->{status}, 201, 'second of the limit');
my $res = $t->issue_coupon($c, 10);
is_error($res, 409, 'COUPON_LIMIT_REACHED', 'the gate refuses the third');
is($t->issue_coupon($c, 11)->{status}, 201, 'last coupon');
is_error($t->issue_coupon($c, 12), 409, 'COUPON_SOLD_OUT',
    'the gate says sold out');
is($t->coupon_rows($c), '3|2', 'Postgres: 3 rows, 2 users');
is_error($t->issue_coupon(999999, 10), 404, 'COUPON_NOT_FOUND',
    'unknown campaign: COUPON_NOT_FOUND from the warming read');

# --- the warm job: at start, the missing gates of campaigns in their window -------

my @warm = map { $t->create_coupon(name => "Warm $_", totalQuantity => 10 * $_,
    perUserLimit => $_) } 1 .. 3;
my $closed = $t->create_coupon(name => 'Closed');
$t->psql("UPDATE coupon_campaigns SET issue_starts_at = now() - interval '2 days',
    issue_ends_at = now() - interval '1 day' WHERE id = $closed");
ok(wait_until(sub { !grep { $t->redis_cli('EXISTS', "coupon:{$_}:users") == 0 }
    @warm, $closed }, timeout => 10), 'four campaigns created, their gates warm');
$t->redis_cli('DEL', map { ("coupon:{$_}:remaining", "coupon:{$_}:users") }
    @warm, $closed);
$t->reload_nginx;    # a new worker 0: the job runs a second after it starts
ok(wait_until(sub { !grep { $t->redis_cli('EXISTS', "coupon:{$_}:users") == 0 }
    @warm }, timeout => 15), 'after a reload, with no request: the three gates'
    . ' warm again');
is_deeply([ map { $t->redis_cli('GET', "coupon:{$_}:remaining") . '/'
    . $t->redis_cli('HGET', "coupon:{$_}:users", 'limit') } @warm ],
    [ '10/1', '20/2', '30/3' ], '... with remaining and limit from Postgres');
is($t->redis_cli('EXISTS', "coupon:{$closed}:remaining"), 0,
    '... but not the campaign whose window closed');

# --- a write refused by Postgres gives the gate back ----------------------------

$c = $t->create_coupon(totalQuantity => 10, perUserLimit => 1);
is($t->issue_coupon($c, 20)->{status}, 201, 'user 20 has one');
$t->redis_cli('HDEL', "coupon:{$c}:users", 20);    # the gate forgot
is($t->redis_cli('GET', "coupon:{$c}:remaining"), 9, 'gate at 9');
is_error($t->issue_coupon($c, 20), 409, 'COUPON_LIMIT_REACHED',
    'Postgres refuses what the gate let through');
ok(wait_until(sub { $t->redis_cli('GET', "coupon:{$c}:remaining") == 9 },
    timeout => 5), 'remaining given back: 9');
is($t->redis_cli('HGET', "coupon:{$c}:users", 20), 1,
    "the user's count is set to the limit");
is(issued($c), 1, 'Postgres: 1 issued');

# --- 100 coupons, 1,000 distinct users at once -------------------------------------

$c = $t->create_coupon(name => 'Stampede', totalQuantity => 100);
my @res = $t->concurrent([ map { $t->issue_coupon_req($c, $_) } 1 .. 1000 ],
    timeout => 180);
is_deeply(tally(@res), { '201' => 100, '409 COUPON_SOLD_OUT' => 900 },
    'gated: exactly 100 x 201 and 900 x COUPON_SOLD_OUT');
is($t->coupon_rows($c), '100|100', '100 rows, nobody twice');
is(issued($c), 100, 'issued_quantity 100');
is($t->redis_cli('GET', "coupon:{$c}:remaining"), 0, 'the gate at 0');
is($t->redis_cli('HLEN', "coupon:{$c}:users"), 101,
    'the gate counted 100 users (and the limit)');

# --- one user x 50, limit 1 ------------------------------------------------------

$c = $t->create_coupon(name => 'One user', totalQuantity => 1000,
    perUserLimit => 1);
@res = $t->concurrent([ map { $t->issue_coupon_req($c, 77) } 1 .. 50 ],
    timeout => 120);
is_deeply(tally(@res), { '201' => 1, '409 COUPON_LIMIT_REACHED' => 49 },
    'gated, one user x 50 on a limit of 1: one 201');
is($t->coupon_rows($c), '1|1', 'one row');

# --- Redis flushed in the middle of a burst --------------------------------------

$c = $t->create_coupon(name => 'Flushed', totalQuantity => 100);
my $port = $t->redis_port;
my $pid = fork // die "fork: $!";
if ($pid == 0) {
    select(undef, undef, undef, 0.05);
    open STDOUT, '>', '/dev/null';
    exec('redis-cli', '-h', '127.0.0.1', '-p', $port, 'FLUSHALL');
    exit 1;
}
@res = $t->concurrent([ map { $t->issue_coupon_req($c, $_) } 1 .. 1000 ],
    timeout => 180);
waitpid($pid, 0);
my $n = tally(@res);
is(($n->{201} // 0) + ($n->{'409 COUPON_SOLD_OUT'} // 0), 1000,
    'flushed mid-burst: every answer a 201 or COUPON_SOLD_OUT')
    or diag(explain($n));
is($n->{201}, 100, 'exactly 100 issued');
is($t->coupon_rows($c), '100|100', 'Postgres never holds more than the total');

# --- clients that leave before their write is sent give their pass back ------------
# One worker with one Postgres connection: the first write waits on the
# campaign's row (locked here), the one behind it is pipelined, the others
# wait for the connection; their clients leave.  The writes never sent
# issue nothing, so the gate must not keep their passes.

$t->write_config($t->default_config(workers => 1, http_extra => <<'EOF'),
commerce_pg_pool_size 1;
commerce_redis %%REDIS%%;
commerce_redis_connections 1;
EOF
    name => 'one');
$t->start_nginx(name => 'one');
ok(wait_until(sub { $t->grep_log(qr/redis connection #0 .* up/, name => 'one') },
    timeout => 15), 'its Redis connection is up');
$c = $t->create_coupon(name => 'Leavers', totalQuantity => 10, perUserLimit => 1);
ok(wait_until(sub { $t->redis_cli('GET', "coupon:{$c}:remaining") eq '10' },
    timeout => 10), 'a campaign of 10, its gate warm');
my $hold = $t->psql_bg("BEGIN; SELECT 1 FROM coupon_campaigns WHERE id = $c FOR UPDATE;
    SELECT pg_sleep(5) AS leavers_lock; COMMIT;");
ok(wait_until(sub { $t->psql(q{SELECT count(*) FROM pg_stat_activity
    WHERE query LIKE '%leavers_lock%' AND state = 'active'
      AND pid <> pg_backend_pid()}) >= 1 }, timeout => 10),
    "the campaign's row is held");
my @gone = $t->concurrent([ map { $t->issue_coupon_req($c, 300 + $_, name => 'one') }
    1 .. 6 ], timeout => 1);
is(scalar(grep { $_->{status} } @gone), 0, '6 issues whose clients left after 1 s');
$t->psql_wait($hold);
ok(wait_until(sub { $t->psql(q{SELECT count(*) FROM pg_stat_activity
    WHERE query LIKE '%cm_coupon_issue%' AND state = 'active'
      AND pid <> pg_backend_pid()}) == 0 }, timeout => 10),
    '... the writes that were sent have run');
my $issued = issued($c);
my $gate = $t->redis_cli('GET', "coupon:{$c}:remaining");
cmp_ok($issued, '<=', 2, "at most the 2 writes sent issued ($issued)");
cmp_ok($gate, '>=', 10 - $issued, "the gate holds at least what Postgres has left"
    . " (gate $gate, Postgres " . (10 - $issued) . ')');
@res = $t->concurrent([ map { $t->issue_coupon_req($c, 300 + $_, name => 'one') }
    1 .. 6 ], timeout => 30);
my %again = %{ tally(@res) };
is(($again{201} // 0) + $issued, 6, 'the leavers ask again: each has one coupon now'
    . ' (the gate did not keep their passes)') or diag(explain(\%again));
$t->stop_nginx(name => 'one');

# --- Redis stopped: Postgres alone, exact -------------------------------------------

$t->stop_redis;
$c = $t->create_coupon(name => 'No Redis', totalQuantity => 100);
@res = $t->concurrent([ map { $t->issue_coupon_req($c, $_) } 1 .. 1000 ],
    timeout => 180);
is_deeply(tally(@res), { '201' => 100, '409 COUPON_SOLD_OUT' => 900 },
    'Redis down: exactly 100 x 201 and 900 x COUPON_SOLD_OUT');
is($t->coupon_rows($c), '100|100', '100 rows, nobody twice');
$c = $t->create_coupon(name => 'No Redis, one user', totalQuantity => 100);
@res = $t->concurrent([ map { $t->issue_coupon_req($c, 78) } 1 .. 50 ],
    timeout => 120);
is_deeply(tally(@res), { '201' => 1, '409 COUPON_LIMIT_REACHED' => 49 },
    'Redis down, one user x 50: one 201');

is_deeply([ $t->log_problems ], [], 'no problems in the error log');

done_testing;
