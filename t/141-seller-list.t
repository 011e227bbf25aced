#!/usr/bin/perl
# A store's product list for its sellers, and an ADMIN taking a manager off
# a store (issue 11 section 1): GET /seller/products lists the caller's
# store only (STOPPED ones too, newest first, paged, by status), a manager
# names the store it acts for, another store is 404; DELETE
# /admin/stores/{id}/managers/{userId} is audited, and the manager loses
# the store's products at once; bad parameters 400 changing nothing.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
$t->write_config($t->default_config(
    main_extra => $t->account_main,
    http_extra => $t->account_keys . "commerce_zone 1m;"));
$t->start_nginx;

my ($X, $Y, $MX, $ADM, $BUYER) = (10, 11, 12, 13, 1);
$t->psql("UPDATE users SET role = 'SELLER' WHERE id IN ($X, $Y);
          UPDATE users SET role = 'MANAGER' WHERE id = $MX;
          UPDATE users SET role = 'ADMIN' WHERE id = $ADM;");
my %tok = (
    X => $t->token($X, role => 'SELLER'), Y => $t->token($Y, role => 'SELLER'),
    MX => $t->token($MX, role => 'MANAGER'), ADM => $t->token($ADM, role => 'ADMIN'),
    C => $t->token($BUYER),
);
sub req {
    my ($method, $path, $who, $body) = @_;
    return $t->req($method, $path, token => $tok{$who},
        (defined $body ? (body => $body) : ()));
}
sub state { $t->db_state(skip => ['audit_log']) }
sub ids { [ map { $_->{id} } @{ $_[0]{json}{items} || [] } ] }

my %store = (bankCode => '004', accountNumber => '123-456-789012',
    accountHolder => '김판매');
my $SX = req('POST', '/api/v1/seller/store', 'X', { %store, name => 'X' })
    ->{json}{id};
my $SY = req('POST', '/api/v1/seller/store', 'Y', { %store, name => 'Y' })
    ->{json}{id};
ok($SX && $SY, 'two stores');

is_error(req('GET', '/api/v1/seller/products', 'C'), 403, 'FORBIDDEN',
    'a CONSUMER: 403');
is_error(req('DELETE', "/api/v1/admin/stores/$SX/managers/$MX", 'C'), 403,
    'FORBIDDEN', 'a CONSUMER unassigns nobody');
is_error(req('DELETE', "/api/v1/admin/stores/$SX/managers/$MX", 'MX'), 403,
    'FORBIDDEN', 'a MANAGER unassigns nobody');

is_response(req('GET', '/api/v1/seller/products', 'X'), 200,
    { storeId => 0 + $SX, items => [], page => 0, size => 20, total => 0 },
    'an empty store: no items');

# X: 5 products, one STOPPED, one SOLD_OUT; Y: 1
my @px;
for my $i (1 .. 5) {
    my $r = req('POST', '/api/v1/seller/products', 'X', { name => "X상품$i",
        price => 1000 * $i, variants => [ { stock => $i == 4 ? 0 : 3 } ] });
    is($r->{status}, 201, "X's product $i");
    push @px, $r->{json}{id};
}
my $v = req('PATCH', "/api/v1/seller/products/$px[2]", 'X',
    { status => 'STOPPED' });
is($v->{json}{status}, 'STOPPED', 'the third is STOPPED');
my $py = req('POST', '/api/v1/seller/products', 'Y',
    { name => 'Y상품', price => 500, variants => [ { stock => 1 } ] })->{json}{id};

my $r = req('GET', '/api/v1/seller/products', 'X');
is($r->{status}, 200, 'X lists its products');
is_deeply(ids($r), [ reverse @px ], "X's 5, newest first, STOPPED included,"
    . " not Y's");
is($r->{json}{total}, 5, 'total 5');
is($r->{json}{items}[0]{version}, 1, "the seller's document (with version)");
is_deeply([ map { $_->{status} } @{ $r->{json}{items} } ],
    [ 'ON_SALE', 'SOLD_OUT', 'STOPPED', 'ON_SALE', 'ON_SALE' ], 'statuses');
is_deeply(ids(req('GET', '/api/v1/seller/products?status=STOPPED', 'X')),
    [ $px[2] ], 'status=STOPPED');
is_deeply(ids(req('GET', '/api/v1/seller/products?status=SOLD_OUT', 'X')),
    [ $px[3] ], 'status=SOLD_OUT');
$r = req('GET', '/api/v1/seller/products?status=ON_SALE&page=1&size=2', 'X');
is_deeply(ids($r), [ $px[0] ], 'ON_SALE, page 1 of size 2');
is_deeply([ @{ $r->{json} }{qw(page size total)} ], [ 1, 2, 3 ],
    'page, size, total of the filter');
is_deeply(ids(req('GET', '/api/v1/seller/products', 'Y')), [ $py ],
    "Y sees only its own");
is_deeply(ids(req('GET', "/api/v1/seller/products?storeId=$SX", 'X')),
    [ reverse @px ], 'storeId of its own store');
is_error(req('GET', "/api/v1/seller/products?storeId=$SY", 'X'), 404,
    'STORE_NOT_FOUND', "X naming Y's store: 404");
is_error(req('GET', '/api/v1/seller/products?storeId=999999', 'X'), 404,
    'STORE_NOT_FOUND', 'an unknown store: 404');
is_error(req('GET', '/api/v1/seller/products', 'MX'), 404, 'STORE_NOT_FOUND',
    'a manager of no store: 404');

my $before = state();
for my $q ('status=DELETED', 'status=', 'page=-1', 'page=x', 'page=10001',
           'size=0', 'size=101', 'size=1.5', 'storeId=0', 'storeId=-1',
           "storeId=1%27%3B%20DROP%20TABLE%20products%3B--",
           'size=99999999999999999999') {
    is_error(req('GET', "/api/v1/seller/products?$q", 'X'), 400,
        'INVALID_REQUEST', "?$q: 400");
}
is_deeply(state(), $before, 'the bad lists changed nothing');

# --- a manager: assigned, acts, unassigned ----------------------------------

is(req('PUT', "/api/v1/admin/stores/$SX/managers/$MX", 'ADM', {})->{status},
    200, 'MX assigned to X');
is_deeply(ids(req('GET', '/api/v1/seller/products', 'MX')), [ reverse @px ],
    "MX lists X's products");
is(req('PATCH', "/api/v1/seller/products/$px[0]", 'MX', { name => '매니저' })
    ->{status}, 200, "MX edits X's product");
is_deeply(req('GET', '/api/v1/seller/store', 'X')->{json}{managers},
    [ 0 + $MX ], "X's store shows its manager")
    or diag explain req('GET', '/api/v1/seller/store', 'X')->{json};

$before = state();
is_error(req('DELETE', "/api/v1/admin/stores/$SY/managers/$MX", 'ADM'), 404,
    'MANAGER_NOT_ASSIGNED', 'MX is no manager of Y: 404');
is_error(req('DELETE', "/api/v1/admin/stores/999999/managers/$MX", 'ADM'),
    404, 'STORE_NOT_FOUND', 'an unknown store: 404');
is_error(req('DELETE', "/api/v1/admin/stores/$SX/managers/999999", 'ADM'),
    404, 'MANAGER_NOT_ASSIGNED', 'an unknown user: 404');
is_deeply(state(), $before, 'the refused unassignments changed nothing');

$r = req('DELETE', "/api/v1/admin/stores/$SX/managers/$MX", 'ADM');
is($r->{status}, 204, 'ADMIN takes MX off X: 204');
is($r->{body}, '', 'no body');
is(req('DELETE', "/api/v1/admin/stores/$SX/managers/$MX", 'ADM')->{status},
    404, 'twice: 404');
is($t->psql("SELECT count(*) FROM store_managers WHERE user_id = $MX"), 0,
    'the assignment is gone');
is($t->psql("SELECT string_agg(actor_id || ':' || user_id || ':' || detail,"
    . " ',') FROM audit_log WHERE event = 'MANAGER_UNASSIGN'"),
    "$ADM:$MX:{\"storeId\":$SX}", 'audited once: who, whom, which store');
is_error(req('PATCH', "/api/v1/seller/products/$px[0]", 'MX', { name => 'x' }),
    404, 'PRODUCT_NOT_FOUND', "MX no longer edits X's product");
is_error(req('GET', '/api/v1/seller/products', 'MX'), 404, 'STORE_NOT_FOUND',
    'nor lists it');
is_deeply(req('GET', '/api/v1/seller/store', 'X')->{json}{managers}, [],
    "X's store has no manager");

$t->check_consistency;

$t->done;
