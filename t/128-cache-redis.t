#!/usr/bin/perl
# Where the cache lives (commerce_cache store=): store=redis and
# store=shm+redis, each on two instances sharing one Postgres and one
# redis-server.  nginx -t refuses a bad store and a Redis store without
# commerce_redis.  An answer filled on one instance is a hit on the other
# (Redis is shared); a committed change reaches both within the bound
# (measured); 200 reads of a cold key make at most one query per instance;
# a version moved in Redis (another instance's invalidation) is a miss
# although the entry is still there, and a fill that read its version
# before the move is not stored (the versioned write: the fill is held in
# Postgres by a table lock while the version moves); Redis stopped: every
# answer comes from Postgres, right; Redis restarted from a snapshot taken
# before a change it never heard: the instances flush it before using it
# again, so nothing older than the database is served.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use Time::HiRes qw(time sleep);

my $t = CommerceTest->new;
$t->start_pg(options => [ '-c shared_preload_libraries=pg_stat_statements' ]);
$t->load_demo;
$t->psql('CREATE EXTENSION pg_stat_statements');
$t->start_redis;

my @nodes = qw(main b);
my $REDIS = "commerce_redis %%REDIS%%;\ncommerce_redis_command_timeout 1s;\n"
    . "commerce_redis_queue_timeout 1s;\n";
my $METRICS = 'location = /metrics { commerce_metrics; }';

sub cache_conf {
    my ($store) = @_;
    return "commerce_zone 1m;\n$REDIS"
        . "commerce_cache size=4m store=$store ttl=5m negative_ttl=1s"
        . " stats_ttl=1s fill_timeout=2s;";
}

# --- nginx -t ------------------------------------------------------------------------

for my $store (qw(shm redis shm+redis)) {
    my ($rc, $out) = $t->nginx_t($t->default_config(
        http_extra => cache_conf($store)));
    is($rc, 0, "nginx -t accepts store=$store") or diag($out);
}
for my $bad ('store=', 'store=memcached', 'store=REDIS', 'store=shm+') {
    my ($rc, $out) = $t->nginx_t($t->default_config(
        http_extra => "commerce_cache size=4m $bad;"));
    isnt($rc, 0, "nginx -t refuses $bad");
    like($out, qr/commerce_cache.*invalid store/, '... naming the directive')
        or diag($out);
}
for my $store (qw(redis shm+redis)) {
    my ($rc, $out) = $t->nginx_t($t->default_config(
        http_extra => "commerce_cache size=4m store=$store;"));
    isnt($rc, 0, "nginx -t refuses store=$store without commerce_redis");
    like($out, qr/needs "commerce_redis"/, '... saying so') or diag($out);
}

