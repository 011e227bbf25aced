#!/usr/bin/perl
# The product cache (commerce_cache): nginx -t refuses bad values naming
# the directive; GET /products/{id} and the list pages MISS then HIT
# (X-Cache), an unknown id is a negative entry for negative_ttl, entries
# expire by TTL; every committed change of a product (an order through the
# API, an UPDATE in psql) reaches both of two instances on one database
# through Postgres NOTIFY, and a list page shows it too; 200 requests at
# once on a cold key make one database query per instance
# (pg_stat_statements); the listener's connection killed, and Postgres
# restarted, while products change: no answer afterwards is older than
# the database; cache off: no X-Cache, every read a query.  The time from
# commit to both instances serving the new value is measured (diag).

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

my @nodes = qw(main b);
my $CACHE = "commerce_zone 1m;\ncommerce_cache size=4m ttl=30s negative_ttl=1s stats_ttl=1s fill_timeout=2s;";

# --- nginx -t ---------------------------------------------------------------------

for my $good ('off', 'size=1m', 'size=64m ttl=5m negative_ttl=500ms fill_timeout=1s') {
    my ($rc, $out) = $t->nginx_t($t->default_config(
        http_extra => "commerce_cache $good;"));
    is($rc, 0, "nginx -t accepts commerce_cache $good") or diag($out);
}
for my $bad ('', 'size=1k', 'size=4m ttl=0', 'ttl=5s', 'size=4m colour=red',
             'size=4m ttl=2d', 'size=4m negative_ttl=x', 'size=lots') {
    my ($rc, $out) = $t->nginx_t($t->default_config(
        http_extra => "commerce_cache $bad;"));
    isnt($rc, 0, "nginx -t refuses commerce_cache '$bad'");
    like($out, qr/commerce_cache/, '... naming the directive') or diag($out);
}

# --- two instances with the cache --------------------------------------------------

my $METRICS = 'location = /metrics { commerce_metrics; }';
for my $n (@nodes) {
    $t->write_config($t->default_config(http_extra => $CACHE,
        server_extra => $METRICS), name => $n);
    $t->start_nginx(name => $n);
}
for my $n (@nodes) {
    ok(wait_until(sub { $t->grep_log(qr/product cache: the listener is up/,
        name => $n) }, timeout => 30), "instance $n: its listener is up");
}

