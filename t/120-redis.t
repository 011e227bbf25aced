#!/usr/bin/perl
# The Redis client (src/io/ngx_commerce_redis*.c) against a real
# redis-server: nginx -t refuses bad directive values naming the directive;
# every worker's connections come up through AUTH and SELECT (a password
# and a db), answer the health-check PINGs (latency histogram), show in
# CLIENT LIST; a wrong password is refused and logged; Redis killed, then
# started again on the same port: the connections go down, errors are
# counted, and they come back by themselves (reconnects counted); Redis
# frozen (SIGSTOP): the PINGs time out and the connections are replaced;
# a unix socket; nginx -s reload: no old worker left behind, no connection
# leaked.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;

my $t = CommerceTest->new;
$t->start_pg;

my $password = 'pw-' . int(rand(1e9));

my $pw = $t->write_file('redis.pw', "$password\n");
chmod 0600, $pw;
my $open_pw = $t->write_file('redis-open.pw', "$password\n");
chmod 0644, $open_pw;
my $empty_pw = $t->write_file('redis-empty.pw', "\n");
chmod 0600, $empty_pw;
my $wrong_pw = $t->write_file('redis-wrong.pw', "not-$password\n");
chmod 0600, $wrong_pw;


# --- nginx -t ----------------------------------------------------------------

for my $good (
    '127.0.0.1:6379',
    '127.0.0.1',
    '[::1]:6379',
    '[::1]',
    'unix:/run/redis/redis.sock',
    "127.0.0.1:6379 password_file=$pw db=15",
    "127.0.0.1:6379 db=0",
) {
    my ($rc, $out) = $t->nginx_t($t->default_config(http_extra => <<"EOF"));
commerce_redis $good;
commerce_redis_connections 4;
commerce_redis_connect_timeout 500ms;
commerce_redis_command_timeout 200ms;
commerce_redis_queue_timeout 1s;
commerce_redis_queue_length 100;
commerce_redis_ping_interval 5s;
EOF
    is($rc, 0, "nginx -t accepts commerce_redis $good") or diag($out);
}

my $not_addr = qr/"commerce_redis": ".*" is not an IPv4 address.*must not resolve host names/;

