#!/usr/bin/perl
# Coupons on two nginx instances sharing one redis-server and one Postgres:
# the Redis gate (warmed by both at once from a cold key) and Postgres give
# the same exact outcomes as one instance: 1,000 distinct users split
# across the instances on 100 coupons (100 x 201, 900 x COUPON_SOLD_OUT,
# 100 rows, nobody twice, remaining 0, every winner gated), one user x 50
# split across them on a limit of 1 and of 2.  Then `nginx -s reload` of
# both instances (main, b, main) while gated issues run through both: a
# stream of one-at-a-time clients and a burst of 400 at once.  Every
# request is answered (201 or COUPON_SOLD_OUT: no connection error, no
# 5xx), the 201s are exactly the rows, the gate agrees with Postgres, no
# issue fell back to Postgres alone, and the old workers exit and close
# their Redis and Postgres connections.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use CommerceTest;

use constant POOL  => 8;    # commerce_pg_pool_size, per worker
use constant RCONN => 2;    # commerce_redis_connections, per worker

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
$t->start_redis;
my $conf = $t->default_config(http_extra => <<"EOF");
commerce_pg_queue_length 2048;
commerce_pg_pool_size @{[ POOL ]};
commerce_redis %%REDIS%%;
commerce_redis_connections @{[ RCONN ]};
commerce_redis_queue_length 4096;
# generous: this file is about two instances and reloads, not timeouts (a
# timed-out gate falls back to Postgres alone, exact but ungated)
commerce_redis_command_timeout 5s;
commerce_redis_queue_timeout 5s;
EOF
$t->write_config($conf);
$t->write_config($conf, name => 'b');
$t->start_nginx;
$t->start_nginx(name => 'b');

my @nodes = qw(main b);
my $workers = 2 * 2;        # two instances of two workers

sub backends {
    0 + $t->psql(q{SELECT count(*) FROM pg_stat_activity
        WHERE application_name = 'ngx_commerce'});
}

sub redis_clients {
    scalar grep { /name=ngx_commerce/ } split /\n/,
        $t->redis_cli('CLIENT', 'LIST');
}

# both instances ready before the burst (a slow ASan build connects later
# than the first clients arrive): every worker's Postgres and Redis
# connections up, else a cold worker would fall back to Postgres alone
for my $n (@nodes) {
    ok(wait_until(sub { $t->get('/api/v1/coupons', user => 1, name => $n)
        ->{status} == 200 }, timeout => 30), "instance $n serves");
}
ok(wait_until(sub { backends() >= $workers * POOL }, timeout => 30),
    'both instances have their Postgres pools connected');
ok(wait_until(sub { redis_clients() == $workers * RCONN }, timeout => 30),
    'both instances have their Redis connections up (CLIENT LIST: '
    . $workers * RCONN . ')');

# --- 100 coupons, 1,000 distinct users at once, split across the two -------------

# the warm job's first run (a second after start) is over on both, so it
# cannot warm the gate cooled down below; its next run is 60 s later
for my $n (@nodes) {
    ok(wait_until(sub { $t->grep_log(qr/coupon gate warm: /, name => $n) },
        timeout => 30), "instance $n: the warm job ran");
}

my $c = $t->create_coupon(name => 'Two nodes', totalQuantity => 100);
# the gate is warmed when the campaign is created: cool it down, so that
# both instances warm it at once from Postgres
wait_until(sub { $t->redis_cli('EXISTS', "coupon:{$c}:users") == 1 },
    timeout => 10);
$t->redis_cli('DEL', "coupon:{$c}:remaining", "coupon:{$c}:users");
is($t->redis_cli('EXISTS', "coupon:{$c}:remaining"), 0,
    'a cold gate: both instances warm it at once');
my @node_of = map { $nodes[ $_ % 2 ] } 1 .. 1000;    # user => instance
my @res = $t->concurrent([ map { $t->issue_coupon_req($c, $_,
    name => $node_of[ $_ - 1 ]) } 1 .. 1000 ], timeout => 180);
is_deeply(tally(@res), { '201' => 100, '409 COUPON_SOLD_OUT' => 900 },
    'two instances, 1,000 users: exactly 100 x 201 and 900 x '
    . 'COUPON_SOLD_OUT');
