#!/usr/bin/perl
# Accounts (issue 4): signup and its validation (every field missing, of
# the wrong type, too long, badly formed; the password policy; an email
# taken case-insensitively), login (unknown email and wrong password give
# the same 401 in about the same time), refresh-token rotation and reuse
# detection (also across 10 concurrent refreshes), logout, the profile,
# withdrawal (PII erased, login refused, orders kept), PII and keys absent
# from every table and log, and key files readable by others refused.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use CommerceTest::JWT qw(jwt_decode);
use Digest::SHA qw(sha256_hex);
use Time::HiRes qw(time);

binmode Test::More->builder->$_, ':encoding(UTF-8)'
    for qw(output failure_output todo_output);

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

my $keys = $t->account_keys;
$t->write_config($t->default_config(
    main_extra => $t->account_main,
    http_extra => $keys . "commerce_access_ttl 5m;\ncommerce_refresh_ttl 30d;\n",
    log_level  => 'info',
));
$t->start_nginx;

my $TS = qr/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\z/;
my $NEWID = sub { CommerceTest::_is_num($_[0]) && $_[0] > 1000000 };
my $JWT = qr/\A[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}\z/;
my $REFRESH = qr/\A[A-Za-z0-9_-]{43}\z/;

# every plaintext that must never reach a table or a log
my @secrets;

sub signup {
    my ($body, %o) = @_;
    return $t->post('/api/v1/auth/signup', $body, %o);
}

sub login {
    my ($email, $password) = @_;
    return $t->post('/api/v1/auth/login',
        { email => $email, password => $password });
}

sub refresh { $t->post('/api/v1/auth/refresh', { refreshToken => $_[0] }) }
sub logout { $t->post('/api/v1/auth/logout', { refreshToken => $_[0] }) }
sub me { $t->get('/api/v1/users/me', token => $_[0]) }

sub tokens_shape {
    return { accessToken => $JWT, refreshToken => $REFRESH,
        tokenType => 'Bearer', expiresIn => 300,
        refreshExpiresIn => 2592000 };
}

sub audit_count {
    my ($event, $user) = @_;
    return 0 + $t->psql("SELECT count(*) FROM audit_log WHERE event = '$event'"
        . (defined $user ? " AND user_id = $user" : ''));
}

