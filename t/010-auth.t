#!/usr/bin/perl
# JWT authentication in the access phase: every kind of bad token is
# 401 UNAUTHORIZED and changes nothing; HS256 only; secret from a directive
# or a file.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use CommerceTest::JWT qw(b64url);

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
$t->write_config($t->default_config);
$t->start_nginx;

my $secret = $t->secret;
my $now = time;
my %h256 = (alg => 'HS256', typ => 'JWT');
my %claims = (sub => '7', exp => $now + 600, role => 'USER');

my $valid = $t->token(7);
is_response($t->get('/api/v1/balance', token => $valid), 200,
    { userId => 7, balance => 100000 }, 'valid token');

my ($vh, $vp, $vs) = split /\./, $valid;

my @bad = (
    [ 'no Authorization header' => undef ],
    [ 'Basic scheme'            => 'Basic dXNlcjpwYXNz' ],
    [ 'Bearer without token'    => 'Bearer' ],
    [ 'Bearer and a space'      => 'Bearer ' ],
    [ 'token without scheme'    => $valid ],
    [ 'garbage'                 => 'Bearer garbage' ],
    [ 'three empty parts'       => 'Bearer ..' ],
    [ 'three junk parts'        => 'Bearer a.b.c' ],
    [ 'four parts'              => "Bearer $valid.x" ],
    [ 'two parts'               => "Bearer $vh.$vp" ],
    [ 'header not JSON'         => 'Bearer ' . b64url('nope') . ".$vp.$vs" ],
    [ 'payload not JSON'        => "Bearer $vh." . b64url('{"sub":') . ".$vs" ],
    [ 'signature not base64url' => "Bearer $vh.$vp.!!!" ],
    [ 'truncated signature'     => "Bearer $vh.$vp." . substr($vs, 0, 20) ],
    [ 'expired' => 'Bearer ' . $t->token(7, exp => $now - 10) ],
    [ 'exp missing' => 'Bearer ' . $t->jwt(header => \%h256,
        payload => { sub => '7', role => 'USER' }, secret => $secret) ],
    [ 'exp a string' => 'Bearer ' . $t->jwt(header => \%h256,
        payload => { %claims, exp => '' . ($now + 600) }, secret => $secret) ],
    [ 'alg none, no signature' => 'Bearer ' . $t->jwt(
        header => { alg => 'none', typ => 'JWT' }, payload => \%claims,
        alg => 'none') ],
    [ 'alg none, HS256 signature' => 'Bearer ' . $t->jwt(
        header => { alg => 'none', typ => 'JWT' }, payload => \%claims,
        secret => $secret, alg => 'HS256') ],
    [ 'alg HS384' => 'Bearer ' . $t->jwt(
        header => { alg => 'HS384', typ => 'JWT' }, payload => \%claims,
        secret => $secret) ],
    [ 'alg HS512' => 'Bearer ' . $t->jwt(
        header => { alg => 'HS512', typ => 'JWT' }, payload => \%claims,
        secret => $secret) ],
    [ 'alg RS256' => 'Bearer ' . $t->jwt(
        header => { alg => 'RS256', typ => 'JWT' }, payload => \%claims,
        secret => $secret, alg => 'HS256') ],
    [ 'alg hs256 (lower case)' => 'Bearer ' . $t->jwt(
        header => { alg => 'hs256', typ => 'JWT' }, payload => \%claims,
        secret => $secret, alg => 'HS256') ],
    [ 'alg missing' => 'Bearer ' . $t->jwt(header => { typ => 'JWT' },
        payload => \%claims, secret => $secret, alg => 'HS256') ],
    [ 'wrong secret' => 'Bearer ' . $t->token(7, secret => "x$secret") ],
    [ 'empty secret' => 'Bearer ' . $t->token(7, secret => '') ],
    [ 'tampered payload (sub 8, signature of sub 7)' => "Bearer $vh."
        . b64url(JSON::PP->new->canonical->encode({ %claims, sub => '8' }))
        . ".$vs" ],
    [ 'tampered signature' => "Bearer $vh.$vp."
        . (substr($vs, 0, 1) eq 'A' ? 'B' : 'A') . substr($vs, 1) ],
    [ 'sub missing' => 'Bearer ' . $t->jwt(header => \%h256,
        payload => { exp => $now + 600 }, secret => $secret) ],
    [ 'sub non-numeric' => 'Bearer ' . $t->token(0, sub_raw => 'abc') ],
    [ 'sub empty' => 'Bearer ' . $t->token(0, sub_raw => '') ],
    [ 'sub SQL' => 'Bearer ' . $t->token(0, sub_raw => '1 OR 1=1') ],
    [ 'sub negative' => 'Bearer ' . $t->token(0, sub_raw => '-7') ],
    [ 'sub with trailing junk' => 'Bearer ' . $t->token(0, sub_raw => '7x') ],
    [ 'sub overflowing' => 'Bearer '
        . $t->token(0, sub_raw => '99999999999999999999') ],
    [ 'sub a float' => 'Bearer ' . $t->token(0, sub_raw => 7.5) ],
    [ 'sub an object' => 'Bearer ' . $t->token(0, sub_raw => { id => 7 }) ],
);

my $before = $t->db_state;
for my $case (@bad) {
    my ($what, $auth) = @$case;
    is_error($t->get('/api/v1/balance', auth => $auth), 401, 'UNAUTHORIZED',
        "GET /balance: $what");
}

