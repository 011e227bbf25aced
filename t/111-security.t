#!/usr/bin/perl
# Identity and security (issue 4): JWT attacks against the keyring (alg
# none, HS384/HS512/RS256 substitution, tampered payload or header, a kid
# of the ring signed with another key, unknown kids, expired, not yet
# valid, missing claims), the role matrix (every route of the route table,
# every role and an unknown one), role grants taking effect at refresh and
# audited, IDOR on orders, balances and profiles, injection strings in
# every text field, brute force on login (429 RATE_LIMITED, recovery), and
# Cache-Control: no-store / nosniff on authenticated answers.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use CommerceTest::JWT qw(b64url b64url_decode jwt_decode);
use Digest::SHA qw(hmac_sha256);
use JSON::PP;

binmode Test::More->builder->$_, ':encoding(UTF-8)'
    for qw(output failure_output todo_output);

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

my $keys = $t->account_keys(jwt_kids => [1, 2], current => 2);
$t->write_config($t->default_config(
    main_extra => $t->account_main,
    http_extra => $keys,
));
$t->start_nginx;

my $TS = qr/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\z/;
my $ID = sub { CommerceTest::_is_num($_[0]) && $_[0] > 0 };
my $CJSON = JSON::PP->new->canonical;
my $now = time;

sub signup {
    my ($email, %o) = @_;
    my $r = $t->post('/api/v1/auth/signup', { email => $email,
        password => $o{password} // 'a long enough password',
        name => $o{name} // 'Some Body', phone => $o{phone} // '010-5555-0000' },
        %{ $o{req} // {} });
    return $r;
}

sub login {
    my ($email, $password, %o) = @_;
    return $t->post('/api/v1/auth/login', { email => $email,
        password => $password // 'a long enough password' }, %o);
}

sub refresh {
    my ($tok, %o) = @_;
    return $t->post('/api/v1/auth/refresh', { refreshToken => $tok }, %o);
}

sub balance { 0 + $t->psql("SELECT balance FROM users WHERE id = $_[0]") }

sub headers_ok {
    my ($r) = @_;
    return ($r->{headers}{'cache-control'} // '') eq 'no-store'
        && ($r->{headers}{'x-content-type-options'} // '') eq 'nosniff';
}

# a signed-up user with a login-issued token
my $r = signup('victor.victim@example.com');
is($r->{status}, 201, 'a user signs up');
my $vid = 0 + $r->{json}{id};
$r = login('victor.victim@example.com');
is($r->{status}, 200, '... and logs in');
my $vtoken = $r->{json}{accessToken};

# --- JWT attacks ------------------------------------------------------------

my ($k1, $k2) = ($t->jwt_key(1), $t->jwt_key(2));
my %claims = (sub => "$vid", role => 'CONSUMER', jti => 'a' x 32,
    iat => $now, exp => $now + 300);
my $hdr = sub { { alg => 'HS256', typ => 'JWT', kid => '2', @_ } };
my $without = sub { my %c = %claims; delete @c{@_}; \%c };

# a token from raw header and payload JSON, HMAC-SHA256 with $key
sub raw_jwt {
    my ($h, $p, $key) = @_;
    my $in = b64url($h) . '.' . b64url($p);
    return "$in." . b64url(hmac_sha256($in, $key));
}

my ($vh, $vp, $vs) = split /\./, $vtoken;
my $vclaims = $CJSON->decode(b64url_decode($vp));
my $tamper = sub {
    my (%set) = @_;
    return "$vh." . b64url($CJSON->encode({ %$vclaims, %set })) . ".$vs";
};
my ($kid1_h) = b64url($CJSON->encode({ alg => 'HS256', typ => 'JWT',
    kid => '1' }));

is_response($t->get('/api/v1/balance', token => $vtoken), 200,
    { userId => 0 + $vid, balance => 0 }, 'a login-issued token works');

my @attacks = (
    [ 'alg none, no signature' => $t->jwt(header => $hdr->(alg => 'none'),
        payload => \%claims, alg => 'none') ],
    [ 'alg none, signed with the current key' => $t->jwt(
        header => $hdr->(alg => 'none'), payload => \%claims, secret => $k2,
        alg => 'HS256') ],
    [ 'alg none without kid' => $t->jwt(header => { alg => 'none',
        typ => 'JWT' }, payload => \%claims, alg => 'none') ],
    [ 'alg "None"' => $t->jwt(header => $hdr->(alg => 'None'),
        payload => \%claims, alg => 'none') ],
    [ 'alg HS512 with the current key' => $t->jwt(
        header => $hdr->(alg => 'HS512'), payload => \%claims,
        secret => $k2) ],
    [ 'alg HS384 with the current key' => $t->jwt(
        header => $hdr->(alg => 'HS384'), payload => \%claims,
        secret => $k2) ],
    [ 'alg RS256, HMAC with the current key' => $t->jwt(
        header => $hdr->(alg => 'RS256'), payload => \%claims,
        secret => $k2, alg => 'HS256') ],
    [ 'alg ES256, HMAC with the current key' => $t->jwt(
        header => $hdr->(alg => 'ES256'), payload => \%claims,
        secret => $k2, alg => 'HS256') ],
    [ 'tampered payload: another sub, signature kept' => $tamper->(
        sub => '7') ],
    [ 'tampered payload: role ADMIN, signature kept' => $tamper->(
        role => 'ADMIN') ],
    [ 'tampered payload: exp later, signature kept' => $tamper->(
        exp => $now + 86400) ],
    [ 'tampered header: kid 1, payload and signature kept' =>
        "$kid1_h.$vp.$vs" ],
    [ 'signature of another token' => "$vh.$vp."
        . (split /\./, login('victor.victim@example.com')
            ->{json}{accessToken})[2] ],
    [ 'signature removed' => "$vh.$vp." ],
    [ 'kid 1 (in the ring) signed with key 2' => $t->jwt(
        header => $hdr->(kid => '1'), payload => \%claims, secret => $k2) ],
    [ 'kid 2 (current) signed with key 1' => $t->jwt(
        header => $hdr->(kid => '2'), payload => \%claims, secret => $k1) ],
    [ 'kid 2 signed with the commerce_jwt_secret' => $t->jwt(
        header => $hdr->(), payload => \%claims, secret => $t->secret) ],
    [ 'no kid, signed with the current key' => $t->jwt(
        header => { alg => 'HS256', typ => 'JWT' }, payload => \%claims,
        secret => $k2) ],
    [ 'unknown kid 3' => $t->jwt(header => $hdr->(kid => '3'),
        payload => \%claims, secret => $k2) ],
    [ 'unknown kid 99' => $t->jwt(header => $hdr->(kid => '99'),
        payload => \%claims, secret => $k2) ],
    [ 'kid 0, signed with the secret' => $t->jwt(header => $hdr->(kid => '0'),
        payload => \%claims, secret => $t->secret) ],
    [ 'kid 65536' => $t->jwt(header => $hdr->(kid => '65536'),
        payload => \%claims, secret => $k2) ],
    [ 'kid 02' => $t->jwt(header => $hdr->(kid => '02'),
        payload => \%claims, secret => $k2) ],
    [ 'kid "abc"' => $t->jwt(header => $hdr->(kid => 'abc'),
        payload => \%claims, secret => $k2) ],
    [ 'kid empty' => $t->jwt(header => $hdr->(kid => ''),
        payload => \%claims, secret => $k2) ],
    [ 'kid a number' => $t->jwt(header => $hdr->(kid => 2),
        payload => \%claims, secret => $k2) ],
    [ 'kid an array' => $t->jwt(header => $hdr->(kid => ['2']),
        payload => \%claims, secret => $k2) ],
    [ 'kid given twice' => raw_jwt('{"alg":"HS256","kid":"1","kid":"2"}',
        $CJSON->encode(\%claims), $k2) ],
    [ 'alg given twice' => raw_jwt('{"alg":"none","alg":"HS256","kid":"2"}',
        $CJSON->encode(\%claims), $k2) ],
    [ 'expired a minute ago' => $t->jwt(header => $hdr->(),
        payload => { %claims, exp => $now - 60 }, secret => $k2) ],
    [ 'exp = iat, long ago' => $t->jwt(header => $hdr->(),
        payload => { %claims, iat => $now - 1000, exp => $now - 700 },
        secret => $k2) ],
    [ 'nbf two minutes ahead' => $t->jwt(header => $hdr->(),
        payload => { %claims, nbf => $now + 120 }, secret => $k2) ],
    [ 'nbf a string' => $t->jwt(header => $hdr->(),
        payload => { %claims, nbf => "$now" }, secret => $k2) ],
    [ 'sub missing' => $t->jwt(header => $hdr->(),
        payload => $without->('sub'), secret => $k2) ],
    [ 'exp missing' => $t->jwt(header => $hdr->(),
        payload => $without->('exp'), secret => $k2) ],
    [ 'sub and exp missing' => $t->jwt(header => $hdr->(),
        payload => { role => 'CONSUMER' }, secret => $k2) ],
    [ 'exp a string' => $t->jwt(header => $hdr->(),
        payload => { %claims, exp => '' . ($now + 300) }, secret => $k2) ],
    [ 'exp a float' => raw_jwt('{"alg":"HS256","kid":"2"}',
        '{"sub":"' . $vid . '","exp":' . ($now + 300) . '.5}', $k2) ],
    [ 'sub given twice' => raw_jwt('{"alg":"HS256","kid":"2"}',
        '{"sub":"7","sub":"' . $vid . '","exp":' . ($now + 300) . '}', $k2) ],
    [ 'sub 0' => $t->jwt(header => $hdr->(), payload => { %claims,
        sub => '0' }, secret => $k2) ],
    [ 'role a number' => $t->jwt(header => $hdr->(), payload => { %claims,
        role => 5 }, secret => $k2) ],
    [ 'empty payload' => $t->jwt(header => $hdr->(), payload => {},
        secret => $k2) ],
);

my $before = $t->db_state;
for my $a (@attacks) {
    my ($what, $tok) = @$a;
    $r = $t->get('/api/v1/balance', token => $tok);
    is_error($r, 401, 'UNAUTHORIZED', "JWT attack: $what");
}
for my $a (grep { $_->[0] =~ /^(?:alg none, no|alg HS512|alg RS256|tampered
    payload|kid 1 \(in|unknown kid 3|expired|nbf two|sub missing)/x } @attacks)
{
    my ($what, $tok) = @$a;
    is_error($t->post('/api/v1/balance/charge', { amount => 1000 },
        token => $tok), 401, 'UNAUTHORIZED', "POST /balance/charge: $what");
    is_error($t->req('PUT', "/api/v1/admin/users/$vid/role",
        body => { role => 'ADMIN' }, token => $tok), 401, 'UNAUTHORIZED',
        "PUT /admin/users/{id}/role: $what");
}
is_deeply($t->db_state, $before, 'the attacks changed nothing');
is($t->get('/api/v1/balance', token => $attacks[0][1])
    ->{headers}{'www-authenticate'}, 'Bearer', '401 with WWW-Authenticate');

# what is accepted
is_response($t->get('/api/v1/balance', token => $vtoken), 200,
    { userId => 0 + $vid, balance => 0 }, 'the login-issued token still works');
is_response($t->get('/api/v1/balance', token => $t->jwt(header => $hdr->(
    kid => '1'), payload => \%claims, secret => $k1)), 200,
    { userId => 0 + $vid, balance => 0 },
    'kid 1 (in the ring, not current) signed with key 1: accepted');
is_response($t->get('/api/v1/balance', token => $t->jwt(header => $hdr->(),
    payload => { %claims, nbf => $now - 10 }, secret => $k2)), 200,
    { userId => 0 + $vid, balance => 0 }, 'nbf in the past: accepted');
is_response($t->get('/api/v1/balance', user => 7), 200,
    { userId => 7, balance => 100000 },
    'a kid-less token signed with commerce_jwt_secret: accepted');

# --- the role matrix ----------------------------------------------------------

my %ALL = map { $_ => 1 } qw(CONSUMER SELLER MANAGER ADMIN);
my @routes = (
    # method, path, body, status when allowed, allowed roles (undef: public)
    [ GET  => '/api/v1/products?page=1&size=1', undef, 200, \%ALL ],
    [ GET  => '/api/v1/products/1', undef, 200, \%ALL ],
    [ GET  => '/api/v1/balance', undef, 200, \%ALL ],
    [ POST => '/api/v1/balance/charge', { amount => 10 }, 200, \%ALL ],
    [ POST => '/api/v1/orders', { items => [ { productId => 1,
        quantity => 1 } ] }, 201, \%ALL ],
    [ GET  => '/api/v1/orders/999999999', undef, 404, \%ALL ],
    [ POST => '/api/v1/orders/999999999/payment', { method => 'BALANCE' },
        404, \%ALL ],
    [ GET  => '/api/v1/users/me', undef, 200, \%ALL ],
    [ PUT  => '/api/v1/admin/users/500/role', { role => 'SELLER' }, 200,
        { ADMIN => 1 } ],
    [ GET  => '/api/v1/admin/audit?limit=1', undef, 200,
        { MANAGER => 1, ADMIN => 1 } ],
    [ GET  => '/api/v1/admin/audit?userId=1&limit=5', undef, 200,
        { MANAGER => 1, ADMIN => 1 } ],
    [ POST => '/api/v1/auth/signup', {}, 400, undef ],
    [ POST => '/api/v1/auth/login', {}, 400, undef ],
    [ POST => '/api/v1/auth/refresh', { refreshToken => 'x' }, 401, undef ],
    [ POST => '/api/v1/auth/logout', { refreshToken => 'x' }, 204, undef ],
    [ POST => '/api/v1/payments/callback', {}, 400, undef ],
    # last: the withdrawal of the role's user
    [ DELETE => '/api/v1/users/me', undef, 204, \%ALL ],
);
# legacy USER and no role claim count as CONSUMER; HACKER is no role of ours
my %as = (CONSUMER => 'CONSUMER', SELLER => 'SELLER', MANAGER => 'MANAGER',
    ADMIN => 'ADMIN', USER => 'CONSUMER', '(no role)' => 'CONSUMER',
    HACKER => undef);
my %uid = (CONSUMER => 101, SELLER => 102, MANAGER => 103, ADMIN => 104,
    USER => 105, '(no role)' => 106, HACKER => 107);

sub role_token {
    my ($role) = @_;
    return $t->token($uid{$role}) if $role eq 'USER';
    return $t->jwt(header => { alg => 'HS256', typ => 'JWT' },
        payload => { sub => "$uid{$role}", exp => time + 600 },
        secret => $t->secret) if $role eq '(no role)';
    return $t->token($uid{$role}, role => $role);
}

my (@denied, @allowed);
for my $role (sort keys %as) {
    for my $rt (@routes) {
        my ($m, $path, $body, $status, $roles) = @$rt;
        my $ok = !defined $roles || (defined $as{$role} && $roles->{$as{$role}});
        push @{ $ok ? \@allowed : \@denied }, [ $role, @$rt ];
    }
}
is(scalar @denied, 25, '25 calls the route table denies');
is(scalar @allowed, 94, '94 calls it allows');

$before = $t->db_state;
for my $c (@denied) {
    my ($role, $m, $path, $body) = @$c;
    $r = $t->req($m, $path, body => $body, token => role_token($role));
    is_response($r, 403, { code => 'FORBIDDEN',
        message => 'not allowed for this role' }, "$role: $m $path: 403");
    ok(headers_ok($r), "... no-store, nosniff");
}
is_deeply($t->db_state, $before, 'the 403s changed nothing');

for my $c (@allowed) {
    my ($role, $m, $path, $body, $status) = @$c;
    $r = $t->req($m, $path, body => $body, token => role_token($role));
    is($r->{status}, $status, "$role: $m $path: $status")
        or diag($r->{body});
    ok(headers_ok($r), "... no-store, nosniff");
}
is(scalar $t->psql("SELECT string_agg(id || ':' || status, ',' ORDER BY id)"
    . " FROM users WHERE id BETWEEN 101 AND 107"),
    '101:WITHDRAWN,102:WITHDRAWN,103:WITHDRAWN,104:WITHDRAWN,105:WITHDRAWN,'
    . '106:WITHDRAWN,107:ACTIVE', 'the HACKER could not withdraw its user');

# public routes take no token at all, and ignore a bad one
is_error(login('nobody@example.com', 'whatever it is', auth => 'Bearer x.y.z'),
    401, 'INVALID_CREDENTIALS', 'login with a garbage Authorization: not a JWT'
    . ' 401 but the login answer');
is_error($t->post('/api/v1/auth/signup', {}), 400, 'INVALID_REQUEST',
    'signup without a token: 400, not 401');
is_error($t->get('/api/v1/users/me'), 401, 'UNAUTHORIZED',
    'GET /users/me without a token: 401');
is_error($t->get('/api/v1/admin/audit'), 401, 'UNAUTHORIZED',
    'GET /admin/audit without a token: 401');
is_error($t->get('/api/v1/balance', token => $t->token(8, role => 'admin')),
    401, 'UNAUTHORIZED', 'a lower-case role claim is refused');

# --- role grants: audited, effective at the next refresh -----------------------

is(signup('mia.manager@example.com')->{status}, 201, 'Mia signs up');
$r = login('mia.manager@example.com');
my ($mia_access, $mia_rt) = @{ $r->{json} }{qw(accessToken refreshToken)};
my $mia = 0 + (jwt_decode($mia_access))[1]{sub};
my $admin = $t->token(1, role => 'ADMIN');
is_error($t->get('/api/v1/admin/audit', token => $mia_access), 403,
    'FORBIDDEN', 'Mia (CONSUMER) may not read the audit log');
is_error($t->req('PUT', "/api/v1/admin/users/$mia/role",
    body => { role => 'ADMIN' }, token => $mia_access), 403, 'FORBIDDEN',
    'Mia may not make herself ADMIN');

$before = $t->db_state;
for my $case (
    [ 'role HACKER'    => { role => 'HACKER' } ],
    [ 'role admin'     => { role => 'admin' } ],
    [ 'role USER'      => { role => 'USER' } ],
    [ 'role empty'     => { role => '' } ],
    [ 'role a number'  => { role => 4 } ],
    [ 'role missing'   => {} ],
    [ 'role with SQL'  => { role => "ADMIN' --" } ],
    [ 'role an array'  => { role => ['ADMIN'] } ],
) {
    my ($what, $body) = @$case;
    is_error($t->req('PUT', "/api/v1/admin/users/$mia/role", body => $body,
        token => $admin), 400, 'INVALID_REQUEST', "PUT role: $what");
}
for my $id ('0', '-1', 'abc', '1.5', '99999999999999999999') {
    is_error($t->req('PUT', "/api/v1/admin/users/$id/role",
        body => { role => 'SELLER' }, token => $admin), 400,
        'INVALID_REQUEST', "PUT role of user id $id: 400");
}
is_error($t->req('PUT', '/api/v1/admin/users/77777777/role',
    body => { role => 'SELLER' }, token => $admin), 404, 'USER_NOT_FOUND',
    'PUT role of an unknown user: 404');
is_error($t->req('PUT', '/api/v1/admin/users/101/role',
    body => { role => 'SELLER' }, token => $admin), 404, 'USER_NOT_FOUND',
    'PUT role of a withdrawn user: 404');
is_error($t->req('GET', "/api/v1/admin/users/$mia/role", token => $admin),
    405, 'METHOD_NOT_ALLOWED', 'GET on the role resource: 405');
is_deeply($t->db_state, $before, 'refused role changes changed nothing');

is_response($t->req('PUT', "/api/v1/admin/users/$mia/role",
    body => { role => 'MANAGER' }, token => $admin), 200,
    { id => 0 + $mia, role => 'MANAGER' }, 'ADMIN makes Mia MANAGER');
is(scalar $t->psql("SELECT actor_id || ' ' || detail FROM audit_log WHERE"
    . " event = 'ROLE_CHANGE' AND user_id = $mia"),
    '1 {"from":"CONSUMER","to":"MANAGER"}', 'the grant is audited');
is_error($t->get('/api/v1/admin/audit', token => $mia_access), 403,
    'FORBIDDEN', 'her old access token still says CONSUMER');
$r = refresh($mia_rt);
is($r->{status}, 200, 'Mia refreshes');
($mia_access, $mia_rt) = @{ $r->{json} }{qw(accessToken refreshToken)};
is((jwt_decode($mia_access))[1]{role}, 'MANAGER',
    'the new access token says MANAGER');
is($t->get('/api/v1/users/me', token => $mia_access)->{json}{role},
    'MANAGER', 'GET /users/me says MANAGER');

$r = $t->get("/api/v1/admin/audit?userId=$mia&limit=50", token => $mia_access);
is_response($r, 200, { items => [
    map { { id => $ID, event => $_, userId => 0 + $mia,
        actorId => ($_ eq 'ROLE_CHANGE' ? 1 : 0 + $mia), client => '127.0.0.1',
        detail => ($_ eq 'SIGNUP' ? undef : $_ eq 'ROLE_CHANGE'
            ? { from => 'CONSUMER', to => 'MANAGER' }
            : { familyId => $ID }), createdAt => $TS } }
    qw(REFRESH ROLE_CHANGE LOGIN_OK SIGNUP) ] },
    'a MANAGER reads her audit trail, newest first');
my @ids = map { $_->{id} } @{ $r->{json}{items} };
is_deeply(\@ids, [ sort { $b <=> $a } @ids ], '... ids descending');
is(scalar @{ $t->get('/api/v1/admin/audit?limit=3', token => $mia_access)
    ->{json}{items} }, 3, 'limit=3: three items');
for my $q ('limit=0', 'limit=201', 'limit=abc', 'userId=0', 'userId=abc',
    'userId=1%20OR%201=1', "userId=1'--")
{
    is_error($t->get("/api/v1/admin/audit?$q", token => $mia_access), 400,
        'INVALID_REQUEST', "GET /admin/audit?$q: 400");
}
is_error($t->req('PUT', "/api/v1/admin/users/$vid/role",
    body => { role => 'MANAGER' }, token => $mia_access), 403, 'FORBIDDEN',
    'a MANAGER may not grant roles');

# a real admin account
is($t->req('PUT', "/api/v1/admin/users/$mia/role", body => { role => 'ADMIN' },
    token => $admin)->{status}, 200, 'Mia made ADMIN');
$mia_access = refresh($mia_rt)->{json}{accessToken};
is_response($t->req('PUT', "/api/v1/admin/users/$vid/role",
    body => { role => 'SELLER' }, token => $mia_access), 200,
    { id => 0 + $vid, role => 'SELLER' }, 'a login-issued ADMIN token grants');
is(scalar $t->psql("SELECT actor_id FROM audit_log WHERE event ="
    . " 'ROLE_CHANGE' AND user_id = $vid"), $mia, '... audited with her id');
is($t->req('PUT', "/api/v1/admin/users/$vid/role", body => {
    role => 'CONSUMER' }, token => $mia_access)->{status}, 200,
    'and revokes');
is(scalar $t->psql("SELECT role FROM users WHERE id = $vid"), 'CONSUMER',
    '... back to CONSUMER');

# --- IDOR: orders, balances, profiles ------------------------------------------

my ($alice_email, $bob_email) = ('alice.idor@example.com', 'bob.idor@example.com');
signup($alice_email, name => 'Alice Idor');
signup($bob_email, name => 'Bob Idor');
my $ta = login($alice_email)->{json}{accessToken};
my $tb = login($bob_email)->{json}{accessToken};
my $aid = 0 + (jwt_decode($ta))[1]{sub};
my $bid = 0 + (jwt_decode($tb))[1]{sub};
is($t->post('/api/v1/balance/charge', { amount => 20000 }, token => $ta)
    ->{status}, 200, 'Alice charges 20000');
$r = $t->post('/api/v1/orders', { items => [ { productId => 1,
    quantity => 1 } ] }, token => $ta);
is($r->{status}, 201, 'Alice orders (pending payment)');
my $aorder = $r->{json}{id};

$before = $t->db_state;
is_error($t->get("/api/v1/orders/$aorder", token => $tb), 404,
    'ORDER_NOT_FOUND', "Bob cannot see Alice's order");
is_error($t->post("/api/v1/orders/$aorder/payment", { method => 'BALANCE' },
    token => $tb), 404, 'ORDER_NOT_FOUND', "Bob cannot pay Alice's order");
is_error($t->get("/api/v1/balance/$aid", token => $tb), 404, 'NOT_FOUND',
    "GET /balance/{alice}: no such route");
is_error($t->get("/api/v1/users/$aid", token => $tb), 404, 'NOT_FOUND',
    "GET /users/{alice}: no such route");
is_response($t->get("/api/v1/balance?userId=$aid", token => $tb), 200,
    { userId => 0 + $bid, balance => 0 }, 'GET /balance?userId=alice: Bob\'s own');
is_response($t->get("/api/v1/balance?userId=$aid&user_id=$aid&sub=$aid",
    token => $tb, headers => { 'X-User-Id' => $aid }), 200,
    { userId => 0 + $bid, balance => 0 }, '... whatever the query or headers say');
$r = $t->get("/api/v1/users/me?userId=$aid&id=$aid", token => $tb);
is_response($r, 200, { id => 0 + $bid, email => $bob_email, name => 'Bob Idor',
    phone => '010-5555-0000', role => 'CONSUMER', createdAt => $TS },
    "GET /users/me?userId=alice: Bob's own profile");
is_deeply($t->db_state, $before, 'the IDOR attempts changed nothing');

$r = $t->post('/api/v1/balance/charge', { amount => 10, userId => 0 + $aid },
    token => $tb);
ok($r->{status} == 200 ? $r->{json}{userId} == $bid : $r->{status} == 400,
    'a charge naming Alice in the body is Bob\'s (or refused)');
is(balance($aid), 20000, "Alice's balance untouched");
is($t->get("/api/v1/orders/$aorder", token => $ta)->{json}{status},
    'PENDING_PAYMENT', 'Alice sees her order, still unpaid');
$r = $t->get("/api/v1/orders/$aorder", token => $t->token($bid,
    role => 'ADMIN'));
is_error($r, 404, 'ORDER_NOT_FOUND',
    'an ADMIN token does not see another buyer\'s order either');

# --- injection strings in every text field -------------------------------------

my @inject = ("' OR 1=1 --", '<script>alert(1)</script>',
    '"; DROP TABLE users; --', "Robert'); DROP TABLE users;--",
    '名前 Ünïcødé 🙂 عربى', "\\' \\\" \\\\ %00 %s %n \${jndi:ldap://x}",
    "\x{202E}evil\x{202D}", "1; SELECT pg_sleep(5)", "admin'/*", '{"$gt":""}');
my $users_before = 0 + $t->psql('SELECT count(*) FROM users');
my $created = 0;

$before = $t->db_state(skip => ['audit_log']);
my $audit_other = sub { 0 + $t->psql("SELECT count(*) FROM audit_log WHERE"
    . " event <> 'LOGIN_FAILED'") };
my $audit_before = $audit_other->();
for my $i (0 .. $#inject) {
    my $s = $inject[$i];
    # as the email and as the phone: refused
    is_error(signup($s), 400, 'INVALID_REQUEST', "signup email = $s: 400");
    is_error(signup("inj$i\@example.com", phone => $s), 400,
        'INVALID_REQUEST', "signup phone = $s: 400");
    # as the login email, or as the password of a real account: 401
    is_error(login($s, 'a long enough password'), 401,
        'INVALID_CREDENTIALS', "login email = $s: 401");
    is_error(login('victor.victim@example.com', $s), 401,
        'INVALID_CREDENTIALS', "login password = $s: 401");
    is_error(refresh($s), 401, 'INVALID_REFRESH_TOKEN', "refresh = $s: 401");
    is($t->post('/api/v1/auth/logout', { refreshToken => $s })->{status}, 204,
        "logout = $s: 204");
}
is_deeply($t->db_state(skip => ['audit_log']), $before,
    'refused injections changed nothing');
is($audit_other->(), $audit_before, '... but LOGIN_FAILED audit rows');

# as the name, and in the password: stored as given, round trip exact
for my $i (0 .. $#inject) {
    my $s = $inject[$i];
    my $email = "inject$i\@example.com";
    my $pw = "pw $s padding";
    $r = signup($email, name => $s, password => $pw);
    is_response($r, 201, { id => $ID, email => $email, name => $s,
        phone => '010-5555-0000', role => 'CONSUMER', createdAt => $TS },
        "signup name = $s: 201, echoed exactly");
    $created++;
    $r = login($email, $pw);
    is($r->{status}, 200, "... the password with it logs in");
    $r = $t->get('/api/v1/users/me', token => $r->{json}{accessToken});
    is($r->{json}{name}, $s, '... GET /users/me gives the name back exactly');
    like($r->{headers}{'content-type'}, qr{^application/json}, '... as JSON');
}

# an email with characters SQL and HTML care about is still an email
for my $email ("o'neil--1=1\@example.com", '<script>@example.com',
    '"quoted"@example.com', 'x;DROP.TABLE@example.com')
{
    $r = signup($email);
    is_response($r, 201, { id => $ID, email => $email, name => 'Some Body',
        phone => '010-5555-0000', role => 'CONSUMER', createdAt => $TS },
        "signup email = $email: stored");
    $created++;
    is(login($email)->{status}, 200, '... and logs in');
    is_error(signup(uc $email), 409, 'EMAIL_TAKEN', '... and is taken');
}
is_error(login("' OR '1'='1", "' OR '1'='1"), 401, 'INVALID_CREDENTIALS',
    'the classic login bypass: 401');
is_error(signup('nul@example.com', name => "a\x{0}b"), 400,
    'INVALID_REQUEST', 'a NUL in the name: 400');

is(0 + $t->psql('SELECT count(*) FROM users'), $users_before + $created,
    'the users table is whole: exactly the new accounts added');
is(scalar $t->psql(q{SELECT count(*) FROM information_schema.tables WHERE
    table_schema = 'public' AND table_name IN ('users', 'audit_log',
    'refresh_tokens', 'orders', 'products')}), 5, 'every table still there');
is(scalar $t->psql("SELECT count(*) FROM users WHERE role <> 'CONSUMER'"
    . " AND id > 1000000"), 1, 'no injection granted a role (Mia is ADMIN)');
$t->check_consistency;

# --- brute force: 429 on login, recovery after the window ----------------------

my $limits = <<'EOF';
commerce_zone 1m;
commerce_limit_zone login_addr key=addr rate=12r/m burst=2 size=1m;
commerce_limit_zone signup_addr key=addr rate=1r/m burst=1 size=1m;
commerce_limit_zone refresh_addr key=addr rate=1r/m burst=1 size=1m;
commerce_limit login login_addr;
commerce_limit signup signup_addr;
commerce_limit refresh refresh_addr;
EOF
$t->write_config($t->default_config(main_extra => $t->account_main,
    http_extra => $keys . $limits), name => 'limited');
$t->start_nginx(name => 'limited');

my $victim = 'victor.victim@example.com';
my $fails = sub { 0 + $t->psql("SELECT count(*) FROM audit_log WHERE event"
    . " = 'LOGIN_FAILED'") };
my $f0 = $fails->();
my @st = map { login($victim, "guess number $_", name => 'limited')->{status} }
    1 .. 3;
is_deeply(\@st, [ 401, 401, 401 ], 'three guesses (burst 2) are answered');
$r = login($victim, 'guess number 4', name => 'limited');
is_response($r, 429, { code => 'RATE_LIMITED',
    message => 'too many requests, retry later' },
    'the fourth guess: 429 RATE_LIMITED');
like($r->{headers}{'retry-after'} // '', qr/\A[1-5]\z/, '... with Retry-After');
like($r->{headers}{'ratelimit-limit'} // '', qr/\A\d+\z/,
    '... and RateLimit-Limit');
is($r->{headers}{'ratelimit-remaining'}, '0', '... RateLimit-Remaining: 0');
ok(headers_ok($r), '... no-store, nosniff');
$r = login($victim, undef, name => 'limited');
is($r->{status}, 429, 'even the right password is refused meanwhile');
is($fails->() - $f0, 3, 'refused attempts never reached the password check');
my $wait = $r->{headers}{'retry-after'} // 1;
sleep $wait + 0.1;
$r = login($victim, undef, name => 'limited');
is_response($r, 200, { accessToken => qr/\./, refreshToken => qr/\S/,
    tokenType => 'Bearer', expiresIn => 300, refreshExpiresIn => 2592000 },
    "after Retry-After ($wait s) the right password logs in");
@st = map { login($victim, "guess number 1$_", name => 'limited')->{status} }
    1 .. 3;
ok((grep { $_ == 429 } @st), 'the limit holds again after the recovery: '
    . "@st");
is(login($victim, undef)->{status}, 200,
    'the unlimited instance (its own zone) is not affected');

my $nusers = 0 + $t->psql('SELECT count(*) FROM users');
@st = map { signup("limited$_\@example.com", req => { name => 'limited' })
    ->{status} } 1 .. 3;
is_deeply(\@st, [ 201, 201, 429 ], 'signup: burst 1, then 429');
is(0 + $t->psql('SELECT count(*) FROM users'), $nusers + 2,
    '... the refused signup created nothing');
@st = map { refresh('C' x 43, name => 'limited')->{status} } 1 .. 3;
is_deeply(\@st, [ 401, 401, 429 ], 'refresh: burst 1, then 429');

# per account: guesses at one account, whatever the address, spelling or
# case of its email, while other accounts log in as usual
$t->write_config($t->default_config(main_extra => $t->account_main,
    http_extra => $keys . <<'EOF'), name => 'per_account');
commerce_zone 1m;
commerce_limit_zone login_account key=account rate=1r/m burst=2 size=1m;
commerce_limit login login_account;
EOF
$t->start_nginx(name => 'per_account');
$f0 = $fails->();
@st = map { login($_, 'a wrong guess!!', name => 'per_account')->{status} }
    ($victim, uc $victim, " $victim ");
is_deeply(\@st, [ 401, 401, 401 ],
    'per account: three guesses (burst 2), spelt three ways');
$r = login('Victor.Victim@Example.COM', undef, name => 'per_account');
is_error($r, 429, 'RATE_LIMITED', 'the fourth, with the right password: 429');
like($r->{headers}{'retry-after'} // '', qr/\A\d+\z/, '... with Retry-After');
is($fails->() - $f0, 3, 'the refused attempt never reached the password check');
is(signup('other.account@example.com', req => { name => 'per_account' })
    ->{status}, 201, 'another account signs up');
is(login('other.account@example.com', undef, name => 'per_account')
    ->{status}, 200, 'and logs in from the same address');
is(login('nobody.here@example.com', undef, name => 'per_account')->{status},
    401, 'an unknown account gets its own budget');
my ($arc, $aout) = $t->nginx_t($t->default_config(main_extra =>
    $t->account_main, http_extra => $keys . <<'EOF'));
commerce_zone 1m;
commerce_limit_zone by_account key=account rate=1r/m size=1m;
commerce_limit charge by_account;
EOF
isnt($arc, 0, 'a key=account zone on another route: nginx -t fails');
like($aout, qr/\[emerg\] "commerce_limit": zone "by_account" is keyed by account, which only route login has/,
    '... saying why');

# --- headers, CORS ----------------------------------------------------------------

for my $c ([ 'GET /balance' => $t->get('/api/v1/balance', token => $vtoken) ],
    [ 'GET /users/me' => $t->get('/api/v1/users/me', token => $vtoken) ],
    [ 'POST /orders' => $t->post('/api/v1/orders', { items => [ {
        productId => 2, quantity => 1 } ] }, token => $ta) ],
    [ '401' => $t->get('/api/v1/users/me', token => 'x') ],
    [ '403' => $t->get('/api/v1/admin/audit', token => $vtoken) ],
    [ '404' => $t->get('/api/v1/orders/424242', token => $vtoken) ],
    [ 'login' => login($victim) ])
{
    my ($what, $res) = @$c;
    is($res->{headers}{'cache-control'}, 'no-store',
        "$what: Cache-Control: no-store");
    is($res->{headers}{'x-content-type-options'}, 'nosniff',
        "$what: X-Content-Type-Options: nosniff");
}
$r = $t->get('/api/v1/balance', token => $vtoken,
    headers => { Origin => 'https://evil.example' });
ok(!grep({ /^access-control-/ } keys %{ $r->{headers} }),
    'CORS is off by default: no Access-Control-* header for another origin');

$t->done;
