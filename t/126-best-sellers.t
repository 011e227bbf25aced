#!/usr/bin/perl
# Best sellers: GET /api/v1/products/best-sellers?days=D&limit=N.
#
#   - the window is D calendar days in Asia/Seoul, today included; sales
#     are seeded on days -3..0 through real paid orders whose paid_at the
#     test then moves (the sales trigger moves their units with it), with
#     orders on both sides of a Seoul midnight;
#   - exact quantities and revenue, ties (same units: more revenue first;
#     same both: lower product id), limit and days defaults, day -3 out of
#     days=3 and in days=4;
#   - only PAID orders count: pending, declined (duplicated decline
#     callbacks) and cancelled ones do not; an order leaving PAID (an SQL
#     UPDATE of its status, standing in for the cancel and refund flows of
#     later issues) comes off its day; every way of paying counts once:
#     create+pay, pay later, a card settled with duplicated callbacks, an
#     order a coupon pays entirely (revenue before the discount);
#   - bad days / limit (0, 31, -1, abc, 1.5, empty, bare, repeated): 400
#     INVALID_REQUEST; any role; no token 401; the literal path wins over
#     /products/{id}, which still works;
#   - the aggregate equals the PAID orders' items by Seoul day of paid_at
#     after every step, and the SQL guards (arguments, paid_at CHECK, a
#     missing row refused loudly).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use PgSim;
use Time::HiRes qw(sleep);

my $OK_CARD = '1111-1111-1111-1111';        # SUCCESS
my $LIMIT_CARD = '2222-2222-2222-2222';     # FAILED, limit exceeded

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

# The window is "today in Asia/Seoul": do not straddle a Seoul midnight.
my $to_midnight = $t->psql(q{SELECT extract(epoch FROM
    date_trunc('day', now() AT TIME ZONE 'Asia/Seoul') + interval '1 day'
    - now() AT TIME ZONE 'Asia/Seoul')::int});
if ($to_midnight < 240) {
    diag("Seoul midnight in $to_midnight s: waiting for it");
    sleep($to_midnight + 2);
}

my $sim = PgSim->start(seed => 126, failRate => 0, latencyMs => [0, 5],
    decisionMs => [100, 200], log => $t->dir . '/pgsim.log');
my $sim_port = $sim->port;
$t->write_config($t->default_config(http_extra => <<"EOF"));
commerce_zone 1m;
upstream pg_a { server 127.0.0.1:$sim_port; keepalive 8; }
commerce_gateway pg_a upstream=pg_a timeout=1s connect_timeout=500ms;
commerce_gateway_callback_url http://127.0.0.1:%%PORT%%/api/v1/payments/callback;
commerce_reconcile_interval 500ms;
commerce_reconcile_age 1s;
EOF
$t->start_nginx;

# prices of the products of this story (order items keep them)
my %PRICE = (101 => 1000, 102 => 2000, 103 => 1000, 104 => 500,
    105 => 3000, 106 => 700, 107 => 100);
$t->psql(join '', map { "UPDATE products SET price = $PRICE{$_} WHERE id = $_;" }
    sort keys %PRICE);

# ---------------------------------------------------------------------------
# helpers

# day k (0 = today, -1 = yesterday ...) in Asia/Seoul, YYYY-MM-DD
my %DAY;
sub day {
    my ($k) = @_;
    return $DAY{$k} //= $t->psql("SELECT to_char((now() AT TIME ZONE"
        . " 'Asia/Seoul')::date + ($k), 'YYYY-MM-DD')");
}

# buy($user, [pid, qty], ...): a BALANCE order (201 PAID), its id
sub buy {
    my ($user, @items) = @_;
    my $r = $t->post('/api/v1/orders', { items => [ map { { productId => $_->[0],
        quantity => $_->[1] } } @items ], payment => { method => 'BALANCE' } },
        user => $user);
    is($r->{status}, 201, "user $user buys " . join(', ',
        map { "$_->[1] x $_->[0]" } @items)) or diag($r->{body});
    is($r->{json}{status}, 'PAID', '... PAID');
    return $r->{json}{id};
}

# paid_at of an order moved to day $k at Seoul time $time: its sales move
sub paid_on {
    my ($order, $k, $time) = @_;
    $t->psql("UPDATE orders SET paid_at = (DATE '" . day($k) . "' + TIME '$time')"
        . " AT TIME ZONE 'Asia/Seoul' WHERE id = $order");
}

