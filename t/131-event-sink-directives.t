#!/usr/bin/perl
# nginx -t and commerce_event_sink: full http and redis sinks are accepted
# (several at once, the gateway's peer parameters on an http sink); every
# bad value is rejected with an [emerg] naming the directive, the sink and
# the parameter.  Nothing here needs Postgres or Redis: nginx -t only
# parses.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;

my $t = CommerceTest->new;

my $CONNINFO = 'host=127.0.0.1 port=5432 dbname=commerce user=postgres';

sub http {
    my (@sinks) = @_;
    return join "\n", 'upstream dp { server 127.0.0.1:9; }',
        'upstream dp2 { server 127.0.0.1:10; }', @sinks, '';
}

sub check {
    my ($http) = @_;
    return $t->nginx_t($t->default_config(conninfo => $CONNINFO,
        http_extra => $http));
}

sub accepts {
    my ($http, $name) = @_;
    my ($rc, $out) = check($http);
    is($rc, 0, "nginx -t accepts $name") or diag($out);
}

sub rejects {
    my ($http, $re, $name) = @_;
    my ($rc, $out) = check($http);
    isnt($rc, 0, "nginx -t rejects $name");
    like($out, $re, "... [emerg] naming it ($name)") or diag($out);
}

# --- good ----------------------------------------------------------------------

accepts(http('commerce_event_sink dp http upstream=dp;'), 'a minimal http sink');
accepts(http('commerce_event_sink dp http upstream=dp uri=/v2/track '
    . 'events=order.*,payment.failed,user.* host=events.example connect_timeout=500ms '
    . 'timeout=2s keepalive=4 retries=0 retry_base=100ms retry_cap=10s batch=500 '
    . 'concurrency=32 interval=1s lease=2m open=10s;',
    'commerce_event_sink dp2 http upstream=dp2 events=*;',
    'commerce_redis 127.0.0.1:6379;',
    'commerce_event_sink internal redis stream=commerce:events maxlen=1000 '
    . 'events=order.paid;'),
    'an http sink with every parameter, a second one and a redis sink');
accepts(http('commerce_event_sink dp http upstream=dp ssl=on ssl_verify=off '
    . 'ssl_name=events.example;'), 'TLS as for gateways');

# --- bad -----------------------------------------------------------------------

my $E = qr/\[emerg\] "commerce_event_sink"/;
rejects(http('commerce_event_sink dp;'), qr/invalid number of arguments in "commerce_event_sink"/,
    'no kind');
rejects(http('commerce_event_sink dp kafka upstream=dp;'),
    qr/$E "dp": the kind must be "http", "redis" or "notify", not "kafka"/, 'an unknown kind');
rejects(http('commerce_event_sink dp http;'), qr/$E "dp" needs upstream=/, 'http without upstream');
rejects(http('commerce_event_sink dp http upstream=nosuch;'),
    qr/$E "dp": upstream "nosuch" not found or empty/, 'an unknown upstream');
rejects(http('commerce_event_sink dp redis stream=s;'),
    qr/$E "dp": a redis sink needs "commerce_redis"/, 'redis without commerce_redis');
rejects(http('commerce_redis 127.0.0.1:6379;', 'commerce_event_sink dp redis;'),
    qr/$E "dp" needs stream=/, 'redis without stream');
rejects(http('commerce_event_sink dp http upstream=dp;',
    'commerce_event_sink dp http upstream=dp;'), qr/$E "dp" is duplicate/, 'a duplicate');
rejects(http('commerce_event_sink d.p http upstream=dp;'),
    qr/$E name "d.p" may only have letters/, 'a bad name');
rejects(http('commerce_event_sink ' . ('x' x 32) . ' http upstream=dp;'),
    qr/$E name must be 1..31 bytes/, 'a long name');
rejects(http(map { "commerce_event_sink s$_ http upstream=dp;" } 1 .. 9),
    qr/"commerce_event_sink" directive has too many sinks/, 'a ninth sink');

for my $p ('retries=4', 'retries=-1', 'retries=x', 'batch=0', 'batch=1001',
           'concurrency=0', 'concurrency=257', 'retry_base=0', 'retry_base=x',
           'interval=0', 'lease=500ms', 'timeout=0', 'connect_timeout=x',
           'keepalive=x', 'ssl=maybe', 'uri=v1/events', 'open=0',
           'unknown=1', 'noequals', 'timeout=', 'stream=x', 'maxlen=5')
{
    rejects(http("commerce_event_sink dp http upstream=dp $p;"),
        qr/$E "dp": invalid parameter "\Q$p\E"/, "http $p");
}
rejects(http('commerce_event_sink dp http upstream=dp "uri=/a b";'),
    qr/$E "dp": invalid parameter "uri=\/a b"/, 'http uri with a space');
rejects(http('commerce_event_sink dp http upstream=dp retry_base=2s retry_cap=1s;'),
    qr/$E "dp": retry_cap is shorter than retry_base/, 'retry_cap < retry_base');
for my $p ('maxlen=0', 'maxlen=x', 'upstream=dp', 'uri=/x') {
    rejects(http('commerce_redis 127.0.0.1:6379;',
        "commerce_event_sink dp redis stream=s $p;"),
        qr/$E "dp": invalid parameter "\Q$p\E"/, "redis $p");
}
for my $e ('order', 'order.', '.paid', 'Order.paid', 'order.paid.x', 'order.p*',
           '*.paid', 'order.paid,', ',order.paid', 'order..paid', '**')
{
    rejects(http("commerce_event_sink dp http upstream=dp events=$e;"),
        qr/$E "dp": invalid events "\Q$e\E"/, "events=$e");
}

$t->done;
