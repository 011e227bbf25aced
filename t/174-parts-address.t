#!/usr/bin/perl
# An order's seller parts and its shipping address (issue 12 section 2):
# an order is split into one part per store of its items (the platform's
# products, no store, one part), made in the order's transaction, with the
# coupon's discount split by the largest remainder so the parts sum
# exactly to the order; an order of a seller's product needs a shipping
# address (the one given, else the buyer's default address, else 400
# ADDRESS_REQUIRED with nothing changed: stock, balance, cart); platform-
# only orders read as before; the address is sealed at rest (no plaintext
# in order_addresses nor under an Idempotency-Key), shown opened to the
# buyer (answer, GET, replay) and to the sellers of the order (GET
# /seller/orders, /seller/orders/{partId}; another store's part 404);
# erased at withdrawal (the order keeps its amounts); bad input 400.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use PgSim;
use JSON::PP;

binmode(Test::More->builder->$_, ':encoding(UTF-8)')
    for qw(output failure_output todo_output);

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
my $sim = PgSim->start(seed => 174, failRate => 0, latencyMs => [0, 5],
    decisionMs => [50, 100], log => $t->dir . '/pgsim.log');
my $port = $sim->port;
$t->write_config($t->default_config(
    main_extra => $t->account_main,
    http_extra => $t->account_keys . <<"EOF"));
commerce_pg_queue_length 2048;
commerce_zone 1m;
upstream pg_a { server 127.0.0.1:$port; keepalive 8; }
commerce_gateway pg_a upstream=pg_a timeout=2s connect_timeout=500ms;
commerce_gateway_callback_url http://127.0.0.1:%%PORT%%/api/v1/payments/callback;
commerce_reconcile_interval 500ms;
commerce_reconcile_age 1s;
EOF
$t->start_nginx;

# stores X (901), Y (902), Z (903, sells nothing ordered); products 11, 12
# of X, 13 of Y, 14 the platform's
my $CT = 'v1.1.AAAAAAAAAAAAAAAA.' . ('A' x 22);
$t->psql(<<"SQL");
UPDATE users SET role = 'SELLER' WHERE id IN (901, 902, 903);
INSERT INTO stores (id, owner_id, name, bank_code, account_number_ct, account_holder_ct,
                    account_last4)
VALUES (901, 901, 'Store X', '004', '$CT', '$CT', '1234'),
       (902, 902, 'Store Y', '004', '$CT', '$CT', '5678'),
       (903, 903, 'Store Z', '004', '$CT', '$CT', '9012');
UPDATE products p SET name = v.name, price = v.price, stock = 100, store_id = v.store
  FROM (VALUES (11, 'X one', 1000, 901), (12, 'X two', 3000, 901),
               (13, 'Y one', 2000, 902), (14, 'Platform', 500, NULL))
       AS v(id, name, price, store)
 WHERE p.id = v.id;
SQL
my %seller = (X => $t->token(901, role => 'SELLER'), Y => $t->token(902, role => 'SELLER'),
              Z => $t->token(903, role => 'SELLER'));
my ($A, $B, $W) = (1, 2, 4);
my $TS = qr/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\z/;
my $ID = sub { CommerceTest::_is_num($_[0]) && $_[0] > 0 };

my %home = (recipient => '홍길동', phone => '010-1234-5678', zipCode => '06236',
    address1 => '서울 강남구 테헤란로 152', address2 => '12층 1201호',
    memo => '문 앞에 두세요');
my %work = (recipient => 'Kim Chulsoo', phone => '+82-2-555-0100', zipCode => '04524',
    address1 => 'Sejong-daero 110, Jung-gu, Seoul');
my %shown_work = (%work, address2 => undef, memo => undef);

