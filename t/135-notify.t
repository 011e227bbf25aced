#!/usr/bin/perl
# Notifications (issue 10 §3): notify sinks of the outbox relay turn events
# into messages to the buyer, against t/notifysim (KakaoTalk Alimtalk, SMS
# and SendGrid e-mail in their providers' API shapes, each on its port):
#
#   - order.paid, payment.failed, order.cancelled reach Alimtalk with the
#     right template code and variables (the recipient's decrypted name and
#     phone, the order's product and amounts), and e-mail (subject, text)
#     for the types of the mail sink's filter, nothing else;
#   - a product name with braces, quotes, a backslash and "#{name}" is sent
#     as text, JSON-escaped, never expanded;
#   - a per-recipient Alimtalk failure ("not a KakaoTalk user") fails over
#     to SMS at once, exactly once; Alimtalk 503 on every attempt: 4
#     Alimtalk requests (1 + 3 retries), then one SMS, delivered; Alimtalk
#     hanging: timeouts, retried, then one SMS;
#   - Alimtalk and SMS both failing: dead after 4 attempts (DLQ, the last
#     error names SMS), a single SMS; the e-mail provider answering 500:
#     dead after 4 attempts; 400: dead after 1; the replay delivers;
#   - a withdrawn user gets nothing (the delivery is done with, counted);
#   - no phone number or e-mail in the outbox payloads, the error log, the
#     access log or the simulator's log;
#   - the counters of the channels, failovers and skips.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use JSON::PP;
use Encode qw(encode_utf8);
use CommerceTest;
use NotifySim;

binmode(Test::More->builder->$_, ':utf8') for qw(output failure_output todo_output);

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

my $ns = NotifySim->start(log => $t->dir . '/notifysim.log');
my $keys = $t->account_keys;
my $root = $t->root;

my %secret = (kakao => 'kakao-secret-1', sms => 'sms-secret-2', mail => 'SG.mail-key-3');
my %sfile;
for my $k (keys %secret) {
    $sfile{$k} = $t->write_file("$k.secret", "$secret{$k}\n");
    chmod 0600, $sfile{$k};
}
$ns->control(map { $_ => { secret => $secret{ $_ eq 'alimtalk' ? 'kakao'
    : $_ eq 'email' ? 'mail' : 'sms' } } } qw(alimtalk sms email));

my ($ka, $sm, $em) = map { $ns->port($_) } qw(alimtalk sms email);
my $tpl = "$root/conf/notify-templates.json";

my $conf = $t->default_config(
    main_extra => $t->account_main,
    server_extra => 'location = /metrics { commerce_metrics; }',
    http_extra => <<"EOF");
$keys
commerce_zone 1m;
upstream kakao { server 127.0.0.1:$ka; }
upstream sms { server 127.0.0.1:$sm; }
upstream mail { server 127.0.0.1:$em; }
commerce_notify_channel kakao alimtalk upstream=kakao app_key=AppKey1
    secret_file=$sfile{kakao} sender_key=sk-0123abcd connect_timeout=500ms
    timeout=1s;
commerce_notify_channel sms sms upstream=sms app_key=AppKey2
    secret_file=$sfile{sms} sender=0215880000 timeout=1s;
commerce_notify_channel mail email upstream=mail secret_file=$sfile{mail}
    sender=no-reply\@shop.example "sender_name=커머스 \\"알림\\"" timeout=1s;
commerce_event_sink buyer notify channel=kakao failover=sms templates=$tpl
    retry_base=100ms retry_cap=400ms interval=100ms;
commerce_event_sink mailer notify channel=mail templates=$tpl
    events=order.paid,order.cancelled retry_base=100ms retry_cap=400ms
    interval=100ms;
EOF
$t->write_config(encode_utf8($conf));    # the sender name is Korean
$t->start_nginx;

ok(wait_until(sub { $t->psql(q{SELECT count(*) FROM outbox_sink
    WHERE name IN ('buyer', 'mailer')}) == 2 }, timeout => 20),
    'the relay registered both notify sinks');
