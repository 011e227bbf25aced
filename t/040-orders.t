#!/usr/bin/perl
# Orders: create (stock reserved), create+pay from the balance, pay later,
# every business error with nothing changed, input validation, ownership,
# and the expiry of unpaid orders releasing their stock.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
$t->psql(<<'SQL');
UPDATE products SET name = 'Alpha', price = 1000,   stock = 10   WHERE id = 1;
UPDATE products SET name = 'Beta',  price = 2500,   stock = 5    WHERE id = 2;
UPDATE products SET name = 'Gamma', price = 300,    stock = 1000 WHERE id = 3;
UPDATE products SET name = 'Delta', price = 100000, stock = 1000 WHERE id = 4;
UPDATE products SET name = 'Bulk',  price = 1,      stock = 5000 WHERE id = 5;
UPDATE products SET name = 'Free',  price = 0,      stock = 10   WHERE id = 6;
SQL
$t->write_config($t->default_config);
$t->start_nginx;

my $TS = qr/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\z/;
my $ID = sub { CommerceTest::_is_num($_[0]) && $_[0] > 0 };

sub order {
    my ($user, $items, %o) = @_;
    my $body = ref $items eq "ARRAY" ? { items => $items } : $items;
    $body->{payment} = { method => $o{pay} } if ref $body && $o{pay};
    return $t->post('/api/v1/orders', $body, user => $user, %o);
}

sub stock { 0 + $t->psql("SELECT stock FROM products WHERE id = $_[0]") }
sub balance { 0 + $t->psql("SELECT balance FROM users WHERE id = $_[0]") }
sub norders { 0 + $t->psql('SELECT count(*) FROM orders') }

# --- create: PENDING_PAYMENT, stock reserved ---------------------------------

my $r = order(1, [ { productId => 1, quantity => 2 },
                   { productId => 2, quantity => 1 } ]);
