#!/usr/bin/perl
# Product images over HTTP (issue 11 sections 3 and 5), against the real
# stack: uploads of raw bytes (a PNG sent as image/jpeg named .jpg is a
# PNG, an HTML file 400 INVALID_IMAGE), exactly 5 MiB accepted, 5 MiB + 1
# byte 413 IMAGE_TOO_LARGE in JSON (by Content-Length before reading, and
# chunked), a trickled upload 408 REQUEST_TIMEOUT in JSON (one timer over
# the whole body: each read comes well within client_body_timeout), the
# 11th 409 IMAGE_LIMIT, concurrent uploads never past 10; the files served
# by nginx with ETag, long cache headers and 304; reorder; delete (the
# file goes with its last row: kept while another product shows the same
# bytes); who may touch what; bad input 4xx with nothing changed; and at
# the end no orphan: every file has a row and every row its file.
# t/161-images-sql.t is the Postgres side.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use File::Path ();
use Digest::SHA qw(sha256_hex);
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time sleep);

my $MAX = 5 * 1024 * 1024;
my $TIMEOUT_MS = 1000;

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

my $DIR = $t->nginx_prefix . '/images';
mkdir $DIR or die "$DIR: $!";

# $upload: more for the upload location (another temporary directory),
# $http: more for http{} (the sweep)
sub config {
    my ($upload, $http) = @_;
    return $t->default_config(
    main_extra => "thread_pool default threads=4;\n",
    http_extra => "commerce_image_dir $DIR;\n"
        . "commerce_image_upload_timeout ${TIMEOUT_MS}ms;\n" . ($http // ''),
    server_extra => <<"EOF");
        location ~ ^/api/v1/seller/products/[0-9]+/images\$ {
            commerce_api;
            client_max_body_size 0;
            $upload
        }
        location /images/ {
            alias $DIR/;
            types { image/jpeg jpg; image/png png; image/webp webp; }
            default_type application/octet-stream;
            etag on;
            add_header Cache-Control "public, max-age=31536000, immutable";
            add_header X-Content-Type-Options nosniff;
            log_not_found off;
        }
EOF
}
# --- nginx -t: conf/nginx.conf.in's image directives, and bad values ------------

my @lines = grep { /^\s*commerce_image_/ }
    split /\n/, $t->read_file(CommerceTest->root . '/conf/nginx.conf.in');
is(scalar @lines, 6, 'conf/nginx.conf.in sets the 6 image directives');
(my $template = join("\n", @lines)) =~ s{%%RUN_DIR%%/images}{$DIR}g;
my ($rc, $out) = $t->nginx_t($t->default_config(main_extra =>
    "thread_pool default threads=4;\n", http_extra => $template));
is($rc, 0, '... and nginx -t takes them') or diag($out);
for my $bad ([ "commerce_image_dir $DIR/nowhere;", qr/commerce_image_dir.*not a directory/ ],
             [ 'commerce_image_dir images;', qr/commerce_image_dir.*absolute/ ],
             [ "commerce_image_dir $DIR; commerce_image_max_size 6m;",
               qr/commerce_image_max_size/ ],
             [ "commerce_image_dir $DIR; commerce_image_upload_timeout 0;",
               qr/commerce_image_upload_timeout/ ]) {
    ($rc, $out) = $t->nginx_t($t->default_config(main_extra =>
        "thread_pool default threads=4;\n", http_extra => $bad->[0]));
    ok($rc != 0 && $out =~ $bad->[1], "nginx -t refuses: $bad->[0]")
        or diag($out);
}

$t->write_config(config(''));
$t->start_nginx;

# two sellers with a store each: X (901) has products 1, 2 and 4, Y (902)
# product 3; a consumer (1)
my $CT = 'v1.1.AAAAAAAAAAAAAAAA.' . ('A' x 22);
$t->psql(<<"SQL");
UPDATE users SET role = 'SELLER' WHERE id IN (901, 902);
INSERT INTO stores (id, owner_id, name, bank_code, account_number_ct, account_holder_ct,
                    account_last4)
VALUES (901, 901, 'X', '004', '$CT', '$CT', '1234'),
       (902, 902, 'Y', '004', '$CT', '$CT', '5678');
UPDATE products SET store_id = 901 WHERE id IN (1, 2, 4);
UPDATE products SET store_id = 902 WHERE id = 3;
SQL
my %tok = (X => $t->token(901, role => 'SELLER'),
           Y => $t->token(902, role => 'SELLER'), C => $t->token(1));

# --- images made here ---------------------------------------------------

sub png { CommerceTest::png_image(@_) }

# a WebP (VP8L) of w x h
sub webp {
    my ($w, $h, $tag) = @_;
    my $data = "\x2f" . pack('V', ($w - 1) | (($h - 1) << 14)) . $tag;
    $data .= "\0" if length($data) % 2;
    my $body = 'WEBP' . 'VP8L' . pack('V', length $data) . $data;
    return 'RIFF' . pack('V', length $body) . $body;
}

my $HTML = "<!DOCTYPE html>\n<html><body><img src=x onerror=alert(1)></body></html>\n";

sub upload {
    my ($who, $product, $bytes, %o) = @_;
    return $t->req('POST', "/api/v1/seller/products/$product/images",
        token => $tok{$who}, body => $bytes,
        content_type => $o{content_type} // 'application/octet-stream',
        headers => $o{headers} // {}, %{ $o{req} // {} });
}
sub images {
    my ($who, $product) = @_;
    return $t->req('GET', "/api/v1/seller/products/$product/images",
        token => $tok{$who});
}
sub ids { [ map { $_->{id} } @{ images('X', $_[0])->{json}{images} } ] }
sub files { opendir my $d, $DIR or die $!; sort grep { !/^\.\.?$/ } readdir $d }
sub rows { $t->psql("SELECT product_id || ':' || position || ':' || hash || ':'"
    . " || type FROM product_images ORDER BY product_id, position") }
sub state { join "\n", rows(), files() }
sub file_of { my ($url) = @_; $url =~ s{^/images/}{}; "$DIR/$url" }

# --- roles ------------------------------------------------------------------

for my $r ([ 'POST', '/api/v1/seller/products/1/images', png() ],
           [ 'GET', '/api/v1/seller/products/1/images' ],
           [ 'PUT', '/api/v1/seller/products/1/images/order', '{"ids":[1]}' ],
           [ 'DELETE', '/api/v1/seller/products/1/images/1' ]) {
    is_error($t->req($r->[0], $r->[1], token => $tok{C},
        (defined $r->[2] ? (body => $r->[2]) : ())), 403, 'FORBIDDEN',
        "CONSUMER: $r->[0] $r->[1] is 403");
}
is_error($t->req('POST', '/api/v1/seller/products/1/images', body => png()),
    401, 'UNAUTHORIZED', 'no token: 401');

# --- an upload: the type is the bytes' ----------------------------------------

my $png = png(tag => 'first');
my $r = upload('X', 1, $png, content_type => 'image/jpeg',
    headers => { 'Content-Disposition' => 'attachment; filename="photo.jpg"' });
my $H1 = sha256_hex($png);
is_response($r, 201, { productId => 1, images => [ { id => qr/^\d+$/,
    url => "/images/$H1.png", position => 1, type => 'PNG', width => 3,
    height => 2, bytes => length $png } ] },
    'a PNG sent as image/jpeg named photo.jpg: 201, stored as PNG');
my $file1 = "$DIR/$H1.png";
ok(-f $file1, "the file is <sha256>.png");
is($t->read_file($file1), $png, '... holding the bytes sent');
is((stat $file1)[2] & 0777, 0644, '... readable by all (nginx serves it)');
is_deeply([ files() ], [ "$H1.png" ], 'one file in the directory, no temporary');

# the fields of an image: "position type width x height bytes url"
sub shown {
    my ($i) = @_;
    return "$i->{position} $i->{type} $i->{width}x$i->{height} $i->{bytes}"
        . " $i->{url}";
}
$r = upload('X', 1, webp(4, 3, 'w1'), content_type => 'image/png');
is($r->{status}, 201, 'a WebP sent as image/png: 201');
is(shown($r->{json}{images}[1] // {}), '2 WEBP 4x3 ' . length(webp(4, 3, 'w1'))
    . ' /images/' . sha256_hex(webp(4, 3, 'w1')) . '.webp', '... WEBP, .webp, last');

is_deeply($t->get('/api/v1/products/1', token => $tok{C})->{json}{images},
    [ map { $_->{url} } @{ $r->{json}{images} } ],
    "the buyer's product document lists the URLs by position");

# --- served by nginx --------------------------------------------------------

$r = $t->get("/images/$H1.png");
is($r->{status}, 200, 'GET /images/<file>: 200');
is($r->{body}, $png, '... the bytes');
is($r->{headers}{'content-type'}, 'image/png', '... image/png');
like($r->{headers}{'cache-control'} // '', qr/max-age=31536000/, '... max-age a year');
like($r->{headers}{'cache-control'} // '', qr/\bimmutable\b/, '... immutable');
my $etag = $r->{headers}{etag};
ok(defined $etag && length $etag, "... an ETag ($etag)");
$r = $t->get("/images/$H1.png", headers => { 'If-None-Match' => $etag });
is($r->{status}, 304, 'If-None-Match: 304');
like($r->{headers}{'cache-control'} // '', qr/immutable/, '... with the cache headers');

# --- not images ---------------------------------------------------------------

my $before = state();
is_error(upload('X', 1, $HTML, content_type => 'image/png'), 400,
    'INVALID_IMAGE', 'an HTML file sent as image/png: 400 INVALID_IMAGE');
is_error(upload('X', 1, substr($png, 0, 40)), 400, 'INVALID_IMAGE',
    'a PNG cut short: 400');
is_error(upload('X', 1, 'GIF89a' . ("\0" x 40)), 400, 'INVALID_IMAGE',
    'a GIF: 400');
is_error($t->req('POST', '/api/v1/seller/products/1/images', token => $tok{X}),
    400, 'INVALID_IMAGE', 'no body (Content-Length: 0): 400');
is_error(upload('X', 'abc', png(tag => 'bad id')), 400, 'INVALID_REQUEST',
    'a bad product id: 400');
is_error(upload('Y', 1, png(tag => 'foreign')), 404, 'PRODUCT_NOT_FOUND',
    "another store's product: 404 PRODUCT_NOT_FOUND");
is_error(upload('X', 999999, png(tag => 'unknown')), 404, 'PRODUCT_NOT_FOUND',
    'an unknown product: 404');
is(state(), $before, 'nothing changed: no row, no file (the refused uploads'
    . ' left none behind)');

# --- size ---------------------------------------------------------------------

my $big = png(tag => 'big', size => $MAX);
is(length $big, $MAX, 'a PNG of exactly 5 MiB (5,242,880 bytes)');
$r = upload('X', 1, $big);
is($r->{status}, 201, 'exactly 5 MiB: 201');
is(shown($r->{json}{images}[2] // {}), "3 PNG 3x2 $MAX /images/"
    . sha256_hex($big) . '.png', '... the third image, 5,242,880 bytes');
ok(-s "$DIR/" . sha256_hex($big) . '.png' == $MAX, '... stored whole');

$before = state();
my $port = $t->nginx_port;
my $head = "POST /api/v1/seller/products/1/images HTTP/1.1\r\nHost: localhost\r\n"
    . "Authorization: Bearer $tok{X}\r\nContent-Type: image/png\r\n"
    . 'Content-Length: ' . ($MAX + 1) . "\r\n\r\n";
my $t0 = time;
($r) = $t->exchange([ { bytes => $head } ], port => $port, complete => 1,
    timeout => 20);
is_error($r, 413, 'IMAGE_TOO_LARGE',
    'Content-Length 5 MiB + 1: 413 IMAGE_TOO_LARGE in JSON, before any byte'
    . ' of the body was sent');
like($r->{json}{message} // '', qr/5242880/, '... saying the limit');

($r) = $t->exchange([ { bytes => $t->build_request('POST',
    '/api/v1/seller/products/1/images', token => $tok{X},
    body => png(tag => 'chunked', size => $MAX) . 'x', content_type => 'image/png',
    chunked => 1, chunk_size => 65536) } ], port => $port, complete => 1,
    timeout => 30);
is_error($r, 413, 'IMAGE_TOO_LARGE',
    'a chunked body passing 5 MiB: 413 IMAGE_TOO_LARGE in JSON');
is(state(), $before, 'the refused bodies changed nothing');

# --- time: one timer over the whole body --------------------------------------

# The body comes 100 bytes every 200 ms: each read is far within nginx's
# client_body_timeout (60 s), the whole far past commerce_image_upload_timeout
# (1 s here).  The 408 must come, in JSON, while the client is still sending.
sub trickle {
    my ($bytes, $first) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp') or die "connect: $!";
    my $sel = IO::Select->new($s);
    syswrite($s, substr($bytes, 0, $first));
    my ($off, $in, $start) = ($first, '', time);
    while (time - $start < 15) {
        if ($sel->can_read(0.2)) {
            my $n = sysread($s, my $buf, 65536);
            last unless $n;
            $in .= $buf;
            next;
        }
        last if $in =~ /\r\n\r\n/ && CommerceTest::_complete($in);
        if ($off < length $bytes) {
            syswrite($s, substr($bytes, $off, 100)) or last;
            $off += 100;
        }
    }
    close $s;
    return (CommerceTest::parse_response($in), time - $start, $off);
}

$before = state();
my $slow = png(tag => 'slow', size => 200_000);
my ($res, $took, $sent) = trickle($t->build_request('POST',
    '/api/v1/seller/products/1/images', token => $tok{X}, body => $slow,
    content_type => 'image/png'), 1000);
is_error($res, 408, 'REQUEST_TIMEOUT', 'a trickled upload: 408 REQUEST_TIMEOUT'
    . ' in JSON');
ok($took >= $TIMEOUT_MS / 1000 && $sent < length $slow,
    sprintf('... after %.1f s, %d of %d bytes sent', $took, $sent, length $slow));
is($res->{headers}{connection} // '', 'close', '... and the connection closes');
($res) = trickle($t->build_request('POST', '/api/v1/seller/products/1/images',
    token => $tok{X}, body => $slow, content_type => 'image/png',
    chunked => 1, chunk_size => 4096), 500);
is_error($res, 408, 'REQUEST_TIMEOUT', 'a trickled chunked upload: 408');
# a client that goes away half-way (its timer must not fire on a freed
# request: the log is checked at the end)
($res) = $t->exchange([ { bytes => substr($t->build_request('POST',
    '/api/v1/seller/products/1/images', token => $tok{X}, body => $slow,
    content_type => 'image/png'), 0, 5000), close_after => 0.3 } ],
    port => $port, timeout => 5);
sleep(($TIMEOUT_MS + 500) / 1000);
is($t->get('/api/v1/seller/products/1/images', token => $tok{X})->{status},
    200, 'a client gone half-way, past the timeout: the server carries on');
is(state(), $before, 'the slow uploads changed nothing');

my $readme = $t->read_file(CommerceTest->root . '/README.md');
ok($readme =~ /\|\s*`commerce_image_upload_timeout[^|]*\|\s*10s\s*\|/,
    'README: commerce_image_upload_timeout defaults to 10s');

# --- ten, then the 11th ---------------------------------------------------------

for my $i (4 .. 10) {
    upload('X', 1, png(tag => "fill $i"))->{status} == 201
        or fail("image $i of product 1");
}
is(scalar @{ ids(1) }, 10, 'product 1 has 10 images');
$before = state();
my $eleventh = png(tag => 'eleventh');
is_error(upload('X', 1, $eleventh), 409, 'IMAGE_LIMIT', 'the 11th: 409 IMAGE_LIMIT');
is(state(), $before, '... nothing changed, its file not left behind');

# --- reorder ----------------------------------------------------------------------

my @ids = @{ ids(1) };
my @rev = reverse @ids;
$r = $t->req('PUT', '/api/v1/seller/products/1/images/order', token => $tok{X},
    body => { ids => \@rev });
is($r->{status}, 200, 'reversed: 200');
is_deeply([ map { "$_->{id}:$_->{position}" } @{ $r->{json}{images} } ],
    [ map { "$rev[$_ - 1]:$_" } 1 .. 10 ], '... positions 1..10 in that order');
is_deeply(ids(1), \@rev, 'GET: the new order');
is_deeply($t->get('/api/v1/products/1', token => $tok{C})->{json}{images},
    [ map { $_->{url} } @{ $r->{json}{images} } ],
    "the buyer's document follows");

$before = state();
my $audit = $t->psql('SELECT count(*) FROM audit_log');
for my $bad ([ { ids => [ @rev[0 .. 8] ] }, 'one missing' ],
             [ { ids => [ @rev[0 .. 8], $rev[0] ] }, 'one twice' ],
             [ { ids => [ @rev[0 .. 8], 999999 ] }, 'an unknown id' ],
             [ { ids => [ @rev, 999999 ] }, 'eleven ids' ],
             [ { ids => [] }, 'no id' ],
             [ { ids => [ map { "$_" } @rev ] }, 'ids as strings' ],
             [ { ids => [ @rev ], more => 1 }, 'another field' ],
             [ '{"ids":', 'cut JSON' ],
             [ '[1,2]', 'an array' ]) {
    is_error($t->req('PUT', '/api/v1/seller/products/1/images/order',
        token => $tok{X}, body => $bad->[0]), 400, 'INVALID_REQUEST',
        "order, $bad->[1]: 400");
}
is_error($t->req('PUT', '/api/v1/seller/products/1/images/order',
    token => $tok{Y}, body => { ids => \@rev }), 404, 'PRODUCT_NOT_FOUND',
    "order of another store's product: 404");
is_error($t->req('PUT', '/api/v1/seller/products/1/images/order',
    token => $tok{X}, body => '{"ids":[1]}', content_type => 'text/plain'),
    415, 'UNSUPPORTED_MEDIA_TYPE', 'order as text/plain: 415');
is_error(images('Y', 1), 404, 'PRODUCT_NOT_FOUND',
    "GET of another store's images: 404");
is(state(), $before, 'the bad orders changed nothing');
is($t->psql('SELECT count(*) FROM audit_log'), $audit, '... and audited nothing');

# --- delete: the file goes with its last row --------------------------------------

# product 2 shows the first image's bytes too: one file, two rows
$r = upload('X', 2, $png);
is($r->{json}{images}[0]{url}, "/images/$H1.png", 'the same bytes on product 2:'
    . ' the same file');
my ($img1) = map { $_->{id} } grep { $_->{url} eq "/images/$H1.png" }
    @{ images('X', 1)->{json}{images} };
my $img2 = $r->{json}{images}[0]{id};

$before = state();
is_error($t->req('DELETE', "/api/v1/seller/products/1/images/$img2",
    token => $tok{X}), 404, 'IMAGE_NOT_FOUND', 'an image of another product: 404'
    . ' IMAGE_NOT_FOUND');
is_error($t->req('DELETE', '/api/v1/seller/products/1/images/999999',
    token => $tok{X}), 404, 'IMAGE_NOT_FOUND', 'an unknown image: 404');
is_error($t->req('DELETE', "/api/v1/seller/products/1/images/$img1",
    token => $tok{Y}), 404, 'PRODUCT_NOT_FOUND', "another store's: 404"
    . ' PRODUCT_NOT_FOUND');
is_error($t->req('DELETE', '/api/v1/seller/products/1/images/abc',
    token => $tok{X}), 400, 'INVALID_REQUEST', 'a bad image id: 400');
is(state(), $before, 'the bad deletes changed nothing');

my $pos = (grep { $ids[$_] == $img1 } 0 .. $#ids)[0];
$r = $t->req('DELETE', "/api/v1/seller/products/1/images/$img1", token => $tok{X});
is($r->{status}, 204, 'delete from product 1: 204');
is($r->{body} // '', '', '... no body');
ok(-f $file1, '... the file stays: product 2 shows it');
is_deeply([ map { $_->{position} } @{ images('X', 1)->{json}{images} } ],
    [ 1 .. 9 ], '... the later images moved up');
is($t->get("/images/$H1.png")->{status}, 200, '... still served');

$r = $t->req('DELETE', "/api/v1/seller/products/2/images/$img2", token => $tok{X});
is($r->{status}, 204, 'delete from product 2, its last row: 204');
ok(!-e $file1, '... the file is gone');
is($t->get("/images/$H1.png")->{status}, 404, '... and not served');

# a room again on product 1: the 11th's bytes now fit
is(upload('X', 1, $eleventh)->{status}, 201, 'product 1 takes a 10th again');

# --- nginx's temporary files on another file system: a copy, then a link ----------

SKIP: {
    my $shm = "/dev/shm/commerce-160-$$";
    skip 'no /dev/shm on another file system', 3
        unless -d '/dev/shm' && (stat '/dev/shm')[0] != (stat $DIR)[0];
    # (the workers of before gone: the upload meets the new configuration)
    $t->wait_pids_gone([ $t->reload_nginx(config =>
        config("client_body_temp_path $shm;")) ]);
    my $other = png(tag => 'other fs', size => 300_000);
    $r = upload('X', 2, $other);
    is($r->{status}, 201, 'the body in a temporary file on tmpfs (link():'
        . ' EXDEV): 201');
    my $f = "$DIR/" . sha256_hex($other) . '.png';
    is($t->read_file($f), $other, '... the file holds the bytes (copied)');
    is_deeply([ grep { /^\./ } files() ], [], '... no copy left under another name');
    # back to one file system, once the workers that used tmpfs are gone
    $t->wait_pids_gone([ $t->reload_nginx(config => config('')) ]);
    File::Path::rmtree($shm);
}

# --- concurrent uploads never pass 10 --------------------------------------------

my @res = $t->concurrent([ map { { method => 'POST',
    path => '/api/v1/seller/products/4/images', token => $tok{X},
    body => png(tag => "race $_"), content_type => 'image/png' } } 1 .. 16 ],
    timeout => 60);
my %by;
$by{ $_->{status} . ($_->{json}{code} ? " $_->{json}{code}" : '') }++ for @res;
is_deeply(\%by, { 201 => 10, '409 IMAGE_LIMIT' => 6 },
    '16 concurrent uploads to one product: 10 201, 6 IMAGE_LIMIT');
is($t->psql('SELECT count(*) || \' \' || min(position) || \' \' || max(position)'
    . ' FROM product_images WHERE product_id = 4'), '10 1 10',
    'product 4: 10 rows, positions 1..10');

# --- the sweep: what interrupted steps leave behind --------------------------------

# as a crash would leave them: a file no row shows, a shown file moved aside
# by a delete that never asked (a trash name), the trash name of a file no
# row shows, an upload's copy
my $orphan = png(tag => 'orphan');
my $O = sha256_hex($orphan) . '.png';
$t->write_file("$DIR/$O", $orphan);
(my $shown = images('X', 4)->{json}{images}[0]{url}) =~ s{^/images/}{};
rename("$DIR/$shown", "$DIR/.trash-1-2-3-$shown") or die "rename: $!";
my $G = sha256_hex(png(tag => 'gone')) . '.png';
$t->write_file("$DIR/.trash-1-2-4-$G", png(tag => 'gone'));
$t->write_file("$DIR/.upload-1-2-5-$O", $orphan);
$t->reload_nginx(config => config('', "commerce_image_sweep_interval 200ms;\n"
    . "commerce_image_sweep_grace 1s;\n"));
ok(wait_until(sub { !-e "$DIR/$O" && -f "$DIR/$shown"
    && !grep { /^\./ } files() }, timeout => 20),
    'the sweep (every 200 ms, names unchanged for 1 s): the file no row shows'
    . ' removed, the shown file back, the trash names and the copy gone');
is($t->read_file("$DIR/$shown"), $t->get("/images/$shown")->{body},
    '... the shown file served again');
ok(!-e "$DIR/$G", "... the trash name's file no row shows not brought back");
ok(scalar($t->grep_log(qr/image sweep: \d+ files no row shows removed/)),
    '... and logged');

# --- no orphan --------------------------------------------------------------------

my %row = map { my ($h, $type) = split /:/; ("$h." . { JPEG => 'jpg', PNG => 'png',
    WEBP => 'webp' }->{$type} => 1) } $t->psql("SELECT DISTINCT hash || ':' || type"
    . ' FROM product_images');
my @files = files();
is_deeply([ grep { !$row{$_} } @files ], [], 'every file in the directory has a row'
    . ' (no temporary or trash name left either)');
is_deeply([ grep { !-f "$DIR/$_" } sort keys %row ], [], 'every row has its file');
ok(scalar(@files) >= 20, scalar(@files) . ' files, ' . scalar(keys %row)
    . ' distinct hashes');
is_deeply([ grep { sha256_hex($t->read_file("$DIR/$_")) . '' ne (split /\./)[0] }
    @files ], [], 'every file is named by the SHA-256 of its bytes');

$t->done;