is($t->psql(q{SELECT array_to_string(types, ',') FROM outbox_sink WHERE name = 'buyer'}),
    'order.paid,payment.failed,order.cancelled', 'the default filter: the types with a message');

my $J = JSON::PP->new->utf8->canonical;

sub signup {
    my ($email, $name, $phone) = @_;
    my $r = $t->post('/api/v1/auth/signup', { email => $email,
        password => 'correct horse battery', name => $name,
        ($phone ? (phone => $phone) : ()) });
    is($r->{status}, 201, "signup of $name") or diag(explain($r));
    my $id = $r->{json}{id};
    $t->psql("UPDATE users SET balance = 10000000 WHERE id = $id");
    return $id;
}

sub buy {
    my ($user, $product) = @_;
    my $r = $t->post('/api/v1/orders', { items => [ { productId => $product,
        quantity => 2 } ], payment => { method => 'BALANCE' } }, user => $user);
    is($r->{status}, 201, "an order paid by user $user") or diag(explain($r));
    return $r->{json};
}

sub settled {
    my ($sink, $type, $aggregate) = @_;
    return $t->psql_json(qq{SELECT row_to_json(x) FROM (SELECT d.state, d.attempts,
        d.last_error FROM outbox_delivery d JOIN outbox o ON o.seq = d.seq
        WHERE d.sink = '$sink' AND o.type = '$type' AND o.aggregate_id = $aggregate
        ORDER BY d.seq DESC LIMIT 1) x});
}

