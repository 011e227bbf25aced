#!/usr/bin/perl
# Product images, the Postgres side (sql/018_images.sql,
# sql/functions/16_images.sql): rows added last and at most 10 (the 11th
# IMAGE_LIMIT, nothing changed), another store's product PRODUCT_NOT_FOUND
# for add, list, order and delete, a reorder that must name every image
# once, a delete that closes the gap in positions, and the "unlink" answer:
# a file shown by two products (the same bytes) is named for removal only
# when its last row goes.  The product document lists the URLs in order.
# No nginx here: Postgres and sql/ only (t/160-images.t is the HTTP side).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use CommerceTest;

my $t = CommerceTest->new(no_module => 1);
$t->start_pg;
$t->load_demo;

sub dbq { $t->psql(@_) }
sub qj { $t->psql_json(@_) }

sub sql_error {
    my ($sql) = @_;
    my ($rc, $out) = $t->run([ 'psql', '-X', '-A', '-t', '-q',
        '-v', 'ON_ERROR_STOP=1', '-f', '-', $t->pg_conninfo ],
        stdin => "\\set VERBOSITY verbose\n$sql");
    return () if $rc == 0;
    my ($state, $msg) = $out =~ /ERROR:\s+([0-9A-Z]{5}):\s+(.*)/;
    return ($state // "?($out)", $msg // '');
}

sub is_sql_error {
    my ($sql, $state, $re, $name) = @_;
    my ($s, $m) = sql_error($sql);
    ok(defined $s && $s eq $state && $m =~ $re, $name)
        or diag('got: ' . ($s // 'success') . " / $m; want $state / $re");
}

# two sellers (users 901, 902), a store each, a product each
my $CT = 'v1.1.AAAAAAAAAAAAAAAA.' . ('A' x 22);
dbq(<<"SQL");
UPDATE users SET role = 'SELLER' WHERE id IN (901, 902);
INSERT INTO stores (id, owner_id, name, bank_code, account_number_ct, account_holder_ct,
                    account_last4)
VALUES (901, 901, 'X', '004', '$CT', '$CT', '1234'),
       (902, 902, 'Y', '004', '$CT', '$CT', '5678');
UPDATE products SET store_id = 901 WHERE id IN (1, 2);
UPDATE products SET store_id = 902 WHERE id = 3;
SQL

my $n = 0;
sub hash { sprintf('%064x', $_[0]) }
sub add_sql {
    my ($actor, $product, $h, %o) = @_;
    my $type = $o{type} // 'PNG';
    return "SELECT cm_seller_image_add($actor, $product, '$h', '$type', 3, 2, 100, 't')";
}
sub state_ { scalar dbq('SELECT count(*) || \':\' || coalesce(md5(string_agg(i::text, \',\''
    . ' ORDER BY id)), \'\') FROM product_images i') }

my $doc = qj(add_sql(901, 1, hash(1)));
is_deeply([ map { [ $_->{position}, $_->{url}, $_->{type}, $_->{width}, $_->{height},
                    $_->{bytes} ] } @{ $doc->{images} } ],
    [ [ 1, '/images/' . hash(1) . '.png', 'PNG', 3, 2, 100 ] ], 'the first image: position 1');
qj(add_sql(901, 1, hash($_), type => $_ % 3 ? 'JPEG' : 'WEBP')) for 2 .. 10;
is(dbq('SELECT count(*) FROM product_images WHERE product_id = 1'), 10, '10 images');

my $before = state_();
is_sql_error(add_sql(901, 1, hash(11)), 'CM001', qr/IMAGE_LIMIT/, 'the 11th: IMAGE_LIMIT');
is_sql_error(add_sql(902, 1, hash(12)), 'CM001', qr/PRODUCT_NOT_FOUND/,
    "another store's product: PRODUCT_NOT_FOUND");
is_sql_error(add_sql(901, 2, 'NOTAHASH'), 'CM001', qr/INVALID_REQUEST/, 'a bad hash: INVALID');
is_sql_error('SELECT cm_seller_images(902, 1)', 'CM001', qr/PRODUCT_NOT_FOUND/,
    "another store's list: PRODUCT_NOT_FOUND");
is(state_(), $before, 'the refusals changed nothing');

my @ids = dbq('SELECT id FROM product_images WHERE product_id = 1 ORDER BY position');
my $pdoc = qj('SELECT cm__product_doc(1, false)::json');
is_deeply($pdoc->{images}, [ map { '/images/' . hash($_) . ($_ == 1 ? '.png'
    : $_ % 3 ? '.jpg' : '.webp') } 1 .. 10 ], 'the product document lists the URLs in order');

# reorder: reversed
my @rev = reverse @ids;
$doc = qj("SELECT cm_seller_image_order(901, 1, ARRAY[" . join(',', @rev) . "]::bigint[], 't')");
is_deeply([ map { $_->{id} } @{ $doc->{images} } ], [ map { 0 + $_ } @rev ], 'reversed');
is_deeply([ map { $_->{position} } @{ $doc->{images} } ], [ 1 .. 10 ], '... positions 1..10');
$before = state_();
for my $bad ([ @rev[0 .. 8] ], [ @rev, $rev[0] ], [ @rev[0 .. 8], $rev[0] ],
             [ @rev[0 .. 8], 999999 ]) {
    is_sql_error("SELECT cm_seller_image_order(901, 1, ARRAY[" . join(',', @$bad)
        . "]::bigint[], 't')", 'CM001', qr/INVALID_REQUEST/, 'a bad order: INVALID_REQUEST');
}
is_sql_error("SELECT cm_seller_image_order(902, 1, ARRAY[" . join(',', @rev)
    . "]::bigint[], 't')", 'CM001', qr/PRODUCT_NOT_FOUND/, "another store's order: 404");
is(state_(), $before, 'the bad orders changed nothing');

# the same bytes on product 2 (hash(5)), then deletes
qj(add_sql(901, 2, hash(5), type => 'JPEG'));
my ($i5) = dbq("SELECT id FROM product_images WHERE product_id = 1 AND hash = '" . hash(5) . "'");
my $pos5 = dbq("SELECT position FROM product_images WHERE id = $i5");
is_sql_error("SELECT cm_seller_image_delete(902, 1, $i5, 't')", 'CM001', qr/PRODUCT_NOT_FOUND/,
    "another store's delete: 404");
is_sql_error("SELECT cm_seller_image_delete(901, 2, $i5, 't')", 'CM001', qr/IMAGE_NOT_FOUND/,
    "an image of another product: IMAGE_NOT_FOUND");
$doc = qj("SELECT cm_seller_image_delete(901, 1, $i5, 't')");
is_deeply($doc->{unlink}, [], 'a file product 2 still shows is not unlinked');
is_deeply([ map { $_->{position} } @{ $doc->{images} } ], [ 1 .. 9 ], 'the gap closed');
ok(!grep({ $_->{id} == $i5 } @{ $doc->{images} }), '... without it');
my ($j5) = dbq("SELECT id FROM product_images WHERE product_id = 2");
$doc = qj("SELECT cm_seller_image_delete(901, 2, $j5, 't')");
is_deeply($doc->{unlink}, [ hash(5) . '.jpg' ], 'its last row: the file is unlinked');
is_deeply($doc->{images}, [], 'product 2 has none');
is(dbq("SELECT cm_image_file_used('" . hash(5) . "')"), 'f', 'cm_image_file_used: no row left');
is(dbq("SELECT cm_image_file_used('" . hash(2) . "')"), 't', '... and a hash still shown');
is(dbq("SELECT cm_image_files_unused(ARRAY['" . hash(5) . "', '" . hash(2) . "', '"
    . hash(99) . "'])"), '{' . join(',', sort(hash(5), hash(99))) . '}',
    'cm_image_files_unused: the hashes no row shows, sorted');
is(dbq("SELECT cm_image_files_unused('{}')"), '{}', '... none asked, none');
my ($i1) = dbq("SELECT id FROM product_images WHERE hash = '" . hash(1) . "'");
$doc = qj("SELECT cm_seller_image_delete(901, 1, $i1, 't')");
is_deeply($doc->{unlink}, [ hash(1) . '.png' ], 'the first one: unlinked too');
is(dbq("SELECT string_agg(event, ',' ORDER BY id) FROM audit_log WHERE event LIKE 'PRODUCT_IMAGE%'"
    . " AND event <> 'PRODUCT_IMAGE_ADD'"),
    'PRODUCT_IMAGE_ORDER,PRODUCT_IMAGE_DELETE,PRODUCT_IMAGE_DELETE,PRODUCT_IMAGE_DELETE',
    'the changes are audited');
is(dbq("SELECT count(*) FROM audit_log WHERE event = 'PRODUCT_IMAGE_ADD'"), 11,
    '... every add');

$t->check_consistency if $t->can('check_consistency');
done_testing;