# [pid, quantity, revenue] rows -> the items of the answer, ranked
sub ranked {
    my $rank = 0;
    return [ map { { rank => ++$rank, productId => 0 + $_->[0],
        name => "Product $_->[0]", quantitySold => 0 + $_->[1],
        revenue => 0 + $_->[2] } } @_ ];
}

sub best {
    my ($query, %o) = @_;
    return $t->get('/api/v1/products/best-sellers' . ($query // ''),
        user => 1, %o);
}

sub is_best {
    my ($query, $days, $items, $name) = @_;
    is_response(best($query), 200, { from => day(1 - $days),
        to => day(0), items => ranked(@$items) }, $name);
}

# ---------------------------------------------------------------------------
# 1. Nothing sold yet

is_best('', 3, [], 'nothing sold: empty list, window today and 2 days before');
is_best('?days=30&limit=50', 30, [], 'days=30, limit=50: empty');

# ---------------------------------------------------------------------------
# 2. Sales on days -3..0, on both sides of Seoul midnights

my $oA = buy(1, [ 101, 5 ], [ 102, 1 ]);    # today: 5000 + 2000
my $oB = buy(2, [ 102, 4 ]);                # today: 8000
my $oC = buy(3, [ 103, 5 ]);                # today: 5000
my $oD = buy(4, [ 104, 6 ]);                # day -1: 3000
paid_on($oD, -1, '12:00');
my $oE = buy(5, [ 105, 1 ]);                # day -2, 00:00:00.000: 3000
paid_on($oE, -2, '00:00');
my $oF = buy(6, [ 106, 20 ]);               # day -3, 23:59:59.999: 14000
paid_on($oF, -3, '23:59:59.999');

# not counted: an order left pending, a declined card (the decline callback
# delivered twice)
my $r = $t->post('/api/v1/orders', { items => [ { productId => 107,
    quantity => 50 } ] }, user => 7);
is($r->{json}{status}, 'PENDING_PAYMENT', 'an order of 50 x 107 left pending');
my $oG = $r->{json}{id};
$sim->control(callback => { mode => 'duplicate' });
my $c_decline = $sim->counters;
$r = $t->post('/api/v1/orders', { items => [ { productId => 107,
    quantity => 30 } ], payment => { method => 'CARD', cardType => 'KB',
    cardNo => $LIMIT_CARD } }, user => 8);
is($r->{status}, 202, 'a card order of 30 x 107: 202');
my $o = $t->wait_order($r->{json}{id}, user => 8,
    until => sub { $_[0]{status} ne 'PAYMENT_IN_PROGRESS' });
is($o->{status}, 'PAYMENT_FAILED', '... declined: PAYMENT_FAILED');
ok($sim->wait_counters(sub { $_[0]{callbacks_sent}
    >= $c_decline->{callbacks_sent} + 2 }, timeout => 5),
    '... its decline callback was sent twice');
sleep 0.3;
$sim->control(callback => { mode => 'normal' });

is_deeply([ $t->psql("SELECT day || '|' || product_id || '|' || quantity"
        . " || '|' || revenue FROM product_sales_daily WHERE quantity > 0"
        . " ORDER BY 1") ],
    [ day(-3) . '|106|20|14000', day(-2) . '|105|1|3000',
      day(-1) . '|104|6|3000', day(0) . '|101|5|5000',
      day(0) . '|102|5|10000', day(0) . '|103|5|5000' ],
    'product_sales_daily: one row per day and product, moved with paid_at');
is_deeply([ $t->psql("SELECT product_id || '|' || revenue FROM"
        . " product_sales_daily WHERE quantity = 0 AND day = '" . day(0)
        . "' ORDER BY 1") ], [ '104|0', '105|0', '106|0' ],
    '... the rows they left today are at 0');
$t->check_sales;

# 104 sold most; 102, 101 and 103 sold 5 each: 102 has more revenue, 101
# and 103 the same revenue (lower id first); 105 sold 1.  Day -3 is out.
my @days3 = ([ 104, 6, 3000 ], [ 102, 5, 10000 ], [ 101, 5, 5000 ],
    [ 103, 5, 5000 ], [ 105, 1, 3000 ]);
is_best('?days=3&limit=5', 3, \@days3,
    'days=3: quantity, then revenue, then product id; day -3 left out');
is_best('', 3, \@days3, 'no arguments: days=3, limit=5');
is_best('?days=3&limit=2', 3, [ @days3[0, 1] ], 'limit=2: the first two');
is_best('?limit=1', 3, [ $days3[0] ], 'limit alone: days defaults to 3');
is_best('?days=4', 4, [ [ 106, 20, 14000 ], @days3[0 .. 3] ],
    'days=4: day -3 (23:59:59.999 Seoul) in; limit defaults to 5');
is_best('?days=4&limit=50', 4, [ [ 106, 20, 14000 ], @days3 ],
    'days=4, limit=50: all six');
is_best('?days=2', 2, [ @days3[0 .. 3] ], 'days=2: day -2 (00:00 Seoul) out');
is_best('?days=1', 1, [ @days3[1 .. 3] ], 'days=1: today only');
is_best('?days=30&limit=50', 30, [ [ 106, 20, 14000 ], @days3 ],
    'days=30: everything');
is_best('?days=03&limit=05', 3, \@days3, 'leading zeros are digits');

# any role; the literal path beats /products/{id}
is(best('?days=3', token => $t->token(9, role => 'SELLER'))->{status}, 200,
    'a SELLER may read it');
is(best('?days=3', token => $t->token(9, role => 'ADMIN'))->{status}, 200,
    'an ADMIN too');
is_error($t->get('/api/v1/products/best-sellers'), 401, 'UNAUTHORIZED',
    'no token: 401');
is_error($t->post('/api/v1/products/best-sellers', {}, user => 1), 405,
    'METHOD_NOT_ALLOWED', 'POST: 405');
my $p105 = $t->get('/api/v1/products/105', user => 1);
is("$p105->{status} $p105->{json}{id} $p105->{json}{name} $p105->{json}{price}",
    '200 105 Product 105 3000', '/products/{id} still answers');
is_error($t->get('/api/v1/products/best-seller', user => 1), 400,
    'INVALID_REQUEST', '/products/best-seller (not the route): a bad {id}');

# ---------------------------------------------------------------------------
# 3. Bad arguments: 400 INVALID_REQUEST, the answer names the argument

for my $q (qw(days=0 days=31 days=-1 days=abc days=1.5 days= days
              days=3&days=3 days=3&days=4 days=%33 days=+3 days=99999999999999999999
              limit=0 limit=51 limit=-1 limit=abc limit=1.5 limit=
              limit=5&limit=5)) {
    my ($arg) = $q =~ /^(\w+)/;
    my $res = best("?$q");
    is_error($res, 400, 'INVALID_REQUEST', "?$q: 400");
    like($res->{json}{message} // '', qr/^$arg must be an integer between/,
        "... the message names $arg");
}
is(best('?days=3&limit=5&other=1&Days=0')->{status}, 200,
    'other arguments (and names in another case) are ignored');

$t->check_consistency('orders, payments, ledger consistent (before the'
    . ' SQL cancels below, which refund nothing)');

# ---------------------------------------------------------------------------
# 4. Orders moving into and out of PAID

# B (4 x 102) leaves PAID (standing in for a later cancel or refund flow)
$t->psql("UPDATE orders SET status = 'CANCELLED', updated_at = now()"
    . " WHERE id = $oB");
is_best('', 3, [ [ 104, 6, 3000 ], [ 101, 5, 5000 ], [ 103, 5, 5000 ],
    [ 105, 1, 3000 ], [ 102, 1, 2000 ] ],
    'order B cancelled: 102 down to 1 unit, ranked after 105 (less revenue)');
is(scalar $t->psql("SELECT quantity || '|' || revenue FROM product_sales_daily"
    . " WHERE day = '@{[ day(0) ]}' AND product_id = 102"), '1|2000',
    '... taken off the day it was paid');
$t->check_sales('aggregate exact after a cancel');

# F (day -3) leaving PAID empties its row: 106 is no longer listed
$t->psql("UPDATE orders SET status = 'CANCELLED' WHERE id = $oF");
is_best('?days=4&limit=1', 4, [ [ 104, 6, 3000 ] ],
    'order F cancelled: 106 gone from days=4 (its row at 0 is not listed)');
is(scalar $t->psql("SELECT quantity || '|' || revenue FROM product_sales_daily"
    . " WHERE day = '@{[ day(-3) ]}' AND product_id = 106"), '0|0', '... row at 0');

# the pending order G paid later (POST /orders/{id}/payment)
$r = $t->post("/api/v1/orders/$oG/payment", { method => 'BALANCE' }, user => 7);
is($r->{json}{status}, 'PAID', 'order G (50 x 107) paid later');
is_best('?limit=2', 3, [ [ 107, 50, 5000 ], [ 104, 6, 3000 ] ],
    '... counted today: 107 first');

# a card payment whose approval callback arrives twice: counted once
$sim->control(callback => { mode => 'duplicate' });
my $c0 = $sim->counters;
$r = $t->post('/api/v1/orders', { items => [ { productId => 105,
    quantity => 2 } ], payment => { method => 'CARD', cardType => 'KB',
    cardNo => $OK_CARD } }, user => 9);
is($r->{status}, 202, 'a card order of 2 x 105: 202');
my $oH = $r->{json}{id};
ok($sim->wait_counters(sub { $_[0]{callbacks_sent}
    >= $c0->{callbacks_sent} + 2 }, timeout => 5),
    '... the PG sent its approval twice');
$o = $t->wait_order($oH, user => 9,
    until => sub { $_[0]{status} ne 'PAYMENT_IN_PROGRESS' });
is($o->{status}, 'PAID', '... PAID');
ok(wait_until(sub { $t->psql("SELECT count(*) FROM payment_interface_request_log"
    . " WHERE order_id = $oH AND direction = 'IN'") >= 2 }, timeout => 5),
    '... both callbacks reached the module');
sleep 0.3;
$sim->control(callback => { mode => 'normal' });
is_best('?limit=50', 3, [ [ 107, 50, 5000 ], [ 104, 6, 3000 ],
    [ 101, 5, 5000 ], [ 103, 5, 5000 ], [ 105, 3, 9000 ], [ 102, 1, 2000 ] ],
    '... 105 counted 2 more, once (3 units, 9000)');
$t->check_sales('aggregate exact after the card settle');

# an order a coupon pays entirely: PAID at once, revenue before the discount
my $cid = $t->create_coupon(discountValue => 1000);
$r = $t->issue_coupon($cid, 10);
is($r->{status}, 201, 'user 10 gets a 1000 KRW coupon');
$r = $t->post('/api/v1/orders', { items => [ { productId => 107,
    quantity => 10 } ], couponId => $r->{json}{id} }, user => 10);
is($r->{status}, 201, '10 x 107 (1000) with the coupon: 201');
is($r->{json}{status}, 'PAID', '... PAID at once');
is($r->{json}{paymentAmount}, 0, '... paying 0');
is_best('?limit=1', 3, [ [ 107, 60, 6000 ] ],
    '... its revenue counts the item amounts (6000 = 5000 + 1000)');
$t->check_sales('aggregate exact after a coupon order');

# ---------------------------------------------------------------------------
# 5. SQL guards

my ($rc, $out) = $t->run([ 'psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1',
    '-c', 'SELECT cm_best_sellers(0, 5)', $t->pg_conninfo ], as_pg => 1);
like($out, qr/INVALID_REQUEST/, 'cm_best_sellers(0, 5): INVALID_REQUEST');
($rc, $out) = $t->run([ 'psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1',
    '-c', 'SELECT cm_best_sellers(3, 51)', $t->pg_conninfo ], as_pg => 1);
like($out, qr/INVALID_REQUEST/, 'cm_best_sellers(3, 51): INVALID_REQUEST');

$r = $t->post('/api/v1/orders', { items => [ { productId => 101,
    quantity => 1 } ] }, user => 11);
my $oI = $r->{json}{id};
($rc, $out) = $t->run([ 'psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-c',
    "UPDATE orders SET status = 'PAID' WHERE id = $oI", $t->pg_conninfo ],
    as_pg => 1);
like($out, qr/orders_paid_at_check/, 'PAID without paid_at: refused (CHECK)');

# a missing row is an error, never a silent undercount
my $before = $t->db_state;
($rc, $out) = $t->run([ 'psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-c',
    "BEGIN; DELETE FROM product_sales_daily WHERE product_id = 104;"
    . " UPDATE orders SET status = 'CANCELLED' WHERE id = $oD; COMMIT;",
    $t->pg_conninfo ], as_pg => 1);
like($out, qr/product_sales_daily has no row for product 104/,
    'taking off a row that is not there: an error');
is_deeply($t->db_state, $before, '... nothing changed');

$t->check_sales('aggregate exact at the end');

$sim->stop;
$t->done;
