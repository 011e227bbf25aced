#!/usr/bin/perl
# Idle keep-alive connections: 2000 of them held open while reads go on
# being served (the 10,000 figure is measured by `make bench`).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use CommerceTest;

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
# the connections are opened in one burst: let every first request queue
$t->write_config($t->default_config(
    http_extra => 'commerce_pg_queue_length 4096;'));
$t->start_nginx;

# every idle connection costs the test one descriptor
my $limit = POSIX::sysconf(POSIX::_SC_OPEN_MAX()) // 1024;
my $n = 2000;
if ($limit < $n + 200) {
    $n = $limit - 200;
    diag("open files limit $limit: holding $n idle connections only"
        . " (raise it with ulimit -n)");
}

is($t->hold_idle($n), $n, "$n keep-alive connections, each served once");
is(scalar $t->held_connections, $n, '... and held open idle');

my @res = $t->concurrent([ map { [ 'GET', '/api/v1/products/' . (1 + $_ % 200),
    undef, { user => 1 + $_ } ] } 1 .. 200 ], timeout => 60);
is(scalar(grep { $_->{status} == 200 } @res), 200,
    '200 concurrent reads served beside them');
is_response($t->get('/api/v1/balance', user => 3), 200,
    { userId => 3, balance => 100000 }, 'a read on a new connection');

# a few of the idle connections are still usable
my @held = ($t->held_connections)[0, 1, -1];
my $req = $t->build_request('GET', '/api/v1/balance', user => 1,
    keepalive => 1);
my $ok = 0;
for my $s (@held) {
    syswrite($s, $req);
    my $buf = '';
    my $sel = IO::Select->new($s);
    while ($sel->can_read(10)) {
        my $got = sysread($s, $buf, 65536, length $buf);
        last unless $got;
        last if CommerceTest::_complete($buf);
    }
    $ok++ if CommerceTest::parse_response($buf)->{status} == 200;
}
is($ok, 3, 'idle connections answer a second request');

$t->release_idle;
is($t->get('/api/v1/products/1', user => 1)->{status}, 200,
    'serving after they are closed');

$t->done;
