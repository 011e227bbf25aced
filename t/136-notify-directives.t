#!/usr/bin/perl
# nginx -t and the notification sinks: commerce_notify_channel (alimtalk,
# sms, email) and commerce_event_sink ... notify are accepted with every
# parameter; every bad value is rejected with an [emerg] naming the
# directive, the channel or sink and the value.  No Postgres needed: nginx
# -t only parses (the templates file and the secret files are read).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;

my $t = CommerceTest->new;
my $CONNINFO = 'host=127.0.0.1 port=5432 dbname=commerce user=postgres';
my $TPL = $t->root . '/conf/notify-templates.json';

my $secret = $t->write_file('p.secret', "s3cret-key\n");
chmod 0600, $secret;
my $open = $t->write_file('open.secret', "s3cret-key\n");
chmod 0644, $open;
my $spaced = $t->write_file('spaced.secret', "two words\n");
chmod 0600, $spaced;

sub tpl {
    my ($name, $json) = @_;
    return $t->write_file($name, $json);
}

my $KAKAO = "commerce_notify_channel kakao alimtalk upstream=k app_key=App1 "
    . "secret_file=$secret sender_key=sk-1;";
my $SMS = "commerce_notify_channel sms sms upstream=s app_key=App2 "
    . "secret_file=$secret sender=0215880000;";
my $MAIL = "commerce_notify_channel mail email upstream=m secret_file=$secret "
    . "sender=no-reply\@shop.example;";

sub http {
    return join "\n", 'upstream k { server 127.0.0.1:9; }',
        'upstream s { server 127.0.0.1:10; }', 'upstream m { server 127.0.0.1:11; }',
        @_, '';
}

