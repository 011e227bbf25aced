#!/usr/bin/perl
# The cart (issue 12 section 1): lines kept in Postgres, one per variant,
# each answered with the variant's current price, status and stock; lines
# whose variant became SOLD_OUT or STOPPED, whose price changed, or whose
# quantity passed the stock are flagged, not dropped, and the totals count
# the orderable lines only; each user sees their own cart; at most 100
# lines and quantity 1..999, held by the database under concurrency (150
# concurrent PUTs of distinct variants make exactly 100 lines, 20 of one
# variant make one line); bad input on every route is 400 (415 without
# JSON) and changes nothing.

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
$t->write_config($t->default_config(
    http_extra => "commerce_pg_queue_length 2048;"));
$t->start_nginx;

my ($A, $B, $FULL, $RACE, $ONE) = (1, 2, 3, 4, 5);
my $T = JSON::PP::true;
my $F = JSON::PP::false;

sub req {
    my ($method, $path, $user, $body, %o) = @_;
    return $t->req($method, $path, user => $user,
        (defined $body ? (body => $body) : ()), %o);
}
sub state { $t->db_state }
# a demo product's price (its default variant has the product's id)
sub price { 0 + $t->psql("SELECT price FROM products WHERE id = $_[0]") }
sub name { "Product $_[0]" }
# the expected document of a line
sub line {
    my (%l) = @_;
    my $v = $l{variant};
    my $unit = $l{unit} // price($v);
    return { variantId => 0 + $v, productId => 0 + $v, name => name($v),
        optionValues => [], quantity => 0 + $l{quantity}, unitPrice => 0 + $unit,
        priceAtAdd => 0 + ($l{at} // $unit), amount => $unit * $l{quantity},
        stock => 0 + ($l{stock} // 1000), status => $l{status} // 'ON_SALE',
        flags => $l{flags} // [], orderable => $l{orderable} // $T,
        addedAt => qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/ };
}
sub cart {
    my (@lines) = @_;
    my @ok = grep { $_->{orderable} } @lines;
    my ($q, $a) = (0, 0);
    $q += $_->{quantity}, $a += $_->{amount} for @ok;
    return { items => \@lines, lineCount => 0 + @lines,
        orderableCount => 0 + @ok, totalQuantity => $q, totalAmount => $a };
}

# --- an empty cart; a line added, set, a second line ----------------------

is_response(req('GET', '/api/v1/cart', $A), 200, cart(),
    'an empty cart: no lines, totals 0');
is_response(req('PUT', '/api/v1/cart/items/3', $A, { quantity => 2 }), 200,
    cart(line(variant => 3, quantity => 2)), 'PUT adds a line: the cart');
is_response(req('PUT', '/api/v1/cart/items/3', $A, { quantity => 5 }), 200,
    cart(line(variant => 3, quantity => 5)), 'PUT again sets its quantity');
is_response(req('PUT', '/api/v1/cart/items/5', $A, { quantity => 1 }), 200,
    cart(line(variant => 5, quantity => 1), line(variant => 3, quantity => 5)),
    'a second line, newest first');
is($t->psql("SELECT count(*) FROM cart_items WHERE user_id = $A"), 2,
    'two rows in cart_items');

# --- each user sees their own cart ----------------------------------------

is_response(req('GET', '/api/v1/cart', $B), 200, cart(),
    "another user's cart is empty");
my $before = state();
is_error(req('DELETE', '/api/v1/cart/items/3', $B), 404,
    'CART_ITEM_NOT_FOUND', "B removing A's line: 404 CART_ITEM_NOT_FOUND");
is_response(req('DELETE', '/api/v1/cart', $B), 204, undef,
    "B emptying B's cart leaves A's");
is_deeply(state(), $before, "nothing changed for A");

# --- flags: price changed, sold out, stopped, over the stock --------------

for my $v (7, 9, 11) {
    req('PUT', "/api/v1/cart/items/$v", $A, { quantity => 3 });
}
my ($p3, $p7, $p9, $p11) = map { price($_) } 3, 7, 9, 11;
$t->psql("UPDATE products SET price = price + 100 WHERE id = 3;
          UPDATE products SET stock = 0 WHERE id = 5;
          UPDATE product_variants SET stopped = true WHERE id = 7;
          UPDATE products SET stock = 2 WHERE id = 9;
          UPDATE products SET stopped = true WHERE id = 11;");
my @flagged = (
    line(variant => 11, quantity => 3, status => 'STOPPED',
         flags => ['STOPPED'], orderable => $F),
    line(variant => 9, quantity => 3, stock => 2,
         flags => ['INSUFFICIENT_STOCK'], orderable => $F),
    line(variant => 7, quantity => 3, status => 'STOPPED',
         flags => ['STOPPED'], orderable => $F),
    line(variant => 5, quantity => 1, stock => 0, status => 'SOLD_OUT',
         flags => ['SOLD_OUT'], orderable => $F),
    line(variant => 3, quantity => 5, at => $p3, unit => $p3 + 100,
         flags => ['PRICE_CHANGED']),
);
my $r = req('GET', '/api/v1/cart', $A);
is_response($r, 200, cart(@flagged), 'each change flagged, no line dropped');
is($r->{json}{totalAmount}, ($p3 + 100) * 5,
    'totals: only the orderable line, at its current price');
is($r->{json}{orderableCount}, 1, 'one orderable line of five');

# the buyer sets the changed line again: the current price is taken
is_response(req('PUT', '/api/v1/cart/items/3', $A, { quantity => 4 }), 200,
    cart(@flagged[0 .. 3], line(variant => 3, quantity => 4,
                               unit => $p3 + 100)),
    'PUT of a PRICE_CHANGED line: priceAtAdd is the current price, flag gone');

# --- refused PUTs: unknown, STOPPED, SOLD_OUT, over the stock -------------

$before = state();
is_error(req('PUT', '/api/v1/cart/items/999999', $A, { quantity => 1 }),
    404, 'VARIANT_NOT_FOUND', 'an unknown variant: 404 VARIANT_NOT_FOUND');
is_error(req('PUT', '/api/v1/cart/items/7', $A, { quantity => 1 }), 409,
    'PRODUCT_NOT_ON_SALE', 'a STOPPED variant: 409 PRODUCT_NOT_ON_SALE');
is_error(req('PUT', '/api/v1/cart/items/11', $B, { quantity => 1 }), 409,
    'PRODUCT_NOT_ON_SALE', 'a variant of a STOPPED product: 409');
is_error(req('PUT', '/api/v1/cart/items/5', $B, { quantity => 1 }), 409,
    'OUT_OF_STOCK', 'a SOLD_OUT variant: 409 OUT_OF_STOCK');
is_error(req('PUT', '/api/v1/cart/items/9', $A, { quantity => 3 }), 409,
    'OUT_OF_STOCK', 'a quantity over the stock: 409 OUT_OF_STOCK');
is_deeply(state(), $before, 'refused PUTs changed nothing');

# --- removing a line, emptying --------------------------------------------

is_response(req('DELETE', '/api/v1/cart/items/9', $A), 204, undef,
    'DELETE a line: 204');
is_error(req('DELETE', '/api/v1/cart/items/9', $A), 404,
    'CART_ITEM_NOT_FOUND', 'DELETE it again: 404 CART_ITEM_NOT_FOUND');
is(req('GET', '/api/v1/cart', $A)->{json}{lineCount}, 4, 'four lines left');
is_response(req('DELETE', '/api/v1/cart', $A), 204, undef,
    'DELETE /cart: 204');
is_response(req('GET', '/api/v1/cart', $A), 200, cart(), 'the cart is empty');
is_response(req('DELETE', '/api/v1/cart', $A), 204, undef,
    'emptying an empty cart: 204');
is($t->psql("SELECT count(*) FROM cart_items WHERE user_id = $A"), 0,
    'no rows left');

# --- bad input on every route: 400 (415), nothing changed ----------------

req('PUT', '/api/v1/cart/items/3', $A, { quantity => 1 });
$before = state();
my @bad = (
    [ '{"quantity":', 'malformed JSON' ],
    [ '[1]', 'not an object' ],
    [ '{}', 'no quantity' ],
    [ '{"quantity":0}', 'quantity 0' ],
    [ '{"quantity":1000}', 'quantity 1000' ],
    [ '{"quantity":-1}', 'negative' ],
    [ '{"quantity":1.5}', 'a fraction' ],
    [ '{"quantity":1e2}', 'an exponent' ],
    [ '{"quantity":"2"}', 'a string' ],
    [ '{"quantity":null}', 'null' ],
    [ '{"quantity":true}', 'a boolean' ],
    [ '{"quantity":99999999999999999999999999}', 'overflow' ],
    [ '{"quantity":1,"quantity":2}', 'twice' ],
    [ '{"quantity":1,"price":0}', 'an unknown field' ],
    [ '{"quantity":"1; DROP TABLE cart_items; --"}', 'an injection string' ],
    [ '{"quantity":{"$gt":0}}', 'an object' ],
    [ '', 'an empty body' ],
);
for my $b (@bad) {
    is_error(req('PUT', '/api/v1/cart/items/3', $A, $b->[0]), 400,
        'INVALID_REQUEST', "PUT $b->[1]: 400");
}
is_error(req('PUT', '/api/v1/cart/items/3', $A, '{"quantity":2}',
    content_type => undef), 415, 'UNSUPPORTED_MEDIA_TYPE',
    'PUT without Content-Type: 415');
is_error(req('PUT', '/api/v1/cart/items/3', $A, '{"quantity":2}',
    content_type => 'text/plain'), 415, 'UNSUPPORTED_MEDIA_TYPE',
    'PUT as text/plain: 415');
for my $p ('0', '-3', 'abc', '3%3BDROP', '99999999999999999999999') {
    is_error(req('PUT', "/api/v1/cart/items/$p", $A, { quantity => 1 }), 400,
        'INVALID_REQUEST', "PUT /cart/items/$p: 400");
    is_error(req('DELETE', "/api/v1/cart/items/$p", $A), 400,
        'INVALID_REQUEST', "DELETE /cart/items/$p: 400");
}
is_error($t->req('GET', '/api/v1/cart'), 401, 'UNAUTHORIZED',
    'GET without a token: 401');
is_error($t->req('DELETE', '/api/v1/cart', auth => 'Bearer x.y.z'), 401,
    'UNAUTHORIZED', 'DELETE with a bad token: 401');
is_error(req('POST', '/api/v1/cart', $A, {}), 405, 'METHOD_NOT_ALLOWED',
    'POST /cart: 405');
is_error(req('GET', '/api/v1/cart/items/3', $A), 405, 'METHOD_NOT_ALLOWED',
    'GET /cart/items/3: 405');
is_deeply(state(), $before, 'bad input changed nothing');

# this instance has no accounts (no PII keys): the address book is off
is_error(req('GET', '/api/v1/users/me/addresses', $A), 404, 'NOT_FOUND',
    'without accounts configured the address book is 404 NOT_FOUND');
is_error(req('POST', '/api/v1/users/me/addresses', $A, { recipient => 'x' }),
    404, 'NOT_FOUND', '... also for a POST');

# --- 100 lines at most -----------------------------------------------------

my @full = map { req('PUT', "/api/v1/cart/items/$_", $FULL,
    { quantity => 1 })->{status} } 100 .. 199;
is_deeply(tally(map { { status => $_ } } @full), { 200 => 100 },
    '100 lines: each PUT 200');
$before = state();
$r = req('PUT', '/api/v1/cart/items/50', $FULL, { quantity => 1 });
is_error($r, 409, 'CART_FULL', 'the 101st line: 409 CART_FULL');
is_deeply(state(), $before, 'and nothing changed');
is_response(req('PUT', '/api/v1/cart/items/150', $FULL, { quantity => 9 }),
    200, { items => sub { @{ $_[0] } == 100 }, lineCount => 100,
           orderableCount => 100, totalQuantity => 108,
           totalAmount => qr/^\d+$/ },
    'a full cart: setting an existing line still works');
is_response(req('DELETE', '/api/v1/cart/items/100', $FULL), 204, undef,
    'a line removed from the full cart');
is(req('PUT', '/api/v1/cart/items/50', $FULL, { quantity => 1 })->{status},
    200, 'then a new line fits again');

# --- concurrency: the database holds the limit and one line per variant --

my @res = $t->concurrent([ map { [ 'PUT', "/api/v1/cart/items/$_",
    { quantity => 1 }, { user => $RACE } ] } 20 .. 169 ]);
is_deeply(tally(@res), { 200 => 100, '409 CART_FULL' => 50 },
    '150 concurrent PUTs of distinct variants: 100 lines, 50 CART_FULL');
is($t->psql("SELECT count(*) || ' ' || count(DISTINCT slot) || ' '"
    . " || min(slot) || ' ' || max(slot) FROM cart_items WHERE user_id = $RACE"),
    '100 100 1 100', 'exactly 100 rows, slots 1..100 once each');
my @won = map { 20 + $_ } grep { $res[$_]{status} == 200 } 0 .. $#res;
is($t->psql("SELECT string_agg(variant_id::text, ',' ORDER BY variant_id)"
    . " FROM cart_items WHERE user_id = $RACE"), join(',', @won),
    'the lines are exactly the variants whose PUT said 200');

@res = $t->concurrent([ map { [ 'PUT', '/api/v1/cart/items/42',
    { quantity => $_ }, { user => $ONE } ] } 1 .. 20 ]);
is_deeply(tally(@res), { 200 => 20 },
    '20 concurrent PUTs of one variant: all 200');
is($t->psql("SELECT count(*) FROM cart_items WHERE user_id = $ONE"), 1,
    'one line');
my $q = 0 + $t->psql("SELECT quantity FROM cart_items WHERE user_id = $ONE");
ok($q >= 1 && $q <= 20, "its quantity one of the PUTs' ($q)");

$t->done;