sub product {
    my ($id, $n) = @_;
    return $t->get("/api/v1/products/$id", user => 1, name => $n // 'main');
}
sub xc { $_[0]{headers}{'x-cache'} // '-' }
sub stock_of { $_[0]{json} ? $_[0]{json}{stock} : undef }
sub logged {
    my ($re, $n) = @_;
    return scalar(() = $t->grep_log($re, name => $n));
}
sub redis_metric {
    my ($n, $result) = @_;
    return $t->metric($t->metrics(name => $n), 'commerce_cache_redis_total',
        result => $result);
}
sub queries {
    my ($fn) = @_;
    return $t->psql(qq{SELECT coalesce(sum(calls), 0) FROM pg_stat_statements
        WHERE query LIKE '%$fn%' AND query NOT LIKE '%pg_stat_statements%'});
}

# poll both instances until they serve stock $want for product $id; the
# seconds it took (undef: not within 10 s)
sub visible {
    my ($id, $want) = @_;
    my $t0 = time;
    my %seen;
    while (time - $t0 < 10) {
        for my $n (@nodes) {
            next if $seen{$n};
            my $s = stock_of(product($id, $n));
            $seen{$n} = time - $t0 if defined $s && $s == $want;
        }
        return (sort { $b <=> $a } values %seen)[0] if keys %seen == @nodes;
    }
    return undef;
}

# (re)start both instances with a store; wait until Redis is in use
sub start_nodes {
    my ($store) = @_;
    for my $n (@nodes) {
        my $flushed = logged(qr/cache: Redis flushed, in use/, $n);
        $t->stop_nginx(name => $n);
        $t->write_config($t->default_config(http_extra => cache_conf($store),
            server_extra => $METRICS), name => $n);
        $t->start_nginx(name => $n);
        ok(wait_until(sub { logged(qr/cache: Redis flushed, in use/, $n)
            > $flushed }, timeout => 30),
            "store=$store, instance $n: Redis flushed and in use");
    }
}

my $stock = 1000;    # of product 9, changed by each round

for my $store (qw(redis shm+redis)) {
    start_nodes($store);
    my $base = $store eq 'redis' ? 20 : 40;    # products of this round
    my ($p, $q, $r_) = ($base + 1, $base + 2, $base + 3);

    # --- shared between the instances -----------------------------------------------
    my $r = product($p);
    is("$r->{status} " . xc($r), '200 MISS', "$store: a product, MISS first");
    my $hits_b = redis_metric('b', 'hit');
    my $r2 = product($p, 'b');
    is("$r2->{status} " . xc($r2), '200 HIT',
        '... a HIT on the other instance (filled from Redis)');
    is($r2->{body}, $r->{body}, '... the same body');
    is(redis_metric('b', 'hit'), $hits_b + 1, '... counted as a Redis hit');
    is(xc(product($p, 'b')), 'HIT', '... and again');

    $r = product(999999);
    is("$r->{status} " . xc($r), '404 MISS', '... an unknown id: 404 MISS');
    is("@{[ product(999999, 'b')->{status} ]} " . xc(product(999999, 'b')),
        '404 HIT', '... a negative entry for both');

    my $list = '/api/v1/products?page=0&size=7';
    is(xc($t->get($list, user => 1)), 'MISS', '... a list page: MISS');
    is(xc($t->get($list, user => 1, name => 'b')), 'HIT', '... HIT on b');

    # --- a committed change, on both ------------------------------------------------
    product($q, $_) for @nodes;
    is(xc(product($q, 'b')), 'HIT', "... product $q cached");
    $r = $t->post('/api/v1/orders', { items => [ { productId => $q,
        quantity => 3 } ], payment => { method => 'BALANCE' } }, user => 11);
    is($r->{status}, 201, "... an order of 3 x product $q on main");
    ok(defined visible($q, 997), '... both serve the new stock');
    my @page = @{ $t->get('/api/v1/products?page=0&size=7', user => 1,
        name => 'b')->{json}{items} // [] };
    ok(@page == 7, '... a list page on b is served after it');

    my @ms;
    for my $i (1 .. 50) {
        $t->psql('UPDATE products SET stock = stock - 1 WHERE id = 9');
        my $s = visible(9, --$stock);
        push @ms, defined $s ? $s * 1000 : 1e9;
    }
    @ms = sort { $a <=> $b } @ms;
    ok($ms[-1] < 1e9, '... 50 changes of product 9: each one served by both');
    diag(sprintf "store=$store: commit -> both instances serve it, 50 changes"
        . ' (psql commit, then polling): p50 %.1f ms, p99 %.1f ms, max %.1f ms',
        @ms[24, 48], $ms[-1]);

    # --- a cold key, 200 reads at once ------------------------------------------------
    $t->psql('SELECT pg_stat_statements_reset()');
    my @res = $t->concurrent([ map { { method => 'GET', user => 1,
        path => "/api/v1/products/$r_", name => $nodes[ $_ % 2 ] } } 1 .. 200 ],
        timeout => 60);
    is_deeply(tally(@res), { 200 => 200 }, '... 200 reads of a cold key: all 200');
    my $misses = grep { xc($_) eq 'MISS' } @res;
    my $calls = queries('cm_product_get');
    ok($calls >= 1 && $calls <= 2, "... $calls quer(y|ies): at most one per instance");
    is($misses, $calls, '... as many MISS');

    # --- another instance's invalidation: the version moved -----------------------------
    product($p, $_) for @nodes;
    $t->redis_cli('INCR', "commerce:cache:v:p$p");
    is($t->redis_cli('EXISTS', "commerce:cache:d:p$p"), 1,
        '... the version moved in Redis, its entry still there');
    is(xc(product($p, $store eq 'redis' ? 'main' : 'b')), 'MISS', '... a MISS')
        if $store eq 'redis';
    $t->redis_cli('INCR', 'commerce:cache:g:1');
    is(xc($t->get($list, user => 1)), 'MISS',
        '... the class generation moved: a list page MISS')
        if $store eq 'redis';

    # --- the versioned write: a fill that read before the move is not stored ---------------
    my $k = $base + 4;
    my $discarded = redis_metric('main', 'discarded');
    my $lock = $t->psql_bg('BEGIN; LOCK TABLE products IN ACCESS EXCLUSIVE MODE;'
        . ' SELECT pg_sleep(1.5); ROLLBACK;');
    ok(wait_until(sub { $t->psql(q{SELECT count(*) FROM pg_locks l
        JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'products'
        AND l.mode = 'AccessExclusiveLock' AND l.granted}) == 1 },
        timeout => 10), '... products locked (the fill will wait in Postgres)');
    my $job = $t->background(sub { my $x = product($k);
        return xc($x) . " $x->{status}" });
    ok(wait_until(sub { $t->psql(q{SELECT count(*) FROM pg_stat_activity
        WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()}) >= 1 },
        timeout => 10), '... a fill of a cold key waits for the lock');
    $t->redis_cli('INCR', "commerce:cache:v:p$k");
    is($t->collect($job), 'MISS 200', '... the fill answers once the lock goes');
    $t->psql_wait($lock);
    ok(wait_until(sub { redis_metric('main', 'discarded') == $discarded + 1 },
        timeout => 5), '... and its answer was not stored in Redis'
        . ' (commerce_cache_redis_total{result="discarded"})');
    is($t->redis_cli('EXISTS', "commerce:cache:d:p$k"), 0, '... no entry');
}

# --- Redis stopped, then restarted from a snapshot older than a change --------------------

my $id = 45;
product($id, $_) for @nodes;
is(xc(product($id, 'b')), 'HIT', "store=shm+redis: product $id cached");
my $entry = $t->redis_cli('GET', "commerce:cache:d:p$id");
like($entry, qr/"stock":1000/, '... its Redis entry');
$t->redis_cli('SAVE');
my %lost = map { $_ => logged(qr/Redis missed an invalidation/, $_) } @nodes;
$t->stop_redis;
$t->psql("UPDATE products SET stock = 345 WHERE id = $id");
for my $n (@nodes) {
    ok(wait_until(sub { logged(qr/Redis missed an invalidation/, $n) > $lost{$n} },
        timeout => 10), "instance $n: Redis missed the invalidation (logged)");
}
is(stock_of(product($id, 'b')), 345, '... the zone heard it: the new stock');
my %flushed = map { $_ => logged(qr/cache: Redis flushed, in use/, $_) } @nodes;
$t->start_redis;
is($t->redis_cli('GET', "commerce:cache:d:p$id"), $entry,
    'Redis restarted from the snapshot: the old entry is back');
for my $n (@nodes) {
    ok(wait_until(sub { logged(qr/cache: Redis flushed, in use/, $n) > $flushed{$n} },
        timeout => 15), "instance $n: flushes Redis before using it again");
}
# main's zone dropped its copy and nobody read it since: a read there goes
# to Redis, whose snapshot has the old entry
my $res = product($id);
is(xc($res) . ' ' . stock_of($res), 'MISS 345',
    '... main: the snapshot\'s entry is not served, the database\'s stock is');
is(xc(product($id)), 'HIT', '... then cached again');
$t->psql("UPDATE products SET stock = 346 WHERE id = $id");
ok(defined visible($id, 346), '... and a change after it reaches both');

# --- Redis stopped: store=redis answers from Postgres ---------------------------------
$t->stop_nginx(name => 'b');
$t->write_config($t->default_config(http_extra => cache_conf('redis'),
    server_extra => $METRICS), name => 'b');
$t->start_nginx(name => 'b');
ok(wait_until(sub { logged(qr/cache: Redis flushed, in use/, 'b') > $flushed{b} + 1 },
    timeout => 30), 'instance b as store=redis: Redis in use');
is(stock_of(product($id, 'b')), 346, '... the stock');
$t->stop_redis;
$t->psql("UPDATE products SET stock = 347 WHERE id = $id");
my ($answers, $wrong) = (0, 0);
for (1 .. 20) {
    my $res = product($id, 'b');
    next unless $res->{status} == 200;
    $answers++;
    $wrong++ if stock_of($res) != 347 || xc($res) ne 'MISS';
}
is("$answers $wrong", '20 0', 'Redis down, store=redis: 20 answers from Postgres (MISS), right');
$t->start_redis;

$t->done;