sub no_store {
    my ($r, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($r->{headers}{'cache-control'}, 'no-store',
        "$what: Cache-Control: no-store");
    is($r->{headers}{'x-content-type-options'}, 'nosniff',
        "$what: X-Content-Type-Options: nosniff");
}

my %alice = (email => 'Alice.Liddell@Wonderland.example',
    password => 'down the rabbit hole 42', name => 'Alice Pleasance Liddell',
    phone => '+44-20-7946-0958');
push @secrets, @alice{qw(email password name phone)};

# --- signup --------------------------------------------------------------

my $r = signup(\%alice);
is_response($r, 201, { id => $NEWID, email => $alice{email},
    name => $alice{name}, phone => $alice{phone}, role => 'CONSUMER',
    createdAt => $TS }, 'signup: 201 with the profile');
no_store($r, 'signup');
my $alice_id = $r->{json}{id};
my $alice_num = 0 + $alice_id;
my $alice_profile = $r->{json};
is(audit_count('SIGNUP', $alice_id), 1, 'signup audited');

my $row = $t->psql("SELECT name, role, status, password_hash FROM users"
    . " WHERE id = $alice_id");
my ($pname, $prole, $pstatus, $phash) = split /\|/, $row, 4;
is($pname, '', 'users.name is empty for a signed-up user');
is("$prole|$pstatus", 'CONSUMER|ACTIVE', 'role CONSUMER, status ACTIVE');
like($phash, qr/\A\$pbkdf2-sha256\$i=100000\$/,
    'password hash: PBKDF2-SHA256, its iterations stored with it');
like(scalar $t->psql("SELECT email_ct || ' ' || phone_ct || ' ' || name_ct"
    . " FROM users WHERE id = $alice_id"),
    qr/\Av1\.\d+\.\S+ v1\.\d+\.\S+ v1\.\d+\.\S+\z/,
    'email, phone and name stored as cm_pii ciphertexts');
like(scalar $t->psql("SELECT email_idx FROM users WHERE id = $alice_id"),
    qr/\A[0-9a-f]{64}\z/, 'email blind index: 64 hex');

# --- signup validation: every field --------------------------------------

my %ok = (email => 'valid.user@example.com', password => 'a fine password',
    name => 'Valid User', phone => '010-1234-5678');

my @invalid = (
    # email
    [ 'email missing'          => { %ok, email => undef } ],
    [ 'email a number'         => { %ok, email => 12345 } ],
    [ 'email null'             => { %ok, email => \'null' } ],
    [ 'email true'             => { %ok, email => \'true' } ],
    [ 'email an array'         => { %ok, email => ['a@b.co'] } ],
    [ 'email an object'        => { %ok, email => { a => 'a@b.co' } } ],
    [ 'email empty'            => { %ok, email => '' } ],
    [ 'email 2 chars'          => { %ok, email => 'a@' } ],
    [ 'email without @'        => { %ok, email => 'user.example.com' } ],
    [ 'email with two @'       => { %ok, email => 'a@b@example.com' } ],
    [ 'email with a space'     => { %ok, email => 'a b@example.com' } ],
    [ 'email with a tab'       => { %ok, email => "a\t\@example.com" } ],
    [ 'email nothing before @' => { %ok, email => '@example.com' } ],
    [ 'email domain no dot'    => { %ok, email => 'a@example' } ],
    [ 'email domain dot last'  => { %ok, email => 'a@example.' } ],
    [ 'email domain dot first' => { %ok, email => 'a@.com' } ],
    [ 'email not ASCII'        => { %ok, email => 'jürgen@example.com' } ],
    [ 'email 255 bytes'        => { %ok, email => ('a' x 243) . '@example.com' } ],
    [ 'email 5000 bytes'       => { %ok, email => ('a' x 4988) . '@example.com' } ],
    # password (type and size; the policy is below)
    [ 'password missing'       => { %ok, password => undef } ],
    [ 'password a number'      => { %ok, password => 12345678901 } ],
    [ 'password null'          => { %ok, password => \'null' } ],
    [ 'password an array'      => { %ok, password => ['a fine password'] } ],
    # name
    [ 'name missing'           => { %ok, name => undef } ],
    [ 'name a number'          => { %ok, name => 5 } ],
    [ 'name null'              => { %ok, name => \'null' } ],
    [ 'name an object'         => { %ok, name => {} } ],
    [ 'name empty'             => { %ok, name => '' } ],
    [ 'name 101 characters'    => { %ok, name => 'x' x 101 } ],
    [ 'name 101 characters of 2 bytes' => { %ok, name => 'é' x 101 } ],
    [ 'name 500 bytes'         => { %ok, name => 'x' x 500 } ],
    [ 'name with a newline'    => { %ok, name => "Valid\nUser" } ],
    [ 'name with DEL'          => { %ok, name => "Valid\x7fUser" } ],
    [ 'name with NUL'          => { %ok, name => "Valid\x{0}User" } ],
    # phone
    [ 'phone missing'          => { %ok, phone => undef } ],
    [ 'phone a number'         => { %ok, phone => 1012345678 } ],
    [ 'phone null'             => { %ok, phone => \'null' } ],
    [ 'phone empty'            => { %ok, phone => '' } ],
    [ 'phone 6 digits'         => { %ok, phone => '123-456' } ],
    [ 'phone 21 characters'    => { %ok, phone => '+' . ('1' x 20) } ],
    [ 'phone with letters'     => { %ok, phone => '010-CALL-NOW' } ],
    [ 'phone + not first'      => { %ok, phone => '82+1012345678' } ],
    [ 'phone two +'            => { %ok, phone => '++821012345678' } ],
    [ 'phone with a space'     => { %ok, phone => '010 1234 5678' } ],
    [ 'phone with parentheses' => { %ok, phone => '(010)12345678' } ],
);

sub body_of {
    my ($h) = @_;
    return join ',', map {
        my $v = $h->{$_};
        !defined $v ? () : "\"$_\":" . (ref $v eq 'SCALAR' ? $$v
            : $CommerceTest::JSON->encode($v));
    } sort keys %$h;
}

my $before = $t->db_state;
for my $case (@invalid) {
    my ($what, $h) = @$case;
    is_error(signup('{' . body_of($h) . '}'), 400, 'INVALID_REQUEST',
        "signup: $what");
}

my @malformed = (
    [ 'empty body'         => '' ],
    [ 'not JSON'           => 'email=a@b.co' ],
    [ 'truncated JSON'     => '{"email":"a@b.co"' ],
    [ 'an array'           => '[' . $CommerceTest::JSON->encode(\%ok) . ']' ],
    [ 'a string'           => '"a@b.co"' ],
    [ 'null'               => 'null' ],
    [ 'email given twice'  => '{' . body_of(\%ok) . ',"email":"b@example.com"}' ],
    [ 'invalid UTF-8 in name' => '{' . body_of({ %ok, name => undef })
        . ",\"name\":\"\xff\xfe\"}" ],
);
for my $case (@malformed) {
    my ($what, $body) = @$case;
    is_error(signup($body), 400, 'INVALID_REQUEST', "signup: $what");
}
is_error(signup(\%ok, content_type => 'text/plain'), 415,
    'UNSUPPORTED_MEDIA_TYPE', 'signup: not application/json');

# the password policy: 400 PASSWORD_POLICY
my @policy = (
    [ '9 characters'             => 'abcdefghi' ],
    [ '9 characters of 3 bytes'  => '日本語日本語日本語' ],
    [ '257 characters'           => ('ab' x 128) . 'c' ],
    [ '300 characters of 3 bytes' => '日本' x 150 ],
    [ 'equal to the email'       => $ok{email} ],
    [ 'the email in other case'  => uc $ok{email} ],
    [ 'one character repeated'   => 'a' x 20 ],
);
for my $case (@policy) {
    my ($what, $pw) = @$case;
    is_error(signup({ %ok, password => $pw }), 400, 'PASSWORD_POLICY',
        "password policy: $what");
}
$r = signup({ %ok, password => 'ab' x 1000 });
ok($r->{status} == 400 && ($r->{json}{code} // '') =~
    /\A(?:PASSWORD_POLICY|INVALID_REQUEST)\z/,
    'password policy: 2000 bytes: 400') or diag($r->{body});
is_deeply($t->db_state, $before, 'rejected signups changed nothing');

# the limits themselves are accepted
my @edge = (
    [ 'email of 254 bytes'       => { email => ('e' x 242) . '@example.com' } ],
    [ 'email of 3 characters'    => { email => 'a@b.c' } ],
    [ 'password of 10 characters' => { email => 'pw10@example.com',
        password => 'abcdefghij' } ],
    [ 'password of 256 characters' => { email => 'pw256@example.com',
        password => 'ab' x 128 } ],
    [ 'password of 10 characters of 3 bytes' => { email => 'pwjp@example.com',
        password => '日本語日本語日本語日' } ],
    [ 'name of 1 character'      => { email => 'n1@example.com', name => 'Q' } ],
    [ 'name of 100 characters'   => { email => 'n100@example.com',
        name => 'n' x 100 } ],
    [ 'name of 100 emoji (400 bytes)' => { email => 'emoji@example.com',
        name => "\x{1F642}" x 100 } ],
    [ 'phone of 7 digits'        => { email => 'ph7@example.com',
        phone => '1234567' } ],
    [ 'phone of 20 characters'   => { email => 'ph20@example.com',
        phone => '+' . ('9' x 19) } ],
    [ 'unknown fields ignored'   => { email => 'extra@example.com',
        role => 'ADMIN', id => 1, isAdmin => \'true' } ],
);
for my $case (@edge) {
    my ($what, $h) = @$case;
    my %b = (%ok, %$h);
    my $body = '{' . body_of(\%b) . '}';
    $r = signup($body);
    is_response($r, 201, { id => $NEWID, email => $b{email},
        name => $b{name}, phone => $b{phone}, role => 'CONSUMER',
        createdAt => $TS }, "signup: $what");
}
is(scalar $t->psql("SELECT role FROM users WHERE id = "
    . "$r->{json}{id}"), 'CONSUMER', 'a role in the signup body is ignored');

# --- email taken, case-insensitively --------------------------------------

$before = $t->db_state;
for my $email (lc $alice{email}, uc $alice{email}, $alice{email}) {
    is_error(signup({ %alice, email => $email, phone => '1234567' }), 409,
        'EMAIL_TAKEN', "signup: $email is taken");
}
is_deeply($t->db_state, $before, 'EMAIL_TAKEN changed nothing');

# five signups of one new email at once: one account
my @res = $t->concurrent([ map { [ 'POST', '/api/v1/auth/signup',
    { %ok, email => ($_ % 2 ? 'Race@Example.com' : 'race@example.COM') } ] }
    1 .. 5 ]);
is_deeply([ sort map { $_->{status} } @res ], [ 201, 409, 409, 409, 409 ],
    'five concurrent signups of one email: one 201, four 409');
is(scalar $t->psql(q{SELECT count(*) FROM audit_log WHERE event = 'SIGNUP'
    AND user_id IN (SELECT id FROM users WHERE email_idx IS NOT NULL)}),
    scalar $t->psql('SELECT count(*) FROM users WHERE email_idx IS NOT NULL'),
    'one SIGNUP audit row per account');

# --- login -----------------------------------------------------------------

$r = login($alice{email}, $alice{password});
is_response($r, 200, tokens_shape(), 'login: 200 with the token pair');
no_store($r, 'login');
my ($h, $p) = jwt_decode($r->{json}{accessToken});
is_deeply($h, { alg => 'HS256', typ => 'JWT',
    kid => '' . $t->jwt_current_kid }, 'access token header: HS256, kid');
cmp_json($p, { sub => "$alice_id", role => 'CONSUMER',
    jti => qr/\A[0-9a-f]{32}\z/, iat => sub { abs($_[0] - time) < 10 },
    exp => $p->{iat} + 300 }, 'access token claims: sub, role, jti, iat, exp');
my $access = $r->{json}{accessToken};
my $rt1 = $r->{json}{refreshToken};
push @secrets, $rt1, $access;

is_response(me($access), 200, $alice_profile,
    'GET /users/me: the profile, decrypted');
no_store(me($access), 'GET /users/me');
is_response($t->get('/api/v1/balance', token => $access), 200,
    { userId => $alice_num, balance => 0 }, 'the access token works');
is(audit_count('LOGIN_OK', $alice_id), 1, 'login audited');

is(scalar $t->psql("SELECT count(*) FROM refresh_tokens WHERE token_hash = '"
    . sha256_hex($rt1) . "' AND status = 'ACTIVE' AND user_id = $alice_id"
    . " AND expires_at BETWEEN now() + interval '30 days' - interval '1 minute'"
    . " AND now() + interval '30 days'"),
    1, 'refresh token stored as its SHA-256, ACTIVE, 30 days');

is_response(login(lc $alice{email}, $alice{password}), 200, tokens_shape(),
    'login: the email is case-insensitive');
my $jti2 = (jwt_decode(login($alice{email}, $alice{password})
    ->{json}{accessToken}))[1]{jti};
isnt($jti2, $p->{jti}, 'every access token has its own jti');

for my $case (
    [ 'email missing'    => { password => $alice{password} } ],
    [ 'password missing' => { email => $alice{email} } ],
    [ 'email a number'   => { email => 5, password => $alice{password} } ],
    [ 'password null'    => { email => $alice{email}, password => \'null' } ],
    [ 'email too long'   => { email => 'a' x 300, password => 'x' } ],
) {
    my ($what, $b) = @$case;
    is_error($t->post('/api/v1/auth/login', '{' . body_of($b) . '}'), 400,
        'INVALID_REQUEST', "login: $what");
}

# --- unknown email and wrong password: the same answer, the same time -------

my $fail_before = audit_count('LOGIN_FAILED');
my (@t_unknown, @t_wrong, %bodies);
for my $i (1 .. 5) {
    my $u = login("nobody$i\@wonderland.example", $alice{password});
    my $w = login($alice{email}, "not the password $i");
    push @t_unknown, $u->{elapsed};
    push @t_wrong, $w->{elapsed};
    $bodies{"$_->{status} $_->{body}"}++ for $u, $w;
}
is_deeply([ keys %bodies ], [ '401 {"code":"INVALID_CREDENTIALS",'
    . '"message":"wrong email or password"}' ],
    'unknown email and wrong password: the identical 401 body');
is_error(login('', ''), 401, 'INVALID_CREDENTIALS', 'empty email: 401');
is_error(login($alice{email}, ''), 401, 'INVALID_CREDENTIALS',
    'empty password: 401');

sub median { my @s = sort { $a <=> $b } @_; $s[$#s / 2] }
my ($mu, $mw) = (median(@t_unknown), median(@t_wrong));
diag(sprintf 'login median: unknown email %.1f ms, wrong password %.1f ms',
    $mu * 1000, $mw * 1000);
ok($mu < 3 * $mw && $mw < 3 * $mu,
    'unknown email and wrong password take about the same time (x3)')
    or diag("unknown: @t_unknown\nwrong: @t_wrong");
is(audit_count('LOGIN_FAILED') - $fail_before, 12,
    'every failed login audited');
is(scalar $t->psql(q{SELECT count(*) FROM audit_log WHERE event =
    'LOGIN_FAILED' AND detail IN ('{"reason":"unknown_email"}',
    '{"reason":"bad_password"}')}), 12, '... with the reason');

# --- refresh: rotation, reuse revokes the family ---------------------------

$r = refresh($rt1);
is_response($r, 200, tokens_shape(), 'refresh: 200 with a new pair');
no_store($r, 'refresh');
my $rt2 = $r->{json}{refreshToken};
isnt($rt2, $rt1, 'a new refresh token');
my $access2 = $r->{json}{accessToken};
isnt($access2, $access, 'a new access token');
is_response(me($access2), 200, $alice_profile, 'the new access token works');

my $family = $t->psql("SELECT family_id FROM refresh_tokens WHERE token_hash"
    . " = '" . sha256_hex($rt1) . "'");
is(scalar $t->psql("SELECT string_agg(status, ',' ORDER BY id) FROM"
    . " refresh_tokens WHERE family_id = $family"), 'ROTATED,ACTIVE',
    'the old token ROTATED, the new one ACTIVE, one family');

$r = refresh($rt2);
is($r->{status}, 200, 'refresh again with the newest token');
my $rt3 = $r->{json}{refreshToken};

# another session (family) of the same user
my $other_rt = login($alice{email}, $alice{password})->{json}{refreshToken};

is_error(refresh($rt1), 401, 'INVALID_REFRESH_TOKEN',
    'the first token, already rotated: 401');
is(audit_count('REFRESH_REUSE', $alice_id), 1, 'reuse audited');
is_error(refresh($rt3), 401, 'INVALID_REFRESH_TOKEN',
    'reuse revoked the family: the newest token is dead too');
is_error(refresh($rt2), 401, 'INVALID_REFRESH_TOKEN',
    'and so is the middle one');
is(scalar $t->psql("SELECT count(*) FROM refresh_tokens WHERE family_id ="
    . " $family AND status = 'ACTIVE'"), 0, 'no ACTIVE token in the family');
$r = refresh($other_rt);
is_response($r, 200, tokens_shape(),
    'another session of the same user is not affected');
$other_rt = $r->{json}{refreshToken};

for my $case (
    [ 'unknown token'  => 'A' x 43 ],
    [ 'garbage'        => 'garbage' ],
    [ 'empty'          => '' ],
    [ 'one character too many' => $other_rt . 'A' ],
    [ 'not base64url'  => ('!' x 43) ],
) {
    my ($what, $tok) = @$case;
    is_error(refresh($tok), 401, 'INVALID_REFRESH_TOKEN', "refresh: $what");
}
for my $case (
    [ 'no refreshToken'      => '{}' ],
    [ 'refreshToken number'  => '{"refreshToken":12}' ],
    [ 'refreshToken null'    => '{"refreshToken":null}' ],
    [ 'refreshToken 1000 bytes' => '{"refreshToken":"' . ('A' x 1000) . '"}' ],
    [ 'not JSON'             => 'refreshToken=x' ],
) {
    my ($what, $body) = @$case;
    is_error($t->post('/api/v1/auth/refresh', $body), 400, 'INVALID_REQUEST',
        "refresh: $what");
}
$r = refresh($other_rt);
is_response($r, 200, tokens_shape(),
    'bad refresh requests did not hurt the live token');
$other_rt = $r->{json}{refreshToken};

# an expired refresh token
my $exp_rt = login($alice{email}, $alice{password})->{json}{refreshToken};
$t->psql("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'"
    . " WHERE token_hash = '" . sha256_hex($exp_rt) . "'");
is_error(refresh($exp_rt), 401, 'INVALID_REFRESH_TOKEN',
    'an expired refresh token: 401');

# --- 10 concurrent refreshes of one token: exactly one wins ----------------

my $race_rt = login($alice{email}, $alice{password})->{json}{refreshToken};
my $race_family = $t->psql("SELECT family_id FROM refresh_tokens WHERE"
    . " token_hash = '" . sha256_hex($race_rt) . "'");
@res = $t->concurrent([ map { [ 'POST', '/api/v1/auth/refresh',
    { refreshToken => $race_rt } ] } 1 .. 10 ]);
my @won = grep { $_->{status} == 200 } @res;
is(scalar @won, 1, '10 concurrent refreshes of one token: exactly one 200');
is(scalar(grep { $_->{status} == 401 && ($_->{json}{code} // '') eq
    'INVALID_REFRESH_TOKEN' } @res), 9, '... and nine 401');
is_error(refresh($won[0]{json}{refreshToken}), 401, 'INVALID_REFRESH_TOKEN',
    'the racing copies are reuse: the winner\'s new token is revoked too');
is(scalar $t->psql("SELECT string_agg(status, ',' ORDER BY id) FROM"
    . " refresh_tokens WHERE family_id = $race_family"), 'ROTATED,REVOKED',
    'the family: one rotation, then revoked');

# --- logout -----------------------------------------------------------------

$r = login($alice{email}, $alice{password});
my ($lo_rt, $lo_access) = @{ $r->{json} }{qw(refreshToken accessToken)};
my $lo_rt2 = refresh($lo_rt)->{json}{refreshToken};
$r = logout($lo_rt2);
is($r->{status}, 204, 'logout: 204');
is($r->{body}, '', '... no body');
is_error(refresh($lo_rt2), 401, 'INVALID_REFRESH_TOKEN',
    'after logout the refresh token is dead');
is(scalar $t->psql("SELECT count(*) FROM refresh_tokens WHERE family_id ="
    . " (SELECT family_id FROM refresh_tokens WHERE token_hash = '"
    . sha256_hex($lo_rt) . "') AND status = 'ACTIVE'"), 0,
    'logout revoked the family');
is(audit_count('LOGOUT', $alice_id), 1, 'logout audited');
is_response(me($lo_access), 200, $alice_profile,
    'an access token lives out its 5 minutes after logout');
is(logout('B' x 43)->{status}, 204, 'logout of an unknown token: 204');
is(logout('garbage')->{status}, 204, 'logout of garbage: 204');
is(logout($lo_rt2)->{status}, 204, 'logout twice: 204');
is_error($t->post('/api/v1/auth/logout', '{}'), 400, 'INVALID_REQUEST',
    'logout without refreshToken: 400');
is_response(refresh($other_rt), 200, tokens_shape(),
    'other sessions survive a logout');

# --- GET /users/me ----------------------------------------------------------

is_response($t->get('/api/v1/users/me', user => 1), 200, { id => 1,
    email => undef, name => 'user 1', phone => undef, role => 'CONSUMER',
    createdAt => $TS }, 'GET /users/me of a demo user (no PII stored)');
is_error($t->get('/api/v1/users/me', user => 31337424), 404,
    'USER_NOT_FOUND', 'GET /users/me of an unknown user: 404');
is_error($t->get('/api/v1/users/me'), 401, 'UNAUTHORIZED',
    'GET /users/me without a token: 401');
is_error($t->req('PUT', '/api/v1/users/me', body => {}, user => 1), 405,
    'METHOD_NOT_ALLOWED', 'PUT /users/me: 405');

# --- withdrawal ---------------------------------------------------------------

my %wanda = (email => 'Wanda.Withdrawn@Example.org',
    password => 'soon to be forgotten', name => 'Wanda Maximoff-Erased',
    phone => '+1-202-555-0147');
push @secrets, @wanda{qw(email password name phone)};
$r = signup(\%wanda);
is($r->{status}, 201, 'withdrawal: a new account');
my $wid = $r->{json}{id};
$r = login($wanda{email}, $wanda{password});
my ($w_access, $w_rt) = @{ $r->{json} }{qw(accessToken refreshToken)};
my $w_rt2 = refresh($w_rt)->{json}{refreshToken};
push @secrets, $w_rt, $w_rt2;

is($t->post('/api/v1/balance/charge', { amount => 50000 },
    token => $w_access)->{status}, 200, '... charges its balance');
$r = $t->post('/api/v1/orders', { items => [ { productId => 3,
    quantity => 2 } ], payment => { method => 'BALANCE' } },
    token => $w_access);
is($r->{status}, 201, '... buys');
my $w_order = $r->{json};
is($w_order->{status}, 'PAID', '... the order is PAID');

my $books = sub {
    return join "\n", $t->psql(qq{
        SELECT 'o ' || o::text FROM orders o WHERE user_id = $wid
        UNION ALL SELECT 'i ' || i::text FROM order_items i
            WHERE order_id IN (SELECT id FROM orders WHERE user_id = $wid)
        UNION ALL SELECT 'p ' || p::text FROM payments p
            WHERE order_id IN (SELECT id FROM orders WHERE user_id = $wid)
        UNION ALL SELECT 'l ' || l::text FROM balance_ledger l
            WHERE user_id = $wid
        UNION ALL SELECT 'b ' || balance FROM users WHERE id = $wid
        ORDER BY 1});
};
my $books_before = $books->();
ok($books_before =~ /^o /m && $books_before =~ /^p /m
    && $books_before =~ /^l /m, 'orders, payments and ledger rows exist');

$r = $t->req('DELETE', '/api/v1/users/me', token => $w_access);
is($r->{status}, 204, 'DELETE /users/me: 204');
no_store($r, 'DELETE /users/me');

is(scalar $t->psql("SELECT concat_ws('|', email_ct IS NULL, email_idx IS NULL,"
    . " phone_ct IS NULL, name_ct IS NULL, password_hash IS NULL, name = '',"
    . " status, withdrawn_at IS NOT NULL) FROM users WHERE id = $wid"),
    't|t|t|t|t|t|WITHDRAWN|t',
    'PII columns, email index and password hash NULL; WITHDRAWN');
is(scalar $t->psql("SELECT count(*) FROM refresh_tokens WHERE user_id = $wid"
    . " AND status <> 'REVOKED'"), 0, 'every refresh token REVOKED');
is($books->(), $books_before, 'orders, payments, ledger and balance kept');
is(audit_count('WITHDRAW', $wid), 1, 'withdrawal audited');

$r = login($wanda{email}, $wanda{password});
is("$r->{status} $r->{body}", '401 {"code":"INVALID_CREDENTIALS",'
    . '"message":"wrong email or password"}',
    'login of a withdrawn account: the same 401 as an unknown email');
is_error(refresh($w_rt2), 401, 'INVALID_REFRESH_TOKEN',
    'refresh of a withdrawn account: 401');
is_error(me($w_access), 404, 'USER_NOT_FOUND',
    'GET /users/me after withdrawal: 404');
is_error($t->req('DELETE', '/api/v1/users/me', token => $w_access), 404,
    'USER_NOT_FOUND', 'DELETE /users/me twice: 404');
is_error($t->req('DELETE', '/api/v1/users/me', user => 31337424), 404,
    'USER_NOT_FOUND', 'DELETE /users/me of an unknown user: 404');

# the access token lives out its minutes, but the database refuses to move
# money or take orders for an erased account (the triggers of
# sql/functions/60_account.sql)
is_error($t->post('/api/v1/balance/charge', { amount => 1000 },
    token => $w_access), 404, 'USER_NOT_FOUND',
    'a charge with the withdrawn account\'s live access token: 404');
is_error($t->post('/api/v1/orders', { items => [ { productId => 3,
    quantity => 1 } ], payment => { method => 'BALANCE' } },
    token => $w_access), 404, 'USER_NOT_FOUND', 'an order: 404');
is_error($t->post('/api/v1/orders', { items => [ { productId => 3,
    quantity => 1 } ] }, token => $w_access), 404, 'USER_NOT_FOUND',
    'an unpaid order: 404');
is($books->(), $books_before, 'nothing moved');

$r = signup(\%wanda);
is_response($r, 201, { id => sub { $_[0] > $wid }, email => $wanda{email},
    name => $wanda{name}, phone => $wanda{phone}, role => 'CONSUMER',
    createdAt => $TS }, 'the email may sign up again: a new account');
is_response(login($wanda{email}, $wanda{password}), 200, tokens_shape(),
    '... which logs in');
is($books->(), $books_before, 'the old account\'s books are untouched');

# --- PII, passwords and tokens absent from every table and log ------------

my %bob = (email => 'bob.builder@construction.example',
    password => 'can we fix it yes we can', name => 'Robert Zebulon Builder',
    phone => '070-9876-5432');
push @secrets, @bob{qw(email password name phone)};
is(signup(\%bob)->{status}, 201, 'one more account');
$r = login($bob{email}, $bob{password});
push @secrets, $r->{json}{refreshToken}, $r->{json}{accessToken},
    refresh($r->{json}{refreshToken})->{json}{refreshToken};
login($bob{email}, 'not the password at all');      # a failure row too

my @tables = $t->psql(q{SELECT table_name FROM information_schema.tables
    WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1});
ok((grep { $_ eq 'users' } @tables) && (grep { $_ eq 'audit_log' } @tables)
    && (grep { $_ eq 'refresh_tokens' } @tables), 'tables found: '
    . join(' ', @tables));
my $dump = join "\n", map { scalar $t->psql(qq{SELECT t::text FROM "$_" t}) }
    @tables;
ok(length $dump > 10000, 'every table read (' . length($dump) . ' bytes)');

sub absent {
    my ($text, $where) = @_;
    my @found;
    for my $s (@secrets) {
        my $b = $s;
        utf8::encode($b);
        push @found, $s if index(lc $text, lc $b) >= 0;
        # the phone without its punctuation, the email's local part
        (my $digits = $b) =~ s/[-+]//g;
        push @found, "$s (as $digits)" if $b =~ /^\+?[0-9-]+$/
            && index($text, $digits) >= 0;
    }
    ok(!@found, "no plaintext PII, password or token in $where")
        or diag("found: @found");
}
absent($dump, 'the tables');
ok($dump !~ /\@/, 'no email address at all in the tables (no "@")');
absent($t->read_file($t->error_log), 'error.log (info level)');
absent($t->read_file($t->dir . '/access.log'), 'access.log');
absent($t->read_file($t->dir . '/pg/postgres.log'), 'postgres.log');
ok(scalar $t->grep_log(qr/access token [0-9a-f]{32} issued/),
    'the info log was written (token issues logged by jti)');

# the keys are not logged either
my @key_hex = map { /^\d+ ([0-9a-f]{64})/ ? $1 : () } map {
    split /\n/, $t->read_file($t->dir . "/$_") } qw(jwt.keys pii.keys
    pii-index.key);
is(scalar @key_hex, 5, 'five keys in the three files');
my $logs = join '', map { $t->read_file($t->dir . "/$_") }
    qw(error.log access.log startup.log stderr.log pg/postgres.log);
ok(!(grep { index($logs, $_) >= 0 } @key_hex), 'no key in any log');

# --- key files readable by others: nginx -t refuses, naming the directive ---

my %files = (commerce_jwt_keys_file => 'jwt.keys',
    commerce_pii_keys_file => 'pii.keys',
    commerce_pii_index_key_file => 'pii-index.key');
my $conf = sub {
    my ($extra) = @_;
    return $t->default_config(main_extra => $t->account_main,
        http_extra => $extra);
};
my ($rc, $out) = $t->nginx_t($conf->($keys));
is($rc, 0, 'nginx -t: the 0600 key files are accepted') or diag($out);
for my $d (sort keys %files) {
    for my $mode (0644, 0640, 0604, 0660) {
        my $src = $t->dir . "/$files{$d}";
        my $copy = $t->write_file(sprintf('bad-%o-%s', $mode, $files{$d}),
            $t->read_file($src));
        chmod $mode, $copy;
        (my $extra = $keys) =~ s{^($d) \S+;}{$1 $copy;}m;
        ($rc, $out) = $t->nginx_t($conf->($extra));
        isnt($rc, 0, sprintf 'nginx -t refuses %s of mode %04o', $d, $mode);
        like($out, qr/"\Q$d\E".*\Q$copy\E/, '... naming the directive and'
            . ' the file');
        ok(!(grep { index($out, $_) >= 0 } @key_hex), '... without the keys');
    }
}
my $plain = $t->write_file('ok-0400.keys', $t->read_file($t->dir
    . '/jwt.keys'));
chmod 0400, $plain;
(my $ro = $keys) =~ s{^(commerce_jwt_keys_file) \S+;}{$1 $plain;}m;
($rc, $out) = $t->nginx_t($conf->($ro));
is($rc, 0, 'nginx -t: a key file of mode 0400 is accepted') or diag($out);

$t->check_consistency;
$t->done;
