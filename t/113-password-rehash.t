#!/usr/bin/perl
# Raising commerce_password_iterations later: old hashes keep verifying
# (their parameters are stored with them), and each is replaced by a hash
# at the current cost at its user's next successful login; a failed login
# changes nothing.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

my $keys = $t->account_keys(iterations => 100000);
sub config {
    my ($iterations) = @_;
    (my $http = $keys) =~ s/commerce_password_iterations \d+;/commerce_password_iterations $iterations;/;
    return $t->default_config(main_extra => $t->account_main,
        http_extra => $http);
}

$t->write_config(config(100000));
$t->start_nginx;

my $email = 'rehash.me@example.com';
my $r = $t->post('/api/v1/auth/signup', { email => $email,
    password => 'an old password', name => 'Re Hash',
    phone => '010-1111-2222' });
is($r->{status}, 201, 'signed up');
my $id = $r->{json}{id};
sub hash_of { scalar $t->psql("SELECT password_hash FROM users WHERE id = $id") }
like(hash_of(), qr/^\$pbkdf2-sha256\$i=100000\$/, 'hashed at 100,000');

$t->stop_nginx;
$t->write_config(config(200000));
$t->start_nginx;

my $old = hash_of();
$r = $t->post('/api/v1/auth/login', { email => $email,
    password => 'a wrong password' });
is($r->{status}, 401, 'a wrong password: 401');
is(hash_of(), $old, '... and the hash is untouched');

$r = $t->post('/api/v1/auth/login', { email => $email,
    password => 'an old password' });
is($r->{status}, 200, 'the old hash still verifies after the cost was raised');
like($r->{json}{accessToken} // '', qr/\./, 'tokens issued');
like(hash_of(), qr/^\$pbkdf2-sha256\$i=200000\$/,
    'and it was replaced at the current cost (200,000)');
isnt(hash_of(), $old, 'a new hash (new salt)');
ok(scalar($t->grep_log(qr/user $id: password hash renewed at the current cost/)),
    'logged');

my $new = hash_of();
$r = $t->post('/api/v1/auth/login', { email => $email,
    password => 'an old password' });
is($r->{status}, 200, 'the next login verifies the new hash');
is(hash_of(), $new, 'and changes nothing more');

# clients that go away while their password is being hashed: the request
# stays held until the thread is done, then goes (no crash, nothing leaks
# into the next requests)
for my $i (1 .. 10) {
    $t->raw($t->build_request('POST', '/api/v1/auth/login', body => {
        email => $email, password => 'an old password' }),
        close_after => 0.01 * $i, timeout => 2);
}
$r = $t->post('/api/v1/auth/login', { email => $email,
    password => 'an old password' });
is($r->{status}, 200, 'logins after 10 clients left mid-hash');
is($t->get('/api/v1/users/me', token => $r->{json}{accessToken})->{status},
    200, 'and their token works');

$t->done;
