#!/usr/bin/perl
# Checkout from the cart (issue 12 section 2): POST /api/v1/orders with
# "fromCart": true orders every line of the cart, or with "variantIds"
# the lines of those variants, and the ordered lines leave the cart in the
# order's transaction (exactly those lines); unpaid, paid from the
# balance, with a coupon and an Idempotency-Key as an order of items; a
# line that cannot be ordered (SOLD_OUT, STOPPED) is refused as the same
# item would be and nothing changes; an empty cart is 400 CART_EMPTY, a
# selected variant not in the cart 404 CART_ITEM_NOT_FOUND; 10 concurrent
# checkouts of one cart make one order (one 201, nine 400 CART_EMPTY, the
# stock moved once); bad input is 400 and changes nothing.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use JSON::PP;

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
# products 1..4 (their default variants have their ids): price and stock
$t->psql(q{UPDATE products p SET name = v.name, price = v.price, stock = v.stock
             FROM (VALUES (1, 'Alpha', 1000, 10), (2, 'Beta', 2500, 5),
                          (3, 'Gamma', 300, 1000), (4, 'Delta', 700, 1000))
                  AS v(id, name, price, stock)
            WHERE p.id = v.id});
$t->write_config($t->default_config(
    http_extra => "commerce_pg_queue_length 2048;"));
$t->start_nginx;

my ($A, $B, $C) = (1, 2, 3);
my $TS = qr/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\z/;
my $ID = sub { CommerceTest::_is_num($_[0]) && $_[0] > 0 };

sub put_line {
    my ($user, $variant, $q) = @_;
    my $r = $t->req('PUT', "/api/v1/cart/items/$variant", user => $user,
        body => { quantity => $q });
    die "PUT: $r->{status} $r->{body}" unless $r->{status} == 200;
}
sub checkout {
    my ($user, $body, %o) = @_;
    return $t->post('/api/v1/orders', $body, user => $user, %o);
}
# "variant:quantity,..." of the user's cart, in variant order
sub lines {
    return scalar $t->psql("SELECT coalesce(string_agg(variant_id || ':' || quantity, ','"
        . " ORDER BY variant_id), '') FROM cart_items WHERE user_id = $_[0]");
}
sub stock { 0 + $t->psql("SELECT stock FROM products WHERE id = $_[0]") }
sub balance { 0 + $t->psql("SELECT balance FROM users WHERE id = $_[0]") }
sub item {
    my ($id, $name, $q, $price) = @_;
    return { productId => $id, name => $name, quantity => $q,
             unitPrice => $price, amount => $q * $price };
}

# --- some lines: exactly those leave the cart -----------------------------

put_line($A, 1, 2);
put_line($A, 2, 1);
put_line($A, 3, 4);
my $r = checkout($A, { fromCart => JSON::PP::true, variantIds => [ 3, 1 ] });
is_response($r, 201, {
    id => $ID, userId => 0 + $A, status => 'PENDING_PAYMENT',
    items => [ item(1, 'Alpha', 2, 1000), item(3, 'Gamma', 4, 300) ],
    totalAmount => 3200, discountAmount => 0, paymentAmount => 3200,
    payment => undef, payments => [], createdAt => $TS,
}, 'fromCart with variantIds [3,1]: 201, the two lines ordered');
is(lines($A), '2:1', '... exactly those lines left the cart');
is(stock(1) . ' ' . stock(3), '8 996', '... their stock reserved');
is($t->get("/api/v1/orders/$r->{json}{id}", user => $A)->{body}, $r->{body},
    '... GET answers the same document');

# --- all lines, paid from the balance --------------------------------------

put_line($A, 4, 3);
$r = checkout($A, { fromCart => JSON::PP::true,
                    payment => { method => 'BALANCE' } });
is($r->{status}, 201, 'fromCart, every line, BALANCE: 201') or diag($r->{body});
is($r->{json}{status}, 'PAID', '... PAID');
is_deeply($r->{json}{items}, [ item(2, 'Beta', 1, 2500), item(4, 'Delta', 3, 700) ],
    '... both lines');