# the same on a write: nothing changes
for my $case (@bad[0, 4, 14, 17, 19, 24, 26]) {
    my ($what, $auth) = @$case;
    is_error($t->post('/api/v1/balance/charge', { amount => 1000 },
        auth => $auth), 401, 'UNAUTHORIZED', "POST /balance/charge: $what");
    is_error($t->post('/api/v1/orders', { items => [ { productId => 1,
        quantity => 1 } ], payment => { method => 'BALANCE' } },
        auth => $auth), 401, 'UNAUTHORIZED', "POST /orders: $what");
}
is_deeply($t->db_state, $before, 'rejected requests changed nothing');

# 401 even on unknown routes and wrong methods: auth comes first
is_error($t->get('/api/v1/nope'), 401, 'UNAUTHORIZED',
    'unknown route without a token');

# accepted variants
is_response($t->get('/api/v1/balance', token => $t->token(0, sub_raw => 7)),
    200, { userId => 7, balance => 100000 }, 'sub as a JSON integer');
is_response($t->get('/api/v1/balance', token => $t->token(7,
    role => 'ADMIN')), 200, { userId => 7, balance => 100000 },
    'role ADMIN');
is_response($t->get('/api/v1/balance', token => $t->jwt(header => \%h256,
    payload => { sub => '7', exp => $now + 600 }, secret => $secret)), 200,
    { userId => 7, balance => 100000 }, 'no role claim (defaults to USER)');
is_response($t->get('/api/v1/balance', token => $t->jwt(header => \%h256,
    payload => { %claims, iss => 'tests', aud => ['x'], nested => { a => [1] } },
    secret => $secret)), 200, { userId => 7, balance => 100000 },
    'unknown claims ignored');
is_response($t->get('/api/v1/balance', token => $t->jwt(
    header => { typ => 'JWT', alg => 'HS256', cty => 'x' },
    payload => \%claims, secret => $secret)), 200,
    { userId => 7, balance => 100000 }, 'extra header fields ignored');
# a kid names a key of commerce_jwt_keys_file: none here, so none matches
is_error($t->get('/api/v1/balance', token => $t->jwt(
    header => { typ => 'JWT', alg => 'HS256', kid => '1' },
    payload => \%claims, secret => $secret)), 401, 'UNAUTHORIZED',
    'a kid without a keyring: 401');
is_error($t->get('/api/v1/balance', token => $t->jwt(
    header => { typ => 'JWT', alg => 'HS256', kid => 'k1' },
    payload => \%claims, secret => $secret)), 401, 'UNAUTHORIZED',
    'a kid that is none of ours: 401');
is_response($t->get('/api/v1/balance', token => $t->token(7,
    exp => $now + 86400 * 365)), 200, { userId => 7, balance => 100000 },
    'long-lived token');

# a token for a user that does not exist is authentic: the API says 404
is_error($t->get('/api/v1/balance', user => 424242), 404, 'USER_NOT_FOUND',
    'valid token, unknown user');

# --- t/mint-token ----------------------------------------------------------

my ($rc, $tok) = $t->run([ "$FindBin::Bin/mint-token", 11, '--secret',
    $secret, '--ttl', 60, '--role', 'ADMIN' ]);
chomp $tok;
is($rc, 0, 't/mint-token --secret');
is_response($t->get('/api/v1/balance', token => $tok), 200,
    { userId => 11, balance => 100000 }, '... its token is accepted');
($rc, $tok) = $t->run([ "$FindBin::Bin/mint-token", 12, '--secret-file',
    $t->secret_file ]);
chomp $tok;
is_response($t->get('/api/v1/balance', token => $tok), 200,
    { userId => 12, balance => 100000 }, 't/mint-token --secret-file');
($rc, $tok) = $t->run([ "$FindBin::Bin/mint-token", 12, '--secret', $secret,
    '--ttl', -5 ]);
chomp $tok;
is_error($t->get('/api/v1/balance', token => $tok), 401, 'UNAUTHORIZED',
    't/mint-token --ttl -5: expired');
($rc) = $t->run([ "$FindBin::Bin/mint-token", 'abc', '--secret', 'x' ]);
isnt($rc, 0, 't/mint-token refuses a non-numeric user id');

# --- commerce_jwt_secret_file ----------------------------------------------

$t->write_config($t->default_config(secret_file => 1), name => 'file');
$t->start_nginx(name => 'file');

is_response($t->get('/api/v1/balance', user => 9, name => 'file'), 200,
    { userId => 9, balance => 100000 }, 'secret file: valid token');
is_error($t->get('/api/v1/balance', name => 'file',
    token => $t->token(9, secret => 'other')), 401, 'UNAUTHORIZED',
    'secret file: wrong secret');

# a second instance whose file holds another secret, written the way
# `echo secret > file` does: the trailing newline is not part of the key
my $other = $t->write_file('other.secret', "another-secret-0123456789\n");
chmod 0644, $other;
my ($rc644, $out644) = $t->nginx_t($t->default_config(no_secret => 1,
    http_extra => "commerce_jwt_secret_file $other;"));
isnt($rc644, 0, 'a secret file others may read: nginx -t fails');
like($out644, qr/\[emerg\] "commerce_jwt_secret_file": "\Q$other\E" is accessible by group or others \(mode 0644\): chmod 600 it/,
    'naming the directive, the file and its mode');
chmod 0600, $other;
$t->write_config($t->default_config(no_secret => 1,
    http_extra => "commerce_jwt_secret_file $other;"), name => 'other');
$t->start_nginx(name => 'other');
is_response($t->get('/api/v1/balance', name => 'other',
    token => $t->token(9, secret => 'another-secret-0123456789')), 200,
    { userId => 9, balance => 100000 }, 'other secret file: its token');
is_error($t->get('/api/v1/balance', user => 9, name => 'other'), 401,
    'UNAUTHORIZED', 'other secret file: a token of the first secret');

$t->done;
