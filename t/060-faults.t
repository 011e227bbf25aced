#!/usr/bin/perl
# Faults: Postgres stopped and restarted mid-traffic, the pool exhausted,
# a client that goes away while its query runs, nginx reloaded under load.
# Each with the expected statuses, bounded in time, and no partial order.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use CommerceTest;

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
$t->psql('UPDATE products SET stock = 1000000, price = 1 WHERE id = 23');
$t->psql('UPDATE users SET balance = 10000000 WHERE id BETWEEN 100 AND 199');

$t->write_config($t->default_config(http_extra => <<'EOF'));
commerce_pg_queue_timeout 2s;
commerce_pg_queue_length 2048;
EOF
$t->start_nginx;

sub stock { 0 + $t->psql("SELECT stock FROM products WHERE id = $_[0]") }
sub orders_of {
    0 + $t->psql("SELECT count(*) FROM order_items WHERE product_id = $_[0]");
}

sub is_503 {
    my ($r, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is_error($r, 503, 'DB_UNAVAILABLE', $name)
        and like($r->{headers}{'retry-after'} // '', qr/\A\d+\z/,
            "$name: Retry-After");
}

# A stream of requests on $conns connections for $secs seconds (each a new
# connection, as clients without keep-alive do); returns the statuses.
sub traffic {
    my (%o) = @_;
    my $secs = $o{secs} // 4;
    my @jobs = map {
        my $c = $_;
        $t->background(sub {
            my @out;
            my $end = time + $secs;
            my $i = 0;
            while (time < $end && $i < ($o{max} // 1e9)) {
                $i++;
                my $user = 100 + ($c * 10 + $i) % 100;
                my $k = $i % 3;
                my $r = $k == 0
                    ? $t->get('/api/v1/products/' . (1 + $i % 200),
                        user => $user, timeout => 15)
                    : $k == 1
                    ? $t->get('/api/v1/balance', user => $user, timeout => 15)
                    : $t->post('/api/v1/orders', { items => [ {
                        productId => 23, quantity => 1 } ],
                        payment => { method => 'BALANCE' } }, user => $user,
                        timeout => 15);
                push @out, [ $r->{status}, $r->{json} ? $r->{json}{code} : undef,
                    $r->{error}, $r->{elapsed},
                    $r->{headers}{'retry-after'}, time ];
            }
            return \@out;
        });
    } 1 .. ($o{conns} // 4);
    return sub { [ map { @{ $t->collect($_, timeout => $secs + 60) } } @jobs ] };
}

# outcomes of load() ([status, code, error] each), counted
sub tally_outcomes {
    my %n;
    $n{ $_->[0] . ($_->[1] ? " $_->[1]" : '') . ($_->[2] ? " ($_->[2])" : '') }++
        for @_;
    return \%n;
}

# --- Postgres stopped and restarted mid-traffic ---------------------------------

is($t->get('/api/v1/products/1', user => 1)->{status}, 200, 'warm up');

my $lock = $t->psql_bg(q{BEGIN;
    SELECT id FROM products WHERE id = 20 FOR UPDATE;
    SELECT pg_sleep(30);
    COMMIT;});
ok(wait_until(sub { $t->psql(q{SELECT count(*) FROM pg_stat_activity
    WHERE query LIKE '%pg_sleep(30)%' AND state = 'active'
      AND pid <> pg_backend_pid()}) == 1 }), 'product 20 locked');
my $stock20 = $t->psql_json('SELECT stock FROM products WHERE id = 20');

# four orders waiting on the lock while Postgres goes away (fewer than a
# worker's pool, so the other traffic flows until then)
my $stuck = $t->background(sub {
    [ map { { status => $_->{status}, json => $_->{json},
              retry => $_->{headers}{'retry-after'}, error => $_->{error},
              elapsed => $_->{elapsed} } }
      $t->concurrent([ map { [ 'POST', '/api/v1/orders', { items => [ {
          productId => 20, quantity => 1 } ], payment => { method => 'BALANCE' }
      }, { user => $_ } ] } 1 .. 4 ], timeout => 20) ];
});
my $stream = traffic(conns => 4, secs => 12);
sleep 1.5;
# immediate: every backend dies at once (a crash); with 'fast' a waiter
# can still commit in the instant its lock holder exits
$t->stop_pg(mode => 'immediate');
my $down_at = time;

# while it is down: quick 503s, never a hang
for my $i (1 .. 5) {
    my $r = $t->get('/api/v1/products/1', user => 1, timeout => 10);
    is_503($r, "Postgres down: GET product ($i)");
    cmp_ok($r->{elapsed} // 99, '<', 3.5, "... answered within the queue timeout");
}
my $r = $t->post('/api/v1/balance/charge', { amount => 100 }, user => 1,
    timeout => 10);
is_503($r, 'Postgres down: charge');
my $rid = $r->{headers}{'x-request-id'} // 'none';
ok(scalar $t->grep_log(qr/\Q$rid\E/), 'the 503 is in the error log with '
    . 'its request id');

my $stuck_res = $t->collect($stuck);
is(scalar(grep { $_->{status} == 503 && ($_->{json}{code} // '') eq
    'DB_UNAVAILABLE' && defined $_->{retry} } @$stuck_res), 4,
    'orders in flight when Postgres stopped: 503 DB_UNAVAILABLE + Retry-After')
    or diag(explain $stuck_res);

sleep(3 - (time - $down_at)) if time - $down_at < 3;
$t->start_pg_again;
my $up_at = time;

ok(wait_until(sub { $t->get('/api/v1/products/1', user => 1, timeout => 5)
    ->{status} == 200 }, timeout => 15, interval => 0.2),
    'traffic recovers without an nginx restart');
diag(sprintf 'recovered %.1f s after Postgres came back', time - $up_at);
is($t->get('/api/v1/balance', user => 1)->{status}, 200, 'balance after recovery');
is($t->post('/api/v1/orders', { items => [ { productId => 20, quantity => 1 } ],
    payment => { method => 'BALANCE' } }, user => 1)->{status}, 201,
    'an order after recovery');

my $all = $stream->();
my %seen = %{ tally_outcomes(@$all) };
my @wrong = grep { !/^(200|201|503 DB_UNAVAILABLE)$/ } keys %seen;
ok(!@wrong, 'mid-traffic: every answer 200/201 or 503 DB_UNAVAILABLE')
    or diag(explain \%seen);
ok(!grep({ $_->[0] == 503 && !defined $_->[4] } @$all),
    'every 503 has Retry-After');
ok(($seen{'503 DB_UNAVAILABLE'} // 0) > 0, 'some requests saw the outage');
ok(scalar(grep { $_->[0] =~ /^20/ && $_->[5] < $down_at } @$all),
    'traffic flowed before the outage');
ok(scalar(grep { $_->[0] =~ /^20/ && $_->[5] > $up_at } @$all),
    'and again after it, in the same stream');
diag('mid-traffic tally: ' . join(', ', map { "$_ x $seen{$_}" } sort keys %seen));

is(stock(20), $stock20 - 1, 'product 20: only the order after recovery took stock');
is(orders_of(20), 1, 'no order from the interrupted requests');
$t->check_consistency('no partial order after the outage');

# --- pool exhausted -----------------------------------------------------------------------

# one worker, one connection, two waiting places, one second of patience
$t->write_config($t->default_config(workers => 1, http_extra => <<'EOF'),
commerce_pg_pool_size 1;
commerce_pg_pipeline_depth 1;
commerce_pg_queue_length 2;
commerce_pg_queue_timeout 1s;
commerce_order_expiry_interval 1h;
EOF
    name => 'pool');
my $started = time;
$t->start_nginx(name => 'pool');
ok(wait_until(sub { $t->get('/api/v1/products/21', user => 1, name => 'pool')
    ->{status} == 200 }), 'pool instance warm');
# The background job's first runs (Idempotency-Key purge, then order
# expiry) come about 1 s after the worker starts; one that came while the
# only connection is held below would take one of the two waiting places.
sleep(0.1) while time - $started < 2;
ok(wait_until(sub { $t->psql(q{SELECT count(*) FROM pg_stat_activity
    WHERE application_name = 'ngx_commerce' AND state <> 'idle'}) == 0 }),
    'pool instance idle after its first background runs');

my $stock21 = stock(21);
$lock = $t->psql_bg(q{BEGIN;
    SELECT id FROM products WHERE id = 21 FOR UPDATE;
    SELECT pg_sleep(3);
    COMMIT;});
ok(wait_until(sub { $t->psql(q{SELECT count(*) FROM pg_stat_activity
    WHERE query LIKE '%pg_sleep(3)%' AND state = 'active'
      AND pid <> pg_backend_pid()}) == 1 }), 'product 21 locked');

my $t0 = time;
# the first request takes the only connection and waits on the lock
my $first = $t->background(sub {
    my $r = $t->post('/api/v1/orders', { items => [ { productId => 21,
        quantity => 1 } ], payment => { method => 'BALANCE' } }, user => 1,
        name => 'pool', timeout => 20);
    return { status => $r->{status}, code => $r->{json} && $r->{json}{code} };
});
# until it holds the only connection (waiting on the row lock)
ok(wait_until(sub { $t->psql(q{SELECT count(*) FROM pg_stat_activity
    WHERE application_name = 'ngx_commerce' AND wait_event_type = 'Lock'})
    == 1 }, timeout => 10), 'the first order holds the connection');
my @res = $t->concurrent([ map { [ 'POST', '/api/v1/orders', { items => [ {
    productId => 21, quantity => 1 } ], payment => { method => 'BALANCE' } },
    { user => $_ } ] } 2 .. 6 ], name => 'pool', timeout => 20);
my @fast = grep { $_->{elapsed} < 0.5 } @res;
my @slow = grep { $_->{elapsed} >= 0.7 && $_->{elapsed} < 2.5 } @res;
is(scalar(grep { $_->{status} == 503 && ($_->{json}{code} // '') eq
    'DB_UNAVAILABLE' && defined $_->{headers}{'retry-after'} } @res), 5,
    'pool exhausted: 5 x 503 DB_UNAVAILABLE with Retry-After')
    or diag(explain [ map { [ $_->{status}, $_->{elapsed} ] } @res ]);
is(scalar(grep { $_->{status} == 503 } @fast), 3,
    '3 beyond the queue bound: 503 at once');
is(scalar(grep { $_->{status} == 503 } @slow), 2,
    '2 queued: 503 after the 1 s queue timeout')
    or diag(explain [ map { sprintf '%d %.2f', $_->{status}, $_->{elapsed} } @res ]);
my $f = $t->collect($first);
is($f->{status}, 201, 'the request holding the connection succeeds once the '
    . 'lock goes');
cmp_ok(time - $t0, '<', 6, 'all bounded in time');
$t->psql_wait($lock);
is(stock(21), $stock21 - 1, 'exactly one order took stock');
is(orders_of(21), 1, 'exactly one order for product 21');

# --- a client that goes away while its query runs ----------------------------------------

my $stock22 = stock(22);
my $bal = 0 + $t->psql('SELECT balance FROM users WHERE id = 8');
$lock = $t->psql_bg(q{BEGIN;
    SELECT id FROM products WHERE id = 22 FOR UPDATE;
    SELECT pg_sleep(2);
    COMMIT;});
ok(wait_until(sub { $t->psql(q{SELECT count(*) FROM pg_stat_activity
    WHERE query LIKE '%pg_sleep(2)%' AND state = 'active'
      AND pid <> pg_backend_pid()}) == 1 }), 'product 22 locked');
$r = $t->raw($t->build_request('POST', '/api/v1/orders', user => 8,
    body => { items => [ { productId => 22, quantity => 3 } ],
              payment => { method => 'BALANCE' } }),
    name => 'pool', close_after => 0.5, timeout => 5);
is($r->{status}, 0, 'client closed before the answer');
$t->psql_wait($lock);

# the only connection of the pool must come back clean
for my $i (1 .. 5) {
    my $r = $t->get('/api/v1/products/22', user => 8, name => 'pool');
    is($r->{status}, 200, "request $i after the abort");
}
$r = $t->post('/api/v1/orders', { items => [ { productId => 22, quantity => 1 } ],
    payment => { method => 'BALANCE' } }, user => 9, name => 'pool');
is($r->{status}, 201, 'an order after the abort');

my $n22 = orders_of(22);
ok($n22 == 1 || $n22 == 2, "the aborted order was committed whole or not at all ($n22 orders)");
my $taken = $n22 == 2 ? 3 : 0;
is(stock(22), $stock22 - 1 - $taken, 'stock matches the orders');
is(0 + $t->psql('SELECT balance FROM users WHERE id = 8'),
    $bal - $taken * $t->psql_json('SELECT price FROM products WHERE id = 22'),
    'balance matches the orders');

# quick aborts: requests closed right after sending
for my $i (1 .. 20) {
    $t->raw($t->build_request('GET', '/api/v1/products/' . $i, user => 1),
        name => 'pool', close_after => 0, timeout => 2);
}
for my $i (1 .. 20) {
    $t->raw($t->build_request('POST', '/api/v1/orders', user => 9,
        body => { items => [ { productId => 23, quantity => 1 } ] }),
        name => 'pool', close_after => 0.001 * $i, timeout => 2);
}
is($t->get('/api/v1/balance', user => 1, name => 'pool')->{status}, 200,
    'serving after 40 aborted requests');
$t->check_consistency('no partial order after the aborts');

# --- reload under load --------------------------------------------------------------------

my $before_orders = orders_of(23);
my $backends = sub { $t->psql("SELECT count(*) FROM pg_stat_activity WHERE"
    . " application_name = 'ngx_commerce'") };
ok(wait_until(sub { $backends->() > 0 }, timeout => 5), 'pools connected');
my $backends0 = $backends->();
$stream = traffic(conns => 8, secs => 5, max => 250);
my @old;
sleep 1;
push @old, $t->reload_nginx;
sleep 1.5;
push @old, $t->reload_nginx;
$all = $stream->();
%seen = %{ tally_outcomes(@$all) };
my $bad = grep { $_->[0] !~ /^20[01]$/
    && !($_->[0] == 409 && ($_->[1] // '') =~ /^[A-Z_]+$/) } @$all;
is($bad, 0, 'reload under load: no failed request') or diag(explain \%seen);
cmp_ok(scalar @$all, '>=', 200, scalar(@$all) . ' requests during the reloads');
ok($t->wait_pids_gone(\@old, timeout => 20), 'old workers exited');
ok(wait_until(sub { $backends->() <= $backends0 }, timeout => 10),
    "old workers closed their Postgres connections ($backends0 before,"
    . ' ' . $backends->() . ' after)');
is(orders_of(23) - $before_orders, $seen{201} // 0,
    'one order per 201, none lost or doubled');

$t->check_consistency;
$t->done;
