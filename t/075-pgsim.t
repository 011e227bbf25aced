#!/usr/bin/perl
# The payment-gateway simulator itself (t/pgsim through t/lib/PgSim.pm):
# the API of the field's PG simulator (validation, create, get, list,
# cancel), its default randomness, deterministic cards, callbacks (normal,
# dropped, duplicated, reordered, stale, HMAC-signed), the faults (hang,
# reset, refuse), counters, reset, and 300 concurrent connections.
# Needs neither nginx nor Postgres.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(hmac_sha256_hex);
use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use Time::HiRes qw(time sleep);
use PgSim;

binmode(Test::More->builder->$_, ':utf8')
    for qw(output failure_output todo_output);
$SIG{PIPE} = 'IGNORE';

my $JSON = JSON::PP->new->utf8->canonical;
my $KEY_RE = qr/\A\d{8}:TR:[0-9a-f]{6}\z/;
my $LIMIT = '한도초과입니다. 다른 카드를 선택해주세요.';
my $INVALID = '잘못된 카드입니다. 다른 카드를 선택해주세요.';
my $APPROVED = '정상 승인되었습니다.';
my $UNSTABLE = '현재 서버가 불안정합니다. 잠시 후 다시 시도해주세요.';

# ---------------------------------------------------------------------------
# a tiny callback receiver in this process: accepts, reads whole requests,
# answers 200 and records them.  pump() runs it for a while.