is($r->{json}{paymentAmount}, 4600, '... 4600');
is(balance($A), 100000 - 4600, '... taken from the balance');
is(lines($A), '', '... the cart is empty');
is($t->psql("SELECT count(*) FROM carts WHERE user_id = $A"), 1,
    '... the carts row stays');

# --- refusals: nothing changes ---------------------------------------------

my $before = $t->db_state;
is_error(checkout($A, { fromCart => JSON::PP::true }), 400, 'CART_EMPTY',
    'an empty cart: 400 CART_EMPTY');
is_error(checkout($C, { fromCart => JSON::PP::true }), 400, 'CART_EMPTY',
    'a user who never had a cart: 400 CART_EMPTY');
put_line($A, 3, 1);
$before = $t->db_state;
is_error(checkout($A, { fromCart => JSON::PP::true, variantIds => [ 3, 9 ] }),
    404, 'CART_ITEM_NOT_FOUND',
    'a selected variant not in the cart: 404 CART_ITEM_NOT_FOUND');
is_deeply($t->db_state, $before, '... nothing changed');

put_line($A, 2, 2);
$t->psql('UPDATE products SET stock = 0 WHERE id = 2');
$before = $t->db_state;
is_error(checkout($A, { fromCart => JSON::PP::true }), 409, 'OUT_OF_STOCK',
    'a SOLD_OUT line: 409 OUT_OF_STOCK, as the item would be');
is_deeply($t->db_state, $before, '... nothing changed, the lines stay');
is_response(checkout($A, { fromCart => JSON::PP::true, variantIds => [ 3 ] }),
    201, { id => $ID, userId => 0 + $A, status => 'PENDING_PAYMENT',
           items => [ item(3, 'Gamma', 1, 300) ], totalAmount => 300,
           discountAmount => 0, paymentAmount => 300, payment => undef,
           payments => [],
           createdAt => $TS },
    '... the other line alone can be ordered');
is(lines($A), '2:2', '... and the SOLD_OUT line stays in the cart');
$t->psql('UPDATE products SET stock = 5, stopped = true WHERE id = 2');
$before = $t->db_state;
is_error(checkout($A, { fromCart => JSON::PP::true }), 409,
    'PRODUCT_NOT_ON_SALE', 'a STOPPED line: 409 PRODUCT_NOT_ON_SALE');
is_deeply($t->db_state, $before, '... nothing changed');
$t->psql('UPDATE products SET stopped = false WHERE id = 2');

# --- bad input: 400, nothing changed --------------------------------------

$before = $t->db_state;
for my $case (
    [ { fromCart => JSON::PP::true, items => [ { productId => 1, quantity => 1 } ] },
      'items and fromCart must not both be given', 'both items and fromCart' ],
    [ { variantIds => [ 2 ] }, 'variantIds needs fromCart true',
      'variantIds without fromCart' ],
    [ { fromCart => JSON::PP::false }, 'items or fromCart true is required',
      'fromCart false, no items' ],
    [ { fromCart => 'true' }, 'fromCart must be true or false',
      'fromCart a string' ],
    [ { fromCart => 1 }, 'fromCart must be true or false', 'fromCart a number' ],
    [ { fromCart => JSON::PP::true, variantIds => [] },
      'variantIds must not be empty', 'an empty selection' ],
    [ { fromCart => JSON::PP::true, variantIds => 2 },
      'variantIds must be an array', 'variantIds a number' ],
    [ { fromCart => JSON::PP::true, variantIds => [ "2); DELETE FROM cart_items; --" ] },
      'variantIds[0] must be an integer', 'an injection string' ],
    [ { fromCart => JSON::PP::true, variantIds => [ 0 ] },
      qr/^variantIds\[0\] must be between 1 and /, 'variant 0' ],
    [ { fromCart => JSON::PP::true, variantIds => [ 1 .. 51 ] },
      'variantIds must not hold more than 50 ids', '51 variants' ],
) {
    my ($body, $msg, $name) = @$case;
    $r = checkout($A, $body);
    is($r->{status}, 400, "$name: 400");
    is($r->{json}{code}, 'INVALID_REQUEST', '... INVALID_REQUEST');
    if (ref $msg) { like($r->{json}{message}, $msg, '... message') }
    else { is($r->{json}{message}, $msg, '... message') }
}
is_deeply($t->db_state, $before, 'bad input changed nothing');
is(lines($A), '2:2', 'the cart holds its line');

