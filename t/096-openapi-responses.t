#!/usr/bin/perl
# Real answers against conf/openapi.json: every operation is called for at
# least one success and one error (Postgres, the module with accounts, card
# payments through the gateway simulator with signed callbacks, coupons,
# a rate limit on the audit route), each answer (operationId, status, headers,
# body) is collected, and t/openapi-check (python3 + python3-jsonschema,
# Draft 2020-12, $refs resolved in the document) checks them all in one
# run: the status is one the operation lists, the body fits that
# response's schema (strictly: no undeclared field), required headers are
# there.  Then the checker is shown to catch a broken schema.
#
# GET /api/v1/openapi.json is checked when the module serves it; while it
# answers 404 NOT_FOUND (the directive that serves the file has not been
# merged), that operation is skipped with a note.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use PgSim;
use DpSim;
use CarrierSim;
use Digest::SHA qw(hmac_sha256_hex);
use Encode qw(decode);
use JSON::PP;

my $ROOT = "$FindBin::Bin/..";
my $SPEC = "$ROOT/conf/openapi.json";
my $CHECK = "$ROOT/t/openapi-check";
my $PYTHON = -x '/usr/bin/python3' ? '/usr/bin/python3' : 'python3';
my $SECRET = 'callback-secret-of-096';

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

my $sim = PgSim->start(seed => 96, failRate => 0, latencyMs => [0, 5],
    decisionMs => [100, 200], hmacSecret => $SECRET,
    log => $t->dir . '/pgsim.log');
my $sim_port = $sim->port;

# a data platform that refuses every event: they go to the dead-letter queue
my $dp = DpSim->start;
$dp->control(alwaysStatus => 400);
my $dp_port = $dp->port;

my $IMAGES = $t->nginx_prefix . '/images';
mkdir $IMAGES or die "$IMAGES: $!";
# a carrier's tracking service (the shipping block below)
my $carrier = CarrierSim->start(key => 'key-096');
my $carrier_port = $carrier->port;

$t->write_config($t->default_config(
    main_extra => $t->account_main,
    server_extra => 'location ~ ^/api/v1/seller/products/[0-9]+/images$ {'
        . ' commerce_api; client_max_body_size 0; }',
    http_extra => $t->account_keys . <<"EOF",
commerce_balance_max 1000000;
commerce_image_dir $IMAGES;
commerce_limit_zone audit key=user rate=1r/m burst=3 size=1m;
commerce_limit admin_audit audit;
commerce_zone 1m;
upstream pg_a { server 127.0.0.1:$sim_port; keepalive 8; }
commerce_gateway pg_a upstream=pg_a timeout=1s connect_timeout=500ms;
commerce_gateway_callback_url http://127.0.0.1:%%PORT%%/api/v1/payments/callback;
commerce_gateway_callback_secret "$SECRET";
commerce_gateway_retries 3;
commerce_gateway_retry_base 20ms;
commerce_gateway_retry_cap 100ms;
commerce_reconcile_interval 500ms;
upstream dp { server 127.0.0.1:$dp_port; }
commerce_event_sink dp http upstream=dp events=order.* interval=100ms;
upstream carrier { server 127.0.0.1:$carrier_port; }
commerce_gateway carrier upstream=carrier timeout=1s connect_timeout=500ms;
commerce_shipping gateway=carrier key=key-096 interval=200ms
    callback_url=http://127.0.0.1:%%PORT%%/api/v1/shipping/callback;
EOF
));
$t->start_nginx;

my (@samples, %skip);