sub wait_state {
    my ($sink, $type, $aggregate, $state, $timeout) = @_;
    my $row;
    wait_until(sub { $row = settled($sink, $type, $aggregate);
        $row && $row->{state} eq $state }, timeout => $timeout // 20);
    return $row;
}

sub to { my ($p, $no) = @_; [ grep { ($_->{recipientNo} // $_->{to} // '') eq $no }
    @{ $ns->received($p) } ] }

# an event as the triggers write it (payment.failed, order.cancelled)
sub emit {
    my ($order, $type, %data) = @_;
    my $user = $t->psql("SELECT user_id FROM orders WHERE id = $order");
    my $doc = $J->encode({ orderId => 0 + $order, userId => 0 + $user, %data });
    $doc =~ s/'/''/g;
    $t->psql("SELECT cm__outbox_emit('order', $order, '$type', '$doc'::jsonb)");
}

# --- order.paid: Alimtalk with the template and its variables, e-mail -----

my $alice = signup('alice.kim@example.com', '김영희', '010-1111-2222');
# a product name that is not a template: braces, quotes, a backslash, #{name}
$t->psql(encode_utf8(q{UPDATE products SET name = E'머그 "#{name}" {x} \\\\ 컵' WHERE id = 7}));
my $o1 = buy($alice, 7);
my $paid = wait_state('buyer', 'order.paid', $o1->{id}, 'DELIVERED');
is_deeply([ @$paid{qw(state attempts)} ], [ 'DELIVERED', 1 ], 'order.paid: delivered at once');
ok(wait_state('mailer', 'order.paid', $o1->{id}, 'DELIVERED'), 'and by e-mail');

my $at = to(alimtalk => '01011112222');
is(scalar @$at, 1, 'one Alimtalk message to the buyer\'s phone (digits)');
my $amount = $o1->{paymentAmount};
(my $fmt = $amount) =~ s/(\d)(?=(\d{3})+$)/$1,/g;
is_deeply({ map { $_ => $at->[0]{$_} } qw(appkey senderKey templateCode
    templateParameter status resultCode) },
    { appkey => 'AppKey1', senderKey => 'sk-0123abcd',
      templateCode => 'COMMERCE_ORDER_PAID_01', status => 200, resultCode => 0,
      templateParameter => { name => '김영희', orderId => "$o1->{id}",
          productName => '머그 "#{name}" {x} \\ 컵', paymentAmount => $fmt } },
    'Alimtalk: the template code and its variables, the product name as text');
is(scalar @{ $ns->received('sms') }, 0, 'no SMS');

my $mail = to(email => 'alice.kim@example.com');
is(scalar @$mail, 1, 'one e-mail to the buyer');
is($mail->[0]{status}, 202, 'SendGrid: 202');
is($mail->[0]{from}, 'no-reply@shop.example', 'from the sender');
is($mail->[0]{fromName}, '커머스 "알림"', 'with its name, escaped');
is($mail->[0]{subject}, "[커머스] 주문 $o1->{id} 결제가 완료되었습니다", 'the subject');
is($mail->[0]{text}, "김영희님, 주문하신 상품의 결제가 완료되었습니다.\n\n"
    . "주문번호: $o1->{id}\n상품: 머그 \"#{name}\" {x} \\ 컵\n결제금액: ${fmt}원\n\n"
    . "빠르게 준비해서 보내드릴게요.", 'the text, the product name not expanded');

# --- payment.failed and order.cancelled ---------------------------------------

emit($o1->{id}, 'payment.failed', reason => 'CARD_DECLINED: 한도 초과 "x"', amount => 0 + $amount);
ok(wait_state('buyer', 'payment.failed', $o1->{id}, 'DELIVERED'), 'payment.failed delivered');
$at = to(alimtalk => '01011112222');
is($at->[-1]{templateCode}, 'COMMERCE_PAYMENT_FAILED_01', 'payment.failed: its template');
is_deeply($at->[-1]{templateParameter}, { name => '김영희', orderId => "$o1->{id}",
    productName => '머그 "#{name}" {x} \\ 컵', paymentAmount => $fmt,
    reason => 'CARD_DECLINED: 한도 초과 "x"' }, '... and its variables (reason from the event)');
is(settled('mailer', 'payment.failed', $o1->{id}), undef,
    'the mail sink does not take payment.failed (its filter)');

emit($o1->{id}, 'order.cancelled', reason => 'cancelled', totalAmount => 0 + $o1->{totalAmount});
ok(wait_state('buyer', 'order.cancelled', $o1->{id}, 'DELIVERED'), 'order.cancelled delivered');
ok(wait_state('mailer', 'order.cancelled', $o1->{id}, 'DELIVERED'), '... by e-mail too');
is(to(alimtalk => '01011112222')->[-1]{templateCode}, 'COMMERCE_ORDER_CANCELLED_01',
    'order.cancelled: its template');
is(to(email => 'alice.kim@example.com')->[-1]{subject},
    "[커머스] 주문 $o1->{id}이(가) 취소되었습니다", 'and its e-mail');
is(scalar @{ $ns->received('sms') }, 0, 'still no SMS');

# --- not a KakaoTalk user: SMS at once, exactly once -------------------------

$ns->reset;
$ns->control(alimtalk => { secret => $secret{kakao}, notKakao => [ '01033334444' ] },
    sms => { secret => $secret{sms} }, email => { secret => $secret{mail} });
my $bob = signup('bob.lee@example.com', '이철수', '010-3333-4444');
my $o2 = buy($bob, 8);
my $row = wait_state('buyer', 'order.paid', $o2->{id}, 'DELIVERED');
is_deeply([ @$row{qw(state attempts)} ], [ 'DELIVERED', 1 ],
    'not a KakaoTalk user: delivered on the first attempt');
my $bat = to(alimtalk => '01033334444');
is(scalar @$bat, 1, 'one Alimtalk request');
is($bat->[0]{resultCode}, -3006, '... answered "not a KakaoTalk user" for the recipient');
sleep 0.5;
my $bsms = to(sms => '01033334444');
is(scalar @$bsms, 1, 'exactly one SMS');
(my $bfmt = $o2->{paymentAmount}) =~ s/(\d)(?=(\d{3})+$)/$1,/g;
is_deeply({ map { $_ => $bsms->[0]{$_} } qw(appKey sendNo body status) },
    { appKey => 'AppKey2', sendNo => '0215880000', status => 200,
      body => "[커머스] 주문 $o2->{id} 결제 완료 ${bfmt}원" },
    'SMS: the sender number and the short text');

# --- Alimtalk 503 on every attempt: 4 tries, then one SMS ---------------------

$ns->reset;
$ns->control(alimtalk => { secret => $secret{kakao}, alwaysStatus => 503 },
    sms => { secret => $secret{sms} }, email => { secret => $secret{mail} });
my $o3 = buy($alice, 9);
$row = wait_state('buyer', 'order.paid', $o3->{id}, 'DELIVERED');
is_deeply([ @$row{qw(state attempts)} ], [ 'DELIVERED', 4 ],
    'Alimtalk down: delivered on the 4th attempt');
is(scalar @{ to(alimtalk => '01011112222') }, 4, '4 Alimtalk requests (1 + 3 retries)');
sleep 0.5;
is(scalar @{ to(sms => '01011112222') }, 1, 'then exactly one SMS');

# --- Alimtalk hanging: timeouts, retried, then one SMS -------------------------

$ns->reset;
$ns->control(alimtalk => { secret => $secret{kakao}, hang => JSON::PP::true },
    sms => { secret => $secret{sms} }, email => { secret => $secret{mail} });
my $o4 = buy($alice, 10);
$row = wait_state('buyer', 'order.paid', $o4->{id}, 'DELIVERED', 30);
is_deeply([ @$row{qw(state attempts)} ], [ 'DELIVERED', 4 ],
    'Alimtalk hanging: timeouts are retried, the 4th fails over');
is(scalar @{ to(sms => '01011112222') }, 1, 'exactly one SMS');
ok((grep { $_->{hung} } @{ $ns->received('alimtalk') }) == 4, 'after 4 unanswered requests');

# --- both down: dead after 4 attempts; e-mail 500: dead; 400: poison -----------

$ns->reset;
$ns->control(alimtalk => { secret => $secret{kakao}, alwaysStatus => 503 },
    sms => { secret => $secret{sms}, alwaysStatus => 500 },
    email => { secret => $secret{mail}, alwaysStatus => 500 });
my $o5 = buy($alice, 11);
$row = wait_state('buyer', 'order.paid', $o5->{id}, 'DEAD');
is_deeply([ @$row{qw(state attempts)} ], [ 'DEAD', 4 ], 'Alimtalk and SMS down: dead after 4');
like($row->{last_error}, qr/^sms: HTTP 500/, 'the last error names the SMS channel');
is(scalar @{ to(sms => '01011112222') }, 1, 'one SMS tried, on the last attempt');
$row = wait_state('mailer', 'order.paid', $o5->{id}, 'DEAD');
is_deeply([ @$row{qw(state attempts)} ], [ 'DEAD', 4 ], 'e-mail 500: dead after 4 attempts');
is(scalar @{ to(email => 'alice.kim@example.com') }, 4, '4 e-mail requests');

$ns->reset;
$ns->control(alimtalk => { secret => $secret{kakao} }, sms => { secret => $secret{sms} },
    email => { secret => $secret{mail}, alwaysStatus => 400 });
my $o6 = buy($alice, 12);
$row = wait_state('mailer', 'order.paid', $o6->{id}, 'DEAD');
is_deeply([ @$row{qw(state attempts)} ], [ 'DEAD', 1 ], 'e-mail 400: dead at once (poison)');
is($row->{last_error}, 'mail: HTTP 400, code 0', '... with the status');
# the buyer's Alimtalk of that order must be in before the reset below, or
# it would be counted with the replay's
ok(wait_state('buyer', 'order.paid', $o6->{id}, 'DELIVERED'), "... the buyer's went by Alimtalk");

# the providers back: the DLQ's replay sends them
$ns->reset;
$ns->control(alimtalk => { secret => $secret{kakao} }, sms => { secret => $secret{sms} },
    email => { secret => $secret{mail} });
my $ADMIN = $t->token(2, role => 'ADMIN');
my $r = $t->post('/api/v1/admin/events/dead/replay', { type => 'order.paid' }, token => $ADMIN);
is($r->{status}, 200, 'replay of the dead order.paid events');
is($r->{json}{replayed}, 3, '... three of them');
ok(wait_state('buyer', 'order.paid', $o5->{id}, 'DELIVERED'), 'replayed: delivered');
ok(wait_state('mailer', 'order.paid', $o6->{id}, 'DELIVERED'), 'replayed: e-mailed');
is_deeply([ map { $_->{templateParameter}{orderId} } @{ to(alimtalk => '01011112222') } ],
    [ $o5->{id} ], "by Alimtalk, once, the replayed order's");

# --- a withdrawn user gets nothing --------------------------------------------

$ns->reset;
$ns->control(alimtalk => { secret => $secret{kakao} }, sms => { secret => $secret{sms} },
    email => { secret => $secret{mail} });
my $carol = signup('carol.park@example.com', '박민지', '010-5555-6666');
my $o7 = buy($carol, 13);
ok(wait_state('buyer', 'order.paid', $o7->{id}, 'DELIVERED'), 'carol is notified while a user');
ok(wait_state('mailer', 'order.paid', $o7->{id}, 'DELIVERED'), '... by e-mail too');
$ns->reset;
$ns->control(alimtalk => { secret => $secret{kakao} }, sms => { secret => $secret{sms} },
    email => { secret => $secret{mail} });
is($t->req('DELETE', '/api/v1/users/me', user => $carol)->{status}, 204, 'carol withdraws');
emit($o7->{id}, 'order.cancelled', reason => 'cancelled', totalAmount => 0 + $o7->{totalAmount});
ok(wait_state('buyer', 'order.cancelled', $o7->{id}, 'DELIVERED'), 'her order.cancelled is done with');
ok(wait_state('mailer', 'order.cancelled', $o7->{id}, 'DELIVERED'), '... for both sinks');
sleep 0.3;
my $st = $ns->stats;
is($st->{$_}{requests}, 0, "nothing reached $_") for qw(alimtalk sms email);
like($t->read_file($t->error_log), qr/sink buyer: nothing sent, user $carol is withdrawn/,
    'logged at info, by user id');

# --- no PII in payloads or logs -------------------------------------------------

my $payloads = $t->psql(q{SELECT string_agg(payload::text, E'\n') FROM outbox});
my $logs = $t->read_file($t->error_log) . $t->read_file($t->nginx_prefix . '/access.log')
    . $t->read_file($t->dir . '/notifysim.log');
for my $pii ('01011112222', '010-1111-2222', '1111-2222', '01033334444', '3333-4444',
    '5555-6666', 'alice.kim', 'bob.lee', 'carol.park', '@example.com', '김영희', '이철수')
{
    my $b = encode_utf8($pii);    # the files and psql's output are bytes
    unlike($payloads, qr/\Q$b\E/, "no '$pii' in any outbox payload");
    unlike($logs, qr/\Q$b\E/, "nor in the error, access or simulator log");
}
unlike($payloads, qr/phone|email/i, 'no phone or email field in any payload');

# --- metrics -----------------------------------------------------------------------

my $m = $t->metrics;
cmp_ok($t->metric($m, 'commerce_notify_messages_total', sink => 'buyer', channel => 'kakao',
    result => 'sent'), '>=', 6, 'Alimtalk messages sent');
is($t->metric($m, 'commerce_notify_messages_total', sink => 'buyer', channel => 'sms',
    result => 'sent'), 3, 'SMS sent: the three failovers that got through');
is($t->metric($m, 'commerce_notify_failovers_total', sink => 'buyer'), 4,
    'failovers: not a KakaoTalk user, 503, hanging, both down');
is($t->metric($m, 'commerce_notify_skipped_total', sink => 'buyer', reason => 'withdrawn'), 1,
    'skipped: the withdrawn user');
is($t->metric($m, 'commerce_events_dead_total', sink => 'mailer', type => 'order.paid'), 2,
    'the relay counts the dead ones');

done_testing;