my @bad = (
    [ 'commerce_redis localhost:6379;',          $not_addr ],
    [ 'commerce_redis redis.example.com;',       $not_addr ],
    [ 'commerce_redis redis:6379;',              $not_addr ],
    [ 'commerce_redis 300.1.1.1:6379;',          $not_addr ],
    [ 'commerce_redis 127.0.0.1:0;',             $not_addr ],
    [ 'commerce_redis 127.0.0.1:65536;',         $not_addr ],
    [ 'commerce_redis 127.0.0.1:abc;',           $not_addr ],
    [ 'commerce_redis 127.0.0.1:;',              $not_addr ],
    [ 'commerce_redis ::1:6379;',                $not_addr ],
    [ 'commerce_redis [::1:6379;',               $not_addr ],
    [ 'commerce_redis [::1]x;',                  $not_addr ],
    [ 'commerce_redis unix:run/redis.sock;',
      qr/"commerce_redis": "unix:run\/redis.sock": a unix socket needs an absolute path/ ],
    [ 'commerce_redis 127.0.0.1:6379 db=-1;',
      qr/"commerce_redis": "db=-1": db must be a number 0\.\.65535/ ],
    [ 'commerce_redis 127.0.0.1:6379 db=abc;',
      qr/"commerce_redis": "db=abc": db must be a number/ ],
    [ 'commerce_redis 127.0.0.1:6379 db=70000;',
      qr/"commerce_redis": "db=70000": db must be a number/ ],
    [ 'commerce_redis 127.0.0.1:6379 db=;',
      qr/"commerce_redis": invalid parameter "db="/ ],
    [ 'commerce_redis 127.0.0.1:6379 database=1;',
      qr/"commerce_redis": invalid parameter "database=1"/ ],
    [ "commerce_redis 127.0.0.1:6379 password_file=$t->{dir}/missing.pw;",
      qr/"commerce_redis password_file": cannot open ".*missing\.pw"/ ],
    [ "commerce_redis 127.0.0.1:6379 password_file=$open_pw;",
      qr/"commerce_redis password_file": ".*redis-open\.pw" is accessible by group or others \(mode 0644\)/ ],
    [ "commerce_redis 127.0.0.1:6379 password_file=$empty_pw;",
      qr/"commerce_redis": password_file ".*redis-empty\.pw" is empty/ ],
    [ "commerce_redis 127.0.0.1:6379 password_file=$pw password_file=$pw;",
      qr/"commerce_redis": invalid parameter "password_file=/ ],
    [ "commerce_redis 127.0.0.1:6379; commerce_redis 127.0.0.1:6380;",
      qr/"commerce_redis" directive is duplicate/ ],
    [ 'commerce_redis;',
      qr/invalid number of arguments in "commerce_redis" directive/ ],
    [ 'commerce_redis_connections 0;',
      qr/"commerce_redis_connections" must be between 1 and 64, not "0"/ ],
    [ 'commerce_redis_connections 65;',
      qr/"commerce_redis_connections" must be between 1 and 64/ ],
    [ 'commerce_redis_connections two;',
      qr/"commerce_redis_connections" directive invalid number/ ],
    [ 'commerce_redis_connect_timeout 0;',
      qr/"commerce_redis_connect_timeout" must be between 1 and/ ],
    [ 'commerce_redis_command_timeout soon;',
      qr/"commerce_redis_command_timeout" directive invalid value/ ],
    [ 'commerce_redis_queue_timeout -1s;',
      qr/"commerce_redis_queue_timeout" directive invalid value/ ],
    [ 'commerce_redis_queue_length many;',
      qr/"commerce_redis_queue_length" directive invalid number/ ],
    [ 'commerce_redis_ping_interval 0;',
      qr/"commerce_redis_ping_interval" must be between 1 and/ ],
);

for my $case (@bad) {
    my ($directive, $re) = @$case;
    my ($rc, $out) = $t->nginx_t($t->default_config(http_extra =>
        $directive =~ /^commerce_redis[; ]/ ? $directive
            : "commerce_redis 127.0.0.1:6379; $directive"));
    isnt($rc, 0, "nginx -t refuses: $directive");
    like($out, $re, "... naming the directive: $directive");
}


# --- connections up through AUTH + SELECT, PINGs ------------------------------

$t->start_redis(password => $password,
    options => [ '--unixsocket', "$t->{dir}/redis/redis.sock",
                 '--unixsocketperm', '700' ]);

my $http = <<"EOF";
commerce_zone 1m;
commerce_redis_connections 2;
commerce_redis_ping_interval 100ms;
commerce_redis_command_timeout 300ms;
commerce_redis_connect_timeout 500ms;
EOF

$t->write_config($t->default_config(
    redis        => "password_file=$pw db=3",
    http_extra   => $http,
    server_extra => 'location = /metrics { commerce_metrics; }'));
$t->start_nginx;

# the sum over live workers of one state; the error and reconnect counters
sub redis_state {
    my ($name) = @_;
    my $m = $t->metrics(name => $name);
    my %s = (m => $m);
    for my $state (qw(up connecting down)) {
        $s{$state} = 0;
        for my $w (0 .. 63) {
            $s{$state} += $t->metric($m, 'commerce_redis_connections',
                worker => $w, state => $state);
        }
    }
    for my $kind (qw(timeout connection server queue)) {
        $s{$kind} = $t->metric($m, 'commerce_redis_errors_total',
            kind => $kind);
    }
    $s{reconnects} = $t->metric($m, 'commerce_redis_reconnects_total');
    $s{pings} = $t->metric($m, 'commerce_redis_command_duration_seconds_count');
    return \%s;
}

sub wait_state {
    my ($cond, %o) = @_;
    my $s;
    wait_until(sub { $s = redis_state($o{name}); $cond->($s) },
        timeout => $o{timeout} // 15, interval => 0.1);
    return $s;
}

my $s = wait_state(sub { $_[0]{up} == 4 });
is($s->{up}, 4, '2 workers x 2 connections up') or diag(explain($s));
is($s->{connecting} + $s->{down}, 0, 'none connecting or down');

$s = wait_state(sub { $_[0]{pings} >= 8 });
cmp_ok($s->{pings}, '>=', 8, 'health-check PINGs answered and timed');
my $m = $s->{m};
is($t->metric($m, 'commerce_redis_command_duration_seconds_bucket',
        le => '+Inf'), $s->{pings}, 'histogram: +Inf bucket = count');
cmp_ok($t->metric($m, 'commerce_redis_command_duration_seconds_bucket',
        le => '0.1'), '>', 0, 'PINGs answered within 100 ms');
is($s->{reconnects}, 0, 'no reconnect yet');
is($s->{$_}, 0, "no $_ error") for qw(timeout connection server queue);

SKIP: {
    skip 'promtool not installed', 1 unless grep { -x "$_/promtool" }
        split /:/, $ENV{PATH};
    my $text = $t->get('/metrics')->{body};
    my ($rc, $out) = $t->run([ 'promtool', 'check', 'metrics' ],
        stdin => $text);
    is($rc, 0, 'promtool check metrics: the Redis series lint clean')
        or diag($out);
}

my @clients = grep { /name=ngx_commerce/ } split /\n/,
    $t->redis_cli('CLIENT', 'LIST');
is(scalar @clients, 4, 'CLIENT LIST: 4 connections named ngx_commerce');
is(scalar(grep { / db=3 / } @clients), 4, 'all of them on db 3 (SELECT)');


# --- a wrong password ----------------------------------------------------------

$t->write_config($t->default_config(
    redis        => "password_file=$wrong_pw db=3",
    http_extra   => $http,
    server_extra => 'location = /metrics { commerce_metrics; }'),
    name => 'wrong');
$t->start_nginx(name => 'wrong');

ok(wait_until(sub { $t->grep_log(qr/redis connection #\d+ to "127\.0\.0\.1:\d+": handshake refused: (WRONGPASS|ERR invalid password)/, name => 'wrong') }),
    'a wrong password: the handshake refused, logged');
$s = wait_state(sub { $_[0]{server} > 0 }, name => 'wrong');
is($s->{up}, 0, 'wrong password: no connection up');
cmp_ok($s->{server}, '>', 0, 'wrong password: counted as server errors');
ok(!grep({ /\Q$password\E/ } split /\n/,
    $t->read_file($t->error_log('wrong')) . $t->read_file($t->error_log)),
    'the password is never logged');
$t->stop_nginx(name => 'wrong');


# --- a unix socket ---------------------------------------------------------------

$t->write_config($t->default_config(
    redis        => "password_file=$pw db=3",
    http_extra   => $http,
    server_extra => 'location = /metrics { commerce_metrics; }')
    =~ s{commerce_redis \S+}{commerce_redis unix:$t->{dir}/redis/redis.sock}r,
    name => 'unix');
$t->start_nginx(name => 'unix');
$s = wait_state(sub { $_[0]{up} == 4 && $_[0]{pings} > 0 }, name => 'unix');
is($s->{up}, 4, 'over a unix socket: 4 connections up, PINGs answered');
$t->stop_nginx(name => 'unix');

@clients = ();
wait_until(sub {
    @clients = grep { /name=ngx_commerce/ } split /\n/,
        $t->redis_cli('CLIENT', 'LIST');
    @clients == 4;
});
is(scalar @clients, 4, 'the stopped instances left no connection behind');


# --- Redis killed, started again on the same port ----------------------------------

my $before = redis_state();
$t->stop_redis(signal => 'KILL');

$s = wait_state(sub { $_[0]{up} == 0 && $_[0]{connection} > $before->{connection} });
is($s->{up}, 0, 'Redis killed: no connection up');
is($s->{connecting} + $s->{down}, 4, '... all 4 connecting or down');
cmp_ok($s->{connection}, '>=', $before->{connection} + 4,
    '... each loss counted as a connection error');
ok(scalar $t->grep_log(qr/redis connection #\d+ to "127\.0\.0\.1:\d+" lost: /),
    '... each loss logged');

sleep 1;
$s = redis_state();
cmp_ok($s->{connection}, '>', $before->{connection} + 4,
    '... reconnect attempts fail and are counted while it is down');

$t->start_redis;
$s = wait_state(sub { $_[0]{up} == 4 });
is($s->{up}, 4, 'Redis back on the same port: 4 connections up again, '
    . 'nginx untouched');
cmp_ok($s->{reconnects}, '>=', 4, '... reconnects counted');
@clients = grep { /name=ngx_commerce/ } split /\n/,
    $t->redis_cli('CLIENT', 'LIST');
is(scalar(grep { / db=3 / } @clients), 4, '... AUTH and SELECT again');
my $pings = $s->{pings};
$s = wait_state(sub { $_[0]{pings} > $pings + 4 });
cmp_ok($s->{pings}, '>', $pings + 4, '... and PINGs answered again');


# --- Redis frozen: PINGs time out, connections replaced ----------------------------

$before = redis_state();
$t->stop_redis(signal => 'STOP');
$s = wait_state(sub { $_[0]{timeout} > $before->{timeout} && $_[0]{up} < 4 });
cmp_ok($s->{timeout}, '>', $before->{timeout},
    'Redis frozen: PINGs time out (counted)');
cmp_ok($s->{up}, '<', 4, '... and their silent connections are replaced');
ok(scalar $t->grep_log(qr/redis connection #\d+: PING timed out after 300ms; nothing read since it was sent: reconnecting/),
    '... logged');

$t->continue_redis;
$s = wait_state(sub { $_[0]{up} == 4 });
is($s->{up}, 4, 'Redis thawed: 4 connections up again');


# --- reload ----------------------------------------------------------------------------

my @old = $t->reload_nginx(config => $t->default_config(
    redis        => "password_file=$pw db=3",
    http_extra   => $http =~ s/connections 2/connections 3/r,
    server_extra => 'location = /metrics { commerce_metrics; }'));
ok($t->wait_pids_gone(\@old), 'nginx -s reload: the old workers exit');
$s = wait_state(sub { $_[0]{up} == 6 });
is($s->{up}, 6, 'the new workers: 2 x 3 connections up');
@clients = ();
wait_until(sub {
    @clients = grep { /name=ngx_commerce/ } split /\n/,
        $t->redis_cli('CLIENT', 'LIST');
    @clients == 6;
});
is(scalar @clients, 6, 'CLIENT LIST: the old workers\' connections closed');

# errors at error level are expected above (lost, refused); nothing worse
$t->done;