is_response($r, 201, {
    id => $ID, userId => 1, status => 'PENDING_PAYMENT',
    items => [
        { productId => 1, name => 'Alpha', quantity => 2, unitPrice => 1000,
          amount => 2000 },
        { productId => 2, name => 'Beta', quantity => 1, unitPrice => 2500,
          amount => 2500 },
    ],
    totalAmount => 4500, discountAmount => 0, paymentAmount => 4500,
    payment => undef, payments => [], createdAt => $TS,
}, 'create: 201 PENDING_PAYMENT, exact shape');
my $pending = $r->{json};
my $oid = $pending->{id};
is(stock(1), 8, 'stock of product 1 reserved');
is(stock(2), 4, 'stock of product 2 reserved');
is(balance(1), 100000, 'balance untouched');
is($t->psql("SELECT user_id, status, total_amount, payment_amount FROM orders
    WHERE id = $oid"), '1|PENDING_PAYMENT|4500|4500', 'order row');
is(0 + $t->psql("SELECT count(*) FROM payments WHERE order_id = $oid"), 0,
    'no payment row');

# items come back ordered by productId whatever the request order
$r = order(1, [ { productId => 3, quantity => 1 },
                { productId => 1, quantity => 1 } ]);
is($r->{status}, 201, 'create with items in descending id order');
is_deeply([ map { $_->{productId} } @{ $r->{json}{items} } ], [ 1, 3 ],
    'items ordered by productId');
is(stock(1), 7, 'stock of product 1 reserved again');

# --- get ---------------------------------------------------------------------

$r = $t->get("/api/v1/orders/$oid", user => 1);
is_response($r, 200, $pending, 'GET own order: same document');
is_error($t->get("/api/v1/orders/$oid", user => 2), 404, 'ORDER_NOT_FOUND',
    "another user's order");
is_error($t->get('/api/v1/orders/999999', user => 1), 404, 'ORDER_NOT_FOUND',
    'unknown order');
for my $id ('abc', '-1', '1.5', '99999999999999999999', '1;DROP%20TABLE%20orders') {
    is_error($t->get("/api/v1/orders/$id", user => 1), 400, 'INVALID_REQUEST',
        "GET /orders/$id");
}

# --- pay later -----------------------------------------------------------------

my $before = $t->db_state;
is_error($t->post("/api/v1/orders/$oid/payment", { method => 'BALANCE' },
    user => 2), 404, 'ORDER_NOT_FOUND', "paying another user's order");
is_error($t->post('/api/v1/orders/999999/payment', { method => 'BALANCE' },
    user => 1), 404, 'ORDER_NOT_FOUND', 'paying an unknown order');
for my $body ('{"method":"BITCOIN"}', '{"method":"balance"}', '{}',
    '{"method":1}', '{"method":null}', '{"method":["BALANCE"]}', '[]', '',
    '{"method":"BALANCE"')
{
    is_error($t->post("/api/v1/orders/$oid/payment", $body, user => 1), 400,
        'INVALID_REQUEST', "pay with body $body");
}
is_error($t->post("/api/v1/orders/$oid/payment", { method => 'BALANCE' },
    user => 1, content_type => 'text/plain'), 415, 'UNSUPPORTED_MEDIA_TYPE',
    'pay without application/json');
is_error($t->post("/api/v1/orders/abc/payment", { method => 'BALANCE' },
    user => 1), 400, 'INVALID_REQUEST', 'pay order abc');
is_deeply($t->db_state, $before, 'refused payments changed nothing');

$r = $t->post("/api/v1/orders/$oid/payment", { method => 'BALANCE' },
    user => 1);
is_response($r, 200, { %$pending, status => 'PAID',
    payment => { id => $ID, method => 'BALANCE', status => 'SUCCESS',
                 amount => 4500 },
    payments => [ { id => $ID, method => 'BALANCE', status => 'SUCCESS',
                    amount => 4500 } ] }, 'pay: 200 PAID with the payment');
is(balance(1), 95500, 'balance debited');
is($t->psql("SELECT kind, amount, balance_after, order_id FROM balance_ledger
    WHERE user_id = 1 ORDER BY id DESC LIMIT 1"), "PAYMENT|-4500|95500|$oid",
    'ledger PAYMENT row');
is(stock(1), 7, 'stock unchanged by the payment (reserved at creation)');
is_response($t->get("/api/v1/orders/$oid", user => 1), 200, $r->{json},
    'GET shows the paid order');

$before = $t->db_state;
is_error($t->post("/api/v1/orders/$oid/payment", { method => 'BALANCE' },
    user => 1), 409, 'ORDER_NOT_PAYABLE', 'paying twice');
is_deeply($t->db_state, $before, 'second payment changed nothing');

# --- create and pay at once ------------------------------------------------------

$r = order(2, [ { productId => 3, quantity => 3 } ], pay => 'BALANCE');
is_response($r, 201, {
    id => $ID, userId => 2, status => 'PAID',
    items => [ { productId => 3, name => 'Gamma', quantity => 3,
                 unitPrice => 300, amount => 900 } ],
    totalAmount => 900, discountAmount => 0, paymentAmount => 900,
    payment => { id => $ID, method => 'BALANCE', status => 'SUCCESS',
                 amount => 900 },
    payments => [ { id => $ID, method => 'BALANCE', status => 'SUCCESS',
                    amount => 900 } ],
    createdAt => $TS,
}, 'create+pay: 201 PAID');
is(balance(2), 99100, 'balance debited');
is(stock(3), 1000 - 1 - 3, 'stock taken');
is_error($t->post("/api/v1/orders/$r->{json}{id}/payment",
    { method => 'BALANCE' }, user => 2), 409, 'ORDER_NOT_PAYABLE',
    'paying a paid order');

# --- business errors: nothing changes ------------------------------------------

$before = $t->db_state;
my $n = norders();

is_error(order(4, [ { productId => 4, quantity => 2 } ], pay => 'BALANCE'),
    409, 'INSUFFICIENT_BALANCE', 'create+pay over the balance');
is_error(order(4, [ { productId => 3, quantity => 1 },
                    { productId => 4, quantity => 1 } ], pay => 'BALANCE'),
    409, 'INSUFFICIENT_BALANCE', 'one cent over the balance (100300 > 100000)');
is_error(order(4, [ { productId => 999999, quantity => 1 } ]), 404,
    'PRODUCT_NOT_FOUND', 'unknown product');
is_error(order(4, [ { productId => 1, quantity => 1 },
                    { productId => 999999, quantity => 1 } ]), 404,
    'PRODUCT_NOT_FOUND', 'second product unknown');
is_error(order(4, [ { productId => 2, quantity => 5 } ]), 409, 'OUT_OF_STOCK',
    'more than the stock');
is_error(order(4, [ { productId => 3, quantity => 1 },
                    { productId => 2, quantity => 5 } ]), 409, 'OUT_OF_STOCK',
    'second item lacks stock');
is_error(order(4, [ { productId => 1, quantity => 1 },
                    { productId => 2, quantity => 5 } ], pay => 'BALANCE'),
    409, 'OUT_OF_STOCK', 'second item lacks stock, with payment');
# the first item takes exactly all its stock and the second lacks some: the
# stock is taken by one UPDATE before the cause is looked for (issue 14),
# and the error still names the second item, with its stock before the order
$r = order(4, [ { productId => 1, quantity => 7 },
                { productId => 2, quantity => 5 } ], pay => 'BALANCE');
is_error($r, 409, 'OUT_OF_STOCK', 'first item takes all its stock, second lacks');
like($r->{json}{message} // '', qr/^product 2 has [0-4] in stock, 5 requested$/,
    '... the message names the second item, not the first');
is_error(order(424242, [ { productId => 1, quantity => 1 } ]), 404,
    'USER_NOT_FOUND', 'user unknown to the database');

is_deeply($t->db_state, $before, 'failed orders changed nothing');
is(norders(), $n, 'no order row');
is(stock(1), 7, 'first item stock unchanged');
is(stock(3), 996, 'first item stock unchanged');
is(balance(4), 100000, 'balance unchanged');

# an unpaid order that cannot be paid stays payable after a top-up
$r = order(4, [ { productId => 4, quantity => 2 } ]);
is($r->{status}, 201, 'create an order over the balance (not paid yet)');
my $big = $r->{json}{id};
is(stock(4), 998, 'stock reserved');
$before = $t->db_state;
is_error($t->post("/api/v1/orders/$big/payment", { method => 'BALANCE' },
    user => 4), 409, 'INSUFFICIENT_BALANCE', 'pay later over the balance');
is_deeply($t->db_state, $before, 'nothing changed');
is($t->get("/api/v1/orders/$big", user => 4)->{json}{status},
    'PENDING_PAYMENT', 'order still PENDING_PAYMENT');
is($t->post('/api/v1/balance/charge', { amount => 100000 }, user => 4)
    ->{status}, 200, 'top up');
$r = $t->post("/api/v1/orders/$big/payment", { method => 'BALANCE' },
    user => 4);
is($r->{status}, 200, 'now it pays');
is($r->{json}{status}, 'PAID', '... PAID');
is(balance(4), 0, 'balance exactly 0');

# --- duplicates, limits, validation ----------------------------------------------

$r = order(5, [ { productId => 3, quantity => 2 },
                { productId => 3, quantity => 3 } ]);
is_response($r, 201, {
    id => $ID, userId => 5, status => 'PENDING_PAYMENT',
    items => [ { productId => 3, name => 'Gamma', quantity => 5,
                 unitPrice => 300, amount => 1500 } ],
    totalAmount => 1500, discountAmount => 0, paymentAmount => 1500,
    payment => undef, payments => [], createdAt => $TS,
}, 'duplicate productIds merged, quantities summed');
is(stock(3), 991, 'merged quantity reserved');

is_response(order(5, [ { productId => 5, quantity => 999 } ]), 201,
    sub { $_[0]{items}[0]{quantity} == 999 }, 'quantity 999');
is_response(order(5, [ { productId => 5, quantity => 1 } ]), 201,
    sub { $_[0]{items}[0]{quantity} == 1 }, 'quantity 1');

$r = order(5, [ map { { productId => $_, quantity => 1 } } 10 .. 59 ]);
is($r->{status}, 201, '50 distinct items');
is(scalar @{ $r->{json}{items} // [] }, 50, '... all 50 in the order');

$r = order(6, [ { productId => 6, quantity => 2 } ], pay => 'BALANCE');
is_response($r, 201, sub { $_[0]{status} eq 'PAID'
    && $_[0]{paymentAmount} == 0 }, 'a free order is PAID at once');
is(balance(6), 100000, 'free order: balance untouched');

$before = $t->db_state;
$n = norders();
my @invalid = (
    [ '51 distinct items', { items => [ map { { productId => $_,
        quantity => 1 } } 10 .. 60 ] } ],
    [ 'merged quantity over 999', { items => [
        { productId => 5, quantity => 500 },
        { productId => 5, quantity => 500 } ] } ],
    [ 'empty items', { items => [] } ],
    [ 'items missing', {} ],
    [ 'items null', { items => undef } ],
    [ 'items an object', { items => { productId => 1, quantity => 1 } } ],
    [ 'item not an object', { items => [ 1 ] } ],
    [ 'productId missing', { items => [ { quantity => 1 } ] } ],
    [ 'quantity missing', { items => [ { productId => 1 } ] } ],
    [ 'productId a string', { items => [ { productId => '1', quantity => 1 } ] } ],
    [ 'productId 1.5', '{"items":[{"productId":1.5,"quantity":1}]}' ],
    [ 'productId null', { items => [ { productId => undef, quantity => 1 } ] } ],
    [ 'productId overflow',
        '{"items":[{"productId":9223372036854775808,"quantity":1}]}' ],
    [ 'quantity 0', { items => [ { productId => 5, quantity => 0 } ] } ],
    [ 'quantity 1000', { items => [ { productId => 5, quantity => 1000 } ] } ],
    [ 'quantity -1', { items => [ { productId => 5, quantity => -1 } ] } ],
    [ 'quantity 1.5', '{"items":[{"productId":5,"quantity":1.5}]}' ],
    [ 'quantity 2.0', '{"items":[{"productId":5,"quantity":2.0}]}' ],
    [ 'quantity 1e2', '{"items":[{"productId":5,"quantity":1e2}]}' ],
    [ 'quantity "2"', { items => [ { productId => 5, quantity => '2' } ] } ],
    [ 'quantity true', '{"items":[{"productId":5,"quantity":true}]}' ],
    [ 'quantity null', { items => [ { productId => 5, quantity => undef } ] } ],
    [ 'quantity overflow',
        '{"items":[{"productId":5,"quantity":4294967297}]}' ],
    [ 'payment method unknown', { items => [ { productId => 5, quantity => 1 } ],
        payment => { method => 'BITCOIN' } } ],
    [ 'payment not an object', { items => [ { productId => 5, quantity => 1 } ],
        payment => 'BALANCE' } ],
    [ 'payment without method', { items => [ { productId => 5, quantity => 1 } ],
        payment => {} } ],
    [ 'malformed JSON', '{"items":[{"productId":5,"quantity":1}]' ],
    [ 'not JSON', 'items=5' ],
    [ 'SQL in productId', { items => [ { productId => "1); DELETE FROM orders; --",
        quantity => 1 } ] } ],
);
for my $case (@invalid) {
    my ($what, $body) = @$case;
    is_error($t->post('/api/v1/orders', $body, user => 5), 400,
        'INVALID_REQUEST', "order: $what");
}
is_error(order(5, [ { productId => 5, quantity => 1 } ],
    content_type => undef), 415, 'UNSUPPORTED_MEDIA_TYPE',
    'order without Content-Type');
is_error(order(5, { items => [ { productId => 5, quantity => 1 } ],
    pad => 'z' x 100000 }), 413, 'PAYLOAD_TOO_LARGE', 'order body over 64k');
is_deeply($t->db_state, $before, 'invalid orders changed nothing');
is(norders(), $n, 'no order row');

is_response(order(5, { items => [ { productId => 5, quantity => 1,
    note => 'gift' } ], coupon => undef, extra => [ 1, 2 ] }), 201,
    sub { $_[0]{items}[0]{quantity} == 1 }, 'unknown fields ignored');

$t->check_consistency;

# --- expiry of unpaid orders ------------------------------------------------------

# A second nginx on the same database whose job cancels unpaid orders after
# 2 s, checking every second.
$t->write_config($t->default_config(http_extra => <<'EOF'), name => 'ttl');
commerce_order_ttl 2s;
commerce_order_expiry_interval 1s;
EOF
$t->start_nginx(name => 'ttl');

my $s7 = stock(7);
$r = order(7, [ { productId => 7, quantity => 3 } ], name => 'ttl');
is($r->{status}, 201, 'unpaid order on the ttl instance');
my $exp = $r->{json}{id};
$r = order(7, [ { productId => 7, quantity => 2 } ], pay => 'BALANCE',
    name => 'ttl');
is($r->{status}, 201, 'a paid order beside it');
my $paid = $r->{json}{id};
is(stock(7), $s7 - 5, 'stock reserved');

my $cancelled = wait_until(sub {
    $t->get("/api/v1/orders/$exp", user => 7, name => 'ttl')
        ->{json}{status} eq 'CANCELLED' }, timeout => 15, interval => 0.25);
ok($cancelled, 'the unpaid order is CANCELLED within a few seconds');
is(stock(7), $s7 - 2, 'its stock is released');
is($t->get("/api/v1/orders/$paid", user => 7)->{json}{status}, 'PAID',
    'the paid order stays PAID');
is($t->psql("SELECT status FROM orders WHERE id = $big"), 'PAID',
    'earlier paid orders stay PAID');
is(0 + $t->psql(q{SELECT count(*) FROM orders
    WHERE status = 'PENDING_PAYMENT'}), 0, 'every old unpaid order expired');

$before = $t->db_state;
is_error($t->post("/api/v1/orders/$exp/payment", { method => 'BALANCE' },
    user => 7), 409, 'ORDER_NOT_PAYABLE', 'paying a CANCELLED order');
is_deeply($t->db_state, $before, 'nothing changed');
is(balance(7), 100000 - 2 * stock_price(7), 'only the paid order was charged');

sub stock_price { 0 + $t->psql("SELECT price FROM products WHERE id = $_[0]") }

# a shipping address is sealed with the accounts' keys (t/174): none here
$before = $t->db_state;
is_error($t->post('/api/v1/orders', { items => [ { productId => 1, quantity => 1 } ],
    shippingAddress => { recipient => 'a', phone => '010-1234-5678', zipCode => '04524',
    address1 => 'b' } }, user => 7), 400, 'INVALID_REQUEST',
    'shippingAddress without the accounts\' PII keys: 400');
is_deeply($t->db_state, $before, 'nothing changed');

$t->check_consistency;
$t->done;