# call(op, what, method, path, %req): one request; its answer is a sample
sub call {
    my ($op, $what, $method, $path, %o) = @_;
    my $r = $t->req($method, $path, %o);
    push @samples, {
        op => $op, status => 0 + $r->{status}, what => $what,
        headers => $r->{headers} // {},
        body => decode('UTF-8', $r->{body} // ''),
    };
    return $r;
}

my $consumer = $t->token(1);
my $admin = $t->token(2, role => 'ADMIN');
my $manager = $t->token(3, role => 'MANAGER');
my $stranger = $t->token(999999);
my $hacker = $t->token(4, role => 'HACKER');
sub card { { method => 'CARD', cardType => 'KB', cardNo => $_[0] } }
my $OK_CARD = '1111-1111-1111-1111';

# --- catalog -------------------------------------------------------------

call(listProducts => 'a page', GET => '/api/v1/products?page=0&size=3',
    token => $consumer);
call(listProducts => 'past the end', GET => '/api/v1/products?page=1000',
    token => $consumer);
call(listProducts => 'size 0', GET => '/api/v1/products?size=0',
    token => $consumer);
call(listProducts => 'no token', GET => '/api/v1/products');
call(listProducts => 'unknown role', GET => '/api/v1/products',
    token => $hacker);
call(getProduct => 'product 5', GET => '/api/v1/products/5',
    token => $consumer);
call(getProduct => 'unknown', GET => '/api/v1/products/999999',
    token => $consumer);
call(getProduct => 'bad id', GET => '/api/v1/products/abc',
    token => $consumer);

# --- balance -------------------------------------------------------------

call(getBalance => 'own', GET => '/api/v1/balance', token => $consumer);
call(getBalance => 'no such user', GET => '/api/v1/balance',
    token => $stranger);
call(chargeBalance => 'with a key', POST => '/api/v1/balance/charge',
    body => { amount => 5000 }, token => $consumer,
    headers => { 'Idempotency-Key' => 'k-096-1' });
my $r = call(chargeBalance => 'replayed', POST => '/api/v1/balance/charge',
    body => { amount => 5000 }, token => $consumer,
    headers => { 'Idempotency-Key' => 'k-096-1' });
is($r->{headers}{'idempotent-replayed'}, 'true', 'the replay says so');
call(chargeBalance => 'key reused', POST => '/api/v1/balance/charge',
    body => { amount => 6000 }, token => $consumer,
    headers => { 'Idempotency-Key' => 'k-096-1' });
call(chargeBalance => 'amount 0', POST => '/api/v1/balance/charge',
    body => { amount => 0 }, token => $consumer);
call(chargeBalance => 'over the cap', POST => '/api/v1/balance/charge',
    body => { amount => 1000000 }, token => $consumer);
call(chargeBalance => 'text/plain', POST => '/api/v1/balance/charge',
    body => '{"amount":1}', content_type => 'text/plain', token => $consumer);
call(chargeBalance => '70 KB body', POST => '/api/v1/balance/charge',
    body => { amount => 1, pad => 'x' x 70000 }, token => $consumer);
call(chargeBalance => 'no such user', POST => '/api/v1/balance/charge',
    body => { amount => 1 }, token => $stranger);

# --- orders --------------------------------------------------------------

my $item = { items => [ { productId => 5, quantity => 1 } ] };
$r = call(createOrder => 'unpaid', POST => '/api/v1/orders', body => $item,
    user => 10);
my $pending = $r->{json}{id};
$r = call(createOrder => 'unpaid', POST => '/api/v1/orders', body => $item,
    user => 10);
my $pending2 = $r->{json}{id};
$r = call(createOrder => 'unpaid', POST => '/api/v1/orders', body => $item,
    user => 10);
my $pending3 = $r->{json}{id};
call(createOrder => 'paid from the balance', POST => '/api/v1/orders',
    body => { %$item, payment => { method => 'BALANCE' } }, user => 11);
$r = call(createOrder => 'by card', POST => '/api/v1/orders',
    body => { %$item, payment => card($OK_CARD) }, user => 12);
my $by_card = $r->{json}{id};
# easy pay (the provider in the payment) and a transfer (WAITING_FOR_DEPOSIT
# with its virtual account), then the transfer deposited
$r = call(createOrder => 'by KakaoPay', POST => '/api/v1/orders',
    body => { %$item, payment => { method => 'EASY_PAY',
        provider => 'KAKAOPAY' } }, user => 17);
my $by_easy = $r->{json}{id};
$r = call(createOrder => 'by transfer', POST => '/api/v1/orders',
    body => { %$item, payment => { method => 'TRANSFER' } }, user => 18);
my $by_transfer = $r->{json}{id};
is($r->{json}{status}, 'WAITING_FOR_DEPOSIT', 'the transfer waits');
call(createOrder => 'provider on a card', POST => '/api/v1/orders',
    body => { %$item, payment => { %{ card($OK_CARD) },
        provider => 'NAVERPAY' } }, user => 17);
call(createOrder => 'no items', POST => '/api/v1/orders',
    body => { items => [] }, user => 10);
call(createOrder => 'unknown product', POST => '/api/v1/orders',
    body => { items => [ { productId => 999999, quantity => 1 } ] },
    user => 10);
call(createOrder => 'balance too low', POST => '/api/v1/orders',
    body => { items => [ { productId => 200, quantity => 2 } ],
        payment => { method => 'BALANCE' } }, user => 13);
call(createOrder => 'reserve 999', POST => '/api/v1/orders',
    body => { items => [ { productId => 60, quantity => 999 } ] }, user => 14);
call(createOrder => 'out of stock', POST => '/api/v1/orders',
    body => { items => [ { productId => 60, quantity => 999 } ] }, user => 14);

# the gateway refuses the request itself: a decline at once, 200
$sim->control(minOrderIdLength => 12);
call(createOrder => 'card refused by the gateway', POST => '/api/v1/orders',
    body => { %$item, payment => card($OK_CARD) }, user => 15);
$sim->control(minOrderIdLength => 6);

# checkout: the cart's lines, by card (the card flow's cart statement); an
# empty cart
$t->req('PUT', '/api/v1/cart/items/5', user => 816, body => { quantity => 2 });
$r = call(createOrder => 'checkout from the cart, by card', POST => '/api/v1/orders',
    body => { fromCart => JSON::PP::true, payment => card($OK_CARD) }, user => 816);
is($r->{status} . ' ' . ($r->{json}{items}[0]{quantity} // ''), '202 2',
    'checkout by card: 202, the cart line ordered');
is($t->psql('SELECT count(*) FROM cart_items WHERE user_id = 816'), 0,
    '... and out of the cart');
call(createOrder => 'checkout of an empty cart', POST => '/api/v1/orders',
    body => { fromCart => JSON::PP::true }, user => 816);

call(getOrder => 'own', GET => "/api/v1/orders/$pending", user => 10);
call(getOrder => "another user's", GET => "/api/v1/orders/$pending",
    user => 11);
call(getOrder => 'id 0', GET => '/api/v1/orders/0', user => 10);

call(payOrder => 'from the balance', POST => "/api/v1/orders/$pending/payment",
    body => { method => 'BALANCE' }, user => 10);
call(payOrder => 'paid already', POST => "/api/v1/orders/$pending/payment",
    body => { method => 'BALANCE' }, user => 10);
call(payOrder => 'by card', POST => "/api/v1/orders/$pending2/payment",
    body => card($OK_CARD), user => 10);
call(payOrder => 'unknown order', POST => '/api/v1/orders/999999/payment',
    body => { method => 'BALANCE' }, user => 10);
call(payOrder => 'bad card number', POST => "/api/v1/orders/$pending3/payment",
    body => card('1111'), user => 10);

# every gateway call fails: retries exhausted, 503 PG_UNAVAILABLE
$sim->control(failRate => 1);
call(payOrder => 'gateway failing', POST => "/api/v1/orders/$pending3/payment",
    body => card($OK_CARD), user => 10);
$sim->control(failRate => 0);

# the card payments are decided by the simulator's signed callbacks
ok(wait_until(sub {
    my $o = $t->get("/api/v1/orders/$by_card", user => 12)->{json};
    $o && $o->{status} eq 'PAID' }, timeout => 15),
    'the card order is PAID after the signed callback');
call(getOrder => 'paid by card', GET => "/api/v1/orders/$by_card", user => 12);
my $xfer = $sim->transactions(orderId => sprintf('%06d', $by_transfer))->[0];
$sim->request('POST', '/__deposit', body => {
    transactionKey => $xfer->{transactionKey} });
ok(wait_until(sub {
    my $o = $t->get("/api/v1/orders/$by_transfer", user => 18)->{json};
    my $e = $t->get("/api/v1/orders/$by_easy", user => 17)->{json};
    $o && $o->{status} eq 'PAID' && $e && $e->{status} ne 'PAYMENT_IN_PROGRESS'
    }, timeout => 15), 'the deposit paid the transfer, the easy payment decided');
call(getOrder => 'paid by transfer', GET => "/api/v1/orders/$by_transfer",
    user => 18);
call(getOrder => 'by easy pay', GET => "/api/v1/orders/$by_easy", user => 17);

# --- payments ------------------------------------------------------------

my $cb = '{"transactionKey":"20990101:TR:000096","status":"SUCCESS"}';
my $sig = sub { my $ts = time; "t=$ts,v1=" . hmac_sha256_hex("$ts.$_[0]", $SECRET) };
call(paymentCallback => 'signed', POST => '/api/v1/payments/callback?gateway=pg_a',
    body => $cb, headers => { 'X-PG-Signature' => $sig->($cb) });
call(paymentCallback => 'unsigned', POST => '/api/v1/payments/callback?gateway=pg_a',
    body => $cb);
call(paymentCallback => 'unknown gateway',
    POST => '/api/v1/payments/callback?gateway=nope',
    body => $cb, headers => { 'X-PG-Signature' => $sig->($cb) });
call(paymentCallback => 'no transactionKey',
    POST => '/api/v1/payments/callback?gateway=pg_a',
    body => '{}', headers => { 'X-PG-Signature' => $sig->('{}') });

# --- accounts ------------------------------------------------------------

my %kim = (email => 'kim.096@example.com', password => 'correct horse 096',
    name => 'Kim', phone => '010-1234-5678');
call(signup => 'new', POST => '/api/v1/auth/signup', body => \%kim);
call(signup => 'email taken', POST => '/api/v1/auth/signup', body => \%kim);
call(signup => 'weak password', POST => '/api/v1/auth/signup',
    body => { %kim, email => 'lee.096@example.com', password => 'aaaaaaaaaaaa' });
call(signup => 'bad phone', POST => '/api/v1/auth/signup',
    body => { %kim, email => 'lee.096@example.com', phone => 'call me' });

$r = call(login => 'right password', POST => '/api/v1/auth/login',
    body => { email => $kim{email}, password => $kim{password} });
my ($access, $refresh1) = @{ $r->{json} // {} }{qw(accessToken refreshToken)};
call(login => 'wrong password', POST => '/api/v1/auth/login',
    body => { email => $kim{email}, password => 'not the password' });
call(login => 'no password', POST => '/api/v1/auth/login',
    body => { email => $kim{email} });

$r = call(refresh => 'rotate', POST => '/api/v1/auth/refresh',
    body => { refreshToken => $refresh1 });
my $refresh2 = $r->{json}{refreshToken};
call(refresh => 'reuse', POST => '/api/v1/auth/refresh',
    body => { refreshToken => $refresh1 });
call(logout => 'logout', POST => '/api/v1/auth/logout',
    body => { refreshToken => $refresh2 });
call(logout => 'no token', POST => '/api/v1/auth/logout', body => {});

call(getMe => 'signed-up user', GET => '/api/v1/users/me', token => $access);
call(getMe => 'demo user (no email, no phone)', GET => '/api/v1/users/me',
    token => $consumer);
call(getMe => 'no token', GET => '/api/v1/users/me');

my %bob = (email => 'bob.096@example.com', password => 'another horse 096',
    name => 'Bob', phone => '+82-2-123-4567');
is($t->post('/api/v1/auth/signup', \%bob)->{status}, 201, 'bob signs up');
my $bob = $t->post('/api/v1/auth/login',
    { email => $bob{email}, password => $bob{password} })->{json}{accessToken};
call(withdrawMe => 'withdraw', DELETE => '/api/v1/users/me', token => $bob);
call(withdrawMe => 'withdrawn already', DELETE => '/api/v1/users/me',
    token => $bob);
call(getMe => 'withdrawn', GET => '/api/v1/users/me', token => $bob);

# --- admin ---------------------------------------------------------------

call(setUserRole => 'to SELLER', PUT => '/api/v1/admin/users/5/role',
    body => { role => 'SELLER' }, token => $admin);
call(setUserRole => 'unknown role', PUT => '/api/v1/admin/users/5/role',
    body => { role => 'OWNER' }, token => $admin);
call(setUserRole => 'unknown user', PUT => '/api/v1/admin/users/999999/role',
    body => { role => 'SELLER' }, token => $admin);
call(setUserRole => 'by a consumer', PUT => '/api/v1/admin/users/5/role',
    body => { role => 'ADMIN' }, token => $consumer);

# the audit zone lets 4 requests of one user pass at once, then 429
call(listAudit => 'newest', GET => '/api/v1/admin/audit?limit=5',
    token => $manager);
call(listAudit => 'one user', GET => "/api/v1/admin/audit?userId=5",
    token => $manager);
call(listAudit => 'limit 0', GET => '/api/v1/admin/audit?limit=0',
    token => $manager);
call(listAudit => 'userId -1', GET => '/api/v1/admin/audit?userId=-1',
    token => $manager);
call(listAudit => 'over the rate limit', GET => '/api/v1/admin/audit',
    token => $manager);
call(listAudit => 'by a consumer', GET => '/api/v1/admin/audit',
    token => $consumer);

# --- coupons -------------------------------------------------------------

my %campaign = (name => 'Coupon 096', discountType => 'RATE',
    discountValue => 10, maxDiscount => 3000, minOrderAmount => 1000,
    totalQuantity => 2, perUserLimit => 1, issueStartsAt => iso_in(-60),
    issueEndsAt => iso_in(86400), validDays => 7);
$r = call(createCoupon => 'by an admin', POST => '/api/v1/admin/coupons',
    body => \%campaign, token => $admin);
my $coupon = $r->{json}{id};
$r = call(createCoupon => 'FIXED by a manager', POST => '/api/v1/admin/coupons',
    body => { %campaign, discountType => 'FIXED', discountValue => 500,
              maxDiscount => undef, issueStartsAt => iso_in(3600) },
    token => $manager);
my $later = $r->{json}{id};
call(createCoupon => 'RATE 101', POST => '/api/v1/admin/coupons',
    body => { %campaign, discountValue => 101 }, token => $admin);
call(createCoupon => 'unknown field', POST => '/api/v1/admin/coupons',
    body => { %campaign, extra => 1 }, token => $admin);
call(createCoupon => 'by a consumer', POST => '/api/v1/admin/coupons',
    body => \%campaign, token => $consumer);
call(createCoupon => 'text/plain', POST => '/api/v1/admin/coupons',
    body => '{}', content_type => 'text/plain', token => $admin);
call(listCoupons => 'issuable', GET => '/api/v1/coupons', token => $consumer);
call(listCoupons => 'no token', GET => '/api/v1/coupons');
call(getCoupon => 'one', GET => "/api/v1/coupons/$coupon", token => $consumer);
call(getCoupon => 'unknown', GET => '/api/v1/coupons/999999',
    token => $consumer);
call(getCoupon => 'bad id', GET => '/api/v1/coupons/x', token => $consumer);
$r = call(issueCoupon => 'first, with a key', POST =>
    "/api/v1/coupons/$coupon/issue", body => '{}', user => 20,
    headers => { 'Idempotency-Key' => 'k-096-issue' });
my $user_coupon = $r->{json}{id};
call(issueCoupon => 'replayed', POST => "/api/v1/coupons/$coupon/issue",
    body => '{}', user => 20, headers => { 'Idempotency-Key' => 'k-096-issue' });
call(issueCoupon => 'key reused', POST => "/api/v1/coupons/$later/issue",
    body => '{}', user => 20, headers => { 'Idempotency-Key' => 'k-096-issue' });
call(issueCoupon => 'over the limit', POST => "/api/v1/coupons/$coupon/issue",
    body => '{}', user => 20);
call(issueCoupon => 'last', POST => "/api/v1/coupons/$coupon/issue",
    body => '{}', user => 21);
call(issueCoupon => 'sold out', POST => "/api/v1/coupons/$coupon/issue",
    body => '{}', user => 22);
call(issueCoupon => 'not yet issuable', POST => "/api/v1/coupons/$later/issue",
    body => '{}', user => 22);
call(issueCoupon => 'unknown', POST => '/api/v1/coupons/999999/issue',
    body => '{}', user => 22);
call(issueCoupon => 'no such user', POST => "/api/v1/coupons/$coupon/issue",
    body => '{}', token => $stranger);
call(createOrder => "another user's coupon", POST => '/api/v1/orders',
    body => { %$item, couponId => $user_coupon }, user => 21);
call(createOrder => 'a bad couponId', POST => '/api/v1/orders',
    body => { %$item, couponId => 'x' }, user => 20);
$r = call(createOrder => 'with a coupon', POST => '/api/v1/orders',
    body => { %$item, couponId => $user_coupon }, user => 20);
is($r->{json}{discountAmount} // -1, int($r->{json}{totalAmount} / 10) > 3000
    ? 3000 : int($r->{json}{totalAmount} / 10), 'the coupon took 10%');
call(createOrder => 'the coupon held by another order', POST => '/api/v1/orders',
    body => { %$item, couponId => $user_coupon }, user => 20);
call(listMyCoupons => 'all', GET => '/api/v1/users/me/coupons', user => 20);
call(listMyCoupons => 'AVAILABLE', GET =>
    '/api/v1/users/me/coupons?status=AVAILABLE', user => 20);
call(listMyCoupons => 'bad status', GET =>
    '/api/v1/users/me/coupons?status=GONE', user => 20);
call(listMyCoupons => 'no such user', GET => '/api/v1/users/me/coupons',
    token => $stranger);

# --- sellers, stores, categories, variants (issue 11) ------------------------

$t->psql(q{UPDATE users SET role = 'SELLER' WHERE id IN (40, 43);
           UPDATE users SET role = 'MANAGER' WHERE id = 41;
           UPDATE users SET role = 'ADMIN' WHERE id = 42;});
my $seller = $t->token(40, role => 'SELLER');
my $seller2 = $t->token(43, role => 'SELLER');
my $smanager = $t->token(41, role => 'MANAGER');
my $sadmin = $t->token(42, role => 'ADMIN');
my %store = (name => '가게', bankCode => '004', accountNumber => '110-123-456789',
    accountHolder => '홍길동');
call(getStore => 'none yet', GET => '/api/v1/seller/store', token => $seller);
$r = call(createStore => 'opened', POST => '/api/v1/seller/store',
    body => \%store, token => $seller);
my $store_id = $r->{json}{id};
call(createStore => 'a second', POST => '/api/v1/seller/store',
    body => \%store, token => $seller);
call(createStore => 'a bad bank code', POST => '/api/v1/seller/store',
    body => { %store, bankCode => '1' }, token => $seller);
call(createStore => 'a consumer', POST => '/api/v1/seller/store',
    body => \%store, token => $consumer);
call(getStore => 'mine', GET => '/api/v1/seller/store', token => $seller);
call(assignStoreManager => 'assigned', PUT =>
    "/api/v1/admin/stores/$store_id/managers/41", body => '{}', token => $sadmin);
call(assignStoreManager => 'not a manager', PUT =>
    "/api/v1/admin/stores/$store_id/managers/43", body => '{}', token => $sadmin);
call(assignStoreManager => 'unknown store', PUT =>
    '/api/v1/admin/stores/999999/managers/41', body => '{}', token => $sadmin);
call(assignStoreManager => 'a seller', PUT =>
    "/api/v1/admin/stores/$store_id/managers/41", body => '{}', token => $seller);
$r = call(createCategory => 'a root', POST => '/api/v1/admin/categories',
    body => { name => '의류' }, token => $sadmin);
my $cat = $r->{json}{id};
call(createCategory => 'a child', POST => '/api/v1/admin/categories',
    body => { name => '상의', parentId => $cat }, token => $sadmin);
call(createCategory => 'twice', POST => '/api/v1/admin/categories',
    body => { name => '의류' }, token => $sadmin);
call(createCategory => 'unknown parent', POST => '/api/v1/admin/categories',
    body => { name => 'x', parentId => 999999 }, token => $sadmin);
call(createCategory => 'no name', POST => '/api/v1/admin/categories',
    body => {}, token => $sadmin);
call(renameCategory => 'renamed', PATCH => "/api/v1/admin/categories/$cat",
    body => { name => '패션' }, token => $sadmin);
call(renameCategory => 'unknown', PATCH => '/api/v1/admin/categories/999999',
    body => { name => 'x' }, token => $sadmin);
call(deleteCategory => 'not empty', DELETE => "/api/v1/admin/categories/$cat",
    token => $sadmin);
$r = call(createCategory => 'to delete', POST => '/api/v1/admin/categories',
    body => { name => 'tmp' }, token => $sadmin);
call(deleteCategory => 'deleted', DELETE =>
    "/api/v1/admin/categories/$r->{json}{id}", token => $sadmin);
call(deleteCategory => 'unknown', DELETE => '/api/v1/admin/categories/999999',
    token => $sadmin);
call(listCategories => 'the tree', GET => '/api/v1/categories',
    token => $consumer);
call(listCategories => 'no token', GET => '/api/v1/categories');
my %tee = (name => '티셔츠', price => 10000, categoryId => $cat,
    options => [ { name => '색상', values => [ '빨강', '파랑' ] } ],
    variants => [ { sku => 'R', optionValues => [ '빨강' ], stock => 1 },
                  { sku => 'B', optionValues => [ '파랑' ], stock => 5,
                    priceDelta => 500 } ]);
$r = call(createSellerProduct => 'with options', POST =>
    '/api/v1/seller/products', body => \%tee, token => $seller);
my ($tee, $red, $blue) = ($r->{json}{id}, map { $_->{id} }
    @{ $r->{json}{variants} });
call(createSellerProduct => 'a variant missing', POST =>
    '/api/v1/seller/products', body => { %tee, variants =>
    [ $tee{variants}[0] ] }, token => $seller);
call(createSellerProduct => 'no store', POST => '/api/v1/seller/products',
    body => \%tee, token => $seller2);
call(createSellerProduct => 'a consumer', POST => '/api/v1/seller/products',
    body => \%tee, token => $consumer);
$r = call(createSellerProduct => 'to delete', POST => '/api/v1/seller/products',
    body => { %tee, name => 'gone', variants => [ map { { %$_, sku => "g$_->{sku}" } }
    @{ $tee{variants} } ] }, token => $seller);
call(deleteSellerProduct => 'deleted', DELETE =>
    "/api/v1/seller/products/$r->{json}{id}", token => $seller);
call(deleteSellerProduct => 'gone', DELETE =>
    "/api/v1/seller/products/$r->{json}{id}", token => $seller);
call(getSellerProduct => 'mine', GET => "/api/v1/seller/products/$tee",
    token => $seller);
call(getSellerProduct => "another's", GET => "/api/v1/seller/products/$tee",
    token => $seller2);
call(updateSellerProduct => 'by the manager', PATCH =>
    "/api/v1/seller/products/$tee", body => { name => '반팔', version => 1 },
    token => $smanager);
call(updateSellerProduct => 'an old version', PATCH =>
    "/api/v1/seller/products/$tee", body => { name => 'x', version => 1 },
    token => $seller);
call(updateSellerProduct => 'nothing', PATCH => "/api/v1/seller/products/$tee",
    body => {}, token => $seller);
call(updateSellerProduct => "another's", PATCH =>
    "/api/v1/seller/products/$tee", body => { name => 'x' }, token => $seller2);
call(updateSellerVariant => 'restock', PATCH =>
    "/api/v1/seller/products/$tee/variants/$red", body => { stockDelta => 2,
    reason => '입고' }, token => $seller);
call(updateSellerVariant => 'below 0', PATCH =>
    "/api/v1/seller/products/$tee/variants/$red", body => { stockDelta => -9 },
    token => $seller);
call(updateSellerVariant => 'stock and stockDelta', PATCH =>
    "/api/v1/seller/products/$tee/variants/$red", body => { stock => 1,
    stockDelta => 1 }, token => $seller);
call(updateSellerVariant => 'not a variant of it', PATCH =>
    "/api/v1/seller/products/$tee/variants/1", body => { stock => 1 },
    token => $seller);
call(listStockMovements => 'the ledger', GET =>
    "/api/v1/seller/products/$tee/variants/$red/stock-movements",
    token => $seller);
call(listStockMovements => 'a bad limit', GET =>
    "/api/v1/seller/products/$tee/variants/$red/stock-movements?limit=0",
    token => $seller);
call(listSellerProducts => 'the store', GET => '/api/v1/seller/products',
    token => $seller);
call(listSellerProducts => 'a bad status', GET =>
    '/api/v1/seller/products?status=GONE', token => $seller);
call(listSellerProducts => 'another store', GET =>
    '/api/v1/seller/products?storeId=999999', token => $seller);
call(unassignStoreManager => 'not assigned', DELETE =>
    "/api/v1/admin/stores/$store_id/managers/43", token => $sadmin);
call(unassignStoreManager => 'unassigned', DELETE =>
    "/api/v1/admin/stores/$store_id/managers/41", token => $sadmin);
call(grantPoints => 'granted', POST => '/api/v1/admin/users/20/points',
    body => { amount => 500, reason => 'welcome' }, token => $sadmin);
call(grantPoints => 'too much back', POST => '/api/v1/admin/users/20/points',
    body => { amount => -501, reason => 'x' }, token => $sadmin);
call(grantPoints => 'no reason', POST => '/api/v1/admin/users/20/points',
    body => { amount => 5 }, token => $sadmin);
call(grantPoints => 'unknown user', POST =>
    '/api/v1/admin/users/999999/points', body => { amount => 5, reason => 'x' },
    token => $sadmin);
call(getMyPoints => 'mine', GET => '/api/v1/users/me/points', user => 20);
call(getMyPoints => 'a bad limit', GET => '/api/v1/users/me/points?limit=0',
    user => 20);
call(getProduct => 'with options', GET => "/api/v1/products/$tee",
    token => $consumer);
call(createOrder => "a seller's product, no address", POST => '/api/v1/orders',
    body => { items => [ { variantId => $blue, quantity => 1 } ] }, user => 20);
$r = call(createOrder => 'a variant, an address', POST => '/api/v1/orders', body =>
    { items => [ { variantId => $blue, quantity => 1 }, { productId => 3, quantity => 1 } ],
      shippingAddress => { recipient => '홍길동', phone => '010-1234-5678',
      zipCode => '06236', address1 => '테헤란로 152' } }, user => 20);
call(createOrder => 'a bad shippingAddress', POST => '/api/v1/orders', body =>
    { items => [ { variantId => $blue, quantity => 1 } ],
      shippingAddress => { recipient => '홍길동' } }, user => 20);
my ($part) = map { $_->{id} } grep { defined $_->{storeId} } @{ $r->{json}{parts} // [] };
$part //= 0;
call(getOrder => 'with parts', GET => "/api/v1/orders/$r->{json}{id}", user => 20);
call(listSellerOrders => 'the store', GET => '/api/v1/seller/orders', token => $seller);
call(listSellerOrders => 'a bad status', GET => '/api/v1/seller/orders?status=GONE',
    token => $seller);
call(listSellerOrders => 'another store', GET => '/api/v1/seller/orders?storeId=999999',
    token => $seller);
call(getSellerOrder => 'a part', GET => "/api/v1/seller/orders/$part", token => $seller);
call(getSellerOrder => "another store's", GET => "/api/v1/seller/orders/$part",
    token => $seller2);
call(getSellerOrder => 'a consumer', GET => "/api/v1/seller/orders/$part",
    token => $consumer);
call(deleteSellerProduct => 'ordered', DELETE => "/api/v1/seller/products/$tee",
    token => $seller);
call(createOrder => 'no variant named', POST => '/api/v1/orders', body =>
    { items => [ { productId => $tee, quantity => 1 } ] }, user => 20);
call(createOrder => 'an unknown variant', POST => '/api/v1/orders', body =>
    { items => [ { variantId => 99999999, quantity => 1 } ] }, user => 20);
call(updateSellerProduct => 'stopped', PATCH => "/api/v1/seller/products/$tee",
    body => { status => 'STOPPED' }, token => $seller);
call(createOrder => 'a stopped product', POST => '/api/v1/orders', body =>
    { items => [ { variantId => $blue, quantity => 1 } ] }, user => 20);

# --- the cart and the address book (issue 12) -------------------------------

call(getCart => 'empty', GET => '/api/v1/cart', user => 21);
call(putCartItem => 'a line', PUT => '/api/v1/cart/items/3',
    body => { quantity => 2 }, user => 21);
call(putCartItem => 'quantity 0', PUT => '/api/v1/cart/items/3',
    body => { quantity => 0 }, user => 21);
call(putCartItem => 'an unknown variant', PUT => '/api/v1/cart/items/99999999',
    body => { quantity => 1 }, user => 21);
call(putCartItem => 'a stopped product', PUT => "/api/v1/cart/items/$blue",
    body => { quantity => 1 }, user => 21);
call(getCart => 'a line', GET => '/api/v1/cart', user => 21);
call(removeCartItem => 'the line', DELETE => '/api/v1/cart/items/3',
    user => 21);
call(removeCartItem => 'not in the cart', DELETE => '/api/v1/cart/items/3',
    user => 21);
call(clearCart => 'emptied', DELETE => '/api/v1/cart', user => 21);
call(getCart => 'no token', GET => '/api/v1/cart');
call(clearCart => 'an unknown role', DELETE => '/api/v1/cart',
    token => $hacker);
# the restock queue of a sold-out variant (issue 12): a partial hold shows
# its deadline
$t->psql('UPDATE products SET stock = 0 WHERE id = 30');
$r = call(joinWaitlist => 'a sold-out variant', POST =>
    '/api/v1/products/30/variants/30/waitlist', body => { quantity => 2 },
    user => 23);
my $wl = $r->{json}{id} // 0;
call(joinWaitlist => 'a variant in stock', POST =>
    '/api/v1/products/31/variants/31/waitlist', body => { quantity => 1 },
    user => 23);
call(joinWaitlist => 'quantity 0', POST =>
    '/api/v1/products/30/variants/30/waitlist', body => { quantity => 0 },
    user => 23);
call(joinWaitlist => "another product's variant", POST =>
    '/api/v1/products/30/variants/31/waitlist', body => { quantity => 1 },
    user => 23);
$t->psql('UPDATE product_variants SET stock = 1 WHERE id = 30');
call(getMyWaitlist => 'one held', GET => '/api/v1/users/me/waitlist',
    user => 23);
call(getMyWaitlist => 'no token', GET => '/api/v1/users/me/waitlist');
call(leaveWaitlist => "another's", DELETE => "/api/v1/users/me/waitlist/$wl",
    user => 24);
call(leaveWaitlist => 'mine', DELETE => "/api/v1/users/me/waitlist/$wl",
    user => 23);
call(leaveWaitlist => 'left already', DELETE =>
    "/api/v1/users/me/waitlist/$wl", user => 23);
my %addr = (recipient => '홍길동', phone => '010-1234-5678',
    zipCode => '06236', address1 => '테헤란로 152', memo => '경비실');
$r = call(createAddress => 'the first', POST => '/api/v1/users/me/addresses',
    body => \%addr, user => 21);
my $addr = $r->{json}{id} // 0;
call(createAddress => 'a bad zip code', POST => '/api/v1/users/me/addresses',
    body => { %addr, zipCode => '1234' }, user => 21);
call(listAddresses => 'one', GET => '/api/v1/users/me/addresses', user => 21);
call(listAddresses => 'no token', GET => '/api/v1/users/me/addresses');
call(updateAddress => 'a new memo', PATCH =>
    "/api/v1/users/me/addresses/$addr", body => { memo => undef,
    address2 => '101호' }, user => 21);
call(updateAddress => "another's", PATCH =>
    "/api/v1/users/me/addresses/$addr", body => { memo => 'x' }, user => 22);
call(deleteAddress => "another's", DELETE =>
    "/api/v1/users/me/addresses/$addr", user => 22);
call(deleteAddress => 'mine', DELETE => "/api/v1/users/me/addresses/$addr",
    user => 21);
# images of a product (raw bytes in, the product's images out)
my $img = "/api/v1/seller/products/$tee/images";
for my $tag (1, 2) {
    $r = call(uploadProductImage => "a PNG ($tag)", POST => $img,
        body => CommerceTest::png_image(tag => $tag),
        content_type => 'image/png', token => $seller);
}
my @img = map { $_->{id} } @{ $r->{json}{images} // [] };
call(uploadProductImage => 'HTML', POST => $img, body => '<html></html>',
    content_type => 'image/png', token => $seller);
call(uploadProductImage => "another's", POST => $img,
    body => CommerceTest::png_image(tag => 3), content_type => 'image/png',
    token => $seller2);
call(listProductImages => 'two', GET => $img, token => $seller);
call(listProductImages => "another's", GET => $img, token => $seller2);
call(orderProductImages => 'reversed', PUT => "$img/order",
    body => { ids => [ reverse @img ] }, token => $seller);
call(orderProductImages => 'one missing', PUT => "$img/order",
    body => { ids => [ $img[0] ] }, token => $seller);
call(deleteProductImage => 'the first', DELETE => "$img/$img[0]",
    token => $seller);
call(deleteProductImage => 'unknown', DELETE => "$img/999999",
    token => $seller);

# --- shipping and purchase confirmation (issue 13 sections 1 and 2) ---------

{
    $t->psql(q{UPDATE users SET role = 'SELLER' WHERE id = 44;
        INSERT INTO stores (id, owner_id, name, bank_code, account_number_ct,
                            account_holder_ct, account_last4)
        VALUES (944, 44, '배송 가게', '004', 'v1.1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA',
                'v1.1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA', '1234');
        UPDATE products SET store_id = 944, stock = 100 WHERE id = 60;});
    my $ss = $t->token(44, role => 'SELLER');
    my $o = $t->post('/api/v1/orders', { items => [ { productId => 60, quantity => 1 } ],
        payment => { method => 'BALANCE' }, shippingAddress => \%addr }, user => 26);
    my ($oid, $pid) = ($o->{json}{id} // 0, $o->{json}{parts}[0]{id} // 0);
    my $so = "/api/v1/seller/orders/$pid";
    call(shipSellerOrder => 'not prepared', POST => "$so/shipment",
        body => { carrier => 'CJ', trackingNumber => '960000000001' }, token => $ss);
    call(prepareSellerOrder => 'paid', POST => "$so/prepare", body => '{}', token => $ss);
    call(prepareSellerOrder => "another store's", POST => "$so/prepare", body => '{}',
        token => $seller);
    call(prepareSellerOrder => 'again', POST => "$so/prepare", body => '{}', token => $ss);
    call(shipSellerOrder => 'a bad number', POST => "$so/shipment",
        body => { carrier => 'CJ', trackingNumber => '96-1' }, token => $ss);
    call(shipSellerOrder => 'shipped', POST => "$so/shipment",
        body => { carrier => 'CJ', trackingNumber => '960000000001' }, token => $ss);
    call(listSellerOrders => 'shipped', GET => '/api/v1/seller/orders?status=SHIPPED',
        token => $ss);
    call(getSellerOrder => 'shipped', GET => $so, token => $ss);
    CommerceTest::wait_until(sub { $t->psql("SELECT count(*) FROM shipments"
        . " WHERE tracking_number = '960000000001' AND registered_at IS NOT NULL") == 1 });
    $carrier->advance('CJ', '960000000001', 6);
    call(shippingCallback => 'a push', POST => '/api/v1/shipping/callback?carrier=CJ',
        body => { fid => '1', invoice_no => '960000000001', level => '6' });
    call(shippingCallback => 'no invoice_no', POST => '/api/v1/shipping/callback?carrier=CJ',
        body => { fid => '1' });
    CommerceTest::wait_until(sub { $t->psql("SELECT status FROM order_parts WHERE id = $pid")
        eq 'DELIVERED' });
    call(getOrder => 'a delivered part', GET => "/api/v1/orders/$oid", user => 26);
    my $cf = "/api/v1/orders/$oid/parts/$pid/confirm";
    call(confirmOrderPart => "another's", POST => $cf, body => '{}', user => 27);
    call(confirmOrderPart => 'delivered', POST => $cf, body => '{}', user => 26);
    call(confirmOrderPart => 'again', POST => $cf, body => '{}', user => 26);
}

# --- cancellations, returns and refunds (issue 13 section 3) ----------------
{
    my $ct = 'v1.1.AAAAAAAAAAAAAAAA.' . ('A' x 22);
    $t->psql(<<"SQL");
UPDATE users SET role = 'SELLER' WHERE id = 961;
INSERT INTO stores (id, owner_id, name, bank_code, account_number_ct, account_holder_ct,
                    account_last4)
VALUES (961, 961, 'Refund store', '004', '$ct', '$ct', '1234');
UPDATE products SET price = 1000, stock = 50, store_id = 961 WHERE id IN (150, 151);
SELECT cm_balance_charge(150, 100000, 100000000);
SQL
    my $rs = $t->token(961, role => 'SELLER');
    my %ship = (recipient => '홍길동', phone => '010-1234-5678', zipCode => '06236',
        address1 => '테헤란로 152');
    my $buy = sub {
        $t->post('/api/v1/orders', { items => [ map { { productId => $_, quantity => 2 } }
            @_ ], shippingAddress => \%ship, payment => { method => 'BALANCE' } },
            user => 150)->{json}{id} // 0;
    };
    my $part = sub { 0 + ($t->psql("SELECT min(id) FROM order_parts WHERE order_id = $_[0]")
        || 0) };
    my $deliver = sub {
        $t->psql("UPDATE order_parts SET status = 'DELIVERED', prepared_at = now(),"
            . " shipped_at = now(), delivered_at = now() WHERE id = $_[0]");
    };
    my $v150 = $t->psql('SELECT id FROM product_variants WHERE product_id = 150');
    my $o1 = $buy->(150, 151);
    call(cancelOrder => 'the whole order', POST => "/api/v1/orders/$o1/cancel",
        body => {}, user => 150);
    call(cancelOrder => 'cancelled already', POST => "/api/v1/orders/$o1/cancel",
        body => {}, user => 150);
    call(cancelOrder => "another's", POST => "/api/v1/orders/$o1/cancel", body => {},
        user => 151);
    call(cancelOrder => 'an empty list', POST => "/api/v1/orders/$o1/cancel",
        body => { partIds => [] }, user => 150);
    my $o2 = $buy->(150);
    my $p2 = $part->($o2);
    $deliver->($p2);
    my $rb = { reason => 'size', items => [ { variantId => 0 + $v150, quantity => 2 } ] };
    my $r = call(requestReturn => 'two units', POST =>
        "/api/v1/orders/$o2/parts/$p2/returns", body => $rb, user => 150);
    my $ret = $r->{json}{id} // 0;
    call(requestReturn => 'open already', POST => "/api/v1/orders/$o2/parts/$p2/returns",
        body => $rb, user => 150);
    call(requestReturn => 'no items', POST => "/api/v1/orders/$o2/parts/$p2/returns",
        body => { reason => 'x' }, user => 150);
    call(requestReturn => "another's order", POST =>
        "/api/v1/orders/$o2/parts/$p2/returns", body => $rb, user => 151);
    call(getSellerReturn => 'its store', GET => "/api/v1/seller/returns/$ret", token => $rs);
    call(listSellerReturns => 'the requested ones', GET =>
        '/api/v1/seller/returns?status=REQUESTED', token => $rs);
    call(listSellerReturns => 'a bad status', GET => '/api/v1/seller/returns?status=LOST',
        token => $rs);
    call(listSellerReturns => 'another store', GET => '/api/v1/seller/returns?storeId=901',
        token => $rs);
    call(getSellerReturn => 'unknown', GET => '/api/v1/seller/returns/99999999',
        token => $rs);
    call(getSellerReturn => 'a CONSUMER', GET => "/api/v1/seller/returns/$ret", user => 150);
    call(approveReturn => 'a bad carrier', POST => "/api/v1/seller/returns/$ret/approve",
        body => { carrier => 'DHL', trackingNumber => '123456789' }, token => $rs);
    call(approveReturn => 'the pickup', POST => "/api/v1/seller/returns/$ret/approve",
        body => { carrier => 'LOTTE', trackingNumber => '555666777' }, token => $rs);
    call(rejectReturn => 'approved already', POST => "/api/v1/seller/returns/$ret/reject",
        body => { reason => 'no' }, token => $rs);
    call(restockReturn => 'the parcel not back', POST =>
        "/api/v1/seller/returns/$ret/restock", body => { items => [
        { variantId => 0 + $v150, quantity => 1 } ] }, token => $rs);
    $t->psql("SELECT cm__return_received($ret)");
    call(restockReturn => 'one of two', POST => "/api/v1/seller/returns/$ret/restock",
        body => { items => [ { variantId => 0 + $v150, quantity => 1 } ] }, token => $rs);
    call(restockReturn => 'restocked already', POST =>
        "/api/v1/seller/returns/$ret/restock", body => { items => [
        { variantId => 0 + $v150, quantity => 3 } ] }, token => $rs);
    my $o3 = $buy->(151);
    my $p3 = $part->($o3);
    $deliver->($p3);
    my $v151 = $t->psql('SELECT id FROM product_variants WHERE product_id = 151');
    $r = $t->post("/api/v1/orders/$o3/parts/$p3/returns", { reason => 'x', items => [
        { variantId => 0 + $v151, quantity => 1 } ] }, user => 150);
    my $ret3 = $r->{json}{id} // 0;
    call(rejectReturn => 'used', POST => "/api/v1/seller/returns/$ret3/reject",
        body => { reason => '사용 흔적' }, token => $rs);
    call(rejectReturn => 'no reason', POST => "/api/v1/seller/returns/$ret3/reject",
        body => {}, token => $rs);
    call(getOrder => 'with its refunds and returns', GET => "/api/v1/orders/$o2",
        user => 150);
}

# --- the document itself -------------------------------------------------

$r = $t->get('/api/v1/openapi.json');
if ($r->{status} == 401) {
    # not a public route (yet): is it a route at all?
    my $with = $t->get('/api/v1/openapi.json', token => $consumer);
    if ($with->{status} == 404 && ($with->{json}{code} // '') eq 'NOT_FOUND') {
        $skip{getOpenApi} = 'the module does not serve /api/v1/openapi.json'
            . ' yet (404 NOT_FOUND); the merge of its directive enables'
            . ' this check';
        note("getOpenApi: $skip{getOpenApi}");
        $r = undef;
    }
}
if ($r) {
    $r = call(getOpenApi => 'no token', GET => '/api/v1/openapi.json');
    if ($r->{status} == 200) {
        my $file = do { open my $fh, '<:raw', $SPEC or die $!; local $/; <$fh> };
        is_deeply(eval { decode_json($r->{body}) }, decode_json($file),
            'GET /api/v1/openapi.json serves conf/openapi.json');
        # its only errors are 429 (a zone on its route) and 500
        $skip{getOpenApi} = 'served; no error answer to provoke without a'
            . ' rate-limit zone on its route';
    }
}

# --- best sellers (after the orders above: paid ones are listed) -----------

$r = call(getBestSellers => 'defaults', GET => '/api/v1/products/best-sellers',
    token => $consumer);
ok(@{ $r->{json}{items} // [] } >= 1, 'best sellers: the paid orders show');
call(getBestSellers => '30 days, 50', GET =>
    '/api/v1/products/best-sellers?days=30&limit=50', token => $admin);
call(getBestSellers => 'days 0', GET =>
    '/api/v1/products/best-sellers?days=0', token => $consumer);
call(getBestSellers => 'limit twice', GET =>
    '/api/v1/products/best-sellers?limit=1&limit=2', token => $consumer);
call(getBestSellers => 'no token', GET => '/api/v1/products/best-sellers');
call(getBestSellers => 'unknown role', GET => '/api/v1/products/best-sellers',
    token => $hacker);

# --- the dead-letter queue ---------------------------------------------------

ok(wait_until(sub { $t->psql(q{SELECT count(*) FROM outbox_delivery
    WHERE state = 'DEAD'}) > 0 }, timeout => 20), 'dead events (the platform refuses them)');
$r = call(listDeadEvents => 'newest', GET => '/api/v1/admin/events/dead?limit=3',
    token => $admin);
my $dead_id = $r->{json}{items}[0]{id};
call(listDeadEvents => 'limit 0', GET => '/api/v1/admin/events/dead?limit=0',
    token => $admin);
call(listDeadEvents => 'by a manager', GET => '/api/v1/admin/events/dead',
    token => $manager);
call(replayDeadEvent => 'one', POST => "/api/v1/admin/events/dead/$dead_id/replay",
    body => {}, token => $admin);
call(replayDeadEvent => 'unknown', POST => '/api/v1/admin/events/dead/999999/replay',
    body => {}, token => $admin);
call(replayDeadEvent => 'bad id', POST => '/api/v1/admin/events/dead/abc/replay',
    body => {}, token => $admin);
call(replayDeadEvent => 'text/plain', POST => "/api/v1/admin/events/dead/$dead_id/replay",
    body => '{}', content_type => 'text/plain', token => $admin);
call(replayDeadEvents => 'all of a type', POST => '/api/v1/admin/events/dead/replay',
    body => { type => 'order.created' }, token => $admin);
call(replayDeadEvents => 'a bad type', POST => '/api/v1/admin/events/dead/replay',
    body => { type => 'order' }, token => $admin);
call(replayDeadEvents => 'by a consumer', POST => '/api/v1/admin/events/dead/replay',
    body => {}, token => $consumer);

# --- settlements (issue 13 section 4), self-contained ----------------------
# store S of user 26 sells product 41; a part of a buyer's order confirmed
# 30 days ago is settled by the admin's run for now; no commerce_settlement
# here, so its payout stays REQUESTED (made DEAD by SQL for the replay)
{
    my $ct = 'v1.1.AAAAAAAAAAAAAAAA.' . ('A' x 22);
    $t->psql("UPDATE users SET role = 'SELLER' WHERE id = 26;
              INSERT INTO stores (owner_id, name, bank_code, account_number_ct,
                                  account_holder_ct, account_last4)
              VALUES (26, 'Store S', '004', '$ct', '$ct', '1234');
              UPDATE products SET store_id = (SELECT id FROM stores WHERE owner_id = 26),
                                  price = 20000, stock = 100 WHERE id = 41");
    my $ss = $t->token(26, role => 'SELLER');
    my $o = $t->post('/api/v1/orders', { items => [ { productId => 41, quantity => 1 } ],
        payment => { method => 'BALANCE' }, shippingAddress => \%addr }, user => 27)->{json};
    my $part = $o->{parts}[0]{id} // 0;
    $t->psql("UPDATE order_parts SET status = 'PURCHASE_CONFIRMED',
                     prepared_at = now() - interval '33 days', shipped_at = now() - interval '32 days',
                     delivered_at = now() - interval '31 days', confirmed_at = now() - interval '30 days'
               WHERE id = $part");
    my @g = gmtime(time - 5);
    my $now = sprintf('%04d-%02d-%02dT%02d:%02d:%02dZ', $g[5] + 1900, $g[4] + 1, @g[3, 2, 1, 0]);
    $r = call(runSettlement => 'the week of now', POST => '/api/v1/admin/settlements/run',
        body => { asOf => $now }, token => $admin);
    my $sid = $r->{json}{settlements}[0]{id} // 0;
    call(runSettlement => 'a date without a time', POST => '/api/v1/admin/settlements/run',
        body => { asOf => '2026-11-30' }, token => $admin);
    call(runSettlement => 'by a seller', POST => '/api/v1/admin/settlements/run',
        body => { asOf => $now }, token => $ss);
    call(listSettlements => 'one', GET => '/api/v1/seller/settlements', token => $ss);
    call(listSettlements => 'size 0', GET => '/api/v1/seller/settlements?size=0', token => $ss);
    call(listSettlements => 'a buyer', GET => '/api/v1/seller/settlements', token => $consumer);
    call(listSettlements => 'no store', GET => '/api/v1/seller/settlements',
        token => $t->token(28, role => 'SELLER'));
    call(getSettlement => 'the statement', GET => "/api/v1/seller/settlements/$sid", token => $ss);
    call(getSettlement => "another store's", GET => "/api/v1/seller/settlements/$sid",
        token => $seller);
    call(getSettlement => 'bad id', GET => '/api/v1/seller/settlements/abc', token => $ss);
    $t->psql("UPDATE payouts SET status = 'DEAD', dead_at = now(), tries = 4,
                     last_error = 'account closed' WHERE settlement_id = $sid");
    my $po = $t->psql("SELECT id FROM payouts WHERE settlement_id = $sid") || 0;
    call(listDeadPayouts => 'one', GET => '/api/v1/admin/settlements/payouts/dead',
        token => $admin);
    call(listDeadPayouts => 'size 101', GET => '/api/v1/admin/settlements/payouts/dead?size=101',
        token => $admin);
    call(listDeadPayouts => 'by a seller', GET => '/api/v1/admin/settlements/payouts/dead',
        token => $ss);
    call(replayPayout => 'the dead one', POST => "/api/v1/admin/settlements/payouts/$po/replay",
        body => {}, token => $admin);
    call(replayPayout => 'not dead', POST => "/api/v1/admin/settlements/payouts/$po/replay",
        body => {}, token => $admin);
    call(replayPayout => 'unknown', POST => '/api/v1/admin/settlements/payouts/999999/replay',
        body => {}, token => $admin);
    call(replayPayout => 'by a seller', POST => "/api/v1/admin/settlements/payouts/$po/replay",
        body => {}, token => $ss);
    call(payoutCallback => 'a hint', POST => '/api/v1/settlements/payouts/callback',
        body => { payoutId => "po-$po-1", status => 'SUCCEEDED' });
    call(payoutCallback => 'not a key', POST => '/api/v1/settlements/payouts/callback',
        body => { payoutId => 'x' });
}

# --- all the answers against the document, in one run ----------------------

my $json = JSON::PP->new->utf8->canonical->pretty;
my $samples = $t->write_file('samples.json',
    $json->encode({ samples => \@samples, skip => \%skip }));
ok(scalar(@samples) >= 60, scalar(@samples) . ' answers collected');

# ok/not ok lines of t/openapi-check, as tests; its exit code
sub check {
    my ($spec, $quiet) = @_;
    my @lines = `$PYTHON $CHECK $spec $samples 2>&1`;
    my $rc = $? >> 8;
    return ($rc, @lines) if $quiet;
    for (@lines) {
        chomp;
        if (/\Aok - (.*)\z/s) {
            pass($1);
        } elsif (/\Anot ok - (.*)\z/s) {
            fail($1);
        } elsif (/\A# (.*)\z/s) {
            diag($1);
        } else {
            diag("t/openapi-check: $_");
        }
    }
    return ($rc, @lines);
}

my ($rc, @out) = check($SPEC);
is($rc, 0, "t/openapi-check ran ($PYTHON, python3-jsonschema)");
ok(scalar(grep { /\A(?:not )?ok - getProduct 200/ } @out),
    'the checker judged the answers');

# the checker is not vacuous: a broken schema, an undeclared status
my $broken = decode_json(do { open my $fh, '<:raw', $SPEC or die $!;
    local $/; <$fh> });
$broken->{components}{schemas}{Product}{properties}{price} = { type => 'string' };
delete $broken->{paths}{'/api/v1/orders'}{post}{responses}{202};
my $broken_file = $t->write_file('broken-openapi.json', encode_json($broken));
(undef, @out) = check($broken_file, 1);
ok(scalar(grep { /\Anot ok - getProduct 200 .*price/ } @out),
    'a schema broken on purpose (Product.price a string) fails getProduct 200')
    or diag(@out);
ok(scalar(grep { /\Anot ok - listProducts 200 / } @out),
    '... and listProducts 200, which holds products');
ok(scalar(grep { /\Anot ok - createOrder 202 .*not a response/ } @out),
    'a status the document does not list (createOrder 202 removed) fails');

$sim->stop;
$dp->stop;
$t->done;