for my $node (@nodes) {
    my $n = tally(@res[ grep { $node_of[$_] eq $node } 0 .. $#res ]);
    is(($n->{201} // 0) + ($n->{'409 COUPON_SOLD_OUT'} // 0), 500,
        "instance $node: 500 answers, 201 or COUPON_SOLD_OUT ("
        . ($n->{201} // 0) . ' x 201)') or diag(explain $n);
}
is($t->coupon_rows($c), '100|100', '100 rows in the database, nobody twice');
my @won = sort { $a <=> $b } map { $_->{json}{id} }
    grep { $_->{status} == 201 } @res;
is($t->psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM user_coupons
    WHERE campaign_id = $c"), join(',', @won), 'the rows are the 201 answers');
is($t->psql("SELECT issued_quantity FROM coupon_campaigns WHERE id = $c"),
    100, 'issued_quantity 100');
for my $n (@nodes) {
    my $r = $t->get("/api/v1/coupons/$c", user => 5, name => $n);
    is($r->{json} && $r->{json}{remaining}, 0, "remaining 0 (through $n)");
}
is($t->redis_cli('GET', "coupon:{$c}:remaining"), 0, 'the gate at 0');
is($t->redis_cli('HLEN', "coupon:{$c}:users"), 101,
    'the gate counted the 100 winners (and the limit): every 201 was gated');

# --- one user x 50 at once, split across the two, limits 1 and 2 -------------------

for my $limit (1, 2) {
    my $l = $t->create_coupon(name => "Two nodes, limit $limit",
        totalQuantity => 1000, perUserLimit => $limit);
    my @r = $t->concurrent([ map { $t->issue_coupon_req($l, 77,
        name => $nodes[ $_ % 2 ]) } 1 .. 50 ], timeout => 120);
    is_deeply(tally(@r), { '201' => $limit,
        '409 COUPON_LIMIT_REACHED' => 50 - $limit },
        "one user x 50 on two instances, limit $limit: exactly $limit x 201");
    is($t->coupon_rows($l), "$limit|1", "rows: $limit, all of that user");
    is($t->redis_cli('HGET', "coupon:{$l}:users", 77), $limit,
        "the gate counted $limit for the user");
    is($t->redis_cli('GET', "coupon:{$l}:remaining"), 1000 - $limit,
        'the gate took exactly that many');
}

# --- nginx -s reload of both instances under a stream of gated issues ---------------

# users beyond the demo's 1..1000: a distinct user for every request
use constant { CLIENTS => 4, MAX => 1500, AFTER => 26, SECS => 45 };
$t->psql('INSERT INTO users (id, name, balance) SELECT n, \'user \' || n, 0
    FROM generate_series(1001, ' . (1000 + CLIENTS * MAX) . ') AS n');
# every other request on a campaign that never runs out (201s) and on one
# of 10 coupons (sold out early: COUPON_SOLD_OUT answers go on throughout)
my %camp = (plenty => $t->create_coupon(name => 'Reloaded',
    totalQuantity => CLIENTS * MAX), few => $t->create_coupon(
    name => 'Reloaded, 10', totalQuantity => 10));
my %total = (plenty => CLIENTS * MAX, few => 10);
my $flag = $t->dir . '/reloads-done';

# CLIENTS clients, each one request at a time on a new connection (so one
# is nearly always in flight), alternating instances and campaigns,
# bounded in count (MAX) and time (SECS); once the reloads are done each
# sends AFTER more, answered by the new workers only
my @jobs = map {
    my $k = $_;
    $t->background(sub {
        my (@out, $after);
        my $end = time + SECS;
        for my $i (0 .. MAX - 1) {
            last if time > $end;
            $after //= 0 if -e $flag;
            last if defined $after && $after++ >= AFTER;
            my $which = $i % 2 ? 'few' : 'plenty';
            my $r = $t->issue_coupon($camp{$which}, 1001 + $i * CLIENTS + $k,
                name => $nodes[ ($i >> 1) % 2 ], timeout => 30);
            push @out, [ $which, $r->{status},
                $r->{json} ? $r->{json}{code} : undef, $r->{error},
                $r->{status} == 201 ? $r->{json}{id} : undef,
                defined $after ? 1 : 0 ];
            sleep 0.002;
        }
        return \@out;
    });
} 0 .. CLIENTS - 1;

my $backends0 = backends();
ok(wait_until(sub { $t->coupon_rows($camp{plenty}) =~ /^(\d+)/ && $1 >= 20 },
    timeout => 30), 'the stream runs (20 coupons issued) before the reloads');

# and a burst on top: 400 users at once on 100 coupons, both instances, the
# first reload sent once the burst is being served
my $burst = $t->create_coupon(name => 'Reload burst', totalQuantity => 100);
my $bjob = $t->background(sub { [ map { [ $_->{status},
    $_->{json} ? $_->{json}{code} : undef, $_->{error},
    $_->{status} == 201 ? $_->{json}{id} : undef ] }
    $t->concurrent([ map { $t->issue_coupon_req($burst, $_,
    name => $nodes[ $_ % 2 ]) } 1 .. 400 ], timeout => 120) ] });
ok(wait_until(sub { $t->coupon_rows($burst) !~ /^0\|/ }, timeout => 30),
    'the burst is being served');
my %old;
push @{ $old{main} }, $t->reload_nginx;
note('the burst was ' . (kill(0, $bjob->{pid}) ? 'still' : 'no longer')
    . ' running when the new workers of main were up');
push @{ $old{b} }, $t->reload_nginx(name => 'b');
push @{ $old{main} }, $t->reload_nginx;
$t->write_file('reloads-done', "1\n");
my @all = map { @{ $t->collect($_, timeout => SECS + 60) } } @jobs;
push @all, map { [ 'burst', @$_, 1 ] } @{ $t->collect($bjob, timeout => 150) };
$camp{burst} = $burst;
$total{burst} = 100;

is(scalar(grep { $_->[5] && $_->[0] ne 'burst' } @all), CLIENTS * AFTER,
    'each client went on after the reloads (' . AFTER . ' requests each)');
for my $which (qw(plenty few burst)) {
    my @mine = grep { $_->[0] eq $which } @all;
    my %n;
    $n{ $_->[1] . ($_->[2] ? " $_->[2]" : '') . ($_->[3] ? " ($_->[3])"
        : '') }++ for @mine;
    my ($sent, $ok, $id) = (scalar @mine, $n{201} // 0, $camp{$which});
    my $want = $sent < $total{$which} ? $sent : $total{$which};
    is_deeply(\%n, { 201 => $want, $sent > $want
        ? ('409 COUPON_SOLD_OUT' => $sent - $want) : () },
        "$which ($total{$which}): $sent answered, exactly $want x 201 and"
        . ' the rest COUPON_SOLD_OUT (no connection error, no 5xx)');
    is($t->coupon_rows($id), "$ok|$ok", "$which: $ok rows, nobody twice");
    is($t->psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM
        user_coupons WHERE campaign_id = $id"), join(',', sort { $a <=> $b }
        map { $_->[4] } grep { $_->[1] == 201 } @mine),
        "$which: the rows are the 201 answers");
    is($t->redis_cli('GET', "coupon:{$id}:remaining"), $total{$which} - $ok,
        "$which: the gate agrees with Postgres");
}

for my $n (@nodes) {
    is(scalar $t->grep_log(qr/coupon gate failed/, name => $n), 0,
        "instance $n: no issue fell back to Postgres alone (every one gated,"
        . ' new workers included)');
}
for my $n (@nodes) {
    ok($t->wait_pids_gone($old{$n}, timeout => 30),
        "instance $n: the old workers exited (" . @{ $old{$n} } . ')');
}
ok(wait_until(sub { redis_clients() == $workers * RCONN }, timeout => 20),
    'CLIENT LIST: the old workers closed their Redis connections ('
    . redis_clients() . ')');
ok(wait_until(sub { backends() <= $backends0 }, timeout => 20),
    "the old workers closed their Postgres connections ($backends0 before, "
    . backends() . ' after)');

$t->done;