# --- Idempotency-Key: one order, the lines taken once ---------------------

my %key = (headers => { 'Idempotency-Key' => 'checkout-173-a' });
my $r1 = checkout($A, { fromCart => JSON::PP::true }, %key);
is($r1->{status}, 201, 'with an Idempotency-Key: 201') or diag($r1->{body});
is(lines($A), '', '... the cart is empty');
put_line($A, 3, 7);
my $r2 = checkout($A, { fromCart => JSON::PP::true }, %key);
is($r2->{status}, 201, 'the same key again: 201');
is($r2->{body}, $r1->{body}, '... the same answer');
is($r2->{headers}{'idempotent-replayed'}, 'true', '... replayed');
is(lines($A), '3:7', '... the line added since stays: nothing ordered again');

# --- a coupon, as with items: priced, held, USED when paid, kept on a refusal

my $camp = $t->create_coupon(discountType => 'FIXED', discountValue => 500,
    minOrderAmount => 0);
$r = $t->issue_coupon($camp, $C);
is($r->{status}, 201, 'a coupon issued to C') or diag($r->{body});
my $cp = $r->{json}{id};
put_line($C, 1, 1);
put_line($C, 3, 2);
$t->psql('UPDATE products SET stock = 0 WHERE id = 3');
$before = $t->db_state;
is_error(checkout($C, { fromCart => JSON::PP::true, couponId => $cp,
                        payment => { method => 'BALANCE' } }), 409,
    'OUT_OF_STOCK', 'with a coupon, a SOLD_OUT line: 409');
is_deeply($t->db_state, $before, '... nothing changed (coupon, cart, stock)');
$t->psql('UPDATE products SET stock = 1000 WHERE id = 3');
$r = checkout($C, { fromCart => JSON::PP::true, couponId => $cp,
                    payment => { method => 'BALANCE' } });
is($r->{status}, 201, 'with the coupon, BALANCE: 201') or diag($r->{body});
is(join(' ', map { $r->{json}{$_} } qw(status totalAmount discountAmount paymentAmount)),
    'PAID 1600 500 1100', '... PAID, 1600 - 500 = 1100');
is(balance($C), 100000 - 1100, '... 1100 from the balance');
is($t->psql("SELECT status || ' ' || reserved_by FROM user_coupons WHERE id = $cp"),
    "USED $r->{json}{id}", '... the coupon USED by the order');
is(lines($C), '', '... the cart is empty');

# --- concurrency: one cart, 10 checkouts, one order ------------------------

put_line($B, 1, 1);
put_line($B, 4, 2);
my ($s1, $s4) = (stock(1), stock(4));
my $orders = 0 + $t->psql("SELECT count(*) FROM orders WHERE user_id = $B");
my @res = $t->concurrent([ map { [ 'POST', '/api/v1/orders',
    { fromCart => JSON::PP::true, payment => { method => 'BALANCE' } },
    { user => $B } ] } 1 .. 10 ]);
is_deeply(tally(@res), { 201 => 1, '400 CART_EMPTY' => 9 },
    '10 concurrent checkouts of one cart: one 201, nine 400 CART_EMPTY');
is($t->psql("SELECT count(*) FROM orders WHERE user_id = $B") - $orders, 1,
    '... one order');
is(stock(1) . ' ' . stock(4), ($s1 - 1) . ' ' . ($s4 - 2), '... the stock moved once');
is(balance($B), 100000 - 1000 - 1400, '... paid once');
is(lines($B), '', '... the cart is empty');

$t->check_consistency;
$t->done;
