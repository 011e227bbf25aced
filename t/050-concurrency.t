#!/usr/bin/perl
# Concurrency with exact outcomes against the real stack: a stampede on a
# product with stock 100, one user racing charges against payments, double
# payments, multi-item orders over overlapping products in opposite orders,
# and two nginx instances on one database.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
use constant POOL => 8;     # commerce_pg_pool_size, per worker (2 workers)
# This file is about exact outcomes, not about waiting: 500 buyers of one
# product at once are served one transaction at a time on its row, and on
# a loaded machine that line took longer than the default 3 s queue
# timeout (503 DB_UNAVAILABLE, exact but not the outcome counted here).
# Queue timeouts are t/060's.
my $conf = $t->default_config(http_extra => 'commerce_pg_queue_length 2048;'
    . "\ncommerce_pg_pool_size @{[ POOL ]};\ncommerce_pg_queue_timeout 60s;");
$t->write_config($conf);
$t->start_nginx;

sub stock { 0 + $t->psql("SELECT stock FROM products WHERE id = $_[0]") }

sub buy {
    my ($user, $items, %o) = @_;
    return { method => 'POST', path => '/api/v1/orders', user => $user,
        body => { items => [ map { { productId => $_, quantity => 1 } }
            @$items ], payment => { method => 'BALANCE' } }, %o };
}

sub paid_orders_of {
    my ($product) = @_;
    return 0 + $t->psql(qq{SELECT count(*) FROM orders o
        JOIN order_items i ON i.order_id = o.id
        WHERE i.product_id = $product AND o.status = 'PAID'});
}

# --- 500 buyers, stock 100 ------------------------------------------------------

$t->psql('UPDATE products SET stock = 100, price = 1000 WHERE id = 7');
my @res = $t->concurrent([ map { buy($_, [7]) } 1 .. 500 ], timeout => 120);
is_deeply(tally(@res), { '201' => 100, '409 OUT_OF_STOCK' => 400 },
    '500 buyers of stock 100: exactly 100 x 201 and 400 x 409 OUT_OF_STOCK');
is(stock(7), 0, 'stock ends at 0');
is(paid_orders_of(7), 100, '100 paid orders in the database');
my @winners = map { $_->{json}{userId} } grep { $_->{status} == 201 } @res;
is(0 + $t->psql('SELECT count(*) FROM users WHERE balance = 99000 AND id IN ('
    . join(',', @winners, 0) . ')'), 100, 'each winner paid exactly once');
is(0 + $t->psql('SELECT count(*) FROM users WHERE balance <> 100000 AND id NOT IN ('
    . join(',', @winners, 0) . ')'), 0, 'losers paid nothing');
$t->check_consistency;

# --- one user, 200 concurrent charges and payments ----------------------------------