sub product {
    my ($id, $n) = @_;
    return $t->get("/api/v1/products/$id", user => 1, name => $n // 'main');
}
sub xc { $_[0]{headers}{'x-cache'} // '-' }
sub stock_of { $_[0]{json} ? $_[0]{json}{stock} : undef }

my $r = product(5);
is("$r->{status} " . xc($r), '200 MISS', 'a product: MISS first');
is_deeply({ map { $_ => $r->{json}{$_} } qw(id name price stock) },
    { id => 5, name => 'Product 5', price => 3000, stock => 1000 },
    '... the product');
my $r2 = product(5);
is("$r2->{status} " . xc($r2), '200 HIT', '... then HIT');
is($r2->{body}, $r->{body}, '... the same body');
is(xc(product(5, 'b')), 'MISS', 'the other instance has its own cache: MISS');
is(xc(product(5, 'b')), 'HIT', '... then HIT');

$r = product(999999);
is("$r->{status} " . xc($r), '404 MISS', 'an unknown id: 404 MISS');
$r2 = product(999999);
is("$r2->{status} " . xc($r2), '404 HIT', '... then 404 HIT (negative entry)');
is($r2->{json}{code}, 'PRODUCT_NOT_FOUND', '... the same error');
ok(wait_until(sub { xc(product(999999)) eq 'MISS' }, timeout => 5),
    '... gone after negative_ttl (1s)');
is(xc($t->get('/api/v1/products/abc', user => 1)), '-',
    'a bad id: answered before the cache (no X-Cache)');

my $list = '/api/v1/products?page=0&size=5';
is(xc($t->get($list, user => 1)), 'MISS', 'a list page: MISS');
is(xc($t->get($list, user => 1)), 'HIT', '... then HIT');
is(xc($t->get('/api/v1/products?page=0&size=6', user => 1)), 'MISS',
    'another page size: its own entry');

# --- invalidation on commit, on both instances ---------------------------------------

# poll both until they serve stock $want for product $id; the seconds it took
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

product(7, $_) for @nodes;
is(xc(product(7, 'b')), 'HIT', 'product 7 cached on b');
$r = $t->post('/api/v1/orders', { items => [ { productId => 7, quantity => 3 } ],
    payment => { method => 'BALANCE' } }, user => 11);
is($r->{status}, 201, 'an order of 3 x product 7 on main');
my $took = visible(7, 997);
ok(defined $took, 'both instances serve stock 997 after the commit')
    and diag(sprintf 'visible on both after %.1f ms', $took * 1000);
my @page = @{ $t->get('/api/v1/products?page=1&size=5', user => 1,
    name => 'b')->{json}{items} // [] };
is_deeply([ map { "$_->{id}:$_->{stock}" } @page[1, 2] ], [ '7:997', '8:1000' ],
    'a list page on b shows it');

$t->psql('UPDATE products SET price = 4321, stock = 500 WHERE id = 7');
ok(defined visible(7, 500), 'an UPDATE in psql: both serve it');
is(product(7, 'b')->{json}{price}, 4321, '... with the new price');

# commit -> visible on both, 100 times (a measure, not a threshold)
my @ms;
for my $i (1 .. 100) {
    $t->psql("UPDATE products SET stock = stock - 1 WHERE id = 9");
    my $want = 1000 - $i;
    my $s = visible(9, $want);
    push @ms, defined $s ? $s * 1000 : 1e9;
}
@ms = sort { $a <=> $b } @ms;
ok($ms[-1] < 1e9, '100 changes of product 9: every one served by both');
diag(sprintf 'commit -> both instances serve it, 100 changes (psql commit,'
    . ' then polling): p50 %.1f ms, p99 %.1f ms, max %.1f ms',
    @ms[49, 98], $ms[-1]);

# --- a cold key, 200 requests at once: one query per instance ------------------------

$t->psql('SELECT pg_stat_statements_reset()');
my @res = $t->concurrent([ map { { method => 'GET', path => '/api/v1/products/11',
    user => 1, name => $nodes[ $_ % 2 ] } } 1 .. 200 ], timeout => 60);
is_deeply(tally(@res), { 200 => 200 }, '200 reads of a cold key on two instances: all 200');
is(scalar(grep { xc($_) eq 'MISS' } @res), 2, '... 2 MISS (one per instance)');
is($t->psql(q{SELECT coalesce(sum(calls), 0) FROM pg_stat_statements
    WHERE query LIKE '%cm_product_get%'}), 2,
    '... and 2 queries in pg_stat_statements');

# --- best sellers: a short TTL, served stale while one request refills it --------------

my $best = '/api/v1/products/best-sellers?days=3&limit=3';
$r = $t->get($best, user => 1);
is("$r->{status} " . xc($r), '200 MISS', 'best sellers: MISS');
is(xc($t->get($best, user => 1)), 'HIT', '... then HIT');
$t->post('/api/v1/orders', { items => [ { productId => 2, quantity => 10 } ],
    payment => { method => 'BALANCE' } }, user => 12);
$r2 = $t->get($best, user => 1);
is(xc($r2) . ' ' . $r2->{body}, 'HIT ' . $r->{body},
    '... a new sale is not heard: the same answer until stats_ttl');
sleep 1.2;
$t->psql('SELECT pg_stat_statements_reset()');
@res = $t->concurrent([ map { { method => 'GET', path => $best, user => 1 } }
    1 .. 50 ], timeout => 60);
is_deeply(tally(@res), { 200 => 50 }, 'expired, 50 at once: all 200');
is(scalar(grep { xc($_) eq 'MISS' } @res), 1, '... one refills it (MISS)');
is(scalar(grep { xc($_) eq 'HIT' } @res), 49, '... the others are answered'
    . ' from the cache (the stale copy while it refills)');
is($t->psql(q{SELECT coalesce(sum(calls), 0) FROM pg_stat_statements
    WHERE query LIKE '%cm_best_sellers%'}), 1, '... one query');
my ($miss) = grep { xc($_) eq 'MISS' } @res;
is($miss->{json}{items}[0]{productId}, 2, '... which sees the new sale first');
ok(wait_until(sub { ($t->get($best, user => 1)->{json}{items}[0]{productId}
    // 0) == 2 }, timeout => 5), 'and then everyone does');

# --- the listener's connection lost while products change ------------------------------

sub logged {
    my ($re, $n) = @_;
    return scalar(() = $t->grep_log($re, name => $n));
}
my %ups = map { $_ => logged(qr/product cache: the listener is up/, $_) } @nodes;
product(12, $_) for @nodes;
is(xc(product(12, 'b')), 'HIT', 'product 12 cached on b');
# every connection of the instances to the database ends, the listeners too
$t->psql(q{SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid()});
for my $n (@nodes) {
    ok(wait_until(sub { logged(qr/product cache: the listener is down/, $n) },
        timeout => 10), "instance $n: its listener is down");
}
# a change nobody hears: the caches must not answer from before it
$t->psql('UPDATE products SET stock = 123 WHERE id = 12');
my ($stale, $answers) = (0, 0);
for (1 .. 30) {
    for my $n (@nodes) {
        my $res = product(12, $n);
        next unless $res->{status} == 200;
        $answers++;
        $stale++ if stock_of($res) != 123;
    }
}
ok($answers > 0, "a change while the listeners are down: $answers answers");
is($stale, 0, '... none shows the old stock');
for my $n (@nodes) {
    ok(wait_until(sub { logged(qr/product cache: the listener is up/, $n)
        > $ups{$n} }, timeout => 30), "instance $n: its listener is up again");
}
is(stock_of(product(12, 'b')), 123, 'afterwards: the new stock');
is(xc(product(12, 'b')), 'HIT', '... cached again');

# --- Postgres restarted ----------------------------------------------------------------

product(13, $_) for @nodes;
$t->restart_pg;
$t->psql('UPDATE products SET stock = 321 WHERE id = 13');
$stale = 0;
my $ok = 0;
for (1 .. 100) {
    for my $n (@nodes) {
        my $res = product(13, $n);
        next unless $res->{status} == 200;
        $ok++;
        $stale++ if stock_of($res) != 321;
    }
    sleep 0.02;
}
ok($ok > 0, "Postgres restarted: $ok answers 200 afterwards");
is($stale, 0, '... none of them older than the database');

# --- metrics ---------------------------------------------------------------------------

$t->stop_nginx(name => 'b');
my $m = $t->metrics;
ok(($m->{'commerce_cache_lookups_total{result="hit"}'} // 0) > 100,
    'metrics: commerce_cache_lookups_total{result="hit"} '
    . ($m->{'commerce_cache_lookups_total{result="hit"}'} // 'missing'));
ok(($m->{'commerce_cache_fills_total{outcome="stored"}'} // 0) > 0,
    '... fills stored');
ok(($m->{'commerce_cache_invalidations_total'} // 0) >= 100,
    '... invalidations heard');
ok(defined $m->{'commerce_cache_entries'}, '... entries');

# --- a reload: the new worker 0 listens, the old one's leaving stops nothing -------------

my $ups = logged(qr/product cache: the listener is up/, 'main');
my @old = $t->reload_nginx;
ok($t->wait_pids_gone(\@old), 'reload: the old workers exit');
ok(wait_until(sub { logged(qr/product cache: the listener is up/, 'main') > $ups },
    timeout => 15), '... the new listener is up');
product(14);
is(xc(product(14)), 'HIT', '... and the cache serves after the old listener left');
$t->psql('UPDATE products SET stock = 14 WHERE id = 14');
ok(wait_until(sub { stock_of(product(14)) == 14 }, timeout => 10),
    '... and hears changes');

# --- off -------------------------------------------------------------------------------

$t->write_config($t->default_config(http_extra => 'commerce_cache off;',
    server_extra => $METRICS));
$t->reload_nginx;
ok(wait_until(sub { xc(product(5)) eq '-' }, timeout => 10),
    'commerce_cache off: no X-Cache');
$t->psql('SELECT pg_stat_statements_reset()');
product(5) for 1 .. 5;
is($t->psql(q{SELECT coalesce(sum(calls), 0) FROM pg_stat_statements
    WHERE query LIKE '%cm_product_get%'}), 5, '... every read a query');

$t->done;
