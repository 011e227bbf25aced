#!/usr/bin/perl
# Coupons through HTTP: campaign create (MANAGER/ADMIN, every bad body 400
# and nothing changed, 403 for other roles), list with remaining, get,
# issue (201 user coupon, COUPON_NOT_FOUND / SOLD_OUT / LIMIT_REACHED /
# NOT_ISSUABLE, errors write nothing), the caller's coupons by status; and
# the exact outcomes under concurrency: 100 coupons for 1,000 distinct
# users at once (100 x 201, 900 x COUPON_SOLD_OUT, 100 rows, nobody
# twice), one user x 50 on a limit of 1 (one 201) and of 2 (two).

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
$t->write_config($t->default_config(http_extra =>
    "commerce_pg_queue_length 2048;\ncommerce_pg_pool_size 8;"));
$t->start_nginx;

my $admin = $t->token(2, role => 'ADMIN');
my $manager = $t->token(3, role => 'MANAGER');
my $ts = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

# the harness' campaign body (issuing now), shorter
sub campaign { $t->coupon_campaign(@_) }

sub create {
    my ($body, %o) = @_;
    return $t->post('/api/v1/admin/coupons', $body,
        token => $o{token} // $admin);
}

# the status and these fields of the answer (not a full match)
sub has_fields {
    my ($res, $status, $exp, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $j = $res->{json} // {};
    my @errs;
    push @errs, "status $res->{status}, expected $status"
        if $res->{status} != $status;
    for my $k (sort keys %$exp) {
        my ($e, $g) = ($exp->{$k}, $j->{$k});
        my $okay = ref $e eq 'Regexp' ? (defined $g && $g =~ $e)
            : !defined $e ? !defined $g
            : (defined $g && $g eq $e);
        push @errs, "$k: got " . ($g // 'null') . ', expected '
            . ($e // 'null') unless $okay;
    }
    ok(!@errs, $name) or diag(join("\n", @errs) . "\n$res->{raw}");
}

# --- create -------------------------------------------------------------------

my $starts = iso_in(-3600);
my $ends = iso_in(86400);
my $res = create({ name => 'Spring 10%', discountType => 'RATE',
    discountValue => 10, maxDiscount => 5000, minOrderAmount => 10000,
    totalQuantity => 3, perUserLimit => 2, issueStartsAt => $starts,
    issueEndsAt => $ends, validDays => 30 });
is_response($res, 201, { id => qr/^\d+$/, name => 'Spring 10%',
    discountType => 'RATE', discountValue => 10, maxDiscount => 5000,
    minOrderAmount => 10000, totalQuantity => 3, remaining => 3,
    perUserLimit => 2, issueStartsAt => $ts, issueEndsAt => $ts,
    validDays => 30, createdAt => $ts }, 'ADMIN creates a RATE campaign');
my $rate = $res->{json}{id};
is(substr($res->{json}{issueStartsAt}, 0, 19), substr($starts, 0, 19),
    'issueStartsAt as sent');
is($t->psql("SELECT created_by FROM coupon_campaigns WHERE id = $rate"), 2,
    'created_by is the caller');

has_fields(create(campaign(name => 'Manager', issueStartsAt =>
    '2020-01-01T09:00:00+09:00'), token => $manager), 201,
    { name => 'Manager', maxDiscount => undef, minOrderAmount => 0,
      issueStartsAt => '2020-01-01T00:00:00.000Z' },
    'MANAGER creates a FIXED campaign; offsets become UTC');

# --- bad input: 400 / 403, nothing changes --------------------------------------

my $before = $t->db_state;

for my $role (qw(CONSUMER SELLER)) {
    is_error(create(campaign(), token => $t->token(4, role => $role)), 403,
        'FORBIDDEN', "$role may not create");
}
is_error($t->post('/api/v1/admin/coupons', campaign()), 401, 'UNAUTHORIZED',
    'no token');

my $good = JSON::PP->new->canonical->encode(campaign());
my @bad = (
    [ '', 'empty body' ], [ '{', 'malformed JSON' ], [ '[]', 'array' ],
    [ 'null', 'null' ], [ '{"name":"x",}', 'trailing comma' ],
);
for my $f (qw(name discountType discountValue totalQuantity perUserLimit
              issueStartsAt issueEndsAt validDays)) {
    my $c = campaign();
    delete $c->{$f};
    push @bad, [ $c, "missing $f" ];
}
push @bad,
    map({ [ campaign(name => $_->[0]), "name $_->[1]" ] }
        [ '', 'empty' ], [ '   ', 'blank' ], [ "a\nb", 'newline' ],
        [ 'x' x 101, '101 characters' ], [ 5, 'number' ], [ undef, 'null' ]),
    map({ [ campaign(discountType => $_), "discountType $_" ] }
        'fixed', 'PERCENT', ''),
    map({ [ campaign(discountValue => $_->[0]), "discountValue $_->[1]" ] }
        [ 0, 0 ], [ -1, 'negative' ], [ 1000000000001, 'over the cap' ],
        [ '100', 'string' ], [ undef, 'null' ]),
    [ '{"name":"x","discountType":"FIXED","discountValue":1.5}', 'fraction' ],
    [ '{"discountValue":99999999999999999999999}', 'overflow' ],
    [ campaign(discountType => 'RATE', discountValue => 101), 'RATE 101' ],
    [ campaign(maxDiscount => 100), 'maxDiscount on FIXED' ],
    [ campaign(discountType => 'RATE', discountValue => 5, maxDiscount => 0),
      'maxDiscount 0' ],
    [ campaign(minOrderAmount => -1), 'negative minOrderAmount' ],
    [ campaign(totalQuantity => 0), 'totalQuantity 0' ],
    [ campaign(totalQuantity => 100000001), 'totalQuantity over the cap' ],
    [ campaign(totalQuantity => 2147483648), 'totalQuantity past int' ],
    [ campaign(perUserLimit => 0), 'perUserLimit 0' ],
    [ campaign(totalQuantity => 2, perUserLimit => 3), 'limit over total' ],
    [ campaign(validDays => 0), 'validDays 0' ],
    [ campaign(validDays => 3651), 'validDays 3651' ],
    [ campaign(issueStartsAt => '2030-01-01'), 'date without time' ],
    [ campaign(issueStartsAt => '2030-02-30T00:00:00Z'), 'February 30' ],
    [ campaign(issueStartsAt => '2030-01-01T00:00:00'), 'no zone' ],
    [ campaign(issueEndsAt => 1893456000), 'date as a number' ],
    [ campaign(issueStartsAt => iso_in(7200), issueEndsAt => iso_in(3600)),
      'ends before starts' ],
    [ campaign(issueStartsAt => iso_in(-7200), issueEndsAt => iso_in(-3600)),
      'window in the past (SQL)' ],
    [ campaign(coupon => 1), 'unknown field' ],
    [ '{"name":"a","name":"b"}', 'duplicate field' ],
    [ campaign(name => "x'; DROP TABLE coupon_campaigns; --",
               validDays => -1), 'SQL in a string' ];

for my $b (@bad) {
    my ($body, $desc) = @$b;
    is_error(create($body), 400, 'INVALID_REQUEST', "400: $desc");
}
is_error($t->post('/api/v1/admin/coupons', $good, token => $admin,
    content_type => 'text/plain'), 415, 'UNSUPPORTED_MEDIA_TYPE',
    'create: text/plain refused');

is_deeply($t->db_state, $before, 'the refused requests changed nothing');

# --- list and get ----------------------------------------------------------------

my $future = $t->create_coupon(name => 'Future', issueStartsAt => iso_in(86400),
    issueEndsAt => iso_in(2 * 86400));
$res = $t->get('/api/v1/coupons', user => 5);
is($res->{status}, 200, 'list 200');
my %listed = map { $_->{id} => $_ } @{ $res->{json}{items} // [] };
ok($listed{$rate}, 'the issuable campaign is listed');
is($listed{$rate}{remaining}, 3, 'with remaining');
ok(!$listed{$future}, 'a campaign not yet issuable is not listed');
my @ids = map { $_->{id} } @{ $res->{json}{items} };
is_deeply(\@ids, [ sort { $a <=> $b } @ids ], 'ordered by id');

has_fields($t->get("/api/v1/coupons/$future", user => 5), 200,
    { id => $future, name => 'Future', remaining => 100 },
    'get shows a campaign not yet issuable');
is_error($t->get('/api/v1/coupons/999999', user => 5), 404,
    'COUPON_NOT_FOUND', 'get unknown');
is_error($t->get('/api/v1/coupons/abc', user => 5), 400, 'INVALID_REQUEST',
    'get bad id');
is_error($t->get('/api/v1/coupons/0', user => 5), 400, 'INVALID_REQUEST',
    'get id 0');
is_error($t->get('/api/v1/coupons'), 401, 'UNAUTHORIZED', 'list without token');

# --- issue -------------------------------------------------------------------------

$res = $t->issue_coupon($rate, 10);
is_response($res, 201, { id => qr/^\d+$/, couponId => 0 + $rate,
    name => 'Spring 10%', discountType => 'RATE', discountValue => 10,
    status => 'AVAILABLE', issuedAt => $ts, expiresAt => $ts },
    'issue: 201 user coupon');
is($t->psql("SELECT expires_at - issued_at = interval '30 days'
    FROM user_coupons WHERE id = $res->{json}{id}"), 't',
    'expires validDays after issue');
has_fields($t->issue_coupon($rate, 10), 201, { couponId => $rate },
    'second of a limit of 2');

$before = $t->db_state;
is_error($t->issue_coupon($rate, 10), 409, 'COUPON_LIMIT_REACHED',
    'third: limit');
is_error($t->issue_coupon(999999, 10), 404, 'COUPON_NOT_FOUND',
    'unknown campaign');
is_error($t->issue_coupon($future, 10), 409, 'COUPON_NOT_ISSUABLE',
    'before the window');
is_error($t->issue_coupon('x', 10), 400, 'INVALID_REQUEST', 'bad id');
is_error($t->issue_coupon($rate, 999999), 404, 'USER_NOT_FOUND',
    'unknown user');
is_error($t->post("/api/v1/coupons/$rate/issue", '{}'), 401, 'UNAUTHORIZED',
    'issue without token');
is_deeply($t->db_state, $before, 'refused issues changed nothing');

has_fields($t->issue_coupon($rate, 11), 201, { couponId => $rate },
    'last coupon');
$before = $t->db_state;
is_error($t->issue_coupon($rate, 12), 409, 'COUPON_SOLD_OUT', 'sold out');
is_deeply($t->db_state, $before, 'sold out changed nothing');
has_fields($t->get("/api/v1/coupons/$rate", user => 5), 200,
    { remaining => 0 }, 'remaining 0');
$res = $t->get('/api/v1/coupons', user => 5);
ok(!grep({ $_->{id} == $rate } @{ $res->{json}{items} }),
    'a sold-out campaign is not listed');

$t->psql("UPDATE coupon_campaigns SET issue_starts_at = now() - interval '2 days',
    issue_ends_at = now() - interval '1 day' WHERE id = $future");
is_error($t->issue_coupon($future, 10), 409, 'COUPON_NOT_ISSUABLE',
    'after the window');

# --- my coupons ---------------------------------------------------------------------

$res = $t->get('/api/v1/users/me/coupons', user => 10);
is($res->{status}, 200, 'my coupons 200');
is(scalar @{ $res->{json}{items} }, 2, 'two coupons of user 10');
ok($res->{json}{items}[0]{id} > $res->{json}{items}[1]{id}, 'newest first');
is_response($t->get('/api/v1/users/me/coupons', user => 12), 200,
    { items => [] }, 'user without coupons');

my $first = $res->{json}{items}[1]{id};
$t->psql("UPDATE user_coupons SET issued_at = now() - interval '40 days',
    expires_at = now() - interval '10 days' WHERE id = $first");
my %by;
for my $s (qw(AVAILABLE USED EXPIRED)) {
    $res = $t->get("/api/v1/users/me/coupons?status=$s", user => 10);
    is($res->{status}, 200, "status=$s 200");
    $by{$s} = [ map { $_->{id} } @{ $res->{json}{items} } ];
    ok(!grep({ $_->{status} ne $s } @{ $res->{json}{items} }),
        "status=$s only");
}
is(scalar @{ $by{AVAILABLE} }, 1, 'one AVAILABLE');
is_deeply($by{EXPIRED}, [ $first ], 'the expired one is EXPIRED');
is_deeply($by{USED}, [], 'none USED');
for my $s ('available', 'ALL', '') {
    is_error($t->get("/api/v1/users/me/coupons?status=$s", user => 10), 400,
        'INVALID_REQUEST', "status=$s refused");
}
is_error($t->get('/api/v1/users/me/coupons', user => 999999), 404,
    'USER_NOT_FOUND', 'unknown user');
is_error($t->get('/api/v1/users/me/coupons'), 401, 'UNAUTHORIZED',
    'my coupons without token');

# --- 100 coupons, 1,000 distinct users at once ---------------------------------------

my $hot = $t->create_coupon(name => 'Stampede', totalQuantity => 100);
my @res = $t->concurrent([ map { { method => 'POST',
    path => "/api/v1/coupons/$hot/issue", body => '{}', user => $_ } } 1 .. 1000 ],
    timeout => 180);
is_deeply(tally(@res), { '201' => 100, '409 COUPON_SOLD_OUT' => 900 },
    '1,000 users, 100 coupons: exactly 100 x 201 and 900 x COUPON_SOLD_OUT');
is($t->psql("SELECT count(*) || '|' || count(DISTINCT user_id)
    FROM user_coupons WHERE campaign_id = $hot"), '100|100',
    '100 rows in the database, nobody twice');
my @won = sort { $a <=> $b } map { $_->{json}{id} } grep { $_->{status} == 201 } @res;
is($t->psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM user_coupons
    WHERE campaign_id = $hot"), join(',', @won),
    'the rows are the 201 answers');
is($t->psql("SELECT issued_quantity FROM coupon_campaigns WHERE id = $hot"),
    100, 'issued_quantity 100');
has_fields($t->get("/api/v1/coupons/$hot", user => 5), 200,
    { remaining => 0 }, 'remaining 0 after the stampede');

# --- one user, 50 at once, limits 1 and 2 ---------------------------------------------

for my $limit (1, 2) {
    my $c = $t->create_coupon(name => "Limit $limit", totalQuantity => 1000,
        perUserLimit => $limit);
    my @r = $t->concurrent([ map { { method => 'POST',
        path => "/api/v1/coupons/$c/issue", body => '{}', user => 77 } } 1 .. 50 ],
        timeout => 120);
    is_deeply(tally(@r), { '201' => $limit,
        '409 COUPON_LIMIT_REACHED' => 50 - $limit },
        "one user x 50 on a limit of $limit: $limit x 201");
    is($t->psql("SELECT count(*) FROM user_coupons WHERE campaign_id = $c"),
        $limit, "$limit rows");
}

is_deeply([ $t->log_problems ], [], 'no problems in the error log');

done_testing;