sub check {
    return $t->nginx_t($t->default_config(conninfo => $CONNINFO,
        http_extra => $_[0]));
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

my $C = qr/\[emerg\] "commerce_notify_channel"/;
my $S = qr/\[emerg\] "commerce_event_sink"/;

# --- good ----------------------------------------------------------------------

accepts(http($KAKAO, $SMS, "commerce_event_sink buyer notify channel=kakao "
    . "failover=sms templates=$TPL;"), 'Alimtalk with an SMS failover');
accepts(http($KAKAO, $SMS, $MAIL,
    "commerce_event_sink buyer notify channel=kakao failover=sms templates=$TPL "
    . "events=order.paid,payment.failed retries=2 retry_base=1s retry_cap=1m "
    . "batch=50 concurrency=8 interval=1s lease=5m open=10s;",
    "commerce_event_sink mailer notify channel=mail templates=$TPL events=order.cancelled;",
    "commerce_event_sink sms-only notify channel=sms templates=$TPL;"),
    'three notify sinks, every relay parameter');
accepts(http("commerce_notify_channel kakao alimtalk upstream=k app_key=App1 "
    . "secret_file=$secret sender_key=sk-1 ssl=on ssl_verify=off "
    . "ssl_name=api-alimtalk.cloud.toast.com connect_timeout=500ms timeout=5s keepalive=4;",
    "commerce_notify_channel mail email upstream=m secret_file=$secret "
    . "sender=a\@b.example \"sender_name=Shop 상점\";",
    "commerce_event_sink buyer notify channel=kakao failover=mail templates=$TPL;"),
    'TLS as for gateways, an e-mail failover');

# --- bad channels ----------------------------------------------------------------

rejects(http("commerce_notify_channel kakao telegram upstream=k secret_file=$secret;"),
    qr/$C "kakao": the kind must be "alimtalk", "sms" or "email", not "telegram"/,
    'an unknown kind');
rejects(http("commerce_notify_channel kakao alimtalk upstream=k secret_file=$secret;"),
    qr/$C "kakao" needs upstream=, secret_file=, app_key= and sender_key=/,
    'alimtalk without app_key=');
rejects(http("commerce_notify_channel sms sms upstream=s app_key=A secret_file=$secret;"),
    qr/$C "sms" needs upstream=, secret_file=, app_key= and sender=/, 'sms without sender=');
rejects(http("commerce_notify_channel mail email upstream=m sender=a\@b.example;"),
    qr/$C "mail" needs upstream=, secret_file= and sender=/, 'email without secret_file=');
for my $bad ('sender=02-1588-0000', 'sender=1234567', 'sender=abcdefghij',
    'app_key=a/b', 'app_key=' . ('a' x 65), 'sender_key=x"y', 'colour=red', 'timeout=0',
    'retries=2', 'nonsense')
{
    rejects(http("commerce_notify_channel ch " . ($bad =~ /^sender_key/
        ? "alimtalk upstream=s app_key=A secret_file=$secret sender_key=k $bad;"
        : "sms upstream=s app_key=A secret_file=$secret sender=0215880000 $bad;")),
        qr/$C "ch": invalid parameter "\Q$bad\E"/, "channel parameter $bad");
}
for my $bad ('sender=nobody', 'sender=a@b@c', 'sender=a"b@c.d', 'sender=@b.c',
    'sender_key=x')
{
    rejects(http("commerce_notify_channel mail email upstream=m secret_file=$secret $bad;"),
        qr/$C "mail": invalid parameter "\Q$bad\E"/, "e-mail channel parameter $bad");
}
rejects(http("commerce_notify_channel kakao alimtalk upstream=k app_key=A "
    . "secret_file=$open sender_key=s;"), qr/"commerce_notify_channel".*group or others/,
    'a secret file others may read');
rejects(http("commerce_notify_channel kakao alimtalk upstream=k app_key=A "
    . "secret_file=$spaced sender_key=s;"), qr/$C "kakao": the first line of/,
    'a secret with a space (it goes in a header)');
rejects(http("commerce_notify_channel kakao alimtalk upstream=nosuch app_key=A "
    . "secret_file=$secret sender_key=s;",
    "commerce_event_sink b notify channel=kakao templates=$TPL;"),
    qr/"commerce_notify_channel".*nosuch/, 'an unknown upstream');
rejects(http($KAKAO, $KAKAO), qr/$C "kakao" is duplicate/, 'a duplicate channel');
rejects(http("commerce_notify_channel a.b sms upstream=s app_key=A secret_file=$secret "
    . "sender=0215880000;"), qr/$C name "a.b" may only have/, 'a bad channel name');

# --- bad sinks ---------------------------------------------------------------------

rejects(http($KAKAO, "commerce_event_sink b notify templates=$TPL;"),
    qr/$S "b" needs channel= and templates=/, 'no channel=');
rejects(http($KAKAO, "commerce_event_sink b notify channel=kakao;"),
    qr/$S "b" needs channel= and templates=/, 'no templates=');
rejects(http($KAKAO, "commerce_event_sink b notify channel=nosuch templates=$TPL;"),
    qr/$S "b": no "commerce_notify_channel" "nosuch"/, 'an unknown channel');
rejects(http($KAKAO, "commerce_event_sink b notify channel=kakao failover=kakao templates=$TPL;"),
    qr/$S "b": failover= is the channel itself/, 'failover to itself');
rejects(http($KAKAO, "commerce_event_sink b notify channel=kakao failover=a/b templates=$TPL;"),
    qr/$S "b": invalid parameter "failover=a\/b"/, 'a bad failover name');
rejects(http($KAKAO, "commerce_event_sink b notify channel=kakao templates=$TPL uri=/x;"),
    qr/$S "b": invalid parameter "uri=\/x"/, 'an http sink parameter');
for my $ev ('order.*', '*', 'user.signed_up', 'order.paid,coupon.issued') {
    rejects(http($KAKAO, "commerce_event_sink b notify channel=kakao templates=$TPL events=$ev;"),
        qr/$S "b": events= of a notify sink lists types that have a message/,
        "events=$ev (no message for it)");
}
rejects(http($KAKAO, "commerce_event_sink b notify channel=kakao templates=/no/such.json;"),
    qr/"commerce_event_sink".*\/no\/such\.json/, 'a templates file that is not there');
my $f = tpl('t1.json', '[1]');
rejects(http($KAKAO, "commerce_event_sink b notify channel=kakao templates=$f;"),
    qr/$S "b": "\Q$f\E" is not a JSON object/, 'templates not a JSON object');
$f = tpl('t2.json', '{"order_paid":{"templateCode":"A","text":"#{name}"}}');
rejects(http($KAKAO, "commerce_event_sink b notify channel=kakao templates=$f;"),
    qr/$S "b": "\Q$f\E" has no template "payment_failed" \(an object\) for payment.failed/,
    'a message without its template');
$f = tpl('t3.json', '{"order_paid":{"templateCode":"A","text":"#{name} #{phone}"}}');
rejects(http($KAKAO, "commerce_event_sink b notify channel=kakao templates=$f events=order.paid;"),
    qr/$S "b": template "order_paid": "text" has an unknown variable "#\{phone\}"/,
    'a template with an unknown variable');
$f = tpl('t4.json', '{"order_paid":{"templateCode":"A","text":"#{name"}}');
rejects(http($KAKAO, "commerce_event_sink b notify channel=kakao templates=$f events=order.paid;"),
    qr/$S "b": template "order_paid": "text" has an unknown variable/, 'an unclosed variable');
$f = tpl('t5.json', '{"order_paid":{"text":"x"}}');
rejects(http($KAKAO, "commerce_event_sink b notify channel=kakao templates=$f events=order.paid;"),
    qr/$S "b": template "order_paid" needs "templateCode" \(a string\)/,
    'Alimtalk without a template code');
$f = tpl('t6.json', '{"order_paid":{"templateCode":"A","text":"x"}}');
rejects(http($MAIL, "commerce_event_sink b notify channel=mail templates=$f events=order.paid;"),
    qr/$S "b": template "order_paid" needs "subject"/, 'e-mail without a subject');
$f = tpl('t7.json', '{"order_paid":{"templateCode":"A B","text":"x"}}');
rejects(http($KAKAO, "commerce_event_sink b notify channel=kakao templates=$f events=order.paid;"),
    qr/$S "b": template "order_paid": templateCode must be/, 'a bad template code');

done_testing;