package Receiver {
    sub new {
        my ($class) = @_;
        my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1:0',
            Listen => 128, ReuseAddr => 1, Blocking => 0)
            or die "receiver: $!";
        return bless { l => $l, conns => {}, got => [] }, $class;
    }
    sub port { $_[0]{l}->sockport }
    sub url { 'http://127.0.0.1:' . $_[0]->port . ($_[1] // '/callback') }
    sub got { @{ $_[0]{got} } }
    sub clear { $_[0]{got} = [] }

    sub pump {
        my ($self, $secs) = @_;
        my $end = Time::HiRes::time() + $secs;
        while ((my $left = $end - Time::HiRes::time()) > 0) {
            my $sel = IO::Select->new($self->{l},
                map { $_->{s} } values %{ $self->{conns} });
            for my $s ($sel->can_read($left > 0.05 ? 0.05 : $left)) {
                if ($s == $self->{l}) {
                    while (my $c = $self->{l}->accept) {
                        $c->blocking(0);
                        $self->{conns}{ fileno $c } = { s => $c, in => '' };
                    }
                    next;
                }
                my $c = $self->{conns}{ fileno $s };
                my $n = sysread($s, my $buf, 65536);
                next if !defined $n && ($! == Errno::EAGAIN()
                    || $! == Errno::EWOULDBLOCK() || $! == Errno::EINTR());
                $c->{in} .= $buf if $n;
                my $e = index($c->{in}, "\r\n\r\n");
                if ($e >= 0) {
                    my ($line, @h) = split /\r\n/, substr($c->{in}, 0, $e);
                    my %h = map { my ($k, $v) = split /:\s*/, $_, 2;
                        (lc $k => $v) } @h;
                    my $cl = $h{'content-length'} // 0;
                    if (length($c->{in}) >= $e + 4 + $cl) {
                        my $body = substr($c->{in}, $e + 4, $cl);
                        push @{ $self->{got} }, { line => $line,
                            headers => \%h, body => $body,
                            json => eval { JSON::PP->new->utf8->decode($body) },
                            at => Time::HiRes::time() };
                        syswrite($s, "HTTP/1.1 200 OK\r\nContent-Length: 0"
                            . "\r\nConnection: close\r\n\r\n");
                        $n = 0;
                    }
                }
                if (!$n) {
                    delete $self->{conns}{ fileno $s };
                    close $s;
                }
            }
        }
    }

    # pumps until $n callbacks arrived (or the timeout); returns them all
    sub wait_for {
        my ($self, $n, $timeout) = @_;
        my $end = Time::HiRes::time() + ($timeout // 5);
        $self->pump(0.02) while $self->got < $n && Time::HiRes::time() < $end;
        return $self->got;
    }
}

my $rcv = Receiver->new;

# ---------------------------------------------------------------------------

my $sim = PgSim->start(seed => 42, failRate => 0, latencyMs => [0, 5],
    decisionMs => [50, 100]);
ok($sim->alive, 'simulator started') or BAIL_OUT('no simulator');

my $n_order = 0;
sub payment {
    my (%o) = @_;
    return {
        orderId     => $o{orderId} // sprintf('ORDER-%06d', ++$n_order),
        cardType    => $o{cardType} // 'SAMSUNG',
        cardNo      => $o{cardNo} // '1234-5678-9814-1451',
        amount      => $o{amount} // 5000,
        callbackUrl => $o{callbackUrl} // $rcv->url,
    };
}

sub create {
    my ($body, %o) = @_;
    return $sim->request('POST', '/api/v1/payments',
        user => $o{user} // 'u1', body => $body, %o);
}

sub fail_ok {
    my ($r, $status, $code, $msg, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($r->{status}, $status, "$name: $status") or diag($r->{raw});
    is_deeply($r->{json}{meta}, { result => 'FAIL', errorCode => $code,
        message => $msg // $r->{json}{meta}{message} }, "$name: meta")
        if $r->{json};
    ok(exists $r->{json}{data} && !defined $r->{json}{data},
        "$name: data null");
}

sub get_txn {
    my ($key, %o) = @_;
    (my $k = $key) =~ s/:/%3A/g;
    return $sim->request('GET', "/api/v1/payments/$k", user => $o{user} // 'u1',
        (defined $o{timeout} ? (timeout => $o{timeout}) : ()));
}

sub wait_status {
    my ($key, $want, %o) = @_;
    my $end = time + ($o{timeout} // 3);
    while (1) {
        my $r = get_txn($key, %o);
        return $r if ($r->{json}{data}{status} // '') eq $want || time > $end;
        sleep 0.02;
    }
}

# ---------------------------------------------------------------------------
subtest 'startup settings and defaults' => sub {
    my $s = $sim->settings;
    is($s->{seed}, 42, 'seed');
    is_deeply($s->{latencyMs}, [0, 5], 'latency from start()');
    is_deeply($s->{outcomeWeights}, { SUCCESS => 70, LIMIT => 20,
        INVALID => 10 }, 'outcome weights 70/20/10');
    is($s->{cards}{'4444-4444-4444-4444'}, 'FAIL500', 'built-in cards');
    is($s->{callback}{mode}, 'normal', 'callbacks normal');
    ok(!defined $s->{hmacSecret}, 'unsigned by default');

    my $d = PgSim->start(quiet => 1);
    my $ds = $d->settings;
    is($ds->{failRate}, 0.4, 'default fail rate 0.4');
    is_deeply($ds->{latencyMs}, [100, 500], 'default latency 100-500 ms');
    is_deeply($ds->{decisionMs}, [1000, 5000], 'default decision 1-5 s');
    my @el = map { $_->{elapsed} } $d->concurrent([ map {
        [ 'GET', '/api/v1/payments/x', user => 1 ] } 1 .. 6 ]);
    ok(!(grep { $_ < 0.095 || $_ > 2.0 } @el), 'default latency observed: '
        . join(' ', map { sprintf '%.3f', $_ } @el));
    $d->stop;
    ok(!$d->alive, 'stop() ends and reaps the process');
};

subtest 'validation' => sub {
    my $msg_user = '유저 ID 헤더는 필수입니다.';
    fail_ok(create(payment(), user => undef), 400, 'Bad Request', $msg_user,
        'no X-USER-ID');
    fail_ok(create(payment(), user => ''), 400, 'Bad Request', $msg_user,
        'empty X-USER-ID');
    fail_ok(create('{"orderId":'), 400, 'Bad Request', undef, 'broken JSON');
    fail_ok(create('[1,2]'), 400, 'Bad Request', undef, 'JSON array');
    for my $f (qw(orderId cardType cardNo amount callbackUrl)) {
        my $b = payment();
        delete $b->{$f};
        fail_ok(create($b), 400, 'Bad Request', undef, "no $f");
    }
    fail_ok(create(payment(cardType => 'SAM')), 400, 'Bad Request',
        "필드 'cardType'의 값 'SAM'이(가) 예상 타입(CardTypeDto)과 일치하지"
        . ' 않습니다. 사용 가능한 값 : [SAMSUNG, KB, HYUNDAI]', 'cardType SAM');
    fail_ok(create(payment(orderId => '12345')), 400, 'Bad Request',
        '주문 ID는 6자리 이상 문자열이어야 합니다.', 'orderId of 5 chars');
    for my $no ('1234567898141451', '1234-5678-9814-145', 'abcd-5678-9814-1451',
        '1234-5678-9814-14511')
    {
        fail_ok(create(payment(cardNo => $no)), 400, 'Bad Request',
            '카드 번호는 xxxx-xxxx-xxxx-xxxx 형식이어야 합니다.', "cardNo $no");
    }
    for my $a (0, -1, 1.5, '100', JSON::PP::true) {
        fail_ok(create(payment(amount => $a)), 400, 'Bad Request',
            '결제금액은 양의 정수여야 합니다.', "amount $a");
    }
    for my $u ('ftp://x/y', 'https://127.0.0.1/cb', 'localhost:8080/cb',
        'http://', 'http://h:99999/')
    {
        fail_ok(create(payment(callbackUrl => $u)), 400, 'Bad Request', undef,
            "callbackUrl $u");
    }
    fail_ok(create(payment(), content_type => 'text/plain'), 415,
        'Unsupported Media Type', undef, 'text/plain body');
    fail_ok(create('x' x 70000), 413, 'Payload Too Large', undef,
        'body over 64 KB');

    fail_ok($sim->request('GET', '/api/v1/payments/20261121:TR:000000'),
        400, 'Bad Request', $msg_user, 'GET without X-USER-ID');
    fail_ok(get_txn('20261121:TR:000000'), 404, 'Not Found',
        '(transactionKey: 20261121:TR:000000) 결제건이 존재하지 않습니다.',
        'GET unknown key');
    fail_ok($sim->request('GET', '/api/v1/payments', user => 'u1'), 400,
        'Bad Request', undef, 'list without orderId');
    fail_ok($sim->request('GET', '/api/v1/payments?orderId=NOPE-000', user => 'u1'),
        404, 'Not Found', '(orderId: NOPE-000) 에 해당하는 결제건이 존재하지'
        . ' 않습니다.', 'list of an unknown order');
    fail_ok($sim->request('POST', '/api/v1/payments/20261121:TR:000000/cancel',
        user => 'u1'), 404, 'Not Found', undef, 'cancel unknown key');
    fail_ok($sim->request('DELETE', '/api/v1/payments', user => 'u1'), 405,
        'Method Not Allowed', undef, 'DELETE');
    fail_ok($sim->request('GET', '/api/v2/other', user => 'u1'), 404,
        'Not Found', undef, 'unknown route');

    my $c = $sim->counters;
    is($c->{created}, 0, 'nothing created by bad requests');
    ok($c->{create_400} >= 20, "create_400 counted ($c->{create_400})");
};

my ($k_ok);
subtest 'create, get, list, cancel' => sub {
    my $b = payment(orderId => 'ORDER-A00001', cardType => 'KB',
        cardNo => '1111-1111-1111-1111', amount => 12345);
    my $r = create($b, user => '135135');
    is($r->{status}, 200, 'create 200');
    is($r->{headers}{'content-type'}, 'application/json', 'JSON');
    like($r->{body}, qr/\A\{"meta":\{"result":"SUCCESS","errorCode":null,"message":null\},"data":\{"transactionKey":"[^"]+","status":"PENDING","reason":null\}\}\z/,
        'exact create document');
    my $key = $k_ok = $r->{json}{data}{transactionKey};
    like($key, $KEY_RE, "transaction key $key");

    $r = get_txn($key, user => '135135');
    is($r->{status}, 200, 'get 200');
    is_deeply($r->{json}, { meta => { result => 'SUCCESS', errorCode => undef,
        message => undef }, data => { transactionKey => $key,
        orderId => 'ORDER-A00001', cardType => 'KB',
        cardNo => '1111-1111-1111-1111', amount => 12345,
        status => 'PENDING', reason => undef } }, 'get: the full transaction');
    is(get_txn($key, user => 'someone-else')->{status}, 404,
        "another user's transaction is 404");

    $r = wait_status($key, 'SUCCESS', user => '135135');
    is($r->{json}{data}{status}, 'SUCCESS', '1111 card decided SUCCESS');
    is($r->{json}{data}{reason}, $APPROVED, 'with the approval reason');

    my $r2 = create(payment(orderId => 'ORDER-A00001',
        cardNo => '2222-2222-2222-2222'), user => '135135');
    my $k2 = $r2->{json}{data}{transactionKey};
    isnt($k2, $key, 'a second transaction, another key');
    $r = $sim->request('GET', '/api/v1/payments?orderId=ORDER-A00001',
        user => '135135');
    is($r->{status}, 200, 'list 200');
    is($r->{json}{data}{orderId}, 'ORDER-A00001', 'list orderId');
    is_deeply([ map { $_->{transactionKey} } @{ $r->{json}{data}{transactions} } ],
        [ $key, $k2 ], 'both transactions, oldest first');
    is_deeply([ sort keys %{ $r->{json}{data}{transactions}[0] } ],
        [qw(reason status transactionKey)], 'list items: key, status, reason');
    is($sim->request('GET', '/api/v1/payments?orderId=ORDER-A00001',
        user => 'other')->{status}, 404, "another user's order is 404");

    $r = wait_status($k2, 'FAILED', user => '135135');
    is($r->{json}{data}{reason}, $LIMIT, '2222 card: limit exceeded');
    fail_ok($sim->request('POST', "/api/v1/payments/$k2/cancel",
        user => '135135'), 409, 'Conflict', undef, 'a FAILED one is not cancelable');

    my $r3 = create(payment(cardNo => '3333-3333-3333-3333'));
    $r = wait_status($r3->{json}{data}{transactionKey}, 'FAILED');
    is($r->{json}{data}{reason}, $INVALID, '3333 card: invalid card');

    # cancel a SUCCESS (refund / net-cancel), twice
    my $cancel = sub { $sim->request('POST', "/api/v1/payments/$key/cancel",
        user => '135135') };
    my $c0 = $sim->counters;
    $r = $cancel->();
    is($r->{status}, 200, 'cancel a SUCCESS: 200');
    is($r->{json}{data}{status}, 'CANCELLED', 'CANCELLED');
    is($r->{json}{data}{reason}, 'cancelled by merchant', 'reason');
    my $again = $cancel->();
    is($again->{status}, 200, 'cancel again: 200');
    is($again->{body}, $r->{body}, 'the same answer');
    is(get_txn($key, user => '135135')->{json}{data}{status}, 'CANCELLED',
        'GET shows CANCELLED');
    my $c1 = $sim->counters;
    is($c1->{cancel} - $c0->{cancel}, 2, 'both cancels counted');
    is($c1->{cancel_repeat} - $c0->{cancel_repeat}, 1, 'one a repeat');
    is($sim->request('POST', "/api/v1/payments/$key/cancel",
        user => 'other')->{status}, 404, "cancel another user's: 404");

    # cancel a PENDING one: it is never decided, no callback
    $sim->control(cards => { '6666-6666-6666-6666' => 'PENDING' });
    my $kp = create(payment(cardNo => '6666-6666-6666-6666'))
        ->{json}{data}{transactionKey};
    $r = $sim->request('POST', "/api/v1/payments/$kp/cancel", user => 'u1');
    is($r->{json}{data}{status}, 'CANCELLED', 'cancel a PENDING: CANCELLED');
    sleep 0.2;
    is(get_txn($kp)->{json}{data}{status}, 'CANCELLED', 'stays CANCELLED');
    my ($t) = @{ $sim->transactions(orderId => $r->{json}{data}{orderId}) };
    is($t->{cancelledFrom}, 'PENDING', '/__transactions: cancelled from PENDING');
    is_deeply($t->{callbacks}, [], 'no callback for it');

    # keys are unique
    my %seen;
    for (1 .. 50) {
        my $k = create(payment())->{json}{data}{transactionKey} // '';
        $seen{$k}++;
    }
    is(scalar(grep { /$KEY_RE/ } keys %seen), 50, '50 creates, 50 distinct keys');
    $rcv->pump(0.3);
};

subtest 'HTTP: keep-alive, pipelining, chunked body, numeric orderId' => sub {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $sim->port) or die $!;
    my $body = $JSON->encode(payment());
    my $one = PgSim::build_request('POST', '/api/v1/payments', user => 'u1',
        body => $body, keepalive => 1);
    my $get = PgSim::build_request('GET', '/api/v1/payments?orderId=nope00',
        user => 'u1');
    print $s $one . $get;           # two requests at once
    local $/;
    my $all = <$s>;
    my @st = $all =~ m{HTTP/1\.1 (\d{3}) }g;
    is_deeply(\@st, [200, 404], 'two pipelined answers, in order');
    like($all, qr/Connection: keep-alive.*Connection: close/s,
        'keep-alive, then close as asked');

    my $chunks = join('', map { sprintf("%x\r\n%s\r\n", length, $_) }
        unpack('(a7)*', $body)) . "0\r\n\r\n";
    my $r = $sim->request('POST', '/api/v1/payments', raw =>
        "POST /api/v1/payments HTTP/1.1\r\nHost: x\r\nX-USER-ID: u1\r\n"
        . "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        . "Connection: close\r\n\r\n$chunks");
    is($r->{status}, 200, 'chunked request body');

    my $b = payment();
    $b->{orderId} = 1351039135;
    $r = create($b);
    is($r->{status}, 200, 'numeric orderId accepted (as the real one does)');
    my ($t) = @{ $sim->transactions(orderId => '1351039135') };
    is($t->{orderId}, '1351039135', 'kept as a string');
    $rcv->pump(0.2);
};

subtest 'default randomness: 40% 500s, 70/20/10 decisions' => sub {
    $sim->control(failRate => 0.4, decisionMs => [0, 0], seed => 7,
        callback => { mode => 'drop' });
    my $c0 = $sim->counters;
    my %st;
    my @keys;
    # the k-th create draws the k-th number of the seeded stream: the
    # count of 500s does not depend on the order of arrival
    for my $r ($sim->concurrent([ map { [ 'POST', '/api/v1/payments',
        user => 'u1', body => payment() ] } 1 .. 200 ]))
    {
        $st{ $r->{status} }++;
        push @keys, $r->{json}{data}{transactionKey} if $r->{status} == 200;
        if ($r->{status} == 500) {
            is_deeply($r->{json}, { meta => { result => 'FAIL',
                errorCode => 'Internal Server Error', message => $UNSTABLE },
                data => undef }, 'the 500 document') if $st{500} == 1;
        }
    }
    my $fails = $st{500} // 0;
    ok($fails >= 60 && $fails <= 100, "about 40% 500s: $fails of 200");
    is(($st{200} // 0) + $fails, 200, 'only 200 and 500');
    my $c1 = $sim->counters;
    is($c1->{create_500} - $c0->{create_500}, $fails, 'create_500 counted');
    is($c1->{created} - $c0->{created}, 200 - $fails,
        'a 500 created nothing');
    sleep 0.2;
    my %out;
    for my $t (@{ $sim->transactions }) {
        next unless grep { $_ eq $t->{transactionKey} } @keys;
        $out{ $t->{status} eq 'SUCCESS' ? 'SUCCESS' : $t->{reason} }++;
    }
    my $n = 200 - $fails;
    my ($s, $l, $i) = map { $_ // 0 } @out{ 'SUCCESS', $LIMIT, $INVALID };
    is($s + $l + $i, $n, 'all decided');
    ok(abs($s / $n - 0.7) < 0.15 && abs($l / $n - 0.2) < 0.12
        && abs($i / $n - 0.1) < 0.1,
        "SUCCESS/LIMIT/INVALID about 70/20/10: $s/$l/$i of $n");

    # the same seed gives the same run
    my $run = sub {
        $sim->control(seed => 1234);
        $sim->control(seed => 99);      # a change of seed restarts streams
        $sim->control(seed => 1234);
        join '', map { create(payment())->{status} == 500 ? 'x' : '.' } 1 .. 30;
    };
    my $a = $run->();
    is($run->(), $a, "seeded runs repeat: $a");
    $sim->control(failRate => 0, decisionMs => [50, 100],
        callback => { mode => 'normal' });
};

subtest 'deterministic cards, failNext, opFailRate' => sub {
    $sim->control(failRate => 1);
    is(create(payment(cardNo => '1111-1111-1111-1111'))->{status}, 500,
        'failRate 1 applies to every card');
    $sim->control(failRate => 0);
    my $c0 = $sim->counters;
    for (1 .. 3) {
        my $r = create(payment(cardNo => '4444-4444-4444-4444'));
        is($r->{json}{meta}{message}, $UNSTABLE, "4444: 500 ($_)")
            if $r->{status} == 500;
        is($r->{status}, 500, "4444 card: 500 ($_)");
    }
    my $r = create(payment(cardNo => '5555-5555-5555-5555'), timeout => 0.4);
    is($r->{status}, 0, '5555 card: no answer');
    is($r->{error}, 'timeout', 'the client times out');
    my $c1 = $sim->counters;
    is($c1->{create} - $c0->{create}, 4, 'all four creates counted');
    is($c1->{created} - $c0->{created}, 0, 'none created');
    is($c1->{hung} - $c0->{hung}, 1, 'one hung');

    $sim->control(cards => { '9999-0000-0000-0001' => 'LIMIT',
        '1111-1111-1111-1111' => undef });
    my $k = create(payment(cardNo => '9999-0000-0000-0001'))
        ->{json}{data}{transactionKey};
    is(wait_status($k, 'FAILED')->{json}{data}{reason}, $LIMIT,
        'a card mapped by control');
    ok(!exists $sim->settings->{cards}{'1111-1111-1111-1111'},
        'a card mapping removed with null');

    $sim->control(failNext => 2);
    is_deeply([ map { create(payment())->{status} } 1 .. 3 ], [500, 500, 200],
        'failNext 2: two 500s, then normal');
    $sim->control(opFailRate => { get => 1 });
    is(get_txn($k)->{status}, 500, 'opFailRate get 1: GET answers 500');
    $sim->control(opFailRate => { get => 0 });
    is(get_txn($k)->{status}, 200, 'and back');
    $sim->control(opLatencyMs => { get => 600 });
    my $r2 = get_txn($k);
    ok($r2->{elapsed} >= 0.6, sprintf 'opLatencyMs get 600: %.2f s',
        $r2->{elapsed});
    ok(create(payment())->{elapsed} < 0.5, 'create not slowed');
    $sim->control(opLatencyMs => { get => undef });
    ok(get_txn($k)->{elapsed} < 0.5, 'removed with null');

    my $bad = $sim->request('POST', '/__control', control => 1,
        body => { failRate => 2 });
    is($bad->{status}, 400, 'a bad setting is 400');
    like($bad->{json}{error}, qr/failRate/, 'naming it');
    is($sim->settings->{failRate}, 0, 'and changes nothing');
    is($sim->request('POST', '/__control', control => 1,
        body => { nonsense => 1 })->{status}, 400, 'unknown setting 400');
    $rcv->pump(0.3);
};

subtest 'callbacks' => sub {
    $rcv->pump(0.3);
    $rcv->clear;
    my $c0 = $sim->counters;
    (my $url = $rcv->url('/api/v1/payments/callback')) =~ s/127\.0\.0\.1/localhost/;
    my $b = payment(cardNo => '1111-1111-1111-1112', cardType => 'HYUNDAI',
        callbackUrl => $url);
    $sim->control(cards => { '1111-1111-1111-1112' => 'SUCCESS' });
    my $key = create($b)->{json}{data}{transactionKey};
    my @got = $rcv->wait_for(1, 3);
    is(scalar @got, 1, 'one callback');
    is($got[0]{line}, 'POST /api/v1/payments/callback HTTP/1.1',
        'POSTed to the callbackUrl path');
    is($got[0]{headers}{'content-type'}, 'application/json', 'JSON');
    ok(!exists $got[0]{headers}{'x-pg-signature'}, 'unsigned');
    is_deeply($got[0]{json}, { transactionKey => $key,
        orderId => $b->{orderId}, cardType => 'HYUNDAI',
        cardNo => $b->{cardNo}, amount => 5000, status => 'SUCCESS',
        reason => $APPROVED }, 'the full transaction');
    like($got[0]{body}, qr/\A\{"transactionKey":.*"reason":[^,]*\}\z/,
        'fields in the real order');
    $rcv->pump(0.3);
    is(scalar $rcv->got, 1, 'sent once');
    my $c1 = $sim->counters;
    is($c1->{callbacks_sent} - $c0->{callbacks_sent}, 1, 'callbacks_sent');
    my ($t) = @{ $sim->transactions(orderId => $b->{orderId}) };
    is($t->{callbacks}[0]{status}, 200, '/__transactions records the answer');

    # drop
    $rcv->clear;
    $sim->control(callback => { mode => 'drop' });
    $key = create(payment())->{json}{data}{transactionKey};
    $rcv->pump(0.4);
    is(scalar $rcv->got, 0, 'drop: nothing arrives');
    isnt(get_txn($key)->{json}{data}{status}, 'PENDING', 'yet it was decided');
    is($sim->counters->{callbacks_dropped} - $c1->{callbacks_dropped}, 1,
        'callbacks_dropped');

    # duplicate
    $rcv->clear;
    $sim->control(callback => { mode => 'duplicate' });
    $key = create(payment())->{json}{data}{transactionKey};
    @got = $rcv->wait_for(2, 3);
    $rcv->pump(0.2);
    is(scalar $rcv->got, 2, 'duplicate: two callbacks');
    is($got[0]{body}, $got[1]{body}, 'identical');
    is($got[0]{json}{transactionKey}, $key, 'of that transaction');

    # stale: the decided state, then a late PENDING copy
    $rcv->clear;
    $sim->control(callback => { mode => 'stale' });
    $key = create(payment())->{json}{data}{transactionKey};
    @got = $rcv->wait_for(2, 3);
    is_deeply([ map { $_->{json}{status} } @got ],
        [ get_txn($key)->{json}{data}{status}, 'PENDING' ],
        'stale: decided first, then PENDING');

    # reorder: later decisions delivered first
    $rcv->clear;
    $sim->control(callback => { mode => 'reorder', reorderWindow => 3 },
        decisionMs => [30, 30]);
    my @keys;
    for (1 .. 3) {
        push @keys, create(payment())->{json}{data}{transactionKey};
        $rcv->pump(0.05);
    }
    @got = $rcv->wait_for(3, 3);
    is_deeply([ map { $_->{json}{transactionKey} } @got ], [ reverse @keys ],
        'reorder: newest decision first');
    $rcv->clear;
    $sim->control(callback => { reorderWindow => 5, reorderWaitMs => 200 });
    $key = create(payment())->{json}{data}{transactionKey};
    @got = $rcv->wait_for(1, 3);
    is($got[0]{json}{transactionKey}, $key,
        'a lone held callback leaves after reorderWaitMs');

    # delay
    $rcv->clear;
    $sim->control(callback => { mode => 'normal', delayMs => 400 });
    my $t0 = time;
    $key = create(payment())->{json}{data}{transactionKey};
    @got = $rcv->wait_for(1, 3);
    ok($got[0]{at} - $t0 >= 0.4, sprintf 'delayMs 400: after %.2f s',
        $got[0]{at} - $t0);

    # HMAC-signed (Stripe's scheme)
    $rcv->clear;
    my $secret = 'whsec_test_1234';
    $sim->control(hmacSecret => $secret, callback => { delayMs => 0 });
    $key = create(payment())->{json}{data}{transactionKey};
    @got = $rcv->wait_for(1, 3);
    my $sig = $got[0]{headers}{'x-pg-signature'} // '';
    my ($ts, $v1) = $sig =~ /\At=(\d+),v1=([0-9a-f]{64})\z/;
    ok($ts, "signature header: $sig");
    is($v1, hmac_sha256_hex("$ts.$got[0]{body}", $secret),
        'v1 = HMAC-SHA256(secret, "t.body")');
    ok(abs(time - $ts) <= 5, 'fresh timestamp');
    $rcv->clear;
    $sim->control(callback => { timestampSkewSec => 600 });
    create(payment());
    @got = $rcv->wait_for(1, 3);
    ($ts) = ($got[0]{headers}{'x-pg-signature'} // '') =~ /t=(\d+)/;
    ok(time - $ts >= 599, 'timestampSkewSec: an old (replayed) timestamp');
    $sim->control(hmacSecret => undef,
        callback => { timestampSkewSec => 0 });

    # a receiver that is down: ignored, not retried
    my $c2 = $sim->counters;
    my $dead = PgSim::free_port();
    $key = create(payment(callbackUrl => "http://127.0.0.1:$dead/cb"))
        ->{json}{data}{transactionKey};
    ok($sim->wait_counters(sub { $_[0]{callbacks_failed}
        > $c2->{callbacks_failed} }, timeout => 3), 'callbacks_failed');
    sleep 0.2;
    my $c3 = $sim->counters;
    is($c3->{callbacks_failed} - $c2->{callbacks_failed}, 1, 'no retry');
    like(get_txn($key)->{json}{data}{status}, qr/\A(SUCCESS|FAILED)\z/,
        'the transaction is decided all the same');
};

subtest 'easy pay and transfer' => sub {
    $rcv->pump(0.3);
    $rcv->clear;
    my $easy = sub {
        my (%o) = @_;
        return { orderId => sprintf('EASY-%06d', ++$n_order),
            method => 'EASY_PAY', provider => $o{provider} // 'KAKAOPAY',
            amount => 3000, callbackUrl => $rcv->url };
    };
    $sim->control(providers => { KAKAOPAY => 'SUCCESS' });
    my $b = $easy->();
    my $r = create($b);
    is($r->{status}, 200, 'EASY_PAY create: 200');
    my $k = $r->{json}{data}{transactionKey};
    my $g = wait_status($k, 'SUCCESS')->{json}{data};
    is_deeply($g, { transactionKey => $k, orderId => $b->{orderId},
        method => 'EASY_PAY', provider => 'KAKAOPAY', amount => 3000,
        status => 'SUCCESS', reason => $APPROVED },
        'decided, shown with its method and provider, no card');
    my @got = $rcv->wait_for(1, 3);
    is($got[0]{json}{provider}, 'KAKAOPAY', 'the callback names the provider');

    for my $case ([ { provider => 'TOSSPAY' }, 'unknown provider' ],
                  [ { provider => undef }, 'no provider' ],
                  [ { method => 'CASH' }, 'unknown method' ]) {
        my $bad = { %{ $easy->() }, %{ $case->[0] } };
        delete $bad->{provider} unless defined $bad->{provider};
        fail_ok(create($bad), 400, 'Bad Request', undef, $case->[1]);
    }
    $sim->control(providers => { NAVERPAY => 'LIMIT' });
    $k = create($easy->(provider => 'NAVERPAY'))->{json}{data}{transactionKey};
    is(wait_status($k, 'FAILED')->{json}{data}{reason}, $LIMIT,
        'providers: NAVERPAY mapped to LIMIT');
    $sim->control(providers => { NAVERPAY => undef });
    ok(!exists $sim->settings->{providers}{NAVERPAY}, 'removed with null');
    is($sim->request('POST', '/__control', control => 1,
        body => { providers => { TOSSPAY => 'SUCCESS' } })->{status}, 400,
        'an unknown provider in providers: 400');
    $sim->control(failNext => 1);
    is(create($easy->())->{status}, 500, 'failNext applies to easy pay');

    # transfers: a virtual account, decided by a deposit only
    my @t = gmtime(time + 3600);
    my $due = sprintf '%04d-%02d-%02dT%02d:%02d:%02dZ', $t[5] + 1900,
        $t[4] + 1, @t[3, 2, 1, 0];
    my $tb = { orderId => sprintf('XFER-%06d', ++$n_order),
        method => 'TRANSFER', amount => 7000, dueDate => $due,
        callbackUrl => $rcv->url };
    $r = create($tb);
    is($r->{status}, 200, 'TRANSFER create: 200');
    my $va = $r->{json}{data}{virtualAccount};
    is($r->{json}{data}{status}, 'PENDING', 'PENDING');
    like($va->{accountNumber}, qr/^\d{3}-\d{6}-\d{5}$/, 'an account number');
    ok(length $va->{bank} && length $va->{holder}, 'a bank and a holder');
    is($va->{dueDate}, $due, 'the dueDate asked for');
    $k = $r->{json}{data}{transactionKey};
    $rcv->pump(0.3);
    $rcv->clear;
    $rcv->pump(0.3);
    is(get_txn($k)->{json}{data}{status}, 'PENDING',
        'never decided by a draw');
    is_deeply(get_txn($k)->{json}{data}{virtualAccount}, $va,
        'GET shows the virtual account');
    is(scalar $rcv->got, 0, 'no callback before the deposit');
    fail_ok(create({ %$tb, dueDate => '2000-01-01T00:00:00Z' }), 400,
        'Bad Request', undef, 'a dueDate past');
    fail_ok(create({ %$tb, dueDate => 'tomorrow' }), 400, 'Bad Request', undef,
        'a dueDate not a timestamp');
    my %nodue = %$tb;
    delete $nodue{dueDate};
    fail_ok(create(\%nodue), 400, 'Bad Request', undef, 'no dueDate');

    my $d = $sim->request('POST', '/__deposit', control => 1,
        body => { transactionKey => $k });
    is($d->{status}, 200, '/__deposit: 200');
    is($d->{json}{status}, 'SUCCESS', 'the transfer is SUCCESS');
    is_deeply($d->{json}{late}, JSON::PP::false, 'in time');
    @got = $rcv->wait_for(1, 3);
    is($got[0]{json}{status}, 'SUCCESS', 'the deposit callback');
    is($got[0]{json}{method}, 'TRANSFER', 'names the method');
    is($sim->request('POST', '/__deposit', control => 1,
        body => { transactionKey => $k })->{status}, 409,
        'a second deposit: 409');
    is($sim->request('POST', '/__deposit', control => 1,
        body => { transactionKey => 'nope' })->{status}, 404, 'unknown: 404');
    my $cancel = $sim->request('POST', "/api/v1/payments/$k/cancel",
        user => 'u1');
    is($cancel->{json}{data}{status}, 'CANCELLED', 'a deposit is refunded by'
        . ' cancel');

    # a deposit after the dueDate is taken, marked late.  The dueDate has
    # whole seconds: 3 s ahead, so that a slow create (a loaded machine)
    # still reaches the simulator before it (1 s ahead was once "past")
    @t = gmtime(time + 3);
    $due = sprintf '%04d-%02d-%02dT%02d:%02d:%02dZ', $t[5] + 1900,
        $t[4] + 1, @t[3, 2, 1, 0];
    $r = create({ %$tb, orderId => 'XFER-LATE-1', dueDate => $due });
    is($r->{status}, 200, 'a transfer due in 3 s: 200');
    $k = $r->{json}{data}{transactionKey};
    my $end = time + 8;
    sleep 0.05 while time < $end && !gm_passed($due);
    $d = $sim->request('POST', '/__deposit', control => 1,
        body => { transactionKey => $k });
    is_deeply($d->{json}{late}, JSON::PP::true, 'a late deposit is marked late');
    is($sim->counters->{deposits}, 2, 'counter deposits');
    $sim->control(providers => { KAKAOPAY => undef });
    $rcv->pump(0.3);
};

# has the UTC time $due (yyyy-mm-ddThh:mm:ssZ) passed?
sub gm_passed {
    require Time::Local;
    my @p = $_[0] =~ /(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)Z/;
    return time > Time::Local::timegm($p[5], $p[4], $p[3], $p[2], $p[1] - 1,
        $p[0]);
}

subtest 'faults: hang' => sub {
    $sim->control(hang => JSON::PP::true);
    my $c0 = $sim->counters;
    my $r = create(payment(), timeout => 0.4);
    is($r->{error}, 'timeout', 'hang: POST times out');
    $r = get_txn($k_ok, user => '135135', timeout => 0.4);
    is($r->{error}, 'timeout', 'hang: GET too');
    is($sim->counters->{hung} - $c0->{hung}, 2, 'hung counted');
    is($sim->counters->{created} - $c0->{created}, 0, 'nothing created');

    # a hung request is released (closed) when the hang stops
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $sim->port) or die $!;
    print $s PgSim::build_request('GET', '/api/v1/payments?orderId=x00000',
        user => 'u1');
    sleep 0.1;
    $sim->control(hang => ['create']);
    my $sel = IO::Select->new($s);
    ok($sel->can_read(2), 'released when the hang stops');
    is(sysread($s, my $buf, 100), 0, 'closed without an answer');

    is(get_txn($k_ok, user => '135135')->{status}, 200,
        'hang [create]: GET answers');
    is(create(payment(), timeout => 0.3)->{error}, 'timeout',
        'hang [create]: POST hangs');
    $sim->control(hang => JSON::PP::false, hangAfterCreate => JSON::PP::true);
    my $b = payment();
    is(create($b, timeout => 0.3)->{error}, 'timeout',
        'hangAfterCreate: no answer ...');
    my ($t) = @{ $sim->transactions(orderId => $b->{orderId}) };
    ok($t && $t->{transactionKey} =~ $KEY_RE, '... but the transaction exists');
    $sim->control(hangAfterCreate => JSON::PP::false);
    $rcv->pump(0.3);
};

subtest 'faults: reset, refuse' => sub {
    $sim->control(reset => JSON::PP::true);
    my $c0 = $sim->counters;
    my $r = create(payment(), timeout => 2);
    is($r->{status}, 0, 'reset: no answer');
    is($r->{error}, 'reset', 'connection reset by peer');
    $r = get_txn($k_ok, user => '135135', timeout => 2);
    is($r->{error}, 'reset', 'GET reset too');
    my $c1 = $sim->counters;
    is($c1->{reset} - $c0->{reset}, 2, 'reset counted');
    is($c1->{create} - $c0->{create}, 1, 'the create counted as received');
    is($c1->{created} - $c0->{created}, 0, 'but nothing created');
    $sim->control(reset => ['get']);
    is(create(payment())->{status}, 200, 'reset [get]: POST answers');
    $sim->control(reset => JSON::PP::false);

    # a keep-alive connection a client holds is closed by the outage
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $sim->port) or die $!;
    print $s PgSim::build_request('GET', '/api/v1/payments?orderId=x00000',
        user => 'u1', keepalive => 1);
    my $sel = IO::Select->new($s);
    $sel->can_read(2);
    sysread($s, my $buf, 65536);
    like($buf, qr{\AHTTP/1\.1 404}, 'keep-alive connection open');

    my $set = $sim->control(refuse => JSON::PP::true);
    ok(!$set->{listening}, 'refuse: not listening');
    $r = create(payment(), timeout => 2);
    is($r->{error}, 'refused', 'connection refused');
    ok($sel->can_read(2) && !sysread($s, $buf, 100),
        'the held keep-alive connection was closed');
    is($sim->counters->{create}, $c1->{create} + 1,
        'control port still answers; refused requests never counted');
    $set = $sim->control(refuse => JSON::PP::false);
    ok($set->{listening}, 'refuse off: listening again');
    is(create(payment())->{status}, 200, 'accepted again, same port');
    $rcv->pump(0.3);
};

subtest '300 concurrent connections' => sub {
    $sim->control(latencyMs => [200, 300], failRate => 0.4,
        callback => { mode => 'drop' });
    my $c0 = $sim->counters;
    my $t0 = time;
    my @res = $sim->concurrent([ map { [ 'POST', '/api/v1/payments',
        user => "u$_", body => payment() ] } 1 .. 320 ], timeout => 15);
    my $took = time - $t0;
    my %st;
    $st{ $_->{status} }++ for @res;
    is(($st{200} // 0) + ($st{500} // 0), 320,
        'all 320 answered 200 or 500: ' . join(' ', map { "$_:$st{$_}" }
        sort keys %st));
    ok($took < 6, sprintf 'side by side: %.2f s for 320 requests of 200-300 ms',
        $took);
    my $c1 = $sim->counters;
    is($c1->{connections} - $c0->{connections}, 320, '320 connections');
    is($c1->{created} - $c0->{created}, $st{200} // 0, 'created = 200s');
    $sim->control(latencyMs => [0, 5], failRate => 0,
        callback => { mode => 'normal' });
};

subtest 'counters, transactions, reset, log' => sub {
    my $c = $sim->counters;
    for (qw(create created create_500 get list cancel callbacks_sent
        callbacks_failed connections hung reset))
    {
        ok(defined $c->{$_} && $c->{$_} > 0, "counter $_ = " . ($c->{$_} // 'undef'));
    }
    my $all = $sim->transactions;
    is(scalar @$all, $c->{created}, '/__transactions lists every transaction');
    is_deeply([ sort keys %{ $all->[0] } ], [ sort qw(transactionKey userId
        orderId cardType cardNo amount callbackUrl status reason createdAt
        decidedAt callbacks cancelCount), ($all->[0]{cancelledFrom}
        ? qw(cancelledFrom cancelledAt) : ()) ], 'with their details');

    $sim->control(failRate => 0.9, hang => ['get'], seed => 5);
    my $s = $sim->reset;
    is($s->{failRate}, 0, 'reset: settings back to the startup ones');
    is_deeply($s->{hang}, JSON::PP::false, 'hang off');
    is($s->{seed}, 42, 'startup seed');
    my $z = $sim->counters;
    is(scalar(grep { $z->{$_} } qw(create created get list cancel hung reset
        callbacks_sent connections)), 0, 'counters zero');
    is_deeply($sim->transactions, [], 'no transactions');
    is(get_txn($k_ok, user => '135135')->{status}, 404, 'old keys gone');

    like($sim->log_text, qr{ POST /api/v1/payments 200 \d+ms }, 'request log');
    like($sim->log_text, qr{ callback POST http://\S+ 200 \d+ms key=},
        'callback log');
};

subtest 'partial and keyed cancels (refunds)' => sub {
    my $r = create(payment(cardNo => '1111-1111-1111-1111', amount => 10000),
        user => 'pc');
    my $key = $r->{json}{data}{transactionKey};
    is(wait_status($key, 'SUCCESS', user => 'pc')->{json}{data}{status}, 'SUCCESS',
        'a 10000 SUCCESS');
    (my $k = $key) =~ s/:/%3A/g;
    my $cancel = sub { $sim->request('POST', "/api/v1/payments/$k/cancel",
        user => 'pc', body => $_[0]) };
    for my $bad ('[]', '{"amount":0}', '{"amount":"5"}', '{"amount":1.5}',
                 '{"amount":1,"x":1}', '{"cancelKey":""}', '{"cancelKey":5}',
                 '{"cancelKey":"' . ('k' x 65) . '"}', '{') {
        fail_ok($cancel->($bad), 400, 'Bad Request', undef, "cancel body $bad");
    }
    $r = $cancel->({ amount => 3000, cancelKey => 'r-1' });
    is($r->{status}, 200, 'cancel 3000 of 10000: 200');
    is_deeply([ @{ $r->{json}{data} }{qw(status cancelledAmount remainingAmount)} ],
        [ 'SUCCESS', 3000, 7000 ], '... still SUCCESS, 3000 cancelled, 7000 left');
    my $c0 = $sim->counters;
    my $again = $cancel->({ amount => 3000, cancelKey => 'r-1' });
    is_deeply($again->{json}, $r->{json}, 'the same cancelKey: the same answer');
    is($sim->counters->{cancel_repeat} - $c0->{cancel_repeat}, 1, '... counted a repeat');
    is(get_txn($key, user => 'pc')->{json}{data}{cancelledAmount}, 3000,
        '... nothing cancelled twice (GET)');
    fail_ok($cancel->({ amount => 7001, cancelKey => 'r-2' }), 409, 'Conflict', undef,
        'more than remains');
    fail_ok($cancel->({ amount => 1, cancelKey => 'r-2' }), 409, 'Conflict', undef,
        '... its key answers its 409 again');
    $sim->control(hangAfterCancel => JSON::PP::true);
    $r = $sim->request('POST', "/api/v1/payments/$k/cancel", user => 'pc',
        body => { amount => 2000, cancelKey => 'r-3' }, timeout => 1);
    ok($r->{error}, 'hangAfterCancel: no answer');
    $sim->control(hangAfterCancel => JSON::PP::false);
    $r = $cancel->({ amount => 2000, cancelKey => 'r-3' });
    is($r->{json}{data}{cancelledAmount}, 5000, '... yet cancelled (5000), once');
    $r = $cancel->(undef);
    is_deeply([ @{ $r->{json}{data} }{qw(status cancelledAmount remainingAmount)} ],
        [ 'CANCELLED', 10000, 0 ], 'a body-less cancel takes the rest: CANCELLED');
    fail_ok($cancel->({ amount => 1 }), 409, 'Conflict', undef,
        'a partial cancel of a CANCELLED one');
    my $plain = create(payment(cardNo => '1111-1111-1111-1111'), user => 'pc');
    my $pk = $plain->{json}{data}{transactionKey};
    wait_status($pk, 'SUCCESS', user => 'pc');
    ok(!exists get_txn($pk, user => 'pc')->{json}{data}{cancelledAmount},
        'a transaction never cancelled by body reads as before');
};

subtest 'command-line flags' => sub {
    my $p = PgSim->start(quiet => 1, args => [ '--fail-rate', '1',
        '--latency', '0-0', '--card', '9999-9999-9999-9999=LIMIT',
        '--callback-mode', 'duplicate', '--limit-reason', '한도 부족' ]);
    my $s = $p->settings;
    is($s->{failRate}, 1, '--fail-rate');
    is($s->{cards}{'9999-9999-9999-9999'}, 'LIMIT', '--card');
    is($s->{callback}{mode}, 'duplicate', '--callback-mode');
    is($s->{declineReasons}{limit}, '한도 부족', '--limit-reason (UTF-8)');
    is($p->request('POST', '/api/v1/payments', user => 1,
        body => payment())->{status}, 500, 'the flags are in force');
    is($p->reset->{failRate}, 1, 'and are what /__reset returns to');
    $p->stop;

    my $refusing = PgSim->start(quiet => 1, args => ['--refuse']);
    is($refusing->request('GET', '/api/v1/payments', user => 1)->{error},
        'refused', '--refuse: starts refusing');
    $refusing->control(refuse => JSON::PP::false);
    is($refusing->request('GET', '/api/v1/payments', user => 1)->{status}, 400,
        'then serves');
    $refusing->stop;

    ok(!eval { PgSim->start(quiet => 1, timeout => 3,
        args => ['--fail-rate', '7']); 1 }, 'a bad flag: start() croaks');
    like($@, qr/failRate must be/, 'with the reason');
};

$sim->stop;
ok(!$sim->alive, 'stopped');
done_testing();
