#!/usr/bin/perl
# A seller deletes a product (issue 11 sections 3 and 5): only one nobody
# ordered (409 PRODUCT_HAS_ORDERS otherwise: STOP it), only its store's
# (another store's 404, a CONSUMER 403); its variants, their ledger, the
# cart lines holding them and its image rows go in one transaction, audited
# and as an event; its image files go with the image sweep, except a file
# another product still shows; at the end no orphan: every file has a row
# and every row its file.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

my $DIR = $t->nginx_prefix . '/images';
mkdir $DIR or die "$DIR: $!";

my $upload_location = <<"CONF";
        location ~ ^/api/v1/seller/products/[0-9]+/images\$ {
            commerce_api;
            client_max_body_size 0;
        }
CONF
$t->write_config($t->default_config(
    main_extra => "thread_pool default threads=4;\n",
    http_extra => $t->account_keys . "commerce_image_dir $DIR;\n"
        . "commerce_image_sweep_interval 200ms;\ncommerce_image_sweep_grace 1s;\n",
    server_extra => $upload_location));
$t->start_nginx;

my $CT = 'v1.1.AAAAAAAAAAAAAAAA.' . ('A' x 22);
$t->psql(<<"SQL");
UPDATE users SET role = 'SELLER' WHERE id IN (901, 902);
INSERT INTO stores (id, owner_id, name, bank_code, account_number_ct, account_holder_ct,
                    account_last4)
VALUES (901, 901, 'X', '004', '$CT', '$CT', '1234'),
       (902, 902, 'Y', '004', '$CT', '$CT', '5678');
SQL
my %tok = (X => $t->token(901, role => 'SELLER'),
           Y => $t->token(902, role => 'SELLER'), C => $t->token(1));
sub req {
    my ($method, $path, $who, $body, %o) = @_;
    return $t->req($method, $path, token => $tok{$who},
        (defined $body ? (body => $body) : ()), %o);
}
sub upload {
    my ($product, $bytes) = @_;
    return req('POST', "/api/v1/seller/products/$product/images", 'X', $bytes,
        content_type => 'application/octet-stream');
}
sub files { opendir my $d, $DIR or die $!; sort grep { !/^\./ } readdir $d }
sub shown { sort $t->psql("SELECT DISTINCT cm__image_file(hash, type) FROM product_images") }
sub product {
    my ($name) = @_;
    my $r = req('POST', '/api/v1/seller/products', 'X', { name => $name,
        price => 1000, options => [ { name => 'colour', values => [ 'R', 'B' ] } ],
        variants => [ { sku => "$name-R", optionValues => [ 'R' ], stock => 5 },
                      { sku => "$name-B", optionValues => [ 'B' ], stock => 5 } ] });
    is($r->{status}, 201, "product $name");
    return $r->{json};
}

my $A = product('A');      # deleted with 2 images, one shared with B
my $B = product('B');      # keeps the shared image
my $O = product('O');      # ordered: not deleted
my $png1 = CommerceTest::png_image(tag => 'one');
my $png2 = CommerceTest::png_image(tag => 'two');
is(upload($A->{id}, $png1)->{status}, 201, 'A: image one');
is(upload($A->{id}, $png2)->{status}, 201, 'A: image two');
is(upload($B->{id}, $png2)->{status}, 201, 'B: image two, the same bytes');
is(scalar(my @f = files()), 2, 'two files for three rows');

# a buyer's cart holds A; an order holds O
is(req('PUT', "/api/v1/cart/items/$A->{variants}[0]{id}", 'C', { quantity => 1 })
    ->{status}, 200, "A's variant in a cart");
is($t->post('/api/v1/orders', { items => [ { variantId => $O->{variants}[0]{id},
    quantity => 1 } ], payment => { method => 'BALANCE' }, shippingAddress => {
    recipient => 'C', phone => '010-1234-5678', zipCode => '06236', address1 => 'here' } },
    user => 1)->{status}, 201, 'O is ordered (with a shipping address)');

# --- refused -------------------------------------------------------------------

my $before = $t->db_state(skip => ['audit_log']);
is_error(req('DELETE', "/api/v1/seller/products/$A->{id}", 'C'), 403, 'FORBIDDEN',
    'a CONSUMER: 403');
is_error(req('DELETE', "/api/v1/seller/products/$A->{id}", 'Y'), 404,
    'PRODUCT_NOT_FOUND', "Y on X's product: 404");
is_error(req('DELETE', '/api/v1/seller/products/999999', 'X'), 404,
    'PRODUCT_NOT_FOUND', 'an unknown product: 404');
is_error(req('DELETE', "/api/v1/seller/products/$O->{id}", 'X'), 409,
    'PRODUCT_HAS_ORDERS', 'an ordered product: 409 (STOP it instead)');
is_error(req('DELETE', '/api/v1/seller/products/abc', 'X'), 400,
    'INVALID_REQUEST', 'a bad id: 400');
is_deeply($t->db_state(skip => ['audit_log']), $before,
    'the refused deletes changed nothing');

# --- deleted ---------------------------------------------------------------

my $r = req('DELETE', "/api/v1/seller/products/$A->{id}", 'X');
is($r->{status}, 204, 'X deletes A: 204');
is($r->{body} // '', '', 'no body');
is_error(req('GET', "/api/v1/seller/products/$A->{id}", 'X'), 404,
    'PRODUCT_NOT_FOUND', 'A is gone for the seller');
is_error($t->get("/api/v1/products/$A->{id}", user => 1), 404,
    'PRODUCT_NOT_FOUND', 'and for buyers');
is($t->psql("SELECT (SELECT count(*) FROM product_variants WHERE product_id = $A->{id})"
    . " || ' ' || (SELECT count(*) FROM stock_movements WHERE product_id = $A->{id})"
    . " || ' ' || (SELECT count(*) FROM product_images WHERE product_id = $A->{id})"
    . " || ' ' || (SELECT count(*) FROM cart_items WHERE user_id = 1)"), '0 0 0 0',
    'its variants, ledger, image rows and the cart line are gone');
is($t->psql("SELECT count(*) || ' ' || string_agg(detail::jsonb->>'images', ',')"
    . " FROM audit_log WHERE event = 'PRODUCT_DELETE'"), '1 2',
    'audited once, with its 2 images');
is($t->psql("SELECT count(*) FROM outbox WHERE type = 'product.deleted'"
    . " AND aggregate_id = $A->{id}"), 1, 'the event product.deleted');
is(req('GET', "/api/v1/seller/products/$B->{id}", 'X')->{json}{images}[0],
    '/images/' . (shown())[0], 'B still shows the shared image');

# the sweep (every 200 ms, names unchanged for 1 s) removes the file no
# row shows, and keeps B's
ok(wait_until(sub { scalar(my @x = files()) == 1 }, timeout => 15),
    'the file only A showed is removed by the sweep');
is_deeply([ files() ], [ shown() ], 'no orphan: every file has a row, every row its file');

$t->check_consistency;

$t->done;