my $u = 900;
$t->psql('UPDATE products SET stock = 100000, price = 1500 WHERE id = 8');
my $mark = 0 + $t->psql('SELECT coalesce(max(id), 0) FROM balance_ledger');
my $start = 0 + $t->psql("SELECT balance FROM users WHERE id = $u");
my @mix = map {
    $_ % 2
        ? { method => 'POST', path => '/api/v1/balance/charge', user => $u,
            body => { amount => 1000 } }
        : buy($u, [8])
} 1 .. 200;
@res = $t->concurrent(\@mix, timeout => 120);
my @charges = @res[ grep { $_ % 2 == 0 } 0 .. 199 ];
my @orders = @res[ grep { $_ % 2 == 1 } 0 .. 199 ];
is_deeply(tally(@charges), { '200' => 100 }, '100 charges: all 200');
my $to = tally(@orders);
my $ok_orders = $to->{201} // 0;
is($ok_orders + ($to->{'409 INSUFFICIENT_BALANCE'} // 0), 100,
    '100 orders: 201 or 409 INSUFFICIENT_BALANCE') or diag(explain $to);

my $final = 0 + $t->psql("SELECT balance FROM users WHERE id = $u");
my ($last_after, $sum, $rows, $negative) = split /\|/, $t->psql(qq{
    SELECT (SELECT balance_after FROM balance_ledger WHERE user_id = $u
             ORDER BY id DESC LIMIT 1),
           sum(amount), count(*), count(*) FILTER (WHERE balance_after < 0)
      FROM balance_ledger WHERE user_id = $u AND id > $mark});
is($final, 0 + $last_after, 'balance = last ledger balance_after');
is($final, $start + $sum, 'balance = start + sum of ledger amounts');
is($final, $start + 100 * 1000 - $ok_orders * 1500,
    'balance = start + charges - successful payments');
is($rows, 100 + $ok_orders, 'one ledger row per successful request');
is($negative, 0, 'never negative');
my %after = map { $_ => 1 } $t->psql("SELECT balance_after FROM balance_ledger
    WHERE user_id = $u AND id > $mark AND kind = 'CHARGE'");
is(scalar(grep { !$after{ $_->{json}{balance} // -1 } } @charges), 0,
    'every charge response shows a balance_after of the ledger');

# --- double payments ------------------------------------------------------------------

$u = 901;
my @pending;
for (1 .. 50) {
    my $r = $t->post('/api/v1/orders', { items => [ { productId => 8,
        quantity => 1 } ] }, user => $u);
    push @pending, $r->{json}{id} if $r->{status} == 201;
}
is(scalar @pending, 50, '50 unpaid orders');
@res = $t->concurrent([ map { my $id = $_; map { {
    method => 'POST', path => "/api/v1/orders/$id/payment", user => $u,
    body => { method => 'BALANCE' } } } 1 .. 2 } @pending ], timeout => 60);
is_deeply(tally(@res), { '200' => 50, '409 ORDER_NOT_PAYABLE' => 50 },
    'each order paid exactly once, the other payment is ORDER_NOT_PAYABLE');
is(0 + $t->psql("SELECT count(*) FROM payments p JOIN orders o ON o.id =
    p.order_id WHERE o.user_id = $u AND p.status = 'SUCCESS'"), 50,
    '50 payments');
is(0 + $t->psql("SELECT balance FROM users WHERE id = $u"), 100000 - 50 * 1500,
    'balance debited 50 times');

# --- overlapping multi-item orders in opposite orders ------------------------------------

$t->psql('UPDATE products SET stock = 150, price = 10 WHERE id IN (11, 12, 13)');
@res = $t->concurrent([ map {
    buy($_, $_ % 2 ? [ 11, 12, 13 ] : [ 13, 12, 11 ])
} 1 .. 300 ], timeout => 120);
is_deeply(tally(@res), { '201' => 150, '409 OUT_OF_STOCK' => 150 },
    '300 orders of [11,12,13] / [13,12,11] over stock 150: 150 succeed');
is($t->psql('SELECT string_agg(stock::text, \',\' ORDER BY id) FROM products
    WHERE id IN (11, 12, 13)'), '0,0,0', 'all three stocks at 0');

# the same with mixed quantities and a larger stock: no 5xx, exact stock
$t->psql('UPDATE products SET stock = 1000 WHERE id IN (14, 15, 16, 17)');
my %want = map { $_ => 0 } 14 .. 17;
my @multi = map {
    my @ids = $_ % 3 == 0 ? (17, 16, 15, 14) : $_ % 3 == 1 ? (14, 16)
        : (17, 15, 14);
    { method => 'POST', path => '/api/v1/orders', user => 100 + $_,
      body => { items => [ map { { productId => $_, quantity => 2 } } @ids ] },
      ids => \@ids }
} 1 .. 300;
my @ids_of = map { delete $_->{ids} } @multi;
@res = $t->concurrent(\@multi, timeout => 120);
my $tm = tally(@res);
is(($tm->{201} // 0) + ($tm->{'409 OUT_OF_STOCK'} // 0), 300,
    'mixed multi-item orders: every answer 201 or 409') or diag(explain $tm);
for my $i (0 .. $#res) {
    next unless $res[$i]{status} == 201;
    $want{$_} += 2 for @{ $ids_of[$i] };
}
is($t->psql('SELECT string_agg(stock::text, \',\' ORDER BY id) FROM products
    WHERE id BETWEEN 14 AND 17'), join(',', map { 1000 - $want{$_} } 14 .. 17),
    'stocks reflect exactly the successful orders');

is(scalar $t->grep_log(qr/deadlock/i), 0, 'no deadlock in the nginx log');
is(scalar(grep { /deadlock detected/ }
    split /\n/, $t->read_file('pg/postgres.log')), 0,
    'no deadlock in the Postgres log');
$t->check_consistency;

# --- two nginx instances on one database ---------------------------------------------------

$t->write_config($conf, name => 'b');
$t->start_nginx(name => 'b');
# both instances ready before the buyers come (a slow ASan build connects
# its pool later than the first buyers arrive): every worker's connections
ok(wait_until(sub { $t->get('/api/v1/products/9', user => 1, name => 'b')
    ->{status} == 200 }, timeout => 30), 'instance b serves');
ok(wait_until(sub { $t->psql(q{SELECT count(*) FROM pg_stat_activity
    WHERE application_name = 'ngx_commerce'}) >= 4 * POOL }, timeout => 30),
    'both instances have their pools connected');
$t->psql('UPDATE products SET stock = 100, price = 1000 WHERE id = 9');
@res = $t->concurrent([ map { buy($_, [9], name => $_ % 2 ? 'main' : 'b') }
    501 .. 1000 ], timeout => 120);
is_deeply(tally(@res), { '201' => 100, '409 OUT_OF_STOCK' => 400 },
    'two instances, 500 buyers of stock 100: exactly 100 succeed');
my %by = (main => 0, b => 0);
$by{ $_ % 2 ? 'main' : 'b' } += $res[ $_ - 501 ]{status} == 201 for 501 .. 1000;
ok($by{main} > 0 && $by{b} > 0, "both instances sold ($by{main} + $by{b})");
is(stock(9), 0, 'stock ends at 0');
is(paid_orders_of(9), 100, '100 paid orders');

# one user racing charges and payments through both instances
$u = 902;
$mark = 0 + $t->psql('SELECT coalesce(max(id), 0) FROM balance_ledger');
$start = 0 + $t->psql("SELECT balance FROM users WHERE id = $u");
@mix = map {
    my $name = $_ % 4 < 2 ? 'main' : 'b';
    $_ % 2
        ? { method => 'POST', path => '/api/v1/balance/charge', user => $u,
            body => { amount => 1000 }, name => $name }
        : buy($u, [8], name => $name)
} 1 .. 200;
my @two;
{
    # the harness sends a list to one instance: one list per instance, at once
    my @a = grep { $_->{name} eq 'main' } @mix;
    my @b = grep { $_->{name} eq 'b' } @mix;
    my $bg = $t->background(sub { [ map { { status => $_->{status},
        json => $_->{json} } } $t->concurrent(\@b, name => 'b',
        timeout => 120) ] });
    my @ra = $t->concurrent(\@a, name => 'main', timeout => 120);
    @two = (@ra, @{ $t->collect($bg, timeout => 150) });
}
my $ok2 = grep { $_->{status} == 201 } @two;
my $ch2 = grep { $_->{status} == 200 } @two;
is($ch2, 100, 'two instances: 100 charges, all 200');
is(scalar(grep { $_->{status} != 200 && $_->{status} != 201
    && !($_->{status} == 409 && ($_->{json}{code} // '') eq
    'INSUFFICIENT_BALANCE') } @two), 0,
    'orders: 201 or 409 INSUFFICIENT_BALANCE, nothing else');
$final = 0 + $t->psql("SELECT balance FROM users WHERE id = $u");
($last_after, $sum, $rows, $negative) = split /\|/, $t->psql(qq{
    SELECT (SELECT balance_after FROM balance_ledger WHERE user_id = $u
             ORDER BY id DESC LIMIT 1),
           sum(amount), count(*), count(*) FILTER (WHERE balance_after < 0)
      FROM balance_ledger WHERE user_id = $u AND id > $mark});
is($final, 0 + $last_after, 'two instances: balance = last ledger balance_after');
is($final, $start + 100 * 1000 - $ok2 * 1500,
    'balance = start + charges - successful payments');
is($rows, 100 + $ok2, 'one ledger row per successful request');
is($negative, 0, 'never negative');

# both instances' expiry jobs at once on 200 stale unpaid orders: each
# released exactly once (FOR UPDATE SKIP LOCKED)
$t->stop_nginx(name => 'b');
$t->stop_nginx;
# (200 orders of one product queue behind its row lock: a loaded machine
# outwaited the default queue timeout, 7 of them 503; this phase is about
# the expiry jobs, so a generous one, as the 500 buyers' phase above)
my $fast = $t->default_config(http_extra => "commerce_pg_queue_length 2048;\n"
    . "commerce_pg_queue_timeout 60s;\n"
    . "commerce_order_ttl 1s;\ncommerce_order_expiry_interval 100ms;");
$t->write_config($fast);
$t->write_config($fast, name => 'b');
$t->psql('UPDATE products SET stock = 1000 WHERE id = 18');
$t->start_nginx;
my @stale = grep { defined } map { $_->{json}{id} } $t->concurrent([ map { {
    method => 'POST', path => '/api/v1/orders', user => 600 + $_,
    body => { items => [ { productId => 18, quantity => 2 } ] } } } 1 .. 200 ],
    timeout => 60);
is(scalar @stale, 200, '200 unpaid orders of 2 x product 18');
$t->start_nginx(name => 'b');
ok(wait_until(sub { $t->psql("SELECT count(*) FROM orders WHERE id IN ("
    . join(',', @stale) . ") AND status = 'CANCELLED'") == 200 },
    timeout => 20), 'two expiry jobs: all 200 cancelled');
is(stock(18), 1000, 'stock released exactly once per order (back to 1000)');

$t->check_consistency;
$t->done;