sub order { $t->post('/api/v1/orders', $_[1], user => $_[0], @_[2 .. $#_]) }
sub items { [ map { { productId => $_->[0], quantity => $_->[1] } } @_ ] }
sub state { $t->db_state(skip => ['audit_log']) }
sub item {
    my ($id, $name, $q, $price) = @_;
    return { productId => $id, name => $name, quantity => $q, unitPrice => $price,
             amount => $q * $price };
}
sub part {
    my ($store, $name, $status, $total, $discount, @items) = @_;
    return { id => $ID, orderId => $ID, storeId => $store, storeName => $name,
        status => $status, totalAmount => $total, discountAmount => $discount,
        paymentAmount => $total - $discount, items => [ @items ] };
}
# the parts of every order sum exactly to the order (the invariant)
sub parts_sum_ok {
    return $t->psql(q{SELECT count(*) FROM orders o
        JOIN (SELECT order_id, sum(total_amount) t, sum(discount_amount) d,
                     sum(payment_amount) p FROM order_parts GROUP BY order_id) s
          ON s.order_id = o.id
       WHERE (s.t, s.d, s.p) <> (o.total_amount, o.discount_amount, o.payment_amount)})
        eq '0';
}

# --- an order of a seller's product needs an address ----------------------

is($t->req('PUT', '/api/v1/cart/items/11', user => $A, body => { quantity => 1 })->{status},
    200, "A's cart holds X's product");
my $before = state();
is_error(order($A, { items => items([11, 1]), payment => { method => 'BALANCE' } }),
    400, 'ADDRESS_REQUIRED', 'no address, none in the book: 400 ADDRESS_REQUIRED');
is_error(order($A, { items => items([11, 1], [14, 1]) }), 400, 'ADDRESS_REQUIRED',
    '... unpaid, with a platform product too');
is_error(order($A, { fromCart => JSON::PP::true, payment => { method => 'BALANCE' } }),
    400, 'ADDRESS_REQUIRED', '... from the cart');
is_deeply(state(), $before, '... nothing changed (stock, balance, cart, orders)');

my $r = order($A, { items => items([14, 2]) });
is_response($r, 201, { id => $ID, userId => $A, status => 'PENDING_PAYMENT',
    items => [ item(14, 'Platform', 2, 500) ], totalAmount => 1000, discountAmount => 0,
    paymentAmount => 1000, payment => undef, payments => [], createdAt => $TS },
    "the platform's products alone need none: the document as before (no parts)");
is($t->psql("SELECT count(*) || ' ' || count(store_id) FROM order_parts"
    . " WHERE order_id = $r->{json}{id}"), '1 0', '... one part, the platform\'s');

# --- the buyer's default address -------------------------------------------

is($t->req('POST', '/api/v1/users/me/addresses', user => $A, body => \%home)->{status},
    201, 'A adds an address: the default');
$r = order($A, { fromCart => JSON::PP::true, payment => { method => 'BALANCE' } });
is_response($r, 201, { id => $ID, userId => $A, status => 'PAID',
    items => [ item(11, 'X one', 1, 1000) ], totalAmount => 1000, discountAmount => 0,
    paymentAmount => 1000, payment => { id => $ID, method => 'BALANCE', status => 'SUCCESS',
    amount => 1000 }, payments => [ { id => $ID, method => 'BALANCE', status => 'SUCCESS',
    amount => 1000 } ], createdAt => $TS,
    parts => [ part(901, 'Store X', 'PAID', 1000, 0, item(11, 'X one', 1, 1000)) ],
    shippingAddress => \%home }, 'omitted: the default address is used, shown opened');
my $OA = 0 + $r->{json}{id};
is($t->get("/api/v1/orders/$OA", user => $A)->{body}, $r->{body},
    '... GET answers the same document');
is($t->psql("SELECT sealed_in FROM order_addresses WHERE order_id = $OA"),
    'user_addresses', '... its ciphertexts copied, bound to the book\'s row');

is($t->req('PUT', '/api/v1/cart/items/13', user => $A, body => { quantity => 2 })->{status},
    200, "A's cart holds Y's product");
$r = order($A, { fromCart => JSON::PP::true, shippingAddress => \%work });
is_response($r, 201, { id => $ID, userId => $A, status => 'PENDING_PAYMENT',
    items => [ item(13, 'Y one', 2, 2000) ], totalAmount => 4000, discountAmount => 0,
    paymentAmount => 4000, payment => undef, payments => [], createdAt => $TS,
    parts => [ part(902, 'Store Y', 'PENDING_PAYMENT', 4000, 0, item(13, 'Y one', 2, 2000)) ],
    shippingAddress => \%shown_work },
    'checkout with an address given: it wins over the default, shown opened');
is($t->psql("SELECT count(*) FROM cart_items WHERE user_id = $A"), 0, '... the cart emptied');

# --- several sellers, a coupon, an address given -----------------------------

my $coupon = $t->create_coupon(discountValue => 1000);
my $uc = $t->issue_coupon($coupon, $B)->{json}{id};
my %key = (headers => { 'Idempotency-Key' => 'parts-174-b' });
my $body = { items => items([11, 2], [12, 1], [13, 1], [14, 3]), couponId => $uc,
    payment => { method => 'BALANCE' }, shippingAddress => \%work };
$r = order($B, $body, %key);
# 8500 less 1000: X 5000 (588.2), Y 2000 (235.3), platform 1500 (176.5):
# 999 by floor, the won left to the largest remainder, the platform's
is_response($r, 201, { id => $ID, userId => $B, status => 'PAID',
    items => [ item(11, 'X one', 2, 1000), item(12, 'X two', 1, 3000),
               item(13, 'Y one', 1, 2000), item(14, 'Platform', 3, 500) ],
    totalAmount => 8500, discountAmount => 1000, paymentAmount => 7500,
    payment => { id => $ID, method => 'BALANCE', status => 'SUCCESS', amount => 7500 },
    payments => [ { id => $ID, method => 'BALANCE', status => 'SUCCESS', amount => 7500 } ],
    createdAt => $TS,
    parts => [ part(901, 'Store X', 'PAID', 5000, 588, item(11, 'X one', 2, 1000),
                    item(12, 'X two', 1, 3000)),
               part(902, 'Store Y', 'PAID', 2000, 235, item(13, 'Y one', 1, 2000)),
               part(undef, undef, 'PAID', 1500, 177, item(14, 'Platform', 3, 500)) ],
    shippingAddress => \%shown_work },
    'two stores and the platform, a coupon, an address given: parts and amounts');
my $OB = 0 + $r->{json}{id};
my %part = map { ($_->{storeId} // 'P') => 0 + $_->{id} } @{ $r->{json}{parts} };
ok(parts_sum_ok(), '... every order\'s parts sum exactly to its amounts');
is($t->psql("SELECT sealed_in || ' ' || (sealed_id = id) FROM order_addresses"
    . " WHERE order_id = $OB"), 'order_addresses true', '... sealed to its own row');
my $r2 = order($B, $body, %key);
is($r2->{headers}{'idempotent-replayed'}, 'true', 'the same Idempotency-Key: replayed');
is($r2->{body}, $r->{body}, '... the same answer, the address opened');
is($t->psql("SELECT count(*) FROM orders WHERE user_id = $B"), 1, '... one order');
is($t->get("/api/v1/orders/$OB", user => $B)->{body}, $r->{body}, 'GET: the same');
is_error($t->get("/api/v1/orders/$OB", user => $A), 404, 'ORDER_NOT_FOUND',
    "another buyer: 404");

# --- at rest: ciphertexts only ---------------------------------------------

my $raw = join "\n", $t->psql("SELECT t::text FROM order_addresses t"),
    $t->psql("SELECT t::text FROM idempotency_keys t");
my @plain = grep { index($raw, $_) >= 0 } ($home{recipient}, $home{phone},
    $home{address1}, $home{address2}, $home{memo}, $work{recipient}, $work{phone},
    $work{address1}, '1234-5678', '555-0100', 'Sejong');
is_deeply(\@plain, [], 'no recipient, phone or address in order_addresses'
    . ' nor under the Idempotency-Key');
like($raw, qr/06236/, '... the zip code in clear');

# --- the sellers -------------------------------------------------------------

sub seller { $t->req('GET', $_[1], token => $seller{$_[0]}) }
my $xp = { id => 0 + $part{901}, orderId => 0 + $OB, storeId => 901, storeName => 'Store X',
    status => 'PAID', totalAmount => 5000, discountAmount => 588, paymentAmount => 4412,
    items => [ item(11, 'X one', 2, 1000), item(12, 'X two', 1, 3000) ],
    createdAt => $TS, shippingAddress => \%shown_work };
is_response(seller(X => "/api/v1/seller/orders/$part{901}"), 200, $xp,
    "X reads its part: items, amounts, the address opened");
is_response(seller(Y => "/api/v1/seller/orders/$part{902}"), 200,
    { %$xp, id => 0 + $part{902}, storeId => 902, storeName => 'Store Y', totalAmount => 2000,
      discountAmount => 235, paymentAmount => 1765, items => [ item(13, 'Y one', 1, 2000) ] },
    "Y reads its part");
is_error(seller(Y => "/api/v1/seller/orders/$part{901}"), 404, 'ORDER_PART_NOT_FOUND',
    "Y on X's part: 404");
is_error(seller(Z => "/api/v1/seller/orders/$part{901}"), 404, 'ORDER_PART_NOT_FOUND',
    "Z (no part in it): 404");
is_error(seller(X => "/api/v1/seller/orders/$part{P}"), 404, 'ORDER_PART_NOT_FOUND',
    "the platform's part: 404 to a seller");
is_error(seller(X => '/api/v1/seller/orders/999999'), 404, 'ORDER_PART_NOT_FOUND',
    'an unknown part: 404');
is_error($t->get("/api/v1/seller/orders/$part{901}", user => $B), 403, 'FORBIDDEN',
    'a CONSUMER: 403');
$t->psql("UPDATE users SET role = 'MANAGER' WHERE id = 905;"
    . " INSERT INTO store_managers (store_id, user_id, assigned_by) VALUES (901, 905, 2)");
is_response($t->req('GET', "/api/v1/seller/orders/$part{901}",
    token => $t->token(905, role => 'MANAGER')), 200, $xp, "a manager of X reads X's part");
is_error($t->req('GET', "/api/v1/seller/orders/$part{902}",
    token => $t->token(905, role => 'MANAGER')), 404, 'ORDER_PART_NOT_FOUND',
    "... not Y's");
my $summary = sub {
    my ($id, $order, $store, $total, $discount) = @_;
    return { id => 0 + $id, orderId => 0 + $order, storeId => $store, status => 'PAID',
        totalAmount => $total, discountAmount => $discount,
        paymentAmount => $total - $discount, createdAt => $TS };
};
my $pa = 0 + $t->psql("SELECT id FROM order_parts WHERE order_id = $OA");
is_response(seller(X => '/api/v1/seller/orders'), 200, { storeId => 901,
    items => [ $summary->($part{901}, $OB, 901, 5000, 588), $summary->($pa, $OA, 901, 1000, 0) ],
    page => 0, size => 20, total => 2 }, "X's list: its parts, newest first");
is_response(seller(X => '/api/v1/seller/orders?status=PAID&size=1&page=1'), 200,
    { storeId => 901, items => [ $summary->($pa, $OA, 901, 1000, 0) ], page => 1, size => 1,
      total => 2 }, '... by status, paged');
is_response(seller(X => '/api/v1/seller/orders?status=CANCELLED'), 200,
    { storeId => 901, items => [], page => 0, size => 20, total => 0 }, '... none CANCELLED');
is_response(seller(Z => '/api/v1/seller/orders'), 200,
    { storeId => 903, items => [], page => 0, size => 20, total => 0 }, "Z's list: empty");
is_error(seller(X => '/api/v1/seller/orders?storeId=902'), 404, 'STORE_NOT_FOUND',
    "X on Y's store: 404");
for my $q ('status=SHIPPING', 'status=', 'size=0', 'size=101', 'page=-1', 'page=x',
           'storeId=0') {
    is_error(seller(X => "/api/v1/seller/orders?$q"), 400, 'INVALID_REQUEST', "list ?$q: 400");
}
is_error(seller(X => '/api/v1/seller/orders/abc'), 400, 'INVALID_REQUEST', 'a bad part id: 400');

# --- parts follow the order's status -----------------------------------------

is_error(order($B, { items => items([13, 1]) }), 400, 'ADDRESS_REQUIRED',
    'B has no address book: an order without an address is refused');
$r = order($B, { items => items([13, 1]), shippingAddress => \%home });
my $OU = $r->{json}{id};
is($r->{json}{parts}[0]{status}, 'PENDING_PAYMENT', 'unpaid: the part PENDING_PAYMENT');
is($t->post("/api/v1/orders/$OU/payment", { method => 'BALANCE' }, user => $B)->{status},
    200, '... paid');
is($t->psql("SELECT status FROM order_parts WHERE order_id = $OU"), 'PAID',
    '... its part PAID');

# --- a card order with an address ---------------------------------------------

my %shown_home = %home;
$r = order($B, { items => items([13, 2]), shippingAddress => \%home,
    payment => { method => 'CARD', cardType => 'KB', cardNo => '1111-1111-1111-1111' } });
is($r->{status}, 202, 'by card, an address given: 202') or diag($r->{body});
my $OC = $r->{json}{id} // 0;
is_deeply($r->{json}{shippingAddress}, \%shown_home, '... the answer shows it opened');
is_deeply([ map { [ $_->{storeId}, $_->{totalAmount} ] } @{ $r->{json}{parts} // [] } ],
    [ [ 902, 4000 ] ], '... one part, of Y');
my $paid = $t->wait_order($OC, user => $B, until => sub { $_[0]{status} eq 'PAID' });
is($paid->{status}, 'PAID', '... settled PAID by the gateway');
is_deeply($paid->{shippingAddress}, \%shown_home, '... GET shows the address opened');
is($t->psql("SELECT status FROM order_parts WHERE order_id = $OC"), 'PAID',
    '... its part PAID');
is($t->psql("SELECT sealed_in FROM order_addresses WHERE order_id = $OC"),
    'order_addresses', '... the address given, sealed to its row');

# --- bad input ------------------------------------------------------------------

$before = state();
my @bad = (
    [ 'a string', '"x"' ], [ 'an array', [] ], [ 'a number', 1 ],
    [ 'recipient a number', { %work, recipient => 1 } ],
    [ 'phone an object', { %work, phone => {} } ],
    [ 'an unknown field', { %work, floor => 3 } ],
    [ 'isDefault (the book\'s only)', { %work, isDefault => JSON::PP::true } ],
    [ 'a recipient of 101 characters', { %work, recipient => 'a' x 101 } ],
    [ 'address1 of 201 characters', { %work, address1 => '가' x 201 } ],
    [ 'a memo of 101 characters', { %work, memo => 'm' x 101 } ],
    [ 'a zip of 4 digits', { %work, zipCode => '0452' } ],
    [ 'a bad phone', { %work, phone => 'call me' } ],
    [ 'address1 missing', { map { $_ => $work{$_} } qw(recipient phone zipCode) } ],
    [ 'empty', {} ],
);
for my $b (@bad) {
    my $v = ref $b->[1] ? $b->[1] : \$b->[1];
    my $json = ref $b->[1] ? JSON::PP->new->utf8->canonical->encode({
        items => items([11, 1]), shippingAddress => $b->[1] })
        : qq({"items":[{"productId":11,"quantity":1}],"shippingAddress":$b->[1]});
    is_error($t->post('/api/v1/orders', $json, user => $B), 400, 'INVALID_REQUEST',
        "shippingAddress $b->[0]: 400");
}
is_error($t->post('/api/v1/orders', '{"items":[{"productId":11,"quantity":1}],'
    . '"shippingAddress":{"recipient":"a","phone":"010-1234-5678","zipCode":"04524",'
    . '"address1":"b"},"shippingAddress":{"recipient":"a","phone":"010-1234-5678",'
    . '"zipCode":"04524","address1":"b"}}', user => $B), 400, 'INVALID_REQUEST',
    'shippingAddress twice: 400');
is_deeply(state(), $before, '... nothing changed');

# --- withdrawal erases the addresses, the orders stay -------------------------

is($t->req('POST', '/api/v1/users/me/addresses', user => $W, body => \%home)->{status},
    201, 'W adds an address');
$r = order($W, { items => items([12, 1]), payment => { method => 'BALANCE' } });
is($r->{status}, 201, 'W orders');
my $OW = 0 + $r->{json}{id};
is_response($t->req('DELETE', '/api/v1/users/me', user => $W), 204, undef, 'W withdraws');
is($t->psql("SELECT count(*) FROM order_addresses WHERE user_id = $W"), 0,
    "W's order address is erased");
is($t->psql("SELECT status || ' ' || total_amount || ' ' || payment_amount FROM orders"
    . " WHERE id = $OW"), 'PAID 3000 3000', '... the order keeps its amounts');
my $pw = 0 + $t->psql("SELECT id FROM order_parts WHERE order_id = $OW");
is_response(seller(X => "/api/v1/seller/orders/$pw"), 200,
    { id => 0 + $pw, orderId => 0 + $OW, storeId => 901, storeName => 'Store X', status => 'PAID',
      totalAmount => 3000, discountAmount => 0, paymentAmount => 3000,
      items => [ item(12, 'X two', 1, 3000) ], createdAt => $TS, shippingAddress => undef },
    '... the seller sees its part without an address');
is($t->psql("SELECT count(*) FROM order_addresses WHERE user_id <> $W"), 5,
    "others' order addresses untouched (A's two, B's three)");
ok(parts_sum_ok(), 'at the end every order\'s parts sum to its amounts');

$t->done;
$sim->stop;
